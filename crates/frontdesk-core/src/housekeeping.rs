//! Background upkeep across domains, run by every server process as the operator:
//! deleting idempotency keys past their retention, and releasing expired limit
//! reservations. Safe to run in several processes at once (the deletes are idempotent,
//! and each expired reservation is claimed by one sweeper with `SKIP LOCKED`).

use frontdesk_pg::Db;

use crate::{CoreError, Principal, RequestContext, Tx, platform::idempotency, usage::limits};

/// Sweep every tenant once, in one transaction; how many keys and reservations went.
pub async fn sweep(db: &Db) -> Result<u64, CoreError> {
    let context = RequestContext {
        tenant: None,
        principal: Principal::Operator,
        read_only: false,
    };
    Tx::run(db, &context, async |tx| {
        Ok(idempotency::sweep(tx).await? + limits::sweep(tx).await?)
    })
    .await
}
