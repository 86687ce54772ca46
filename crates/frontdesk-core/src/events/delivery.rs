//! The delivery worker's queries, run as the operator across tenants: claiming due
//! deliveries tenant by tenant (at most one in flight per endpoint, across every worker
//! process: `app.tenants_with_due_deliveries`, then `app.claim_deliveries` per tenant)
//! and recording each attempt with what comes next (`app.finish_attempt`). Sending and
//! signing are the worker's own (in the server).

use frontdesk_pg::RowExt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use frontdesk_pg::Db;
use serde_json::Value;
use uuid::Uuid;

use crate::{CoreError, Principal, RequestContext, Tx};

/// A delivery claimed for one attempt.
#[derive(Debug)]
pub struct Due {
    pub tenant: Uuid,
    pub delivery: Uuid,
    /// This attempt's number, from 1.
    pub attempt: i32,
    /// What to send; or, when a stored value of it does not decode (an event whose data
    /// `serde_json` cannot read), why: that attempt then fails with the reason, and the
    /// delivery follows the retry schedule like any other failure, without holding up
    /// the others.
    pub message: Result<DueMessage, String>,
}

/// The event a due delivery sends, and where.
#[derive(Debug)]
pub struct DueMessage {
    pub url: String,
    /// The tenant the event belongs to.
    pub tenant: Uuid,
    /// The endpoint's signing secret, and the previous one while it still signs.
    pub secrets: Vec<String>,
    pub event_id: Uuid,
    pub event_type: String,
    pub event_created_at: DateTime<Utc>,
    pub event_data: Value,
    /// The event's place in its tenant's commit order.
    pub event_sequence: i64,
}

/// Claim up to `batch` due deliveries for `worker`, each leased for `lease`: first the
/// tenants with deliveries due (a plain read across tenants, the longest waiting first),
/// then each tenant's in a transaction of its own, locking only that tenant's endpoints
/// (on Citus, a locking read across shards is not supported).
pub async fn claim(
    db: &Db,
    worker: Uuid,
    batch: i32,
    lease: Duration,
) -> Result<Vec<Due>, CoreError> {
    let operator = |tenant: Option<Uuid>| RequestContext {
        tenant,
        tenant_version: None,
        principal: Principal::Operator,
        read_only: false,
    };
    let tenants: Vec<Uuid> = Tx::run(db, &operator(None), async |tx| {
        tx.last()
            .query(
                "select tenant_id from app.tenants_with_due_deliveries($1)",
                &[&batch],
            )
            .await?
            .iter()
            .map(|r| r.col(0))
            .collect::<Result<_, _>>()
            .map_err(CoreError::from)
    })
    .await?;
    let lease = lease.as_secs_f64();
    let mut due = Vec::new();
    for tenant in tenants {
        let left = batch - due.len() as i32;
        if left <= 0 {
            break;
        }
        let rows = Tx::run(db, &operator(Some(tenant)), async |tx| {
            tx.last()
                .query(
                    "select tenant_id, delivery_id, attempt, url, secret, previous_secret, event_id,
                            event_type, event_created_at, event_data, event_sequence
                     from app.claim_deliveries($1, $2, $3, make_interval(secs => $4))",
                    &[&tenant, &worker, &left, &lease],
                )
                .await
                .map_err(CoreError::from)
        })
        .await?;
        for r in &rows {
            // The ids are the function's own uuid and integer columns; without them the
            // attempt cannot be recorded, and the lease lets another pass take it.
            let (tenant, delivery, attempt) = match (r.col(0), r.col(1), r.col(2)) {
                (Ok(tenant), Ok(delivery), Ok(attempt)) => (tenant, delivery, attempt),
                (t, d, a) => {
                    let error = [t.err(), d.err(), a.err()].into_iter().flatten().next();
                    tracing::error!(error = ?error, "a claimed delivery without readable ids");
                    continue;
                }
            };
            let message = (|| {
                Ok::<_, frontdesk_pg::DbError>(DueMessage {
                    url: r.col(3)?,
                    tenant,
                    secrets: [r.col::<Option<String>>(4)?, r.col(5)?]
                        .into_iter()
                        .flatten()
                        .collect(),
                    event_id: r.col(6)?,
                    event_type: r.col(7)?,
                    event_created_at: r.col(8)?,
                    event_data: r.col(9)?,
                    event_sequence: r.col(10)?,
                })
            })()
            .map_err(|e| format!("the event could not be read: {e}"));
            due.push(Due {
                tenant,
                delivery,
                attempt,
                message,
            });
        }
    }
    Ok(due)
}

/// What one attempt came to, and what the worker decided comes next.
#[derive(Debug)]
pub struct Finished<'a> {
    pub tenant: Uuid,
    pub delivery: Uuid,
    pub worker: Uuid,
    pub started: DateTime<Utc>,
    pub duration_ms: i32,
    /// The endpoint's HTTP status; none when there was no answer.
    pub status: Option<i32>,
    pub excerpt: Option<&'a str>,
    pub error: Option<&'a str>,
    /// delivered, gone, retry or failed.
    pub outcome: &'a str,
    /// When a retry is due.
    pub next: Option<DateTime<Utc>>,
    /// An endpoint whose every attempt failed for this long is disabled.
    pub disable_after: Duration,
}

/// Record an attempt and move its delivery (and endpoint) on.
pub async fn finish(db: &Db, f: &Finished<'_>) -> Result<(), CoreError> {
    let context = RequestContext {
        tenant: Some(f.tenant),
        tenant_version: None,
        principal: Principal::Operator,
        read_only: false,
    };
    let disable_after = f.disable_after.as_secs_f64();
    Tx::run(db, &context, async |tx| {
        tx.last()
            .query(
                "select app.finish_attempt($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, make_interval(secs => $11))",
                &[
                    &f.tenant,
                    &f.delivery,
                    &f.worker,
                    &f.started,
                    &f.duration_ms,
                    &f.status,
                    &f.excerpt,
                    &f.error,
                    &f.outcome,
                    &f.next,
                    &disable_after,
                ],
            )
            .await
            .map_err(CoreError::from)?;
        Ok(())
    })
    .await
}
