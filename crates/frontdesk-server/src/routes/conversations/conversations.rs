//! `/v1/tenants/{tenant}/conversations`: conversations, their state and figures.

use axum::{http::StatusCode, response::Response};
use frontdesk_core::{
    conversations::conversations::{
        self, Conversation, ConversationChanges, ConversationInput, ConversationQuery, Cost,
        Handoff, HandoffRequest, NewConversation, RoleStats, StateChange, Transition, TransitionTo,
    },
    platform::{input::Columns, page::Paged},
};

use crate::{
    error::{ApiResult, Problem},
    extract::{Json, PathParams, QueryParams, TenantScope},
    idempotency::Creating,
    routes::{IdPath, IdempotencyHeader, TenantPath, records},
};

/// Conversations by last activity, newest first. Members see only their own. `open=true`
/// keeps those not yet in a terminal state, `assignee_id=none` those nobody is assigned.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/conversations", tag = "conversations",
    params(TenantPath, ConversationQuery),
    responses((status = 200, body = Paged<Conversation>), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn list(
    scope: TenantScope,
    QueryParams(query): QueryParams<ConversationQuery>,
) -> ApiResult<axum::Json<Paged<Conversation>>> {
    let (filter, page) = query.parse()?;
    let conversations = scope
        .read(async |tx| {
            conversations::list(tx, scope.tenant, scope.viewer(), &filter, &page).await
        })
        .await?;
    Ok(axum::Json(conversations))
}

/// Start a conversation with an assistant; it begins in its flow's initial state.
/// Refused (429) while nothing is left of a limit the tenant chose in
/// `limits_on_new_conversations`.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/conversations", tag = "conversations",
    params(TenantPath, IdempotencyHeader), request_body = ConversationInput,
    responses((status = 201, body = Conversation),
              (status = 409, body = Problem, description = "the contact already has an open conversation with this assistant: conversation_id names it"),
              (status = 422, body = Problem),
              (status = 429, body = Problem, description = "a limit in the tenant's limits_on_new_conversations has nothing left")))]
pub async fn create(scope: TenantScope, new: Creating<ConversationInput>) -> ApiResult<Response> {
    let columns = NewConversation::try_from(new.body)?.columns_for(scope.viewer())?;
    scope
        .create(new.idempotency, StatusCode::CREATED, async |tx| {
            conversations::create(tx, scope.tenant, columns).await
        })
        .await
}

/// One conversation.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/conversations/{id}", tag = "conversations", params(IdPath),
    responses((status = 200, body = Conversation), (status = 404, body = Problem)))]
pub async fn get(
    scope: TenantScope,
    PathParams(path): PathParams<IdPath>,
) -> ApiResult<axum::Json<Conversation>> {
    records::get(&scope, path.id).await
}

/// Change a conversation's mutable fields (state moves through `/transitions`).
#[utoipa::path(patch, path = "/v1/tenants/{tenant}/conversations/{id}", tag = "conversations", params(IdPath),
    request_body(content = ConversationInput, example = json!({"title": "Trip to Bali, May", "context": {"budget": "mid"}})),
    responses((status = 200, body = Conversation), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn update(
    scope: TenantScope,
    PathParams(path): PathParams<IdPath>,
    Json(patch): Json<ConversationInput>,
) -> ApiResult<axum::Json<Conversation>> {
    let changes = ConversationChanges::try_from(patch)?;
    changes.allowed_for(scope.viewer())?;
    records::update::<Conversation>(&scope, path.id, changes.columns()).await
}

/// Delete a conversation with its messages, feedback and history (admins). Its events stay.
#[utoipa::path(delete, path = "/v1/tenants/{tenant}/conversations/{id}", tag = "conversations", params(IdPath),
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn delete(
    scope: TenantScope,
    PathParams(path): PathParams<IdPath>,
) -> ApiResult<StatusCode> {
    records::delete::<Conversation>(&scope, path.id).await
}

/// Move the conversation to another state of its flow, with an optional reason (kept in
/// its state history). 409 names the allowed targets.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/conversations/{id}/transitions", tag = "conversations",
    params(IdPath), request_body = Transition,
    responses((status = 200, body = Conversation), (status = 404, body = Problem),
              (status = 409, body = Problem, description = "the flow does not allow it: see allowed_transitions")))]
