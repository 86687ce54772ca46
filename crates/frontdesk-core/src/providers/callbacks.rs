//! The callbacks a tenant received from its providers: each one whose signature verified,
//! recorded once per delivery (a redelivery finds its row and adds none). Append-only.

use chrono::{DateTime, Utc};
use frontdesk_pg::RowExt;
use serde::Serialize;
use serde_json::Value;
use tokio_postgres::Row;
use utoipa::ToSchema;
use uuid::Uuid;

use super::Provider;
use crate::{
    CoreError, Tx,
    platform::page::{Page, Paged},
};

/// A received callback.
#[derive(Debug, Serialize, ToSchema)]
pub struct Callback {
    pub id: Uuid,
    pub provider: Provider,
    /// The provider's id of the delivery (`webhook-id` for `test`).
    pub external_id: String,
    #[schema(value_type = Object)]
    pub payload: Value,
    pub received_at: DateTime<Utc>,
}

impl Callback {
    /// None for a provider this build does not know.
    fn from_row(row: &Row) -> Result<Option<Self>, CoreError> {
        let Some(provider) = Provider::parse(row.col("provider")?) else {
            return Ok(None);
        };
        Ok(Some(Self {
            id: row.col("id")?,
            provider,
            external_id: row.col("external_id")?,
            payload: row.col("payload")?,
            received_at: row.col("received_at")?,
        }))
    }
}

/// Whether a callback was new or a redelivery of one already recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    New,
    Duplicate,
}

/// Record a verified callback, once per `(provider, external_id)`. Runs as the callback
/// caller kind, which may insert and nothing else: no SELECT, hence `on conflict do
/// nothing` without a target (a target would need SELECT), and the count of rows tells
/// a redelivery.
pub async fn record(
    tx: &mut Tx,
    tenant: Uuid,
    provider: Provider,
    external_id: &str,
    payload: &Value,
) -> Result<Recorded, CoreError> {
    tx.last();
    let inserted = tx
        .execute(
            "insert into app.provider_callbacks (tenant_id, id, provider, external_id, payload)
             values ($1, $2, $3, $4, $5) on conflict do nothing",
            &[
                &tenant,
                &Uuid::now_v7(),
                &provider.as_str(),
                &external_id,
                payload,
            ],
        )
        .await?;
    Ok(if inserted == 1 {
        Recorded::New
    } else {
        Recorded::Duplicate
    })
}

/// The tenant's received callbacks, newest first.
pub async fn list(
    tx: &mut Tx,
    tenant: Uuid,
    page: &Page<Uuid>,
) -> Result<Paged<Callback>, CoreError> {
    tx.last();
    let rows = tx
        .query(
            "select id, provider, external_id, payload, received_at from app.provider_callbacks
             where tenant_id = $1 and ($2::uuid is null or id < $2)
             order by id desc limit $3",
            &[&tenant, &page.after, &(page.limit + 1)],
        )
        .await?;
    Ok(Paged::from_rows(
        rows.iter()
            .filter_map(|r| Callback::from_row(r).transpose())
            .collect::<Result<_, _>>()?,
        page.limit,
        |c: &Callback| c.id,
    ))
}
