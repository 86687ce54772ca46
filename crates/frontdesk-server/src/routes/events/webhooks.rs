//! `/v1/tenants/{tenant}/webhook-endpoints…` and `…/webhook-deliveries/{id}`: where the
//! tenant's events are delivered, and how each delivery went. Owners and admins.

use axum::{Json, http::StatusCode};
use frontdesk_core::{
    CoreError,
    events::webhooks::{
        self, Delivery, DeliveryQuery, Endpoint, EndpointChanges, EndpointInput,
        EndpointWithSecret, NewEndpoint, Rotation, SecretRotation,
    },
    platform::{
        input::Columns,
        page::{PageQuery, Paged},
        store::Record,
    },
};

use crate::{
    error::{ApiError, ApiResult, Problem},
    extract::{PathParams, QueryParams, TenantScope},
    routes::{IdPath, TenantPath},
    webhooks::outbound,
};

/// The URL must resolve, and only to addresses webhooks may reach.
async fn check_reachable(scope: &TenantScope, changes: &EndpointChanges) -> ApiResult<()> {
    if let Some(url) = changes.url.value() {
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
    let new = NewEndpoint::try_from(input)?;
    check_reachable(&scope, &new.0).await?;
    let created = scope
        .write(async |tx| webhooks::create(tx, scope.tenant, &new, webhooks::new_secret()).await)
        .await?;
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
    let endpoints = scope
        .read(async |tx| webhooks::list(tx, scope.tenant, &page).await)
        .await?;
    Ok(Json(endpoints))
}

/// One endpoint.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/webhook-endpoints/{id}", tag = "webhooks",
    params(IdPath), responses((status = 200, body = Endpoint), (status = 404, body = Problem)))]
pub async fn get(
    scope: TenantScope,
    PathParams(path): PathParams<IdPath>,
) -> ApiResult<Json<Endpoint>> {
    let endpoint = scope
        .read(async |tx| Endpoint::get(tx, scope.tenant, path.id).await)
        .await?;
    Ok(Json(endpoint))
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
    let changes = EndpointChanges::try_from(input)?;
    check_reachable(&scope, &changes).await?;
    let endpoint = scope
        .write(async |tx| Endpoint::update(tx, scope.tenant, path.id, changes.columns()).await)
        .await?;
    Ok(Json(endpoint))
}

/// Delete an endpoint, with its deliveries and their attempts.
#[utoipa::path(delete, path = "/v1/tenants/{tenant}/webhook-endpoints/{id}", tag = "webhooks",
    params(IdPath), responses((status = 204), (status = 404, body = Problem)))]
pub async fn delete(
    scope: TenantScope,
    PathParams(path): PathParams<IdPath>,
) -> ApiResult<StatusCode> {
    scope
        .write(async |tx| Endpoint::delete(tx, scope.tenant, path.id).await)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Enable an endpoint again (after a 410, a long failure, or a request disabled it).
#[utoipa::path(post, path = "/v1/tenants/{tenant}/webhook-endpoints/{id}/enable", tag = "webhooks",
    params(IdPath), responses((status = 200, body = Endpoint), (status = 404, body = Problem)))]
pub async fn enable(
    scope: TenantScope,
    PathParams(path): PathParams<IdPath>,
) -> ApiResult<Json<Endpoint>> {
    let endpoint = scope
        .write(async |tx| webhooks::enable(tx, scope.tenant, path.id).await)
        .await?;
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
    let rotation = SecretRotation::try_from(rotation)?;
    let rotated = scope
        .write(async |tx| webhooks::rotate(tx, scope.tenant, path.id, &rotation).await)
        .await?;
    Ok(Json(rotated))
}

/// Send a `webhook.test` event to this endpoint (only): the delivery, queued.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/webhook-endpoints/{id}/test", tag = "webhooks",
    params(IdPath), responses((status = 202, body = Delivery), (status = 404, body = Problem)))]
pub async fn test(
    scope: TenantScope,
    PathParams(path): PathParams<IdPath>,
) -> ApiResult<(StatusCode, Json<Delivery>)> {
    // Queued in one transaction, read back in another (see `webhooks::retry`).
    let id = scope
        .write(async |tx| webhooks::send_test(tx, path.id).await)
        .await?;
    let delivery = scope
        .read(async |tx| webhooks::delivery(tx, scope.tenant, id).await)
        .await?;
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
    let deliveries = scope
        .read(async |tx| webhooks::deliveries(tx, scope.tenant, path.id, status, &page).await)
        .await?;
    Ok(Json(deliveries))
}

/// One delivery with every attempt.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/webhook-deliveries/{id}", tag = "webhooks",
    params(IdPath), responses((status = 200, body = Delivery), (status = 404, body = Problem)))]
pub async fn delivery(
    scope: TenantScope,
    PathParams(path): PathParams<IdPath>,
) -> ApiResult<Json<Delivery>> {
    let delivery = scope
        .read(async |tx| webhooks::delivery(tx, scope.tenant, path.id).await)
        .await?;
    Ok(Json(delivery))
}

/// Attempt a delivery again now: a pending one at once, a delivered or failed one queued
/// again (with the same `webhook-id`, so receivers can tell a repeat).
#[utoipa::path(post, path = "/v1/tenants/{tenant}/webhook-deliveries/{id}/retry", tag = "webhooks",
    params(IdPath), responses((status = 202, body = Delivery), (status = 404, body = Problem)))]
pub async fn retry(
    scope: TenantScope,
    PathParams(path): PathParams<IdPath>,
) -> ApiResult<(StatusCode, Json<Delivery>)> {
    // Queued in one transaction, read back in another (see `webhooks::retry`).
    scope
        .write(async |tx| webhooks::retry(tx, path.id).await)
        .await?;
    let delivery = scope
        .read(async |tx| webhooks::delivery(tx, scope.tenant, path.id).await)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(delivery)))
}
