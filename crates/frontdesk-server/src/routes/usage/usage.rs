//! `/v1/tenants/{tenant}/usage/…`: usage from the daily rollups.

use axum::{http::StatusCode, response::Response};
use frontdesk_core::{
    platform::page::{PageQuery, Paged},
    usage::usage::{
        self, Days, Months, NewUsageEvent, UnpricedModel, Usage, UsageDraft, UsageEvent,
    },
};

use crate::{
    error::{ApiResult, Problem},
    extract::{QueryParams, TenantScope},
    idempotency::Creating,
    routes::{IdempotencyHeader, TenantPath},
};

/// Record usage not tied to a message (embeddings, voice minutes, tool calls): tokens of a
/// model, costed from the price catalog unless `cost_usd` is given, or a unit and quantity
/// with a unit price. Staff and keys. It counts in the rollups at once.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/usage", tag = "usage",
    params(TenantPath, IdempotencyHeader), request_body = NewUsageEvent,
    responses((status = 201, body = UsageEvent), (status = 403, body = Problem), (status = 422, body = Problem),
              (status = 429, body = Problem, description = "the tenant's rate limit per minute, daily tokens or monthly budget would be passed")))]
pub async fn record(scope: TenantScope, new: Creating<NewUsageEvent>) -> ApiResult<Response> {
    let draft = UsageDraft::try_from(new.body)?;
    scope
        .create(new.idempotency, StatusCode::CREATED, async |tx| {
            usage::record(tx, scope.tenant, &draft).await
        })
        .await
}

/// Recorded usage events, newest first (a member: their own).
#[utoipa::path(get, path = "/v1/tenants/{tenant}/usage/events", tag = "usage", params(TenantPath, PageQuery),
    responses((status = 200, body = Paged<UsageEvent>)))]
pub async fn events(
    scope: TenantScope,
    QueryParams(page): QueryParams<PageQuery>,
) -> ApiResult<axum::Json<Paged<UsageEvent>>> {
    let page = page.parse()?;
    let events = scope
        .read(async |tx| usage::events(tx, scope.tenant, &page).await)
        .await?;
    Ok(axum::Json(events))
}

/// Usage per day for the last `days` days (default 30), oldest first, in the tenant's
/// time zone. Members see their own usage only.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/usage/daily", tag = "usage", params(TenantPath, Days),
    responses((status = 200, body = Vec<Usage>), (status = 422, body = Problem)))]
pub async fn daily(
    scope: TenantScope,
    QueryParams(q): QueryParams<Days>,
) -> ApiResult<axum::Json<Vec<Usage>>> {
    let days = q.parse()?;
    let usage = scope
        .read(async |tx| usage::daily(tx, scope.tenant, days).await)
        .await?;
    Ok(axum::Json(usage))
}

/// Today's usage so far, in the tenant's time zone.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/usage/today", tag = "usage", params(TenantPath),
    responses((status = 200, body = Usage)))]
pub async fn today(scope: TenantScope) -> ApiResult<axum::Json<Usage>> {
    let usage = scope
        .read(async |tx| usage::today(tx, scope.tenant).await)
        .await?;
    Ok(axum::Json(usage))
}

/// Usage per calendar month for the last `months` months (default 12), oldest first.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/usage/monthly", tag = "usage", params(TenantPath, Months),
    responses((status = 200, body = Vec<Usage>), (status = 422, body = Problem)))]
pub async fn monthly(
    scope: TenantScope,
    QueryParams(q): QueryParams<Months>,
) -> ApiResult<axum::Json<Vec<Usage>>> {
    let months = q.parse()?;
    let usage = scope
        .read(async |tx| usage::monthly(tx, scope.tenant, months).await)
        .await?;
    Ok(axum::Json(usage))
}

/// The models used without a price (their calls costed 0), with how many calls and the
/// first and last day, most calls first; from the daily rollups (a member: their own).
#[utoipa::path(get, path = "/v1/tenants/{tenant}/usage/unpriced", tag = "usage", params(TenantPath),
    responses((status = 200, body = Vec<UnpricedModel>)))]
pub async fn unpriced(scope: TenantScope) -> ApiResult<axum::Json<Vec<UnpricedModel>>> {
    let models = scope
        .read(async |tx| usage::unpriced(tx, scope.tenant).await)
        .await?;
    Ok(axum::Json(models))
}
