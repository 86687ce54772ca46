//! The model price catalog: public list prices (global, edited by the operator) and a
//! tenant's own prices, which take precedence. Prices are USD per million tokens and
//! apply from `effective_from` until the next price of the same provider and model; they
//! are added, never changed, so the history stays.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use tokio_postgres::Row;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    CoreError, FieldError, Tx,
    platform::input::{PROVIDER_RULE, decimal_rule, is_provider},
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
    fn from_row(row: &Row) -> Self {
        let decimal = |c: &str| row.get::<_, Decimal>(c).normalize();
        Self {
            provider: row.get("provider"),
            model: row.get("model"),
            effective_from: row.get("effective_from"),
            input_usd_per_mtok: decimal("input_usd_per_mtok"),
            output_usd_per_mtok: decimal("output_usd_per_mtok"),
            cached_input_usd_per_mtok: row
                .get::<_, Option<Decimal>>("cached_input_usd_per_mtok")
                .map(|d| d.normalize()),
            source: row.get("source"),
            created_at: row.get("created_at"),
        }
    }
}

/// `POST /v1/prices` and `POST …/prices`: a price from a time on.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"provider": "openai", "model": "gpt-4o", "input_usd_per_mtok": "2.00",
    "output_usd_per_mtok": "8.00", "effective_from": "2026-01-01T00:00:00Z"}))]
pub struct NewPrice {
    /// Lower-case, e.g. openai, anthropic, google, mistral.
    pub provider: String,
    pub model: String,
    #[schema(value_type = String)]
    pub input_usd_per_mtok: Decimal,
    #[schema(value_type = String)]
    pub output_usd_per_mtok: Decimal,
    #[schema(value_type = Option<String>)]
    pub cached_input_usd_per_mtok: Option<Decimal>,
    /// Default: now.
    pub effective_from: Option<DateTime<Utc>>,
    /// Catalog prices only: where the price was published.
    pub source: Option<String>,
}

impl NewPrice {
    pub fn check(&self) -> Result<(), CoreError> {
        let mut errors = Vec::new();
        if !is_provider(&self.provider) {
            errors.push(FieldError::new("provider", PROVIDER_RULE));
        }
        if self.model.trim().is_empty() || self.model.chars().count() > 200 {
            errors.push(FieldError::new(
                "model",
                "must be 1 to 200 characters, not blank",
            ));
        }
        let prices = [
            ("input_usd_per_mtok", Some(self.input_usd_per_mtok)),
            ("output_usd_per_mtok", Some(self.output_usd_per_mtok)),
            ("cached_input_usd_per_mtok", self.cached_input_usd_per_mtok),
        ];
        for (field, value) in prices {
            if let Some(message) = value.and_then(|v| decimal_rule(&v, 10)) {
                errors.push(FieldError::new(field, message));
            }
        }
        if self
            .source
            .as_ref()
            .is_some_and(|s| s.chars().count() > 500)
        {
            errors.push(FieldError::new("source", "must be at most 500 characters"));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(CoreError::Invalid(errors))
        }
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
    Ok(rows.iter().map(Price::from_row).collect())
}

fn conflict() -> CoreError {
    CoreError::Conflict {
        field: Some("effective_from".into()),
        message: "a price of this model from this time exists already".into(),
    }
}

/// Add a catalog price (operator).
pub async fn add_to_catalog(tx: &mut Tx, new: &NewPrice) -> Result<Price, CoreError> {
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
    Ok(Price::from_row(&row))
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
    Ok(rows.iter().map(Price::from_row).collect())
}

/// Add a tenant price (admins); it wins over the catalog from `effective_from` on.
pub async fn add_for_tenant(
    tx: &mut Tx,
    tenant: Uuid,
    new: &NewPrice,
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
    Ok(Price::from_row(&row))
}
