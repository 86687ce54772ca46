//! The model price catalog (`/v1/prices`) and a tenant's own prices (`…/prices`).

use axum::{http::StatusCode, response::Response};
use frontdesk_core::usage::prices::{
    self, NewPrice, Price, PriceDraft, RecostRequest, RecostResult, RecostWindow,
};

use crate::{
    error::{ApiResult, Problem},
    extract::{Json, TenantScope, UserScope},
    idempotency::Creating,
    routes::{IdempotencyHeader, TenantPath},
};

/// The public list prices Frontdesk costs messages with, with their history.
#[utoipa::path(get, path = "/v1/prices", tag = "prices",
    responses((status = 200, body = Vec<Price>), (status = 401, body = Problem)))]
pub async fn catalog(scope: UserScope) -> ApiResult<axum::Json<Vec<Price>>> {
    let prices = scope.read(async |tx| prices::catalog(tx).await).await?;
    Ok(axum::Json(prices))
}

/// Add a catalog price from a time on (operator). Earlier prices stay for earlier messages.
#[utoipa::path(post, path = "/v1/prices", tag = "prices", request_body = NewPrice,
    responses((status = 201, body = Price), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn add_to_catalog(
    scope: UserScope,
    Json(new): Json<NewPrice>,
) -> ApiResult<(StatusCode, axum::Json<Price>)> {
    let new = PriceDraft::try_from(new)?;
    let price = scope
        .write(async |tx| prices::add_to_catalog(tx, &new).await)
        .await?;
    Ok((StatusCode::CREATED, axum::Json(price)))
}

/// The tenant's own prices, with their history (staff).
#[utoipa::path(get, path = "/v1/tenants/{tenant}/prices", tag = "prices", params(TenantPath),
    responses((status = 200, body = Vec<Price>), (status = 403, body = Problem)))]
pub async fn list(scope: TenantScope) -> ApiResult<axum::Json<Vec<Price>>> {
    let prices = scope
        .read(async |tx| prices::tenant_prices(tx, scope.tenant).await)
        .await?;
    Ok(axum::Json(prices))
}

/// Add a tenant price: it wins over the catalog for this tenant from `effective_from` on.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/prices", tag = "prices",
    params(TenantPath, IdempotencyHeader), request_body = NewPrice,
    responses((status = 201, body = Price), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn add(scope: TenantScope, new: Creating<NewPrice>) -> ApiResult<Response> {
    let price = PriceDraft::try_from(new.body)?;
    let by = scope.user_id();
    scope
        .create(new.idempotency, StatusCode::CREATED, async |tx| {
            prices::add_for_tenant(tx, scope.tenant, &price, by).await
        })
        .await
}

/// Price again the tenant's messages and usage events of a window (`from`, `to`, default
/// now), after a price was added with an `effective_from` in the past: those costed from a
/// price list or left unpriced, at their own times; costs given by the client stay. Their
/// conversations' totals, the daily rollups and the month's cost in the limit state are
/// corrected in the same transaction. Returns how many rows of each changed. Running it
/// again changes nothing.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/prices/recost", tag = "prices",
    params(TenantPath), request_body = RecostRequest,
    responses((status = 200, body = RecostResult), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn recost(
    scope: TenantScope,
    Json(body): Json<RecostRequest>,
) -> ApiResult<axum::Json<RecostResult>> {
    let window = RecostWindow::try_from(body)?;
    let result = scope
        .write(async |tx| prices::recost(tx, &window).await)
        .await?;
    Ok(axum::Json(result))
}
