//! What `/metrics` reads from the database at scrape time, as the operator: the webhook
//! backlog and the events written. Both are database-wide (every server of a deployment
//! reports the same numbers) and cost little: the backlog reads only the queue of pending
//! deliveries; the events count reads, per tenant, only the index range of the events
//! written since the previous count.

use frontdesk_pg::{Db, RowExt};
use uuid::Uuid;

use crate::{CoreError, Principal, RequestContext, Tx};

fn operator() -> RequestContext {
    RequestContext {
        tenant: None,
        tenant_version: None,
        principal: Principal::Operator,
        read_only: true,
    }
}

/// The deliveries waiting to be sent (the queue: pending, retrying, or being sent now).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backlog {
    pub pending: i64,
    /// The age in seconds of the oldest pending delivery (0 when none is pending).
    pub oldest_seconds: f64,
}

pub async fn webhook_backlog(db: &Db) -> Result<Backlog, CoreError> {
    Tx::run(db, &operator(), async |tx| {
        let row = tx
            .last()
            .query_one(
                "select count(*),
                        coalesce(extract(epoch from now() - min(d.created_at))::float8, 0)
                   from app.webhook_queue q
                   join app.webhook_deliveries d
                     on d.tenant_id = q.tenant_id and d.id = q.delivery_id",
                &[],
            )
            .await?;
        Ok(Backlog {
            pending: row.col(0)?,
            oldest_seconds: row.col::<f64>(1)?.max(0.0),
        })
    })
    .await
}

/// The smallest UUIDv7 of the millisecond `at`: events with a smaller id were written
/// before it (event ids are UUIDv7, `app.uuid_v7()`).
pub fn uuid_v7_floor(at: std::time::SystemTime) -> Uuid {
    let ms = at
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    // The version nibble; `app.uuid_v7()` leaves every later bit random.
    bytes[6] = 0x70;
    Uuid::from_bytes(bytes)
}

/// Events with `after <= id < before`, counted by type, across every tenant (one index
/// range per tenant).
pub async fn events_written(
    db: &Db,
    after: Uuid,
    before: Uuid,
) -> Result<Vec<(String, i64)>, CoreError> {
    Tx::run(db, &operator(), async |tx| {
        tx.last()
            .query(
                "select e.type, count(*)
                   from app.tenants t
                  cross join lateral (
                        select type from app.events
                         where tenant_id = t.id and id >= $1 and id < $2) e
                  group by e.type",
                &[&after, &before],
            )
            .await?
            .iter()
            .map(|r| Ok((r.col(0)?, r.col(1)?)))
            .collect()
    })
    .await
}
