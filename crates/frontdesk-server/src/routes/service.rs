//! Service endpoints: liveness, readiness, metrics, the OpenAPI document and its page.

use axum::{
    extract::State,
    http::{StatusCode, header},
    response::{Html, IntoResponse, Response},
};

use crate::{error::ApiError, state::AppState};

/// The process is up.
pub async fn healthz() -> &'static str {
    "ok"
}

/// The database answers and its schema is the one this binary expects; and the webhook
/// delivery worker of this process, if it runs one, is still making progress.
pub async fn readyz(State(state): State<AppState>) -> Response {
    if let Some(worker) = &state.options.worker
        && let Some(why) = worker.heartbeat.problem(worker.stale_after)
    {
        tracing::warn!(reason = %why, "not ready");
        return not_ready(why);
    }
    let check = async {
        let (version, dirty) =
            frontdesk_pg::migrate::applied(&state.db)
                .await
                .map_err(|e| match e {
                    frontdesk_pg::DbError::Pool(e) => e.to_string(),
                    other => other.to_string(),
                })?;
        if dirty {
            return Err("a migration is dirty".to_owned());
        }
        if version != state.schema_version {
            return Err(format!(
                "schema is at {version}, this binary expects {}",
                state.schema_version
            ));
        }
        Ok(())
    };
    match check.await {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(why) => {
            tracing::warn!(reason = %why, "not ready");
            ApiError::Unavailable(why).into_response()
        }
    }
}

/// A 503 problem saying why (text of our own, nothing of the database's).
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

/// Prometheus metrics: requests by route and status, latency histograms, pool gauges.
pub async fn metrics(State(state): State<AppState>) -> Response {
    let status = state.db.app().status();
    metrics::gauge!("db_pool_connections").set(status.size as f64);
    metrics::gauge!("db_pool_available").set(status.available as f64);
    metrics::gauge!("db_pool_waiting").set(status.waiting as f64);
    metrics::gauge!("db_pool_max_size").set(status.max_size as f64);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
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
