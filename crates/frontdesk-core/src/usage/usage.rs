//! Usage figures from the daily rollups (never by scanning messages): per day, today,
//! per month. Days are the tenant's, in its time zone. A member sees their own usage only
//! (the rollups' row policy); staff and keys see the tenant's.

use frontdesk_pg::RowExt;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use tokio_postgres::Row;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    CoreError, Tx,
    conversations::messages::CostSource,
    platform::input::{
        Field, Invalid, Unknown, any, decimal_rule, int32_within, is_identifier, json_object,
    },
    platform::values::{CostUsd, LlmProvider},
    usage::limits::LimitName,
    usage::period::{self, EventSelection, Filters, Period, Selection},
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
    fn from_row(row: &Row) -> Result<Self, CoreError> {
        let prompt: i64 = row.col("prompt_tokens")?;
        let completion: i64 = row.col("completion_tokens")?;
        Ok(Self {
            period: row.col("period")?,
            request_count: row.col("request_count")?,
            message_count: row.col("message_count")?,
            user_messages: row.col("user_messages")?,
            assistant_messages: row.col("assistant_messages")?,
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: prompt + completion,
            cost_usd: row.col::<Decimal>("cost_usd")?.normalize(),
            unpriced_count: row.col("unpriced_count")?,
        })
    }
}

/// One row per day of the period, oldest first; days without usage are zeros.
pub async fn daily(tx: &mut Tx, tenant: Uuid, q: &Selection) -> Result<Vec<Usage>, CoreError> {
    tx.last();
    let rows = tx
        .query(
            &format!(
                "with days as (select generate_series({first}, {last}, interval '1 day')::date as day)
                 select to_char(days.day, 'YYYY-MM-DD') as period, {SUMS}
                 from days left join app.usage_daily u on u.tenant_id = $1 and u.day = days.day and {filtered}
                 group by days.day order by days.day",
                first = period::first_day(),
                last = period::last_day(),
                filtered = period::filtered("u"),
            ),
            &q.params(&tenant),
        )
        .await?;
    rows.iter().map(Usage::from_row).collect::<Result<_, _>>()
}

/// Today so far, in the tenant's time zone.
pub async fn today(tx: &mut Tx, tenant: Uuid, filters: Filters) -> Result<Usage, CoreError> {
    let q = Selection {
        period: Period::last_days(1),
        filters,
    };
    let mut days = daily(tx, tenant, &q).await?;
    days.pop().ok_or(CoreError::NotFound)
}

/// One row per calendar month of the period, oldest first: the last N months (this one
/// included), or the months the days `from` … `to` touch, each counting only those days.
pub async fn monthly(tx: &mut Tx, tenant: Uuid, q: &Selection) -> Result<Vec<Usage>, CoreError> {
    tx.last();
    let rows = tx
        .query(
            &format!(
                "with span as (select {first} as first, {last} as last),
                      months as (select generate_series(date_trunc('month', first), date_trunc('month', last),
                                                        interval '1 month')::date as month, first, last from span)
                 select to_char(months.month, 'YYYY-MM') as period, {SUMS}
                 from months left join app.usage_daily u
                   on u.tenant_id = $1 and u.day >= greatest(months.month, months.first)
                  and u.day < least((months.month + interval '1 month')::date, months.last + 1)
                  and {filtered}
                 group by months.month order by months.month",
                first = period::first_day_of_months(),
                last = period::last_day(),
                filtered = period::filtered("u"),
            ),
            &q.params(&tenant),
        )
        .await?;
    rows.iter().map(Usage::from_row).collect::<Result<_, _>>()
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
    /// The part of prompt_tokens read from the provider's prompt cache.
    pub cached_tokens: Option<i32>,
    /// The part of completion_tokens spent reasoning.
    pub reasoning_tokens: Option<i32>,
    pub unit: Option<String>,
    #[schema(value_type = Option<String>, example = "3.5")]
    pub quantity: Option<Decimal>,
    #[schema(value_type = Option<String>, example = "0.02")]
    pub unit_price_usd: Option<Decimal>,
    #[schema(value_type = String, example = "0.07")]
    pub cost_usd: Decimal,
    /// provided (given, or unit price × quantity), catalog (the model's own price),
    /// catalog_prefix (the price of the longest name the model extends with a date or
    /// version suffix), or unpriced (costed 0).
    pub cost_source: CostSource,
    /// The price list's model name the cost was computed from (catalog and catalog_prefix).
    #[schema(example = "text-embedding-3-small")]
    pub priced_model: Option<String>,
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Whether this usage took the tenant past one of its limits. It was stored all the
    /// same (usage records what already happened); the next `limits/check` refuses.
    pub over_limit: bool,
    /// The limits it took the tenant past (rate_limit_per_minute, daily_token_limit,
    /// monthly_budget_usd); empty when none.
    pub over_limits: Vec<LimitName>,
}

