//! Usage figures from the daily rollups (never by scanning messages): per day, today,
//! per month. Days are the tenant's, in its time zone. A member sees their own usage only
//! (the rollups' row policy); staff and keys see the tenant's.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use tokio_postgres::Row;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::{
    CoreError, Tx,
    platform::input::{check_llm_call, decimal_rule, is_identifier},
};

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

/// `?days=` (1–366, default 30): the last N days of the tenant, today included.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Days {
    pub days: Option<i32>,
}

impl Days {
    pub fn parse(&self) -> Result<i32, CoreError> {
        match self.days.unwrap_or(30) {
            n @ 1..=366 => Ok(n),
            _ => Err(CoreError::invalid("days", "must be between 1 and 366")),
        }
    }
}

/// `?months=` (1–36, default 12): the last N calendar months, this one included.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Months {
    pub months: Option<i32>,
}

impl Months {
    pub fn parse(&self) -> Result<i32, CoreError> {
        match self.months.unwrap_or(12) {
            n @ 1..=36 => Ok(n),
            _ => Err(CoreError::invalid("months", "must be between 1 and 36")),
        }
    }
}

/// One row per day of the last `days` days (today included), oldest first; days without
/// usage are zeros.
pub async fn daily(tx: &mut Tx, tenant: Uuid, days: i32) -> Result<Vec<Usage>, CoreError> {
    tx.last();
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
    let mut days = daily(tx, tenant, 1).await?;
    days.pop().ok_or(CoreError::NotFound)
}

