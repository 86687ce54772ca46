//! `/v1/tenants/{tenant}/contacts`: the business's customers (staff and keys only).

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
};
use frontdesk_core::{
    conversations::contacts::{
        self, Contact, ContactChanges, ContactInput, ContactQuery, LookupQuery,
    },
    platform::{page::Paged, phone},
};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::{
    error::{ApiError, ApiResult, Problem},
    extract::{Json, PathParams, QueryParams, TenantScope},
    idempotency::Creating,
    routes::{IdPath, IdempotencyHeader, TenantPath, records},
};

/// `{tenant}`, a channel and the contact's id on it.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ChannelIdPath {
    /// The tenant's id or slug.
    pub tenant: String,
    /// The channel: whatsapp, telegram, messenger, instagram, email, …
    pub channel: String,
    /// The contact's id on the channel (for whatsapp, a phone number in any form).
    pub id: String,
}

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

/// Create a contact. Phone numbers and channel ids are unique per tenant (409).
#[utoipa::path(post, path = "/v1/tenants/{tenant}/contacts", tag = "contacts",
    params(TenantPath, IdempotencyHeader), request_body = ContactInput,
    responses((status = 201, body = Contact), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create(scope: TenantScope, new: Creating<ContactInput>) -> ApiResult<Response> {
    let changes = ContactChanges::try_from(new.body)?;
    scope
        .create(new.idempotency, StatusCode::CREATED, async |tx| {
            contacts::create(tx, scope.tenant, changes).await
        })
        .await
}

/// The one contact with this id on a channel (`channel` and `id`) or this phone number
/// (`phone`), both read as the contact's fields are. 404 when there is none.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/contacts/lookup", tag = "contacts",
    params(TenantPath, LookupQuery),
    responses((status = 200, body = Contact), (status = 403, body = Problem), (status = 404, body = Problem),
              (status = 422, body = Problem)))]
pub async fn lookup(
    scope: TenantScope,
    QueryParams(query): QueryParams<LookupQuery>,
) -> ApiResult<axum::Json<Contact>> {
    let key = query.parse()?;
    let contact = scope
        .read(async |tx| contacts::lookup(tx, scope.tenant, &key).await)
        .await?;
    Ok(axum::Json(contact))
}

/// Create or change the contact with this id on a channel (e.g. on the first message of
/// an unknown WhatsApp user): the body's fields are set either way. 201 when created, 200
/// when it existed; parallel calls for one id make one contact.
#[utoipa::path(put, path = "/v1/tenants/{tenant}/contacts/by-channel/{channel}/{id}", tag = "contacts",
    params(ChannelIdPath),
    request_body(content = ContactInput, example = json!({"name": "Budi"})),
    responses((status = 200, body = Contact), (status = 201, body = Contact),
              (status = 404, body = Problem, description = "the channel is not a channel name"),
              (status = 409, body = Problem, description = "the body's phone number or another channel id belongs to another contact"),
              (status = 422, body = Problem)))]
pub async fn upsert_by_channel(
    scope: TenantScope,
    PathParams(path): PathParams<ChannelIdPath>,
    Json(body): Json<ContactInput>,
) -> ApiResult<Response> {
    if phone::channel_name(&path.channel).is_err() {
        return Err(ApiError::path_param(
            "channel",
            "is not a channel name (1 to 32 lower-case letters, digits and underscores, starting with a letter)",
        ));
    }
    let changes = ContactChanges::try_from(body)?;
    let (contact, created) = scope
        .write(async |tx| {
            contacts::upsert_by_channel(tx, scope.tenant, &path.channel, &path.id, changes).await
        })
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(contact)).into_response())
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
    let contact = scope
        .write(async |tx| contacts::update(tx, scope.tenant, path.id, changes).await)
        .await?;
    Ok(axum::Json(contact))
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
