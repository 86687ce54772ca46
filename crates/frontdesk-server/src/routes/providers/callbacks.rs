//! `POST /v1/hooks/{provider}/{tenant}`: a provider's signed callback (access level
//! `Callback`, see `crate::callbacks`), and `/v1/tenants/{tenant}/provider-callbacks`, the
//! log of those received.

use frontdesk_core::{
    platform::page::{PageQuery, Paged},
    providers::callbacks::{self, Callback, Recorded},
};
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use crate::{
    callbacks::CallbackScope,
    error::{ApiError, ApiResult, Problem},
    extract::{QueryParams, TenantScope},
    routes::TenantPath,
};

/// `{provider}` and `{tenant}` of a callback.
#[derive(serde::Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct HookPath {
    /// The provider: `test` (Standard Webhooks signatures).
    #[param(example = "test")]
    pub provider: String,
    /// The tenant's id or slug.
    pub tenant: String,
}

/// The headers a `test` callback is signed with (Standard Webhooks).
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
pub struct SignatureHeaders {
    /// The delivery's id: a redelivery carries the same one and is recorded once.
    #[param(rename = "webhook-id")]
    pub webhook_id: String,
    /// Unix seconds; refused more than 5 minutes from now.
    #[param(rename = "webhook-timestamp")]
    pub webhook_timestamp: String,
    /// `v1,<base64 of HMAC-SHA256 over "{webhook-id}.{webhook-timestamp}.{body}">`, keyed
    /// with the tenant's secret for the provider; several may be sent, space-separated.
    #[param(rename = "webhook-signature")]
    pub webhook_signature: String,
}

/// The answer to a recorded callback.
#[derive(Serialize, ToSchema)]
pub struct Received {
    pub received: bool,
    /// True when this delivery had been recorded before (a redelivery): nothing was added.
    pub duplicate: bool,
}

/// Receive a provider's callback. No bearer token: it is accepted only when its signature
/// verifies with the tenant's stored secret for the provider, and recorded once per
/// delivery. Every refusal (bad, missing or stale signature, no secret, unknown tenant)
/// is the same 401, and writes nothing.
#[utoipa::path(post, path = "/v1/hooks/{provider}/{tenant}", tag = "providers",
    security(()), params(HookPath, SignatureHeaders),
    request_body(content = Object, description = "the provider's JSON payload, signed as sent"),
    responses((status = 200, body = Received), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 413, body = Problem),
              (status = 422, body = Problem, description = "a number that would not read back as sent (docs/API.md, \"JSON values\")")))]
pub async fn receive(callback: CallbackScope) -> ApiResult<axum::Json<Received>> {
    // A number that would not read back as sent is a 422 naming it; other bad JSON a 400.
    let payload = crate::extract::json_value(&callback.body).map_err(|e| match e {
        ApiError::BadRequest(_) => ApiError::BadRequest("the payload is not JSON".into()),
        other => other,
    })?;
    if !payload.is_object() {
        // Providers send objects; the document declares one.
        return Err(ApiError::BadRequest(
            "the payload is not a JSON object".into(),
        ));
    }
    if has_nul(&payload) {
        // PostgreSQL's jsonb cannot hold the NUL character.
        return Err(ApiError::BadRequest(
            "the payload contains the NUL character (\\u0000)".into(),
        ));
    }
    let recorded = callback
        .write(async |tx| {
            callbacks::record(
                tx,
                callback.tenant,
                callback.provider,
                &callback.delivery.external_id,
                &payload,
            )
            .await
        })
        .await?;
    Ok(axum::Json(Received {
        received: true,
        duplicate: recorded == Recorded::Duplicate,
    }))
}

fn has_nul(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(s) => s.contains('\0'),
        serde_json::Value::Array(items) => items.iter().any(has_nul),
        serde_json::Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

/// The callbacks the tenant received, newest first (staff and keys; members see none).
#[utoipa::path(get, path = "/v1/tenants/{tenant}/provider-callbacks", tag = "providers", operation_id = "list_callbacks",
    params(TenantPath, PageQuery),
    responses((status = 200, body = Paged<Callback>), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn list(
    scope: TenantScope,
    QueryParams(query): QueryParams<PageQuery>,
) -> ApiResult<axum::Json<Paged<Callback>>> {
    let page = query.parse()?;
    let received = scope
        .read(async |tx| callbacks::list(tx, scope.tenant, &page).await)
        .await?;
    Ok(axum::Json(received))
}
