//! `/v1/tenants/{tenant}/invitations`: inviting people by email, and accepting.

use axum::http::StatusCode;
use frontdesk_core::{
    platform::page::{PageQuery, Paged},
    tenancy::invitations::{
        self, AcceptInvitation, CreatedInvitation, Invitation, Invite, Joined, NewInvitation,
        PresentedToken,
    },
};

use crate::{
    auth::Caller,
    error::{ApiError, ApiResult, Problem},
    extract::{Json, PathParams, QueryParams, TenantScope, UserScope},
    routes::{IdPath, TenantPath},
};

/// The tenant's invitations (never their tokens), newest first, with their status.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/invitations", tag = "invitations",
    params(TenantPath, PageQuery),
    responses((status = 200, body = Paged<Invitation>), (status = 403, body = Problem)))]
pub async fn list(
    scope: TenantScope,
    QueryParams(page): QueryParams<PageQuery>,
) -> ApiResult<axum::Json<Paged<Invitation>>> {
    let page = page.parse()?;
    let found = scope
        .read(async |tx| invitations::list(tx, scope.tenant, &page).await)
        .await?;
    Ok(axum::Json(found))
}

/// Invite an email with a role. The response holds the `token`, shown this once, and the
/// `link` where the invitee accepts it within 7 days. Only an owner invites an owner.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/invitations", tag = "invitations",
    params(TenantPath),
    request_body = NewInvitation,
    responses((status = 201, body = CreatedInvitation), (status = 403, body = Problem),
              (status = 422, body = Problem)))]
pub async fn create(
    scope: TenantScope,
    Json(new): Json<NewInvitation>,
) -> ApiResult<(StatusCode, axum::Json<CreatedInvitation>)> {
    let invite = Invite::try_from(new)?;
    let created = scope
        .write(async |tx| invitations::create(tx, scope.tenant, &invite, scope.user_id()).await)
        .await?;
    Ok((StatusCode::CREATED, axum::Json(created)))
}

/// Revoke an invitation: it can no longer be accepted (again is fine; an accepted one is
/// a 409).
#[utoipa::path(delete, path = "/v1/tenants/{tenant}/invitations/{id}", tag = "invitations",
    params(IdPath),
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn revoke(
    scope: TenantScope,
    PathParams(path): PathParams<IdPath>,
) -> ApiResult<StatusCode> {
    scope
        .write(async |tx| invitations::revoke(tx, scope.tenant, path.id).await)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Accept an invitation with its token, as the signed-in user whose token's email is the
/// invitation's (compared case-insensitively; an email the identity provider marks
/// unverified does not count). The caller need not be a member: this makes them one,
/// with the invitation's role. 404 for an unknown invitation or a wrong token; 403 for
/// another email; 409 when it expired, was revoked or was already accepted, or the
/// caller is already a member.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/invitations/{id}/accept", tag = "invitations",
    params(IdPath),
    request_body = AcceptInvitation,
    responses((status = 200, body = Joined), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn accept(
    scope: UserScope,
    PathParams(path): PathParams<IdPath>,
    Json(body): Json<AcceptInvitation>,
) -> ApiResult<axum::Json<Joined>> {
    let token = PresentedToken::try_from(body)?;
    let Caller::User {
        id: user, email, ..
    } = &scope.caller
    else {
        return Err(ApiError::Forbidden(
            "invitations are accepted by the invited person, signed in".into(),
        ));
    };
    let tenant = scope.tenant_id(&path.tenant).await?;
    let joined = scope
        .write(async |tx| {
            invitations::accept(tx, tenant, path.id, &token, *user, email.as_deref()).await
        })
        .await?;
    Ok(axum::Json(joined))
}
