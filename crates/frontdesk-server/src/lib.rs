//! Frontdesk's HTTP API: the router, extractors, problems, and one module per resource.

pub mod access;
pub mod auth;
pub mod callbacks;
pub mod docs_page;
pub mod edge;
pub mod error;
pub mod extract;
pub mod housekeeping;
pub mod idempotency;
pub mod json_numbers;
pub mod reply;
pub mod router;
pub mod routes;
pub mod serve;
pub mod state;
pub mod streamed;
pub mod webhooks;

use std::{sync::Arc, time::Instant};

use axum::{
    Router,
    body::Body,
    extract::{DefaultBodyLimit, MatchedPath, Request},
    http::HeaderName,
    middleware::{self, Next},
    response::Response,
    routing::get,
};
use frontdesk_pg::Db;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tower_http::{
    request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer},
    trace::TraceLayer,
};

pub use auth::{AuthConfig, Secret};
pub use serve::{ServeLimits, serve};
pub use state::{AppOptions, AppState, WorkerHealth};
pub use webhooks::{Worker, WorkerConfig};

use crate::error::{ApiError, RefusedContext};

/// The largest request body accepted (413 beyond).
pub const BODY_LIMIT: usize = 1024 * 1024;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The process-wide metrics recorder (installed once, shared by every app in a process).
fn metrics_handle() -> PrometheusHandle {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ])
                .expect("static buckets")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (tests embedding several apps).
            let _ = metrics::set_global_recorder(recorder);
            routes::service::describe_metrics();
            handle
        })
        .clone()
}

/// Build the application on `db` with `auth` and default options.
pub fn app(db: Db, auth: AuthConfig) -> Router {
    app_with(db, auth, AppOptions::default())
}

/// Build the application on `db` with `auth` and `options`.
pub fn app_with(db: Db, auth: AuthConfig, options: AppOptions) -> Router {
    let (api, openapi, _) = router::api().into_parts();
    let doc = router::document(&openapi);
    let openapi_json = serde_json::to_string_pretty(&doc).expect("OpenAPI document serializes");
    // Cursors are sealed with a key every server of the deployment derives alike.
    frontdesk_core::platform::page::set_cursor_key(auth.jwt_secret.0.as_bytes());
    let state = AppState {
        auth: Arc::new(auth::Auth::new(auth, db.clone())),
        db,
        metrics: metrics_handle(),
        docs_html: Arc::new(docs_page::render(&doc)),
        openapi_json: Arc::new(openapi_json),
        schema_version: frontdesk_pg::migrate::MIGRATIONS
            .last()
            .map_or(0, |m| i64::from(m.version)),
        options: Arc::new(options),
        events_counted_to: Arc::new(tokio::sync::Mutex::new(
            frontdesk_core::operations::uuid_v7_floor(
                std::time::SystemTime::now() - routes::service::EVENTS_SETTLE,
            ),
        )),
    };
    Router::new()
        .route("/healthz", get(routes::service::healthz))
        .route("/readyz", get(routes::service::readyz))
        .route("/metrics", get(routes::service::metrics))
        .route("/openapi.json", get(routes::service::openapi))
        .route("/docs", get(routes::service::docs))
        .merge(api)
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn(catch_panic))
        .layer(middleware::from_fn(record_metrics))
        .layer(middleware::from_fn(edge::refuse_oversized_head))
        .with_state(state)
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(
            REQUEST_ID,
            SequentialRequestId::new(),
        ))
}

/// The span every log line of a request is in: its id (set or kept by `SetRequestIdLayer`),
/// method and path, and for a tenant's routes the `{tenant}` segment as sent
/// (`tenant.ref`, a slug or an id) and the tenant's id once `TenantScope` has resolved it
/// (`tenant.id`). docs/OPERATIONS.md, "Logging", shows both formats.
fn request_span(req: &Request) -> tracing::Span {
    let id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    let path = req.uri().path();
    let tenant = path
        .strip_prefix("/v1/tenants/")
        .and_then(|rest| rest.split('/').next())
        .filter(|segment| !segment.is_empty());
    tracing::info_span!(
        "request",
        request.id = %id,
        http.method = %req.method(),
        http.path = %path,
        "tenant.ref" = tenant.map(tracing::field::display),
        tenant.id = tracing::field::Empty,
    )
}

