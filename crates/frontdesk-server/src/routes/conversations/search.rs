//! `/v1/tenants/{tenant}/search`: full-text search over messages.

use frontdesk_core::conversations::search::{self, Hits, SearchQuery};

use crate::{
    error::{ApiResult, Problem},
    extract::{QueryParams, TenantScope},
    routes::TenantPath,
};

/// Messages matching `q`, best first, with highlighted snippets, in the tenant's search
/// language. Members find only their own conversations' messages.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/search", tag = "search", params(TenantPath, SearchQuery),
    responses((status = 200, body = Hits), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn search(
    scope: TenantScope,
    QueryParams(query): QueryParams<SearchQuery>,
) -> ApiResult<axum::Json<Hits>> {
    let query = query.parse()?;
    let hits = scope
        .read(async |tx| search::search(tx, scope.tenant, &query).await)
        .await?;
    Ok(axum::Json(hits))
}
