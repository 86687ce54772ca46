//! `/v1/tenants/{tenant}/api-keys`: credentials of the tenant's backend services.

use axum::http::StatusCode;
use frontdesk_core::{
    platform::page::{PageQuery, Paged},
    tenancy::api_keys::{self, ApiKey, CreatedApiKey, NewApiKey, NewKey},
};
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::{
    error::{ApiResult, Problem},
    extract::{Json, PathParams, QueryParams, TenantScope},
    routes::TenantPath,
};

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct KeyPath {
    /// The tenant's id or slug.
    pub tenant: String,
    pub id: Uuid,
}

/// The tenant's keys (never their secrets), newest first.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/api-keys", tag = "api-keys", params(TenantPath, PageQuery),
    responses((status = 200, body = Paged<ApiKey>), (status = 403, body = Problem)))]
pub async fn list(
    scope: TenantScope,
    QueryParams(page): QueryParams<PageQuery>,
) -> ApiResult<axum::Json<Paged<ApiKey>>> {
    let page = page.parse()?;
    let keys = scope
        .read(async |tx| api_keys::list(tx, scope.tenant, &page).await)
        .await?;
    Ok(axum::Json(keys))
}

/// Create a key. The response holds its `secret`, shown this once.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/api-keys", tag = "api-keys", params(TenantPath),
    request_body = NewApiKey,
    responses((status = 201, body = CreatedApiKey), (status = 422, body = Problem)))]
pub async fn create(
    scope: TenantScope,
    Json(new): Json<NewApiKey>,
) -> ApiResult<(StatusCode, axum::Json<CreatedApiKey>)> {
    let new = NewKey::try_from(new)?;
    let key = scope
        .write(async |tx| api_keys::create(tx, scope.tenant, &new, scope.user_id()).await)
        .await?;
    Ok((StatusCode::CREATED, axum::Json(key)))
}

/// One key (never its secret).
#[utoipa::path(get, path = "/v1/tenants/{tenant}/api-keys/{id}", tag = "api-keys", params(KeyPath),
    responses((status = 200, body = ApiKey), (status = 404, body = Problem)))]
pub async fn get(
    scope: TenantScope,
    PathParams(path): PathParams<KeyPath>,
) -> ApiResult<axum::Json<ApiKey>> {
    let key = scope
        .read(async |tx| api_keys::get(tx, scope.tenant, path.id).await)
        .await?;
    Ok(axum::Json(key))
}

/// Revoke a key: every server refuses it from its next request on.
#[utoipa::path(delete, path = "/v1/tenants/{tenant}/api-keys/{id}", tag = "api-keys", params(KeyPath),
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn revoke(
    scope: TenantScope,
    PathParams(path): PathParams<KeyPath>,
) -> ApiResult<StatusCode> {
    scope
        .write(async |tx| api_keys::revoke(tx, scope.tenant, path.id).await)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
