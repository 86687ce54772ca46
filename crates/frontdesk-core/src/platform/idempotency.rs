//! Idempotency keys for creating POSTs: the same key with the same request replays the
//! stored response; with a different request it is refused; while the first request
//! with a key is still running, a second one is told so (409). Keys are kept per tenant
//! and principal for at least 24 hours.

use frontdesk_pg::RowExt;
use uuid::Uuid;

use crate::{CoreError, Tx};

/// How long a key is remembered at least (older ones are deleted by the server's sweeper
/// and ignored until then).
pub const RETENTION_HOURS: i32 = 24;

/// What to do with a request that carries a key.
#[derive(Debug)]
pub enum Claim {
    /// First use (or the earlier use expired): run the request, then `store` its response.
    Fresh,
    /// Seen before with the same request: answer this.
    Replay { status: u16, body: Vec<u8> },
    /// Seen before with a different request.
    Mismatch,
    /// Another request with this key is running now.
    InFlight,
}

/// Claim `key` for this transaction. Holding the advisory lock until commit makes a
/// concurrent duplicate see `InFlight`; should one slip between the lookup and the lock,
/// the unique key on app.idempotency_keys refuses its `store` and nothing of it is kept.
pub async fn claim(
    tx: &mut Tx,
    tenant: Uuid,
    key: &str,
    digest: &[u8],
) -> Result<Claim, CoreError> {
    let row = tx
        .query_one(
            "select pg_try_advisory_xact_lock(hashtextextended(
                        concat_ws(':', 'frontdesk.idempotency', $1::text, app.current_user_id(),
                                  app.current_key_id(), $2::text), 0)) as locked,
                    k.id, k.request_digest, k.status, k.response,
                    k.created_at < now() - make_interval(hours => $3) as expired
             from (select 1) one
             left join app.idempotency_keys k
               on k.tenant_id = $1 and k.key = $2
              and k.user_id is not distinct from app.current_user_id()
              and k.key_id is not distinct from app.current_key_id()",
            &[&tenant, &key, &RETENTION_HOURS],
        )
        .await?;
    if !row.col::<bool>("locked")? {
        return Ok(Claim::InFlight);
    }
    let Some(id) = row.col::<Option<Uuid>>("id")? else {
        return Ok(Claim::Fresh);
    };
    if row.col::<bool>("expired")? {
        tx.execute(
            "delete from app.idempotency_keys where tenant_id = $1 and id = $2",
            &[&tenant, &id],
        )
        .await?;
        return Ok(Claim::Fresh);
    }
    if row.col::<Vec<u8>>("request_digest")? != digest {
        return Ok(Claim::Mismatch);
    }
    Ok(Claim::Replay {
        status: row.col::<i16>("status")? as u16,
        body: row.col("response")?,
    })
}

/// Remember the response to a claimed key, in the request's transaction: the creation's
/// last statement, so its COMMIT goes out with it.
pub async fn store(
    tx: &mut Tx,
    tenant: Uuid,
    key: &str,
    digest: &[u8],
    status: u16,
    body: &[u8],
) -> Result<(), CoreError> {
    let result = tx
        .last()
        .execute(
            "insert into app.idempotency_keys (tenant_id, id, user_id, key_id, key, request_digest, status, response)
             values ($1, $2, app.current_user_id(), app.current_key_id(), $3, $4, $5, $6)",
            &[&tenant, &Uuid::now_v7(), &key, &digest, &(status as i16), &body],
        )
        .await;
    match result {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some("23505") => Err(CoreError::Conflict {
            field: None,
            message:
                "another request with this Idempotency-Key was running; retry to get its response"
                    .into(),
        }),
        Err(e) => Err(e.into()),
    }
}

/// Delete keys older than the retention (run by the server every few minutes, as the
/// operator, in a transaction of `Principal::Operator`). Returns how many went.
pub async fn sweep(tx: &mut Tx) -> Result<u64, CoreError> {
    Ok(tx
        .execute(
            "delete from app.idempotency_keys where created_at < now() - make_interval(hours => $1)",
            &[&RETENTION_HOURS],
        )
        .await?)
}
