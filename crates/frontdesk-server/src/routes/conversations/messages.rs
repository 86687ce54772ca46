//! Messages: `…/conversations/{id}/messages` and `…/messages/{id}`.

use axum::{http::StatusCode, response::Response};
use frontdesk_core::{
    conversations::messages::{self, HistoryQuery, Message, NewMessage},
    platform::page::Paged,
};
use uuid::Uuid;

use crate::{
    error::{ApiResult, Problem},
    extract::{PathParams, QueryParams, TenantScope},
    idempotency::Creating,
    routes::{IdPath, IdempotencyHeader},
};

/// A page of the conversation's messages, newest first unless `order=asc`.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/conversations/{id}/messages", tag = "messages",
    params(IdPath, HistoryQuery),
    responses((status = 200, body = Paged<Message>), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn list(
    scope: TenantScope,
    PathParams(path): PathParams<IdPath>,
    QueryParams(query): QueryParams<HistoryQuery>,
) -> ApiResult<Response> {
    let history = query.parse()?;
    let page = scope
        .read(async |tx| messages::history_json(tx, scope.tenant, path.id, &history).await)
        .await?;
    Ok(crate::reply::json_bytes(StatusCode::OK, page))
}

/// Append a message. The conversation's counters and last activity move with it, and a
/// message.created event is recorded, in the same transaction. A message records what
/// already happened: past one of the tenant's limits it is stored all the same, with
/// `over_limit: true` and the limits in `over_limits` (429 only with `strict_limits`).
#[utoipa::path(post, path = "/v1/tenants/{tenant}/conversations/{id}/messages", tag = "messages",
    params(IdPath, IdempotencyHeader), request_body = NewMessage,
    responses((status = 201, body = Message), (status = 404, body = Problem), (status = 422, body = Problem),
              (status = 429, body = Problem, description = "only with the tenant's strict_limits: its rate limit per minute, daily tokens or monthly budget would be passed; nothing was stored")))]
pub async fn create(
    scope: TenantScope,
    PathParams(path): PathParams<IdPath>,
    new: Creating<NewMessage>,
) -> ApiResult<Response> {
    let draft = new.body.parse(scope.options().max_message_bytes)?;
    scope
        .create(new.idempotency, StatusCode::CREATED, async |tx| {
            messages::create(tx, scope.tenant, path.id, &draft).await
        })
        .await
}

/// One message.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/messages/{id}", tag = "messages", params(IdPath),
    responses((status = 200, body = Message), (status = 404, body = Problem)))]
pub async fn get(
    scope: TenantScope,
    PathParams(path): PathParams<IdPath>,
) -> ApiResult<axum::Json<Message<'static>>> {
    let message = scope
        .read(async |tx| messages::get(tx, scope.tenant, path.id).await)
        .await?;
    Ok(axum::Json(message))
}

/// Replace a message's content with `[redacted]` (admins, once). Who and when are kept.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/messages/{id}/redact", tag = "messages", params(IdPath),
    responses((status = 200, body = Message), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn redact(
    scope: TenantScope,
    PathParams(path): PathParams<IdPath>,
) -> ApiResult<axum::Json<Message<'static>>> {
    // The operator has no user id: its redactions are recorded as the nil UUID.
    let by = scope.user_id().unwrap_or(Uuid::nil());
    let message = scope
        .write(async |tx| messages::redact(tx, scope.tenant, path.id, by).await)
        .await?;
    Ok(axum::Json(message))
}
