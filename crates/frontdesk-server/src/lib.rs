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
pub mod reply;
pub mod router;
pub mod routes;
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
pub use state::{AppOptions, AppState};
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

/// Requests by route and status, and their latency.
async fn record_metrics(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(req).await;
    let labels = [
        ("method", method),
        ("route", route),
        ("status", response.status().as_u16().to_string()),
    ];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels[..2])
        .record(start.elapsed().as_secs_f64());
    response
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
        Err(_) => return axum::response::IntoResponse::into_response(ApiError::PayloadTooLarge),
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
