//! What every handler can reach.

use std::sync::Arc;

use frontdesk_pg::Db;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::auth::Auth;

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub auth: Arc<Auth>,
    pub metrics: PrometheusHandle,
    /// The OpenAPI document and the /docs page, rendered once at start.
    pub openapi_json: Arc<String>,
    pub docs_html: Arc<String>,
    /// The newest migration this binary knows: /readyz compares the database with it.
    pub schema_version: i64,
    pub options: Arc<AppOptions>,
    /// Where `/metrics` counts events written from next (`routes::service::metrics`).
    pub events_counted_to: Arc<tokio::sync::Mutex<uuid::Uuid>>,
}

/// Settings of the API beyond auth.
#[derive(Debug, Clone)]
pub struct AppOptions {
    /// The largest message content accepted, in bytes (422 beyond).
    pub max_message_bytes: usize,
    /// Webhook endpoints may point at loopback and private addresses (development, tests).
    pub webhook_allow_private: bool,
    /// The largest body a streamed route (an upload) accepts, in bytes (413 beyond).
    pub max_upload_bytes: usize,
    /// The webhook delivery worker running in this process, which `/readyz` watches.
    pub worker: Option<WorkerHealth>,
}

/// How `/readyz` judges the in-process delivery worker: not ready once its loop has
/// ended, or when it has not completed a pass for longer than `stale_after`.
#[derive(Debug, Clone)]
pub struct WorkerHealth {
    pub heartbeat: crate::webhooks::worker::Heartbeat,
    pub stale_after: std::time::Duration,
}

/// `FRONTDESK_WEBHOOK_WORKER_STALE_AFTER` unless set: 2 minutes.
pub const DEFAULT_WORKER_STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(120);

/// `FRONTDESK_MAX_UPLOAD_BYTES` unless set: 25 MiB.
pub const DEFAULT_MAX_UPLOAD_BYTES: usize = 25 * 1024 * 1024;

impl Default for AppOptions {
    fn default() -> Self {
        Self {
            max_message_bytes: frontdesk_core::conversations::messages::DEFAULT_MAX_CONTENT_BYTES,
            webhook_allow_private: false,
            max_upload_bytes: DEFAULT_MAX_UPLOAD_BYTES,
            worker: None,
        }
    }
}
