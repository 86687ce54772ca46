//! The model price catalog: public list prices (global, edited by the operator) and a
//! tenant's own prices, which take precedence. Prices are USD per million tokens and
//! apply from `effective_from` until the next price of the same provider and model; they
//! are added, never changed, so the history stays.

use chrono::{DateTime, Utc};
use frontdesk_pg::RowExt;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use tokio_postgres::Row;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    CoreError, Tx,
    platform::input::{
        Field, Invalid, PROVIDER_RULE, Unknown, decimal_rule, is_provider, timestamp,
    },
};

#[derive(Debug, Serialize, ToSchema)]
pub struct Price {
    pub provider: String,
    pub model: String,
    pub effective_from: DateTime<Utc>,
    /// USD per million input (prompt) tokens, decimal string.
    #[schema(value_type = String, example = "2.5")]
    pub input_usd_per_mtok: Decimal,
    #[schema(value_type = String, example = "10")]
    pub output_usd_per_mtok: Decimal,
    #[schema(value_type = Option<String>, example = "1.25")]
    pub cached_input_usd_per_mtok: Option<Decimal>,
    /// Where the price comes from (catalog rows).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl Price {
    fn from_row(row: &Row) -> Result<Self, CoreError> {
        let decimal = |c: &str| row.col::<Decimal>(c).map(|d| d.normalize());
        Ok(Self {
            provider: row.col("provider")?,
            model: row.col("model")?,
            effective_from: row.col("effective_from")?,
            input_usd_per_mtok: decimal("input_usd_per_mtok")?,
            output_usd_per_mtok: decimal("output_usd_per_mtok")?,
            cached_input_usd_per_mtok: row
                .col::<Option<Decimal>>("cached_input_usd_per_mtok")?
                .map(|d| d.normalize()),
            source: row.col("source")?,
            created_at: row.col("created_at")?,
        })
    }
}

/// `POST /v1/prices` and `POST …/prices`: a price from a time on.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(example = json!({"provider": "openai", "model": "gpt-4o", "input_usd_per_mtok": "2.00",
    "output_usd_per_mtok": "8.00", "effective_from": "2026-01-01T00:00:00Z"}))]
pub struct NewPrice {
    /// Lower-case, e.g. openai, anthropic, google, mistral.
    #[serde(default)]
    #[schema(value_type = String, required = true, pattern = "^[a-z0-9][a-z0-9._-]{0,62}$")]
    pub provider: Field<String>,
    #[serde(default)]
    #[schema(value_type = String, required = true)]
    pub model: Field<String>,
    #[serde(default)]
    #[schema(value_type = String, required = true, pattern = r"^[0-9]+(\.[0-9]+)?$")]
    pub input_usd_per_mtok: Field<crate::platform::input::DecimalText>,
    #[serde(default)]
    #[schema(value_type = String, required = true, pattern = r"^[0-9]+(\.[0-9]+)?$")]
    pub output_usd_per_mtok: Field<crate::platform::input::DecimalText>,
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = r"^[0-9]+(\.[0-9]+)?$")]
    pub cached_input_usd_per_mtok: Field<crate::platform::input::DecimalText>,
    /// Default: now.
    #[serde(default)]
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub effective_from: Field<DateTime<Utc>>,
    /// Catalog prices only: where the price was published.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub source: Field<String>,
    #[serde(flatten)]
    #[schema(ignore)]
    pub unknown: Unknown,
}

/// A checked price.
#[derive(Debug)]
pub struct PriceDraft {
    /// As given: already lower case.
    pub provider: String,
    pub model: String,
    pub input_usd_per_mtok: Decimal,
    pub output_usd_per_mtok: Decimal,
    pub cached_input_usd_per_mtok: Option<Decimal>,
    pub effective_from: Option<DateTime<Utc>>,
    pub source: Option<String>,
}

impl TryFrom<NewPrice> for PriceDraft {
    type Error = Invalid;

