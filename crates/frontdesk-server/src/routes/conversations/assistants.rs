//! `/v1/tenants/{tenant}/assistants`.

use axum::{http::StatusCode, response::Response};
use frontdesk_core::{
    conversations::assistants::{self, Assistant, AssistantChanges, AssistantInput, NewAssistant},
    platform::input::Columns,
    platform::page::{PageQuery, Paged},
};

use crate::{
    error::{ApiResult, Problem},
    extract::{Json, PathParams, QueryParams, TenantScope},
    idempotency::Creating,
    routes::{IdPath, IdempotencyHeader, TenantPath, records},
};

/// The tenant's assistants, newest first.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/assistants", tag = "assistants", params(TenantPath, PageQuery),
    responses((status = 200, body = Paged<Assistant>), (status = 403, body = Problem)))]
pub async fn list(
    scope: TenantScope,
    QueryParams(page): QueryParams<PageQuery>,
) -> ApiResult<axum::Json<Paged<Assistant>>> {
    let page = page.parse()?;
    let assistants = scope
        .read(async |tx| assistants::list(tx, scope.tenant, &page).await)
        .await?;
    Ok(axum::Json(assistants))
}

/// Create an assistant.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/assistants", tag = "assistants",
    params(TenantPath, IdempotencyHeader), request_body = AssistantInput,
    responses((status = 201, body = Assistant), (status = 422, body = Problem)))]
pub async fn create(scope: TenantScope, new: Creating<AssistantInput>) -> ApiResult<Response> {
    let new_assistant = NewAssistant::try_from(new.body)?;
    records::create::<Assistant>(&scope, new.idempotency, new_assistant.columns()).await
}

/// One assistant, with the model settings it runs with.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/assistants/{id}", tag = "assistants", params(IdPath),
    responses((status = 200, body = Assistant), (status = 404, body = Problem)))]
pub async fn get(
    scope: TenantScope,
    PathParams(path): PathParams<IdPath>,
) -> ApiResult<axum::Json<Assistant>> {
    records::get(&scope, path.id).await
}

/// Change an assistant. A new flow applies to conversations started afterwards.
#[utoipa::path(patch, path = "/v1/tenants/{tenant}/assistants/{id}", tag = "assistants", params(IdPath),
    request_body(content = AssistantInput, example = json!({"description": "WhatsApp sales assistant", "llm_temperature": 0.4})),
    responses((status = 200, body = Assistant), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn update(
    scope: TenantScope,
    PathParams(path): PathParams<IdPath>,
    Json(patch): Json<AssistantInput>,
) -> ApiResult<axum::Json<Assistant>> {
    let changes = AssistantChanges::try_from(patch)?;
    records::update::<Assistant>(&scope, path.id, changes.columns()).await
}

/// Delete an assistant without conversations (409 otherwise; deactivate it instead).
#[utoipa::path(delete, path = "/v1/tenants/{tenant}/assistants/{id}", tag = "assistants", params(IdPath),
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn delete(
    scope: TenantScope,
    PathParams(path): PathParams<IdPath>,
) -> ApiResult<StatusCode> {
    records::delete::<Assistant>(&scope, path.id).await
}
