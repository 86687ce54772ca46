//! `/v1/tenants`: create, list, get, update, delete.

use axum::http::StatusCode;
use frontdesk_core::{
    platform::page::{PageQuery, Paged},
    tenancy::tenants::{self, NewTenant, Tenant, TenantChanges, TenantInput},
};

use crate::{
    error::{ApiResult, Problem},
    extract::{Json, QueryParams, TenantScope, UserScope},
    routes::TenantPath,
};

/// Create a tenant. A signed-in user becomes its owner.
#[utoipa::path(post, path = "/v1/tenants", tag = "tenants", request_body = TenantInput,
    responses((status = 201, body = Tenant), (status = 409, body = Problem, description = "slug taken"),
              (status = 422, body = Problem)))]
pub async fn create(
    scope: UserScope,
    Json(input): Json<TenantInput>,
) -> ApiResult<(StatusCode, axum::Json<Tenant>)> {
    let new = NewTenant::try_from(input)?;
    let tenant = scope
        .write(async |tx| tenants::create(tx, &new, scope.user_id()).await)
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(Tenant {
            role: scope.user_id().map(|_| "owner".into()),
            ..tenant
        }),
    ))
}

/// The caller's tenants with their role (the operator: every tenant), newest first.
#[utoipa::path(get, path = "/v1/tenants", tag = "tenants", params(PageQuery),
    responses((status = 200, body = Paged<Tenant>)))]
pub async fn list(
    scope: UserScope,
    QueryParams(page): QueryParams<PageQuery>,
) -> ApiResult<axum::Json<Paged<Tenant>>> {
    let page = page.parse()?;
    let tenants = scope
        .read(async |tx| match scope.user_id() {
            Some(_) => tenants::list_for_user(tx, &page).await,
            None => tenants::list_all(tx, &page).await,
        })
        .await?;
    Ok(axum::Json(tenants))
}

/// One tenant.
#[utoipa::path(get, path = "/v1/tenants/{tenant}", tag = "tenants", params(TenantPath),
    responses((status = 200, body = Tenant), (status = 404, body = Problem)))]
pub async fn get(scope: TenantScope) -> ApiResult<axum::Json<Tenant>> {
    let tenant = scope
        .read(async |tx| tenants::get(tx, scope.tenant).await)
        .await?;
    Ok(axum::Json(Tenant {
        role: scope.role().map(|r| r.as_str().into()),
        ..tenant
    }))
}

/// Change a tenant's profile, LLM defaults, limits or status. Absent fields are kept;
/// null clears an optional field.
#[utoipa::path(patch, path = "/v1/tenants/{tenant}", tag = "tenants", params(TenantPath),
    request_body = TenantInput,
    responses((status = 200, body = Tenant), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn update(
    scope: TenantScope,
    Json(input): Json<TenantInput>,
) -> ApiResult<axum::Json<Tenant>> {
    let changes = TenantChanges::try_from(input)?;
    let tenant = scope
        .write(async |tx| tenants::update(tx, scope.tenant, &changes).await)
        .await?;
    Ok(axum::Json(tenant))
}

/// Delete a tenant and everything it owns.
#[utoipa::path(delete, path = "/v1/tenants/{tenant}", tag = "tenants", params(TenantPath),
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn delete(scope: TenantScope) -> ApiResult<StatusCode> {
    scope
        .write(async |tx| tenants::delete(tx, scope.tenant).await)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
