//! `/v1/tenants/{tenant}/conversations`: conversations, their state and figures.

use axum::{http::StatusCode, response::Response};
use frontdesk_core::{
    conversations::conversations::{
        self, Conversation, ConversationFilter, ConversationInput, Cost, Handoff, RoleStats,
        StateChange, Transition,
    },
    platform::page::Paged,
};

use crate::{
    error::{ApiResult, Problem},
    extract::{Json, PathParams, QueryParams, TenantScope},
    idempotency::{Creating, Statements},
    routes::{IdPath, IdempotencyHeader, TenantPath},
};

/// Conversations by last activity, newest first. Members see only their own.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/conversations", tag = "conversations",
    params(TenantPath, ConversationFilter),
    responses((status = 200, body = Paged<Conversation>), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn list(
    scope: TenantScope,
    QueryParams(filter): QueryParams<ConversationFilter>,
) -> ApiResult<axum::Json<Paged<Conversation>>> {
    let page = filter.page()?;
    let mut tx = scope.begin().await?;
    tx.commit_with_next();
    Ok(axum::Json(
        conversations::list(&mut tx, scope.tenant, scope.viewer(), &filter, &page).await?,
    ))
}

/// Start a conversation with an assistant; it begins in its flow's initial state.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/conversations", tag = "conversations",
    params(TenantPath, IdempotencyHeader), request_body = ConversationInput,
    responses((status = 201, body = Conversation),
              (status = 409, body = Problem, description = "the contact already has an open conversation with this assistant"),
              (status = 422, body = Problem)))]
pub async fn create(scope: TenantScope, new: Creating<ConversationInput>) -> ApiResult<Response> {
    let fields = new.body.check(true, scope.viewer())?;
    scope
        .create(
            new.idempotency,
            StatusCode::CREATED,
            Statements::Several,
            async |tx| conversations::create(tx, scope.tenant, fields).await,
        )
        .await
}

/// One conversation.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/conversations/{id}", tag = "conversations", params(IdPath),
    responses((status = 200, body = Conversation), (status = 404, body = Problem)))]
pub async fn get(
    scope: TenantScope,
    PathParams(path): PathParams<IdPath>,
) -> ApiResult<axum::Json<Conversation>> {
    let mut tx = scope.begin().await?;
    tx.commit_with_next();
    Ok(axum::Json(
        conversations::get(&mut tx, scope.tenant, path.id).await?,
    ))
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
    let fields = patch.check(false, scope.viewer())?;
    let mut tx = scope.begin().await?;
    let conversation = conversations::update(&mut tx, scope.tenant, path.id, fields).await?;
    tx.commit().await?;
    Ok(axum::Json(conversation))
}

/// Delete a conversation with its messages, feedback and history (admins). Its events stay.
#[utoipa::path(delete, path = "/v1/tenants/{tenant}/conversations/{id}", tag = "conversations", params(IdPath),
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn delete(
    scope: TenantScope,
    PathParams(path): PathParams<IdPath>,
) -> ApiResult<StatusCode> {
    let mut tx = scope.begin().await?;
    conversations::delete(&mut tx, scope.tenant, path.id).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Move the conversation to another state of its flow. 409 names the allowed targets.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/conversations/{id}/transitions", tag = "conversations",
    params(IdPath), request_body = Transition,
    responses((status = 200, body = Conversation), (status = 404, body = Problem),
              (status = 409, body = Problem, description = "the flow does not allow it: see allowed_transitions")))]
pub async fn transition(
    scope: TenantScope,
    PathParams(path): PathParams<IdPath>,
    Json(t): Json<Transition>,
) -> ApiResult<axum::Json<Conversation>> {
    let mut tx = scope.begin().await?;
    let conversation = conversations::transition(&mut tx, scope.tenant, path.id, &t.to).await?;
    tx.commit().await?;
    Ok(axum::Json(conversation))
}

/// Every state the conversation entered: who moved it, from where, when (oldest first).
#[utoipa::path(get, path = "/v1/tenants/{tenant}/conversations/{id}/transitions", tag = "conversations",
    params(IdPath), responses((status = 200, body = Vec<StateChange>), (status = 404, body = Problem)))]
pub async fn history(
    scope: TenantScope,
    PathParams(path): PathParams<IdPath>,
) -> ApiResult<axum::Json<Vec<StateChange>>> {
    let mut tx = scope.begin().await?;
    tx.commit_with_next();
    Ok(axum::Json(
        conversations::history(&mut tx, scope.tenant, path.id).await?,
    ))
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
    let mut tx = scope.begin().await?;
    let conversation =
        conversations::handoff(&mut tx, scope.tenant, path.id, &h, scope.viewer()).await?;
    tx.commit().await?;
    Ok(axum::Json(conversation))
}

async fn set_archived(
    scope: TenantScope,
    path: IdPath,
    archived: bool,
) -> ApiResult<axum::Json<Conversation>> {
    let mut tx = scope.begin().await?;
    let conversation =
        conversations::set_archived(&mut tx, scope.tenant, path.id, archived).await?;
    tx.commit().await?;
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
    let mut tx = scope.begin().await?;
    Ok(axum::Json(
        conversations::cost(&mut tx, scope.tenant, path.id).await?,
    ))
}

/// The conversation's figures per message role.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/conversations/{id}/stats", tag = "conversations",
    params(IdPath), responses((status = 200, body = Vec<RoleStats>), (status = 404, body = Problem)))]
pub async fn stats(
    scope: TenantScope,
    PathParams(path): PathParams<IdPath>,
) -> ApiResult<axum::Json<Vec<RoleStats>>> {
    let mut tx = scope.begin().await?;
    Ok(axum::Json(
        conversations::stats(&mut tx, scope.tenant, path.id).await?,
    ))
}