pub async fn transition(
    scope: TenantScope,
    PathParams(path): PathParams<IdPath>,
    Json(t): Json<Transition>,
) -> ApiResult<axum::Json<Conversation>> {
    let t = TransitionTo::try_from(t)?;
    let conversation = scope
        .write(async |tx| conversations::transition(tx, scope.tenant, path.id, &t).await)
        .await?;
    Ok(axum::Json(conversation))
}

/// Every state the conversation entered: who moved it, from where, why, when (oldest first).
#[utoipa::path(get, path = "/v1/tenants/{tenant}/conversations/{id}/transitions", tag = "conversations",
    params(IdPath), responses((status = 200, body = Vec<StateChange>), (status = 404, body = Problem)))]
pub async fn history(
    scope: TenantScope,
    PathParams(path): PathParams<IdPath>,
) -> ApiResult<axum::Json<Vec<StateChange>>> {
    let history = scope
        .read(async |tx| conversations::history(tx, scope.tenant, path.id).await)
        .await?;
    Ok(axum::Json(history))
}

/// Ask for a person: records the reason and time, assigns (staff only), and moves a
/// flow with a `handoff` state (such as `ari_sales`) into it.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/conversations/{id}/handoff", tag = "conversations",
    params(IdPath), request_body = Handoff,
    responses((status = 200, body = Conversation), (status = 404, body = Problem),
              (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn handoff(
    scope: TenantScope,
    PathParams(path): PathParams<IdPath>,
    Json(h): Json<Handoff>,
) -> ApiResult<axum::Json<Conversation>> {
    let h = HandoffRequest::try_from(h)?;
    let conversation = scope
        .write(async |tx| {
            conversations::handoff(tx, scope.tenant, path.id, &h, scope.viewer()).await
        })
        .await?;
    Ok(axum::Json(conversation))
}

async fn set_archived(
    scope: TenantScope,
    path: IdPath,
    archived: bool,
) -> ApiResult<axum::Json<Conversation>> {
    let conversation = scope
        .write(async |tx| conversations::set_archived(tx, scope.tenant, path.id, archived).await)
        .await?;
    Ok(axum::Json(conversation))
}

/// Archive a conversation: it leaves the default list.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/conversations/{id}/archive", tag = "conversations",
    params(IdPath), responses((status = 200, body = Conversation), (status = 404, body = Problem)))]
pub async fn archive(
    scope: TenantScope,
    PathParams(path): PathParams<IdPath>,
) -> ApiResult<axum::Json<Conversation>> {
    set_archived(scope, path, true).await
}

/// Bring an archived conversation back.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/conversations/{id}/unarchive", tag = "conversations",
    params(IdPath), responses((status = 200, body = Conversation), (status = 404, body = Problem)))]
pub async fn unarchive(
    scope: TenantScope,
    PathParams(path): PathParams<IdPath>,
) -> ApiResult<axum::Json<Conversation>> {
    set_archived(scope, path, false).await
}

/// The conversation's cost and tokens in total.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/conversations/{id}/cost", tag = "conversations",
    params(IdPath), responses((status = 200, body = Cost), (status = 404, body = Problem)))]
pub async fn cost(
    scope: TenantScope,
    PathParams(path): PathParams<IdPath>,
) -> ApiResult<axum::Json<Cost>> {
    let cost = scope
        .read(async |tx| conversations::cost(tx, scope.tenant, path.id).await)
        .await?;
    Ok(axum::Json(cost))
}

/// The conversation's figures per message role.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/conversations/{id}/stats", tag = "conversations",
    params(IdPath), responses((status = 200, body = Vec<RoleStats>), (status = 404, body = Problem)))]
pub async fn stats(
    scope: TenantScope,
    PathParams(path): PathParams<IdPath>,
) -> ApiResult<axum::Json<Vec<RoleStats>>> {
    let stats = scope
        .read(async |tx| conversations::stats(tx, scope.tenant, path.id).await)
        .await?;
    Ok(axum::Json(stats))
}
