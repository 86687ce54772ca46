//! `/v1/tenants/{tenant}/provider-secrets`: the secret each provider signs the tenant's
//! callbacks with. Admins set, replace and remove them; nobody reads one back.

use axum::http::StatusCode;
use frontdesk_core::providers::{
    Provider,
    secrets::{self, NewSecret, PutSecret, SecretView},
};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{
    callbacks,
    error::{ApiError, ApiResult, Problem},
    extract::{Json, PathParams, TenantScope},
    routes::{TenantPath, providers::ProviderPath},
};

/// The provider a path names; an unknown one names nothing (404).
fn provider(path: &ProviderPath) -> ApiResult<Provider> {
    Provider::parse(&path.provider).ok_or(ApiError::NotFound)
}

/// Set or replace the tenant's secret for a provider. The secret is never returned: the
/// answer shows its fingerprint.
#[utoipa::path(put, path = "/v1/tenants/{tenant}/provider-secrets/{provider}", tag = "providers", operation_id = "put_secret",
    params(ProviderPath), request_body = PutSecret,
    responses((status = 200, body = SecretView), (status = 403, body = Problem), (status = 404, body = Problem),
              (status = 422, body = Problem)))]
pub async fn put(
    scope: TenantScope,
    PathParams(path): PathParams<ProviderPath>,
    Json(body): Json<PutSecret>,
) -> ApiResult<axum::Json<SecretView>> {
    let provider = provider(&path)?;
    let NewSecret(secret) = NewSecret::try_from(body)?;
    callbacks::verifier(provider)
        .check_secret(&secret)
        .map_err(|message| ApiError::invalid("secret", message))?;
    let view = scope
        .write(async |tx| secrets::put(tx, scope.tenant, provider, &secret).await)
        .await?;
    Ok(axum::Json(view))
}

/// The providers configured.
#[derive(Serialize, ToSchema)]
pub struct SecretList {
    /// One per provider, by name; never the secrets.
    pub data: Vec<SecretView>,
}

/// The tenant's configured providers, with when their secret was set and its
/// fingerprint (never the secret). One entry per provider, so never paginated.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/provider-secrets", tag = "providers", operation_id = "list_secrets", params(TenantPath),
    responses((status = 200, body = SecretList), (status = 403, body = Problem)))]
pub async fn list(scope: TenantScope) -> ApiResult<axum::Json<SecretList>> {
    let data = scope
        .read(async |tx| secrets::list(tx, scope.tenant).await)
        .await?;
    Ok(axum::Json(SecretList { data }))
}

/// Remove the tenant's secret for a provider: its callbacks are refused from then on.
#[utoipa::path(delete, path = "/v1/tenants/{tenant}/provider-secrets/{provider}", tag = "providers", operation_id = "delete_secret",
    params(ProviderPath),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn delete(
    scope: TenantScope,
    PathParams(path): PathParams<ProviderPath>,
) -> ApiResult<StatusCode> {
    let provider = provider(&path)?;
    scope
        .write(async |tx| secrets::delete(tx, scope.tenant, provider).await)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