const EVENT_COLUMNS: &str = "id, user_id, assistant_id, conversation_id, provider, model, prompt_tokens, \
    completion_tokens, unit, quantity, unit_price_usd, cost_usd, cost_source, metadata, created_at, over_limits, cached_tokens, reasoning_tokens, priced_model";

impl UsageEvent {
    fn from_row(row: &Row) -> Result<Self, CoreError> {
        let normal = |d: Option<Decimal>| d.map(|d| d.normalize());
        let over_limits: Vec<LimitName> = row.col::<Option<_>>(15)?.unwrap_or_default();
        Ok(Self {
            id: row.col(0)?,
            user_id: row.col(1)?,
            assistant_id: row.col(2)?,
            conversation_id: row.col(3)?,
            provider: row.col(4)?,
            model: row.col(5)?,
            prompt_tokens: row.col(6)?,
            completion_tokens: row.col(7)?,
            unit: row.col(8)?,
            quantity: normal(row.col(9)?),
            unit_price_usd: normal(row.col(10)?),
            cost_usd: row.col::<Decimal>(11)?.normalize(),
            cost_source: row.col(12)?,
            metadata: row.col(13)?,
            created_at: row.col(14)?,
            over_limit: !over_limits.is_empty(),
            over_limits,
            cached_tokens: row.col(16)?,
            reasoning_tokens: row.col(17)?,
            priced_model: row.col(18)?,
        })
    }
}

/// The fields of an LLM call that usage events and limit checks share, checked: token
/// counts (0 to i32::MAX), the provider (lower case) and the model.
#[derive(Debug, Clone, Default)]
pub struct LlmCall {
    pub prompt_tokens: Option<i32>,
    pub completion_tokens: Option<i32>,
    pub provider: Option<LlmProvider>,
    pub model: Option<String>,
}

impl LlmCall {
    /// Check the call's fields of a body into `e`.
    pub fn parse(
        e: &mut Invalid,
        prompt_tokens: Field<i64>,
        completion_tokens: Field<i64>,
        provider: Field<String>,
        model: Field<String>,
    ) -> Self {
        let count = int32_within(0..=i32::MAX);
        Self {
            prompt_tokens: e.optional("prompt_tokens", prompt_tokens, &count),
            completion_tokens: e.optional("completion_tokens", completion_tokens, &count),
            provider: e.optional("provider", provider, LlmProvider::parse),
            model: e.optional("model", model, |m: String| {
                if m.trim().is_empty() || m.chars().count() > 200 {
                    Err("must be 1 to 200 characters, not blank".to_owned())
                } else {
                    Ok(m)
                }
            }),
        }
    }

    pub fn has_tokens(&self) -> bool {
        self.prompt_tokens.is_some() || self.completion_tokens.is_some()
    }

    pub fn provider(&self) -> Option<&str> {
        self.provider.as_ref().map(LlmProvider::as_str)
    }
}

/// A rule for quantities and prices: [`decimal_rule`] with `scale` decimal places.
fn decimal(scale: u32) -> impl Fn(Decimal) -> Result<Decimal, String> {
    move |d| match decimal_rule(&d, scale) {
        None => Ok(d),
        Some(message) => Err(message),
    }
}

