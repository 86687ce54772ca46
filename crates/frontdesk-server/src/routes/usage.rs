//! `/v1/tenants/{tenant}/usage/…`: usage from the daily rollups.

use frontdesk_core::usage::{self, Span, Usage};

use crate::{
    error::{ApiResult, Problem},
    extract::{QueryParams, TenantScope},
    routes::TenantPath,
};

/// Usage per day for the last `days` days (default 30), oldest first, in the tenant's
/// time zone. Members see their own usage only.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/usage/daily", tag = "usage", params(TenantPath, Span),
    responses((status = 200, body = Vec<Usage>), (status = 422, body = Problem)))]
pub async fn daily(
    scope: TenantScope,
    QueryParams(span): QueryParams<Span>,
) -> ApiResult<axum::Json<Vec<Usage>>> {
    let mut tx = scope.begin().await?;
    Ok(axum::Json(
        usage::daily(&mut tx, scope.tenant, &span).await?,
    ))
}

/// Today's usage so far, in the tenant's time zone.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/usage/today", tag = "usage", params(TenantPath),
    responses((status = 200, body = Usage)))]
pub async fn today(scope: TenantScope) -> ApiResult<axum::Json<Usage>> {
    let mut tx = scope.begin().await?;
    Ok(axum::Json(usage::today(&mut tx, scope.tenant).await?))
}

/// Usage per calendar month for the last `months` months (default 12), oldest first.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/usage/monthly", tag = "usage", params(TenantPath, Span),
    responses((status = 200, body = Vec<Usage>), (status = 422, body = Problem)))]
pub async fn monthly(
    scope: TenantScope,
    QueryParams(span): QueryParams<Span>,
) -> ApiResult<axum::Json<Vec<Usage>>> {
    let mut tx = scope.begin().await?;
    Ok(axum::Json(
        usage::monthly(&mut tx, scope.tenant, &span).await?,
    ))
}
