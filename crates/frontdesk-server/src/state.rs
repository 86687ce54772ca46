//! What every handler can reach.

use std::sync::Arc;

use deadpool_postgres::Pool;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::auth::Auth;

#[derive(Clone)]
pub struct AppState {
    pub pool: Pool,
    pub auth: Arc<Auth>,
    pub metrics: PrometheusHandle,
    /// The OpenAPI document and the /docs page, rendered once at start.
    pub openapi_json: Arc<String>,
    pub docs_html: Arc<String>,
    /// The newest migration this binary knows: /readyz compares the database with it.
    pub schema_version: i64,
}