/// `POST …/usage`: tokens of a model (costed from the catalog unless `cost_usd` is given),
/// or a `unit` and `quantity` with an optional `unit_price_usd`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(example = json!({"provider": "openai", "model": "text-embedding-3-small", "prompt_tokens": 5000}))]
pub struct NewUsageEvent {
    #[serde(default)]
    #[schema(value_type = Option<Uuid>)]
    pub user_id: Field<Uuid>,
    #[serde(default)]
    #[schema(value_type = Option<Uuid>)]
    pub assistant_id: Field<Uuid>,
    #[serde(default)]
    #[schema(value_type = Option<Uuid>)]
    pub conversation_id: Field<Uuid>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub provider: Field<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub model: Field<String>,
    #[serde(default)]
    #[schema(value_type = Option<i64>)]
    pub prompt_tokens: Field<i64>,
    #[serde(default)]
    #[schema(value_type = Option<i64>)]
    pub completion_tokens: Field<i64>,
    /// The part of `prompt_tokens` read from the provider's prompt cache: priced at the
    /// cached-input price. At most `prompt_tokens`.
    #[serde(default)]
    #[schema(value_type = Option<i64>)]
    pub cached_tokens: Field<i64>,
    /// The part of `completion_tokens` spent reasoning. At most `completion_tokens`.
    #[serde(default)]
    #[schema(value_type = Option<i64>)]
    pub reasoning_tokens: Field<i64>,
    /// e.g. `minute`, `call`, `image`: 1–32 lower-case letters, digits, underscores.
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = "^[a-z][a-z0-9_]{0,31}$")]
    pub unit: Field<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = r"^[0-9]+(\.[0-9]+)?$")]
    pub quantity: Field<crate::platform::input::DecimalText>,
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = r"^[0-9]+(\.[0-9]+)?$")]
    pub unit_price_usd: Field<crate::platform::input::DecimalText>,
    /// Wins over any computed cost.
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = r"^[0-9]+(\.[0-9]+)?$")]
    pub cost_usd: Field<crate::platform::input::DecimalText>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub metadata: Field<serde_json::Value>,
    /// The reservation (`POST …/limits/check`) this usage settles.
    #[serde(default)]
    #[schema(value_type = Option<Uuid>)]
    pub reservation_id: Field<Uuid>,
    #[serde(flatten)]
    #[schema(ignore)]
    pub unknown: Unknown,
}

/// A checked usage event: tokens of a call, or a unit and quantity.
#[derive(Debug)]
pub struct UsageDraft {
    pub user_id: Option<Uuid>,
    pub assistant_id: Option<Uuid>,
    pub conversation_id: Option<Uuid>,
    pub call: LlmCall,
    pub cached_tokens: Option<i32>,
    pub reasoning_tokens: Option<i32>,
    pub unit: Option<String>,
    pub quantity: Option<Decimal>,
    pub unit_price_usd: Option<Decimal>,
    pub cost_usd: Option<CostUsd>,
    pub metadata: serde_json::Map<String, serde_json::Value>,
    pub reservation_id: Option<Uuid>,
}

impl TryFrom<NewUsageEvent> for UsageDraft {
    type Error = Invalid;

    fn try_from(w: NewUsageEvent) -> Result<Self, Invalid> {
        let mut e = Invalid::new(w.unknown);
        let tokens_sent = w.prompt_tokens.is_sent() || w.completion_tokens.is_sent();
        let call = LlmCall::parse(
            &mut e,
            w.prompt_tokens,
            w.completion_tokens,
            w.provider,
            w.model,
        );
        let (cached_tokens, reasoning_tokens) = crate::conversations::messages::token_parts(
            &mut e,
            (w.cached_tokens, call.prompt_tokens),
            (w.reasoning_tokens, call.completion_tokens),
        );
        let (unit_sent, quantity_sent, price_sent) = (
            w.unit.is_sent(),
            w.quantity.is_sent(),
            w.unit_price_usd.is_sent(),
        );
        let unit = e.optional("unit", w.unit, |unit: String| {
            if is_identifier(&unit, 1, 32) {
                Ok(unit)
            } else {
                Err("must be 1 to 32 lower-case letters, digits and underscores".to_owned())
            }
        });
        let quantity = e.optional("quantity", w.quantity.decimal(), decimal(6));
        let unit_price_usd = e.optional("unit_price_usd", w.unit_price_usd.decimal(), decimal(10));
        // The event's cost is their product: bounded like any given cost, so every sum of
        // costs fits its column (docs/API.md, Usage).
        if let (Some(q), Some(p)) = (quantity, unit_price_usd)
            && q.checked_mul(p)
                .is_none_or(|cost| cost >= Decimal::from(10_000_000_000i64))
        {
            e.push(
                "unit_price_usd",
                "quantity × unit_price_usd must be below 10000000000",
            );
        }
        match (tokens_sent, unit_sent) {
            (true, true) => e.push("unit", "give tokens or a unit, not both"),
            (false, false) => e.push("prompt_tokens", "give tokens, or a unit and quantity"),
            (false, true) if !quantity_sent => e.push("quantity", "is required with a unit"),
            (true, false) if quantity_sent || price_sent => e.push("quantity", "goes with a unit"),
            _ => {}
        }
        let draft = Self {
            user_id: e.optional("user_id", w.user_id, any),
            assistant_id: e.optional("assistant_id", w.assistant_id, any),
            conversation_id: e.optional("conversation_id", w.conversation_id, any),
            call,
            cached_tokens,
            reasoning_tokens,
            unit,
            quantity,
            unit_price_usd,
            cost_usd: e.optional("cost_usd", w.cost_usd.decimal(), CostUsd::parse),
            metadata: e
                .optional("metadata", w.metadata, json_object)
                .unwrap_or_default(),
            reservation_id: e.optional("reservation_id", w.reservation_id, any),
        };
        e.finish(draft)
    }
}

