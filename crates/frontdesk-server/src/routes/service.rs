//! Service endpoints: liveness, readiness, metrics, the OpenAPI document and its page.

use axum::{
    extract::State,
    http::{StatusCode, header},
    response::{Html, IntoResponse, Response},
};

use crate::state::AppState;

/// The process is up.
pub async fn healthz() -> &'static str {
    "ok"
}

/// The database answers without errors — the request path's login reads the schema
/// version, the operator's login runs a transaction with its request context — and its
/// schema is the one this binary expects; and the webhook delivery worker of this
/// process, if it runs one, is still making progress. What the database answered goes to
/// the log; the 503 names only the SQLSTATE.
pub async fn readyz(State(state): State<AppState>) -> Response {
    if let Some(worker) = &state.options.worker
        && let Some(why) = worker.heartbeat.problem(worker.stale_after)
    {
        tracing::warn!(reason = %why, "not ready");
        return not_ready(why);
    }
    let check = async {
        let (version, dirty) = frontdesk_pg::migrate::applied(&state.db)
            .await
            .map_err(|e| db_problem("reading the schema version as frontdesk_app", &e))?;
        if dirty {
            return Err("a migration is dirty".to_owned());
        }
        if version != state.schema_version {
            return Err(format!(
                "schema is at {version}, this binary expects {}",
                state.schema_version
            ));
        }
        state
            .db
            .probe_operator()
            .await
            .map_err(|e| db_problem("a transaction as frontdesk_operator", &e))?;
        Ok(())
    };
    match check.await {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(why) => {
            tracing::warn!(reason = %why, "not ready");
            not_ready(why)
        }
    }
}

/// Why the database check failed, for the 503: the pool's own text when no connection
/// could be had, else what failed and the SQLSTATE. The database's whole answer is logged.
fn db_problem(what: &str, error: &frontdesk_pg::DbError) -> String {
    tracing::warn!(error = %error, "{what} failed");
    match error {
        frontdesk_pg::DbError::Pool(e) => e.to_string(),
        other => match other.code() {
            Some(code) => format!("{what} failed: the database answered SQLSTATE {code}"),
            None => format!("{what} failed: {other}"),
        },
    }
}

/// A 503 problem saying why (text of our own, nothing of the database's but a SQLSTATE).
fn not_ready(why: String) -> Response {
    let problem = crate::error::ProblemDocument {
        kind: "/problems/unavailable".into(),
        title: "Service unavailable".into(),
        status: 503,
        detail: why,
        errors: None,
        extensions: Default::default(),
    };
    let mut response = (StatusCode::SERVICE_UNAVAILABLE, axum::Json(problem)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/problem+json"),
    );
    response
}

/// Every metric with its `# HELP` text (docs/OPERATIONS.md, "Metrics", lists the same).
pub fn describe_metrics() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "http_requests_total",
        "HTTP requests answered, by method, route template and status"
    );
    describe_histogram!(
        "http_request_duration_seconds",
        Unit::Seconds,
        "Time to answer an HTTP request, by method and route template"
    );
    describe_gauge!(
        "db_pool_connections",
        "Open database connections of a pool (app: tenant requests; operator: operator requests and background work)"
    );
    describe_gauge!("db_pool_available", "Idle database connections of a pool");
    describe_gauge!(
        "db_pool_waiting",
        "Requests waiting now for a database connection of a pool"
    );
    describe_gauge!("db_pool_max_size", "The most connections a pool opens");
    describe_histogram!(
        "db_pool_wait_seconds",
        Unit::Seconds,
        "Time a checkout that found no idle connection waited for one, by pool"
    );
    describe_counter!(
        "db_pool_checkout_failures_total",
        "Checkouts that got no database connection (timeout or connection refused), by pool"
    );
    describe_gauge!(
        "webhook_backlog_pending",
        "Webhook deliveries waiting to be sent, retried or finished (database-wide)"
    );
    describe_gauge!(
        "webhook_backlog_oldest_seconds",
        Unit::Seconds,
        "Age of the oldest webhook delivery waiting (0 when none waits; database-wide)"
    );
    describe_counter!(
        "webhook_delivery_attempts_total",
        "Webhook delivery attempts made by this process, by outcome (delivered, retry, failed, gone)"
    );
    describe_counter!(
        "limit_refusals_total",
        "Requests answered 429 because a tenant limit would be passed, by limit"
    );
    describe_counter!(
        "events_written_total",
        "Events written, by type, counted from the database (database-wide; usage.limit_warning counts limit warnings)"
    );
    describe_counter!(
        "background_job_runs_total",
        "Passes of a background job in this process (webhook_delivery, housekeeping)"
    );
    describe_counter!(
        "background_job_failures_total",
        "Passes of a background job in this process that failed (the log says why)"
    );
    describe_counter!(
        "metrics_query_failures_total",
        "Scrapes whose database reading failed or timed out, by query (webhook_backlog, events_written)"
    );
}

