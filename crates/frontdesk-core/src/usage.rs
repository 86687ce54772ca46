//! Usage figures from the daily rollups (never by scanning messages): per day, today,
//! per month. Days are the tenant's, in its time zone. A member sees their own usage only
//! (the rollups' row policy); staff and keys see the tenant's.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use tokio_postgres::Row;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::{CoreError, Tx};

/// Totals over a period.
#[derive(Debug, Serialize, ToSchema)]
pub struct Usage {
    /// The day (`YYYY-MM-DD`) or month (`YYYY-MM`) these totals are for.
    pub period: String,
    /// LLM calls: messages with tokens or a cost.
    pub request_count: i64,
    pub message_count: i64,
    pub user_messages: i64,
    pub assistant_messages: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub total_tokens: i64,
    #[schema(value_type = String, example = "1.2345")]
    pub cost_usd: Decimal,
    /// Calls of models without a price (costed 0).
    pub unpriced_count: i64,
}

const SUMS: &str = "coalesce(sum(request_count), 0)::bigint as request_count,
    coalesce(sum(message_count), 0)::bigint as message_count,
    coalesce(sum(user_messages), 0)::bigint as user_messages,
    coalesce(sum(assistant_messages), 0)::bigint as assistant_messages,
    coalesce(sum(prompt_tokens), 0)::bigint as prompt_tokens,
    coalesce(sum(completion_tokens), 0)::bigint as completion_tokens,
    coalesce(sum(cost_usd), 0) as cost_usd,
    coalesce(sum(unpriced_count), 0)::bigint as unpriced_count";

impl Usage {
    fn from_row(row: &Row) -> Self {
        let prompt: i64 = row.get("prompt_tokens");
        let completion: i64 = row.get("completion_tokens");
        Self {
            period: row.get("period"),
            request_count: row.get("request_count"),
            message_count: row.get("message_count"),
            user_messages: row.get("user_messages"),
            assistant_messages: row.get("assistant_messages"),
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: prompt + completion,
            cost_usd: row.get::<_, Decimal>("cost_usd").normalize(),
            unpriced_count: row.get("unpriced_count"),
        }
    }
}

/// `?days=` (1–366, default 30) for daily figures; `?months=` (1–36, default 12) for monthly.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Span {
    pub days: Option<i32>,
    pub months: Option<i32>,
}

impl Span {
    fn count(value: Option<i32>, name: &str, default: i32, max: i32) -> Result<i32, CoreError> {
        match value.unwrap_or(default) {
            n if (1..=max).contains(&n) => Ok(n),
            _ => Err(CoreError::invalid(
                name,
                &format!("must be between 1 and {max}"),
            )),
        }
    }
}

/// One row per day of the last `days` days (today included), oldest first; days without
/// usage are zeros.
pub async fn daily(tx: &mut Tx, tenant: Uuid, span: &Span) -> Result<Vec<Usage>, CoreError> {
    if span.months.is_some() {
        return Err(CoreError::invalid("months", "is for /usage/monthly"));
    }
    let days = Span::count(span.days, "days", 30, 366)?;
    tx.commit_with_next();
    let rows = tx
        .query(
            &format!(
                "with today as (select (now() at time zone timezone)::date as d from app.tenants where id = $1),
                      days as (select generate_series(d - ($2 - 1), d, interval '1 day')::date as day from today)
                 select to_char(days.day, 'YYYY-MM-DD') as period, {SUMS}
                 from days left join app.usage_daily u on u.tenant_id = $1 and u.day = days.day
                 group by days.day order by days.day"
            ),
            &[&tenant, &days],
        )
        .await?;
    Ok(rows.iter().map(Usage::from_row).collect())
}

/// Today so far, in the tenant's time zone.
pub async fn today(tx: &mut Tx, tenant: Uuid) -> Result<Usage, CoreError> {
    let mut days = daily(
        tx,
        tenant,
        &Span {
            days: Some(1),
            months: None,
        },
    )
    .await?;
    days.pop().ok_or(CoreError::NotFound)
}

/// One row per calendar month of the last `months` months (this one included).
pub async fn monthly(tx: &mut Tx, tenant: Uuid, span: &Span) -> Result<Vec<Usage>, CoreError> {
    if span.days.is_some() {
        return Err(CoreError::invalid("days", "is for /usage/daily"));
    }
    let months = Span::count(span.months, "months", 12, 36)?;
    tx.commit_with_next();
    let rows = tx
        .query(
            &format!(
                "with this as (select date_trunc('month', (now() at time zone timezone)::date)::date as m
                               from app.tenants where id = $1),
                      months as (select generate_series(m - make_interval(months => $2 - 1), m,
                                                        interval '1 month')::date as month from this)
                 select to_char(months.month, 'YYYY-MM') as period, {SUMS}
                 from months left join app.usage_daily u
                   on u.tenant_id = $1 and u.day >= months.month
                  and u.day < (months.month + interval '1 month')::date
                 group by months.month order by months.month"
            ),
            &[&tenant, &months],
        )
        .await?;
    Ok(rows.iter().map(Usage::from_row).collect())
}