/// Record a usage event; its rollup moves in the same statement.
pub async fn record(tx: &mut Tx, tenant: Uuid, e: &UsageDraft) -> Result<UsageEvent, CoreError> {
    let metadata = serde_json::Value::Object(e.metadata.clone());
    let row = tx
        .last()
        .query_one(
            &format!(
                "insert into app.usage_events (tenant_id, id, user_id, assistant_id, conversation_id, provider,
                     model, prompt_tokens, completion_tokens, unit, quantity, unit_price_usd, cost_usd, metadata,
                     reservation_id, cached_tokens, reasoning_tokens)
                 values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
                 returning {EVENT_COLUMNS}"
            ),
            &[
                &tenant,
                &Uuid::now_v7(),
                &e.user_id,
                &e.assistant_id,
                &e.conversation_id,
                &e.call.provider(),
                &e.call.model,
                &e.call.prompt_tokens,
                &e.call.completion_tokens,
                &e.unit,
                &e.quantity,
                &e.unit_price_usd,
                &e.cost_usd.map(CostUsd::get),
                &metadata,
                &e.reservation_id,
                &e.cached_tokens,
                &e.reasoning_tokens,
            ],
        )
        .await?;
    UsageEvent::from_row(&row)
}

/// The tenant's usage events, newest first (a member: their own), of the times and
/// filters asked.
pub async fn events(
    tx: &mut Tx,
    tenant: Uuid,
    q: &EventSelection,
    page: &crate::platform::page::Page<Uuid>,
) -> Result<crate::platform::page::Paged<UsageEvent>, CoreError> {
    tx.last();
    let rows = tx
        .query(
            &format!(
                "select {EVENT_COLUMNS} from app.usage_events
                 where tenant_id = $1 and ($2::uuid is null or id < $2)
                   and ($4::uuid is null or assistant_id = $4) and ($5::text is null or provider = $5)
                   and ($6::timestamptz is null or created_at >= $6)
                   and ($7::timestamptz is null or created_at <= $7)
                 order by id desc limit $3"
            ),
            &[
                &tenant,
                &page.after,
                &(page.limit + 1),
                &q.filters.assistant_id,
                &q.filters.provider,
                &q.from,
                &q.to,
            ],
        )
        .await?;
    Ok(crate::platform::page::Paged::from_rows(
        rows.iter()
            .map(UsageEvent::from_row)
            .collect::<Result<_, _>>()?,
        page.limit,
        |e: &UsageEvent| e.id,
    ))
}

/// A model used without a price: its calls costed 0, from the rollups.
#[derive(Debug, Serialize, ToSchema)]
pub struct UnpricedModel {
    /// Null when the calls named none.
    pub provider: Option<String>,
    /// Null when the calls named none.
    pub model: Option<String>,
    /// Calls (messages and usage events) costed 0 for want of a price.
    pub unpriced_count: i64,
    /// The first and last day (`YYYY-MM-DD`, the tenant's time zone) with such calls.
    pub first_day: String,
    pub last_day: String,
}

/// The models seen without a price, most unpriced calls first (a member: in their own
/// usage). A price added later and a recost (`POST …/prices/recost`) take a model off.
pub async fn unpriced(tx: &mut Tx, tenant: Uuid) -> Result<Vec<UnpricedModel>, CoreError> {
    tx.last();
    let rows = tx
        .query(
            "select provider, model, sum(unpriced_count)::bigint as unpriced_count,
                    to_char(min(day), 'YYYY-MM-DD') as first_day, to_char(max(day), 'YYYY-MM-DD') as last_day
             from app.usage_daily where tenant_id = $1 and unpriced_count > 0
             group by provider, model
             order by 3 desc, provider nulls last, model nulls last",
            &[&tenant],
        )
        .await?;
    rows.iter()
        .map(|row| {
            Ok(UnpricedModel {
                provider: row.col("provider")?,
                model: row.col("model")?,
                unpriced_count: row.col("unpriced_count")?,
                first_day: row.col("first_day")?,
                last_day: row.col("last_day")?,
            })
        })
        .collect()
}