/// One row per calendar month of the last `months` months (this one included).
pub async fn monthly(tx: &mut Tx, tenant: Uuid, months: i32) -> Result<Vec<Usage>, CoreError> {
    tx.last();
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

/// Usage not tied to a message, as recorded.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageEvent {
    pub id: Uuid,
    pub user_id: Option<Uuid>,
    pub assistant_id: Option<Uuid>,
    pub conversation_id: Option<Uuid>,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub prompt_tokens: Option<i32>,
    pub completion_tokens: Option<i32>,
    pub unit: Option<String>,
    #[schema(value_type = Option<String>, example = "3.5")]
    pub quantity: Option<Decimal>,
    #[schema(value_type = Option<String>, example = "0.02")]
    pub unit_price_usd: Option<Decimal>,
    #[schema(value_type = String, example = "0.07")]
    pub cost_usd: Decimal,
    /// provided (given, or unit price × quantity), catalog, or unpriced (costed 0).
    pub cost_source: String,
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

const EVENT_COLUMNS: &str = "id, user_id, assistant_id, conversation_id, provider, model, prompt_tokens, \
    completion_tokens, unit, quantity, unit_price_usd, cost_usd, cost_source, metadata, created_at";

impl UsageEvent {
    fn from_row(row: &Row) -> Self {
        let normal = |d: Option<Decimal>| d.map(|d| d.normalize());
        Self {
            id: row.get(0),
            user_id: row.get(1),
            assistant_id: row.get(2),
            conversation_id: row.get(3),
            provider: row.get(4),
            model: row.get(5),
            prompt_tokens: row.get(6),
            completion_tokens: row.get(7),
            unit: row.get(8),
            quantity: normal(row.get(9)),
            unit_price_usd: normal(row.get(10)),
            cost_usd: row.get::<_, Decimal>(11).normalize(),
            cost_source: row.get(12),
            metadata: row.get(13),
            created_at: row.get(14),
        }
    }
}

/// `POST …/usage`: tokens of a model (costed from the catalog unless `cost_usd` is given),
/// or a `unit` and `quantity` with an optional `unit_price_usd`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"provider": "openai", "model": "text-embedding-3-small", "prompt_tokens": 5000}))]
pub struct NewUsageEvent {
    pub user_id: Option<Uuid>,
    pub assistant_id: Option<Uuid>,
    pub conversation_id: Option<Uuid>,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub prompt_tokens: Option<i64>,
    pub completion_tokens: Option<i64>,
    /// e.g. `minute`, `call`, `image`: 1–32 lower-case letters, digits, underscores.
    pub unit: Option<String>,
    #[schema(value_type = Option<String>)]
    pub quantity: Option<Decimal>,
    #[schema(value_type = Option<String>)]
    pub unit_price_usd: Option<Decimal>,
    /// Wins over any computed cost.
    #[schema(value_type = Option<String>)]
    pub cost_usd: Option<Decimal>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
    /// The reservation (`POST …/limits/check`) this usage settles.
    pub reservation_id: Option<Uuid>,
}

impl NewUsageEvent {
    pub fn check(&self) -> Result<(), CoreError> {
        use crate::FieldError;
        let mut errors = Vec::new();
        let tokens = self.prompt_tokens.is_some() || self.completion_tokens.is_some();
        match (tokens, &self.unit) {
            (true, Some(_)) => {
                errors.push(FieldError::new("unit", "give tokens or a unit, not both"))
            }
            (false, None) => errors.push(FieldError::new(
                "prompt_tokens",
                "give tokens, or a unit and quantity",
            )),
            (false, Some(unit)) => {
                if !is_identifier(unit, 1, 32) {
                    errors.push(FieldError::new(
                        "unit",
                        "must be 1 to 32 lower-case letters, digits and underscores",
                    ));
                }
                if self.quantity.is_none() {
                    errors.push(FieldError::new("quantity", "is required with a unit"));
                }
            }
            (true, None) => {
                if self.quantity.is_some() || self.unit_price_usd.is_some() {
                    errors.push(FieldError::new("quantity", "goes with a unit"));
                }
            }
        }
        check_llm_call(
            &mut errors,
            self.prompt_tokens,
            self.completion_tokens,
            self.provider.as_deref(),
            self.model.as_deref(),
        );
        for (name, value, scale) in [
            ("quantity", self.quantity, 6),
            ("unit_price_usd", self.unit_price_usd, 10),
            ("cost_usd", self.cost_usd, 10),
        ] {
            if let Some(message) = value.and_then(|v| decimal_rule(&v, scale)) {
                errors.push(FieldError::new(name, message));
            }
        }
        if self.metadata.as_ref().is_some_and(|m| !m.is_object()) {
            errors.push(FieldError::new("metadata", "must be an object"));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(CoreError::Invalid(errors))
        }
    }
}

/// Record a usage event; its rollup moves in the same statement.
pub async fn record(tx: &mut Tx, tenant: Uuid, e: &NewUsageEvent) -> Result<UsageEvent, CoreError> {
    let metadata = e.metadata.clone().unwrap_or_else(|| serde_json::json!({}));
    let row = tx
        .last()
        .query_one(
            &format!(
                "insert into app.usage_events (tenant_id, id, user_id, assistant_id, conversation_id, provider,
                     model, prompt_tokens, completion_tokens, unit, quantity, unit_price_usd, cost_usd, metadata,
                     reservation_id)
                 values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
                 returning {EVENT_COLUMNS}"
            ),
            &[
                &tenant,
                &Uuid::now_v7(),
                &e.user_id,
                &e.assistant_id,
                &e.conversation_id,
                &e.provider,
                &e.model,
                &e.prompt_tokens.map(|n| n as i32),
                &e.completion_tokens.map(|n| n as i32),
                &e.unit,
                &e.quantity,
                &e.unit_price_usd,
                &e.cost_usd,
                &metadata,
                &e.reservation_id,
            ],
        )
        .await?;
    Ok(UsageEvent::from_row(&row))
}

/// The tenant's usage events, newest first (a member: their own).
pub async fn events(
    tx: &mut Tx,
    tenant: Uuid,
    page: &crate::platform::page::Page<Uuid>,
) -> Result<crate::platform::page::Paged<UsageEvent>, CoreError> {
    tx.last();
    let rows = tx
        .query(
            &format!(
                "select {EVENT_COLUMNS} from app.usage_events
                 where tenant_id = $1 and ($2::uuid is null or id < $2) order by id desc limit $3"
            ),
            &[&tenant, &page.after, &(page.limit + 1)],
        )
        .await?;
    Ok(crate::platform::page::Paged::from_rows(
        rows.iter().map(UsageEvent::from_row).collect(),
        page.limit,
        |e: &UsageEvent| e.id,
    ))
}
