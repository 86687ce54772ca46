//! The actions of resources stored as one checked row (`frontdesk_core::platform::store::Record`:
//! assistants, contacts, conversations): their handlers differ only in the type.

use axum::{http::StatusCode, response::Response};
use frontdesk_core::platform::store::Record;
use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::{error::ApiResult, extract::TenantScope, idempotency::IdempotencyKey};

/// One row.
pub async fn get<R: Record + Serialize>(scope: &TenantScope, id: Uuid) -> ApiResult<axum::Json<R>> {
    let record = scope
        .read(async |tx| R::get(tx, scope.tenant, id).await)
        .await?;
    Ok(axum::Json(record))
}

/// Create a row of checked `fields`: 201 with it.
pub async fn create<R: Record + Serialize>(
    scope: &TenantScope,
    idempotency: Option<IdempotencyKey>,
    fields: Map<String, Value>,
) -> ApiResult<Response> {
    scope
        .create(idempotency, StatusCode::CREATED, async |tx| {
            R::create(tx, scope.tenant, fields).await
        })
        .await
}

/// Change the checked `fields` of a row: it, changed.
pub async fn update<R: Record + Serialize>(
    scope: &TenantScope,
    id: Uuid,
    fields: Map<String, Value>,
) -> ApiResult<axum::Json<R>> {
    let record = scope
        .write(async |tx| R::update(tx, scope.tenant, id, fields).await)
        .await?;
    Ok(axum::Json(record))
}

/// Delete a row: 204.
pub async fn delete<R: Record>(scope: &TenantScope, id: Uuid) -> ApiResult<StatusCode> {
    scope
        .write(async |tx| R::delete(tx, scope.tenant, id).await)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
