//! Background upkeep across domains, run by every server process as the operator:
//! deleting idempotency keys past their retention, and releasing expired limit
//! reservations. Safe to run in several processes at once (the deletes are idempotent,
//! and each expired reservation is claimed by one sweeper with `SKIP LOCKED`).
//!
//! Work that locks rows does so one tenant at a time: a plain read finds the tenants with
//! due work, then each tenant is swept in a transaction of its own (on Citus, a locking
//! read across shards is not supported; see docs/ARCHITECTURE.md, "Schema rules").

use frontdesk_pg::Db;
use uuid::Uuid;

use crate::{CoreError, Principal, RequestContext, Tx, platform::idempotency, usage::limits};

/// Sweep every tenant once; how many keys and reservations went.
pub async fn sweep(db: &Db) -> Result<u64, CoreError> {
    let operator = |tenant: Option<Uuid>| RequestContext {
        tenant,
        tenant_version: None,
        principal: Principal::Operator,
        read_only: false,
    };
    let (keys, tenants) = Tx::run(db, &operator(None), async |tx| {
        Ok::<_, CoreError>((
            idempotency::sweep(tx).await?,
            limits::tenants_to_sweep(tx).await?,
        ))
    })
    .await?;
    let mut swept = keys;
    for tenant in tenants {
        swept += Tx::run(db, &operator(Some(tenant)), async |tx| {
            limits::sweep(tx, tenant).await
        })
        .await?;
    }
    Ok(swept)
}
