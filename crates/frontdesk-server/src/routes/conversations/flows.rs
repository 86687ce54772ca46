//! `/v1/tenants/{tenant}/flows`: the state machines conversations follow.

use axum::{http::StatusCode, response::Response};
use frontdesk_core::conversations::flows::{self, Flow, FlowDefinition, NewFlow};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::{
    error::{ApiResult, Problem},
    extract::{PathParams, TenantScope},
    idempotency::Creating,
    routes::TenantPath,
};

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct FlowPath {
    /// The tenant's id or slug.
    pub tenant: String,
    /// The flow's key.
    pub key: String,
}

/// The built-in flows and the tenant's own.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/flows", tag = "flows", params(TenantPath),
    responses((status = 200, body = Vec<Flow>), (status = 403, body = Problem)))]
pub async fn list(scope: TenantScope) -> ApiResult<axum::Json<Vec<Flow>>> {
    let flows = scope
        .read(async |tx| flows::list(tx, scope.tenant).await)
        .await?;
    Ok(axum::Json(flows))
}

/// One flow, with its states and transitions.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/flows/{key}", tag = "flows", params(FlowPath),
    responses((status = 200, body = Flow), (status = 404, body = Problem)))]
pub async fn get(
    scope: TenantScope,
    PathParams(path): PathParams<FlowPath>,
) -> ApiResult<axum::Json<Flow>> {
    let flow = scope
        .read(async |tx| flows::get(tx, scope.tenant, &path.key).await)
        .await?;
    Ok(axum::Json(flow))
}

/// Define a flow. Flows cannot be changed afterwards: conversations rely on their states.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/flows", tag = "flows",
    params(TenantPath, crate::routes::IdempotencyHeader), request_body = NewFlow,
    responses((status = 201, body = Flow), (status = 409, body = Problem, description = "the key is taken"),
              (status = 422, body = Problem)))]
pub async fn create(scope: TenantScope, new: Creating<NewFlow>) -> ApiResult<Response> {
    let flow = FlowDefinition::try_from(new.body)?;
    scope
        .create(new.idempotency, StatusCode::CREATED, async |tx| {
            flows::create(tx, scope.tenant, &flow).await
        })
        .await
}