/// Events are counted once they are this old: a transaction that writes an event and
/// commits later than this is not counted.
pub const EVENTS_SETTLE: std::time::Duration = std::time::Duration::from_secs(5);

/// The longest a scrape waits for each of its database readings.
const SCRAPE_QUERY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// Prometheus metrics: requests by route and status, latency histograms, the pools, the
/// webhook backlog and attempts, limit refusals, events written, background jobs.
pub async fn metrics(State(state): State<AppState>) -> Response {
    for (label, pool) in [("app", state.db.app()), ("operator", state.db.operator())] {
        let status = pool.status();
        metrics::gauge!("db_pool_connections", "pool" => label).set(status.size as f64);
        metrics::gauge!("db_pool_available", "pool" => label).set(status.available as f64);
        metrics::gauge!("db_pool_waiting", "pool" => label).set(status.waiting as f64);
        metrics::gauge!("db_pool_max_size", "pool" => label).set(status.max_size as f64);
    }
    let backlog = tokio::time::timeout(
        SCRAPE_QUERY_TIMEOUT,
        frontdesk_core::operations::webhook_backlog(&state.db),
    )
    .await;
    match backlog {
        Ok(Ok(backlog)) => {
            metrics::gauge!("webhook_backlog_pending").set(backlog.pending as f64);
            metrics::gauge!("webhook_backlog_oldest_seconds").set(backlog.oldest_seconds);
        }
        Ok(Err(error)) => scrape_failed("webhook_backlog", &error.to_string()),
        Err(_) => scrape_failed("webhook_backlog", "timed out"),
    }
    count_events(&state).await;
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

fn scrape_failed(query: &'static str, error: &str) {
    metrics::counter!("metrics_query_failures_total", "query" => query).increment(1);
    tracing::warn!(%error, query, "reading a metric from the database failed");
}

/// Add the events written since the last count, up to `EVENTS_SETTLE` ago. One scrape
/// counts at a time (a concurrent one skips counting), so no event is counted twice by
/// this server.
async fn count_events(state: &AppState) {
    let Ok(mut counted_to) = state.events_counted_to.try_lock() else {
        return;
    };
    let upto =
        frontdesk_core::operations::uuid_v7_floor(std::time::SystemTime::now() - EVENTS_SETTLE);
    if upto <= *counted_to {
        return;
    }
    let counted = tokio::time::timeout(
        SCRAPE_QUERY_TIMEOUT,
        frontdesk_core::operations::events_written(&state.db, *counted_to, upto),
    )
    .await;
    match counted {
        Ok(Ok(types)) => {
            for (kind, n) in types {
                metrics::counter!("events_written_total", "type" => kind)
                    .increment(u64::try_from(n).unwrap_or(0));
            }
            *counted_to = upto;
        }
        Ok(Err(error)) => scrape_failed("events_written", &error.to_string()),
        Err(_) => scrape_failed("events_written", "timed out"),
    }
}

pub async fn openapi(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        state.openapi_json.as_str().to_owned(),
    )
        .into_response()
}

pub async fn docs(State(state): State<AppState>) -> Html<String> {
    Html(state.docs_html.as_str().to_owned())
}
