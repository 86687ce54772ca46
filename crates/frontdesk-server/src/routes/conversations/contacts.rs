//! `/v1/tenants/{tenant}/contacts`: the business's customers (staff and keys only).

use axum::{http::StatusCode, response::Response};
use frontdesk_core::{
    conversations::contacts::{self, Contact, ContactInput, ContactQuery},
    platform::page::Paged,
};

use crate::{
    error::{ApiResult, Problem},
    extract::{Json, PathParams, QueryParams, TenantScope},
    idempotency::{Creating, Statements},
    routes::{IdPath, IdempotencyHeader, TenantPath},
};

/// The tenant's contacts, newest first; `q` searches names and phone numbers. Members
/// see none.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/contacts", tag = "contacts", params(TenantPath, ContactQuery),
    responses((status = 200, body = Paged<Contact>), (status = 403, body = Problem)))]
pub async fn list(
    scope: TenantScope,
    QueryParams(query): QueryParams<ContactQuery>,
) -> ApiResult<axum::Json<Paged<Contact>>> {
    let page = query.page()?;
    let mut tx = scope.begin().await?;
    tx.commit_with_next();
    Ok(axum::Json(
        contacts::list(&mut tx, scope.tenant, query.q.as_deref(), &page).await?,
    ))
}

/// Create a contact. Phone numbers are unique per tenant (409).
#[utoipa::path(post, path = "/v1/tenants/{tenant}/contacts", tag = "contacts",
    params(TenantPath, IdempotencyHeader), request_body = ContactInput,
    responses((status = 201, body = Contact), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create(scope: TenantScope, new: Creating<ContactInput>) -> ApiResult<Response> {
    let fields = new.body.check()?;
    scope
        .create(
            new.idempotency,
            StatusCode::CREATED,
            Statements::Several,
            async |tx| contacts::create(tx, scope.tenant, fields).await,
        )
        .await
}

/// One contact.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/contacts/{id}", tag = "contacts", params(IdPath),
    responses((status = 200, body = Contact), (status = 404, body = Problem)))]
pub async fn get(
    scope: TenantScope,
    PathParams(path): PathParams<IdPath>,
) -> ApiResult<axum::Json<Contact>> {
    let mut tx = scope.begin().await?;
    tx.commit_with_next();
    Ok(axum::Json(
        contacts::get(&mut tx, scope.tenant, path.id).await?,
    ))
}

/// Change a contact.
#[utoipa::path(patch, path = "/v1/tenants/{tenant}/contacts/{id}", tag = "contacts", params(IdPath),
    request_body(content = ContactInput, example = json!({"lead_score": 80, "lead_temperature": "hot"})),
    responses((status = 200, body = Contact), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn update(
    scope: TenantScope,
    PathParams(path): PathParams<IdPath>,
    Json(patch): Json<ContactInput>,
) -> ApiResult<axum::Json<Contact>> {
    let fields = patch.check()?;
    let mut tx = scope.begin().await?;
    let contact = contacts::update(&mut tx, scope.tenant, path.id, fields).await?;
    tx.commit().await?;
    Ok(axum::Json(contact))
}

/// Delete a contact; their conversations stay, without the contact.
#[utoipa::path(delete, path = "/v1/tenants/{tenant}/contacts/{id}", tag = "contacts", params(IdPath),
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn delete(
    scope: TenantScope,
    PathParams(path): PathParams<IdPath>,
) -> ApiResult<StatusCode> {
    let mut tx = scope.begin().await?;
    contacts::delete(&mut tx, scope.tenant, path.id).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
