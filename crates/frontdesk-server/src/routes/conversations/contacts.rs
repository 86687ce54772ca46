//! `/v1/tenants/{tenant}/contacts`: the business's customers (staff and keys only).

use axum::{http::StatusCode, response::Response};
use frontdesk_core::{
    conversations::contacts::{self, Contact, ContactChanges, ContactInput, ContactQuery},
    platform::input::Columns,
    platform::page::Paged,
};

use crate::{
    error::{ApiResult, Problem},
    extract::{Json, PathParams, QueryParams, TenantScope},
    idempotency::Creating,
    routes::{IdPath, IdempotencyHeader, TenantPath, records},
};

/// The tenant's contacts, newest first; `q` searches names and phone numbers. Members
/// see none.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/contacts", tag = "contacts", params(TenantPath, ContactQuery),
    responses((status = 200, body = Paged<Contact>), (status = 403, body = Problem)))]
pub async fn list(
    scope: TenantScope,
    QueryParams(query): QueryParams<ContactQuery>,
) -> ApiResult<axum::Json<Paged<Contact>>> {
    let (q, page) = query.parse()?;
    let contacts = scope
        .read(async |tx| contacts::list(tx, scope.tenant, q.as_deref(), &page).await)
        .await?;
    Ok(axum::Json(contacts))
}

/// Create a contact. Phone numbers are unique per tenant (409).
#[utoipa::path(post, path = "/v1/tenants/{tenant}/contacts", tag = "contacts",
    params(TenantPath, IdempotencyHeader), request_body = ContactInput,
    responses((status = 201, body = Contact), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create(scope: TenantScope, new: Creating<ContactInput>) -> ApiResult<Response> {
    let contact = ContactChanges::try_from(new.body)?;
    records::create::<Contact>(&scope, new.idempotency, contact.columns()).await
}

/// One contact.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/contacts/{id}", tag = "contacts", params(IdPath),
    responses((status = 200, body = Contact), (status = 404, body = Problem)))]
pub async fn get(
    scope: TenantScope,
    PathParams(path): PathParams<IdPath>,
) -> ApiResult<axum::Json<Contact>> {
    records::get(&scope, path.id).await
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
    let changes = ContactChanges::try_from(patch)?;
    records::update::<Contact>(&scope, path.id, changes.columns()).await
}

/// Delete a contact; their conversations stay, without the contact.
#[utoipa::path(delete, path = "/v1/tenants/{tenant}/contacts/{id}", tag = "contacts", params(IdPath),
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn delete(
    scope: TenantScope,
    PathParams(path): PathParams<IdPath>,
) -> ApiResult<StatusCode> {
    records::delete::<Contact>(&scope, path.id).await
}
