//! One module per resource; one function per action.

pub mod analytics;
pub mod api_keys;
pub mod assistants;
pub mod contacts;
pub mod conversations;
pub mod events;
pub mod feedback;
pub mod flows;
pub mod limits;
pub mod me;
pub mod members;
pub mod messages;
pub mod prices;
pub mod search;
pub mod service;
pub mod tenants;
pub mod usage;
pub mod webhooks;

use utoipa::IntoParams;

/// `{tenant}`: the tenant's id or slug.
#[derive(serde::Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TenantPath {
    /// The tenant's id or slug.
    pub tenant: String,
}

/// `{tenant}` and a resource's `{id}`.
#[derive(serde::Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct IdPath {
    /// The tenant's id or slug.
    pub tenant: String,
    pub id: uuid::Uuid,
}

/// The optional `Idempotency-Key` header of creating POSTs (see docs/API.md); only
/// documents it: the `Creating` extractor reads it.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IdempotencyHeader {
    /// Any unique string (e.g. a UUID) up to 255 characters: a retry with the same key
    /// and body replays the first response instead of creating again.
    #[param(rename = "Idempotency-Key")]
    pub idempotency_key: Option<String>,
}
