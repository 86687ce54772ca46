//! `/v1/tenants/{tenant}/members`: who belongs to a tenant.

use axum::{http::StatusCode, response::Response};
use frontdesk_core::{
    platform::page::{PageQuery, Paged},
    tenancy::members::{self, Member, MemberPatch, NewMember, NewMembership, RoleChange},
};
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::{
    error::{ApiResult, Problem},
    extract::{Json, PathParams, QueryParams, TenantScope},
    idempotency::Creating,
    routes::TenantPath,
};

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct MemberPath {
    /// The tenant's id or slug.
    pub tenant: String,
    pub user_id: Uuid,
}

/// The tenant's members with their roles and profiles.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/members", tag = "members", params(TenantPath, PageQuery),
    responses((status = 200, body = Paged<Member>), (status = 403, body = Problem)))]
pub async fn list(
    scope: TenantScope,
    QueryParams(page): QueryParams<PageQuery>,
) -> ApiResult<axum::Json<Paged<Member>>> {
    let page = page.parse()?;
    let members = scope
        .read(async |tx| members::list(tx, &page).await)
        .await?;
    Ok(axum::Json(members))
}

/// Add a member. Only an owner can add another owner.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/members", tag = "members",
    params(TenantPath, crate::routes::IdempotencyHeader),
    request_body = NewMember,
    responses((status = 201, body = Member), (status = 409, body = Problem, description = "already a member"),
              (status = 422, body = Problem)))]
pub async fn add(scope: TenantScope, new: Creating<NewMember>) -> ApiResult<Response> {
    let member = NewMembership::try_from(new.body)?;
    // The user first, committed (see `members::provision`), then the membership.
    let user = scope
        .write(async |tx| members::provision(tx, &member, scope.role()).await)
        .await?;
    scope
        .create(new.idempotency, StatusCode::CREATED, async |tx| {
            members::add(tx, scope.tenant, &user, member.role).await
        })
        .await
}

/// One member.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/members/{user_id}", tag = "members", params(MemberPath),
    responses((status = 200, body = Member), (status = 404, body = Problem)))]
pub async fn get(
    scope: TenantScope,
    PathParams(path): PathParams<MemberPath>,
) -> ApiResult<axum::Json<Member>> {
    let member = scope
        .read(async |tx| members::get(tx, path.user_id).await)
        .await?;
    Ok(axum::Json(member))
}

/// Change a member's role. The last owner cannot be demoted (409).
#[utoipa::path(patch, path = "/v1/tenants/{tenant}/members/{user_id}", tag = "members", params(MemberPath),
    request_body = MemberPatch,
    responses((status = 200, body = Member), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn update(
    scope: TenantScope,
    PathParams(path): PathParams<MemberPath>,
    Json(patch): Json<MemberPatch>,
) -> ApiResult<axum::Json<Member>> {
    let change = RoleChange::try_from(patch)?;
    let member = scope
        .write(async |tx| members::set_role(tx, scope.tenant, path.user_id, change.role).await)
        .await?;
    Ok(axum::Json(member))
}

/// Remove a member. The last owner cannot be removed (409).
#[utoipa::path(delete, path = "/v1/tenants/{tenant}/members/{user_id}", tag = "members", params(MemberPath),
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn remove(
    scope: TenantScope,
    PathParams(path): PathParams<MemberPath>,
) -> ApiResult<StatusCode> {
    scope
        .write(async |tx| members::remove(tx, scope.tenant, path.user_id).await)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