    fn try_from(w: NewPrice) -> Result<Self, Invalid> {
        let mut e = Invalid::new(w.unknown);
        let price = |d: Decimal| match decimal_rule(&d, 10) {
            None => Ok(d),
            Some(message) => Err(message),
        };
        let provider = e.required("provider", w.provider, |p: String| {
            if is_provider(&p) {
                Ok(p)
            } else {
                Err(PROVIDER_RULE.to_owned())
            }
        });
        let model = e.required("model", w.model, |m: String| {
            if m.trim().is_empty() || m.chars().count() > 200 {
                Err("must be 1 to 200 characters, not blank".to_owned())
            } else {
                Ok(m.trim().to_owned())
            }
        });
        let input = e.required("input_usd_per_mtok", w.input_usd_per_mtok.decimal(), price);
        let output = e.required(
            "output_usd_per_mtok",
            w.output_usd_per_mtok.decimal(),
            price,
        );
        let cached = e.optional(
            "cached_input_usd_per_mtok",
            w.cached_input_usd_per_mtok.decimal(),
            price,
        );
        let effective_from = e.optional("effective_from", w.effective_from, timestamp);
        let source = e.optional("source", w.source, |s: String| {
            if s.chars().count() > 500 {
                Err("must be at most 500 characters".to_owned())
            } else {
                Ok(s)
            }
        });
        let (Some(provider), Some(model), Some(input), Some(output)) =
            (provider, model, input, output)
        else {
            return Err(e);
        };
        e.finish(Self {
            provider,
            model,
            input_usd_per_mtok: input,
            output_usd_per_mtok: output,
            cached_input_usd_per_mtok: cached,
            effective_from,
            source,
        })
    }
}

const COLUMNS: &str = "provider, model, effective_from, input_usd_per_mtok, output_usd_per_mtok, \
    cached_input_usd_per_mtok, source, created_at";

/// The whole catalog with its history, by provider, model and time.
pub async fn catalog(tx: &mut Tx) -> Result<Vec<Price>, CoreError> {
    tx.last();
    let rows = tx
        .query(
            &format!(
                "select {COLUMNS} from app.model_prices order by provider, model, effective_from"
            ),
            &[],
        )
        .await?;
    rows.iter().map(Price::from_row).collect::<Result<_, _>>()
}

fn conflict() -> CoreError {
    CoreError::Conflict {
        field: Some("effective_from".into()),
        message: "a price of this model from this time exists already".into(),
    }
}

/// Add a catalog price (operator).
pub async fn add_to_catalog(tx: &mut Tx, new: &PriceDraft) -> Result<Price, CoreError> {
    let row = tx
        .query_one(
            &format!(
                "insert into app.model_prices (provider, model, effective_from, input_usd_per_mtok,
                     output_usd_per_mtok, cached_input_usd_per_mtok, source)
                 values ($1, $2, coalesce($3, now()), $4, $5, $6, $7) returning {COLUMNS}"
            ),
            &[
                &new.provider,
                &new.model.trim(),
                &new.effective_from,
                &new.input_usd_per_mtok,
                &new.output_usd_per_mtok,
                &new.cached_input_usd_per_mtok,
                &new.source,
            ],
        )
        .await
        .map_err(|e| {
            if e.code() == Some("23505") {
                conflict()
            } else {
                e.into()
            }
        })?;
    Price::from_row(&row)
}

/// The tenant's own prices with their history (staff).
pub async fn tenant_prices(tx: &mut Tx, tenant: Uuid) -> Result<Vec<Price>, CoreError> {
    tx.last();
    let rows = tx
        .query(
            "select provider, model, effective_from, input_usd_per_mtok, output_usd_per_mtok,
                    cached_input_usd_per_mtok, null::text as source, created_at
             from app.tenant_model_prices where tenant_id = $1
             order by provider, model, effective_from",
            &[&tenant],
        )
        .await?;
    rows.iter().map(Price::from_row).collect::<Result<_, _>>()
}

/// Add a tenant price (admins); it wins over the catalog from `effective_from` on.
pub async fn add_for_tenant(
    tx: &mut Tx,
    tenant: Uuid,
    new: &PriceDraft,
    by: Option<Uuid>,
) -> Result<Price, CoreError> {
    if new.source.is_some() {
        return Err(CoreError::invalid("source", "is only for catalog prices"));
    }
    let row = tx
        .last()
        .query_one(
            "insert into app.tenant_model_prices (tenant_id, provider, model, effective_from,
                 input_usd_per_mtok, output_usd_per_mtok, cached_input_usd_per_mtok, created_by)
             values ($1, $2, $3, coalesce($4, now()), $5, $6, $7, $8)
             returning provider, model, effective_from, input_usd_per_mtok, output_usd_per_mtok,
                       cached_input_usd_per_mtok, null::text as source, created_at",
            &[
                &tenant,
                &new.provider,
                &new.model.trim(),
                &new.effective_from,
                &new.input_usd_per_mtok,
                &new.output_usd_per_mtok,
                &new.cached_input_usd_per_mtok,
                &by,
            ],
        )
        .await
        .map_err(|e| {
            if e.code() == Some("23505") {
                conflict()
            } else {
                e.into()
            }
        })?;
    Price::from_row(&row)
}

