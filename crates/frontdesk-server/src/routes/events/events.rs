//! `/v1/tenants/{tenant}/events`: the tenant's event log (staff and keys).

use frontdesk_core::{
    events::events::{self, Event, EventQuery},
    platform::page::Paged,
};

use crate::{
    error::{ApiResult, Problem},
    extract::{QueryParams, TenantScope},
    routes::TenantPath,
};

/// What happened in the tenant, in commit order (`sequence`), the latest first unless
/// `order=asc`; filter by type (`message.created`, `conversation.*`), time and sequence.
/// Members see none.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/events", tag = "events", params(TenantPath, EventQuery),
    responses((status = 200, body = Paged<Event>), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn list(
    scope: TenantScope,
    QueryParams(query): QueryParams<EventQuery>,
) -> ApiResult<axum::Json<Paged<Event>>> {
    let (filter, page) = query.parse()?;
    let events = scope
        .read(async |tx| events::list(tx, scope.tenant, &filter, &page).await)
        .await?;
    Ok(axum::Json(events))
}
