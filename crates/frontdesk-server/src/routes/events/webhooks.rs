//! `/v1/tenants/{tenant}/webhook-endpoints…` and `…/webhook-deliveries/{id}`: where the
//! tenant's events are delivered, and how each delivery went. Owners and admins.

use axum::{Json, http::StatusCode};
use frontdesk_core::{
    CoreError,
    events::webhooks::{
        self, Delivery, DeliveryQuery, Endpoint, EndpointInput, EndpointWithSecret, Rotation,
    },
    platform::page::{PageQuery, Paged},
};

use crate::{
    error::{ApiError, ApiResult, Problem},
    extract::{PathParams, QueryParams, TenantScope},
    routes::{IdPath, TenantPath},
    webhooks::outbound,
};

/// The URL must resolve, and only to addresses webhooks may reach.
async fn check_reachable(scope: &TenantScope, input: &EndpointInput) -> ApiResult<()> {
    if let Some(url) = input.url.value() {
        outbound::check_url(url, scope.options().webhook_allow_private)
            .await
            .map_err(|message| ApiError::from(CoreError::invalid("url", &message)))?;
    }
    Ok(())
}

/// Add an endpoint. The answer carries its signing secret — the only time it is shown
/// (keep it; rotate it if it is lost). Not idempotent: a replay would have to store the
/// secret.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/webhook-endpoints", tag = "webhooks",
    params(TenantPath), request_body = EndpointInput,
    responses((status = 201, body = EndpointWithSecret), (status = 422, body = Problem)))]
pub async fn create(
    scope: TenantScope,
    crate::extract::Json(input): crate::extract::Json<EndpointInput>,
) -> ApiResult<(StatusCode, Json<EndpointWithSecret>)> {
    let fields = input.check(true)?;
    check_reachable(&scope, &input).await?;
    let mut tx = scope.begin().await?;
    let created = webhooks::create(&mut tx, scope.tenant, fields, webhooks::new_secret()).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// The tenant's endpoints (without secrets).
#[utoipa::path(get, path = "/v1/tenants/{tenant}/webhook-endpoints", tag = "webhooks",
    params(TenantPath, PageQuery), responses((status = 200, body = Paged<Endpoint>)))]
pub async fn list(
    scope: TenantScope,
    QueryParams(page): QueryParams<PageQuery>,
) -> ApiResult<Json<Paged<Endpoint>>> {
    let page = page.parse()?;
    let mut tx = scope.begin().await?;
    Ok(Json(webhooks::list(&mut tx, scope.tenant, &page).await?))
}

/// One endpoint.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/webhook-endpoints/{id}", tag = "webhooks",
    params(IdPath), responses((status = 200, body = Endpoint), (status = 404, body = Problem)))]
pub async fn get(
    scope: TenantScope,
    PathParams(path): PathParams<IdPath>,
) -> ApiResult<Json<Endpoint>> {
    let mut tx = scope.begin().await?;
    tx.commit_with_next();
    Ok(Json(webhooks::get(&mut tx, scope.tenant, path.id).await?))
}

/// Change an endpoint's URL, description, event types, or `enabled` (enabling clears its
/// failure record and sends what was queued before it was disabled; events written while
/// it was disabled are not queued for it).
#[utoipa::path(patch, path = "/v1/tenants/{tenant}/webhook-endpoints/{id}", tag = "webhooks",
    params(IdPath), request_body(content = EndpointInput, example = json!({"event_types": ["message.created"]})),
    responses((status = 200, body = Endpoint), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn update(
    scope: TenantScope,
    PathParams(path): PathParams<IdPath>,
    crate::extract::Json(input): crate::extract::Json<EndpointInput>,
) -> ApiResult<Json<Endpoint>> {
    let fields = input.check(false)?;
    check_reachable(&scope, &input).await?;
    let mut tx = scope.begin().await?;
    let endpoint = webhooks::update(&mut tx, scope.tenant, path.id, fields).await?;
    tx.commit().await?;
    Ok(Json(endpoint))
}

/// Delete an endpoint, with its deliveries and their attempts.
#[utoipa::path(delete, path = "/v1/tenants/{tenant}/webhook-endpoints/{id}", tag = "webhooks",
    params(IdPath), responses((status = 204), (status = 404, body = Problem)))]