/// `POST …/prices/recost`: price again the messages and usage events of a window, after a
/// price was added with an `effective_from` in the past.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(example = json!({"from": "2026-01-01T00:00:00Z", "provider": "anthropic", "model": "claude-3-5-haiku"}))]
pub struct RecostRequest {
    /// The window's start (included).
    #[serde(default)]
    #[schema(value_type = DateTime<Utc>, required = true)]
    pub from: Field<DateTime<Utc>>,
    /// The window's end (excluded). Default: now.
    #[serde(default)]
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub to: Field<DateTime<Utc>>,
    /// Only facts of this provider.
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = "^[a-z0-9][a-z0-9._-]{0,62}$")]
    pub provider: Field<String>,
    /// Only facts of this model, or of a model that extends it with a date or version
    /// suffix (`claude-3-5-haiku` takes in `claude-3-5-haiku-20241022`).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub model: Field<String>,
    #[serde(flatten)]
    #[schema(ignore)]
    pub unknown: Unknown,
}

/// A checked recost window.
#[derive(Debug)]
pub struct RecostWindow {
    pub from: DateTime<Utc>,
    pub to: Option<DateTime<Utc>>,
    pub provider: Option<String>,
    pub model: Option<String>,
}

impl TryFrom<RecostRequest> for RecostWindow {
    type Error = Invalid;

    fn try_from(w: RecostRequest) -> Result<Self, Invalid> {
        let mut e = Invalid::new(w.unknown);
        let from = e.required("from", w.from, timestamp);
        let to = e.optional("to", w.to, timestamp);
        let provider = e.optional("provider", w.provider, |p: String| {
            if is_provider(&p) {
                Ok(p)
            } else {
                Err(PROVIDER_RULE.to_owned())
            }
        });
        let model = e.optional("model", w.model, |m: String| {
            if m.trim().is_empty() || m.chars().count() > 200 {
                Err("must be 1 to 200 characters, not blank".to_owned())
            } else {
                Ok(m)
            }
        });
        let Some(from) = from else {
            return Err(e);
        };
        match to {
            Some(to) if to <= from => e.push("to", "must be after from"),
            None if from >= Utc::now() => {
                e.push("from", "must be in the past (the window ends now)")
            }
            _ => {}
        }
        e.finish(Self {
            from,
            to,
            provider,
            model,
        })
    }
}

/// What a recost changed: rows of each table, and the change of the cost total.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecostResult {
    pub from: DateTime<Utc>,
    /// The window's end: as given, or the time of the recost.
    pub to: DateTime<Utc>,
    pub provider: Option<String>,
    pub model: Option<String>,
    /// Messages whose cost, cost_source or priced_model changed.
    pub messages: i64,
    /// Usage events whose cost, cost_source or priced_model changed.
    pub usage_events: i64,
    /// Conversations whose cost total changed.
    pub conversations: i64,
    /// Daily rollup rows whose cost or unpriced count changed.
    pub usage_daily: i64,
    /// 1 when the month's cost in the tenant's limit state changed, else 0.
    pub limit_state: i64,
    /// The change of the tenant's total cost (USD, may be negative).
    #[schema(value_type = String, example = "0.0042")]
    pub cost_usd_change: Decimal,
}

/// Price again, at their own times, the tenant's messages and usage events of the window
/// that were costed from a price list or left unpriced, and correct their conversations'
/// totals, daily rollups and the limit state's month cost in the same transaction (see
/// migration 0012 and docs/API.md, "Prices"). Client-provided costs never change.
pub async fn recost(tx: &mut Tx, w: &RecostWindow) -> Result<RecostResult, CoreError> {
    let row = tx
        .last()
        .query_one(
            "select r.messages, r.usage_events, r.conversations, r.usage_daily, r.limit_state,
                    r.cost_usd_change, coalesce($2, now()) as upto
             from app.recost_usage($1, $2, $3, $4) r",
            &[&w.from, &w.to, &w.provider, &w.model],
        )
        .await?;
    Ok(RecostResult {
        from: w.from,
        to: row.col("upto")?,
        provider: w.provider.clone(),
        model: w.model.clone(),
        messages: row.col("messages")?,
        usage_events: row.col("usage_events")?,
        conversations: row.col("conversations")?,
        usage_daily: row.col("usage_daily")?,
        limit_state: row.col("limit_state")?,
        cost_usd_change: row.col::<Decimal>("cost_usd_change")?.normalize(),
    })
}