/// Request ids `<random per process>-<counter>`: unique without a system call per request
/// (a UUIDv4 costs a `getrandom` each).
#[derive(Clone)]
struct SequentialRequestId {
    prefix: Arc<str>,
    next: Arc<std::sync::atomic::AtomicU64>,
}

impl SequentialRequestId {
    fn new() -> Self {
        let prefix = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        Self {
            prefix: prefix.into(),
            next: Arc::default(),
        }
    }
}

impl MakeRequestId for SequentialRequestId {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        axum::http::HeaderValue::from_str(&format!("{}-{n:010}", self.prefix))
            .ok()
            .map(RequestId::new)
    }
}

/// Requests by method, route and status, and their latency. Every label comes from a fixed
/// set, whatever a client sends: the standard methods (any other is `other`), the route's
/// template (never the path as sent; `unmatched` when no route matched), and the status.
async fn record_metrics(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = method_label(req.method());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(req).await;
    let labels = [
        ("method", method.to_owned()),
        ("route", route),
        ("status", response.status().as_u16().to_string()),
    ];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels[..2])
        .record(start.elapsed().as_secs_f64());
    response
}

/// The metrics label of a request method: one of the standard methods, else `other`
/// (HTTP lets a client send any token as a method).
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "other",
    }
}

/// A handler (or extractor) that panics answers a 500 problem, logged with its route,
/// instead of the connection being dropped. Nothing a client sends should panic (stored
/// values are read with `frontdesk_pg::RowExt::col`); this is the net under that rule.
/// The transaction the handler held is rolled back when it is dropped.
async fn catch_panic(req: Request, next: Next) -> Response {
    use futures_util::FutureExt;
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().clone();
    match std::panic::AssertUnwindSafe(next.run(req))
        .catch_unwind()
        .await
    {
        Ok(response) => response,
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".to_owned());
            // Logged once, as every internal error is, by the problem's rendering.
            axum::response::IntoResponse::into_response(ApiError::Internal(format!(
                "{method} {route} panicked: {message}"
            )))
        }
    }
}

/// When the database refuses a request's context (a role changed, a key was revoked,
/// on this server or another), run the request once more: the scope that met the refusal
/// has already cleared the cached lookups (`extract::run`), so the second run looks
/// everything up afresh. Nothing was written: the refusal comes before the handler's first
/// statement runs. Only routes registered with a buffered body (`BodyMode::Buffered`, the
/// default) are wrapped in this; it keeps their body, up to `BODY_LIMIT`, for the rerun.
pub(crate) async fn retry_refused_context(req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, BODY_LIMIT).await {
        Ok(bytes) => bytes,
        Err(e) => {
            let error = ApiError::body_unread(&e, ApiError::PayloadTooLarge);
            return axum::response::IntoResponse::into_response(error);
        }
    };
    let (method, uri, version) = (parts.method.clone(), parts.uri.clone(), parts.version);
    let (headers, mut extensions) = (parts.headers.clone(), parts.extensions.clone());
    let response = next
        .clone()
        .run(Request::from_parts(parts, Body::from(bytes.clone())))
        .await;
    if response.extensions().get::<RefusedContext>().is_none() {
        return response;
    }
    tracing::info!("request context refused by the database; retrying with fresh lookups");
    extensions.remove::<auth::Caller>();
    let mut retry = Request::new(Body::from(bytes));
    *retry.method_mut() = method;
    *retry.uri_mut() = uri;
    *retry.version_mut() = version;
    *retry.headers_mut() = headers;
    *retry.extensions_mut() = extensions;
    next.run(retry).await
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;
    use tower::ServiceExt;

    use super::*;

    #[tokio::test]
    async fn a_panicking_handler_answers_a_500_problem() {
        let app: Router = Router::new()
            .route(
                "/boom/{id}",
                get(|| async {
                    if true {
                        panic!("a handler bug");
                    }
                    "unreachable"
                }),
            )
            .route("/fine", get(|| async { "fine" }))
            .layer(middleware::from_fn(catch_panic));
        let response = app
            .clone()
            .oneshot(Request::get("/boom/1").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let problem: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(problem["type"], "/problems/internal");
        assert_eq!(problem["status"], 500);
        assert!(
            !problem["detail"]
                .as_str()
                .unwrap()
                .contains("a handler bug"),
            "the panic's message stays in the log"
        );
        // The app keeps serving.
        let response = app
            .oneshot(Request::get("/fine").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
}