pub async fn delete(
    scope: TenantScope,
    PathParams(path): PathParams<IdPath>,
) -> ApiResult<StatusCode> {
    let mut tx = scope.begin().await?;
    webhooks::delete(&mut tx, scope.tenant, path.id).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Enable an endpoint again (after a 410, a long failure, or a request disabled it).
#[utoipa::path(post, path = "/v1/tenants/{tenant}/webhook-endpoints/{id}/enable", tag = "webhooks",
    params(IdPath), responses((status = 200, body = Endpoint), (status = 404, body = Problem)))]
pub async fn enable(
    scope: TenantScope,
    PathParams(path): PathParams<IdPath>,
) -> ApiResult<Json<Endpoint>> {
    let mut tx = scope.begin().await?;
    let endpoint = webhooks::enable(&mut tx, scope.tenant, path.id).await?;
    tx.commit().await?;
    Ok(Json(endpoint))
}

/// A new signing secret, shown once. The old one keeps signing for `grace_seconds`
/// (default a day): deliveries carry both signatures meanwhile.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/webhook-endpoints/{id}/rotate-secret", tag = "webhooks",
    params(IdPath), request_body = Rotation,
    responses((status = 200, body = EndpointWithSecret), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn rotate(
    scope: TenantScope,
    PathParams(path): PathParams<IdPath>,
    crate::extract::Json(rotation): crate::extract::Json<Rotation>,
) -> ApiResult<Json<EndpointWithSecret>> {
    let mut tx = scope.begin().await?;
    let rotated = webhooks::rotate(&mut tx, scope.tenant, path.id, &rotation).await?;
    tx.commit().await?;
    Ok(Json(rotated))
}

/// Send a `webhook.test` event to this endpoint (only): the delivery, queued.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/webhook-endpoints/{id}/test", tag = "webhooks",
    params(IdPath), responses((status = 202, body = Delivery), (status = 404, body = Problem)))]
pub async fn test(
    scope: TenantScope,
    PathParams(path): PathParams<IdPath>,
) -> ApiResult<(StatusCode, Json<Delivery>)> {
    let mut tx = scope.begin().await?;
    let id = webhooks::send_test(&mut tx, path.id).await?;
    let delivery = webhooks::delivery(&mut tx, scope.tenant, id).await?;
    tx.commit().await?;
    Ok((StatusCode::ACCEPTED, Json(delivery)))
}

/// The endpoint's deliveries, newest first.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/webhook-endpoints/{id}/deliveries", tag = "webhooks",
    params(IdPath, DeliveryQuery),
    responses((status = 200, body = Paged<Delivery>), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn deliveries(
    scope: TenantScope,
    PathParams(path): PathParams<IdPath>,
    QueryParams(q): QueryParams<DeliveryQuery>,
) -> ApiResult<Json<Paged<Delivery>>> {
    let (status, page) = q.parse()?;
    let mut tx = scope.begin().await?;
    Ok(Json(
        webhooks::deliveries(&mut tx, scope.tenant, path.id, status, &page).await?,
    ))
}

/// One delivery with every attempt.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/webhook-deliveries/{id}", tag = "webhooks",
    params(IdPath), responses((status = 200, body = Delivery), (status = 404, body = Problem)))]
pub async fn delivery(
    scope: TenantScope,
    PathParams(path): PathParams<IdPath>,
) -> ApiResult<Json<Delivery>> {
    let mut tx = scope.begin().await?;
    Ok(Json(
        webhooks::delivery(&mut tx, scope.tenant, path.id).await?,
    ))
}

/// Attempt a delivery again now: a pending one at once, a delivered or failed one queued
/// again (with the same `webhook-id`, so receivers can tell a repeat).
#[utoipa::path(post, path = "/v1/tenants/{tenant}/webhook-deliveries/{id}/retry", tag = "webhooks",
    params(IdPath), responses((status = 202, body = Delivery), (status = 404, body = Problem)))]
pub async fn retry(
    scope: TenantScope,
    PathParams(path): PathParams<IdPath>,
) -> ApiResult<(StatusCode, Json<Delivery>)> {
    let mut tx = scope.begin().await?;
    let delivery = webhooks::retry(&mut tx, scope.tenant, path.id).await?;
    tx.commit().await?;
    Ok((StatusCode::ACCEPTED, Json(delivery)))
}
