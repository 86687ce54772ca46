//! The handlers, in one folder per domain (as in `frontdesk_core`): one module per
//! resource, one function per action. `router.rs` lists every route; the path, query and
//! header types shared by many routes are here.

pub mod conversations;
pub mod events;
pub mod providers;
pub mod records;
pub mod service;
pub mod tenancy;
pub mod usage;

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
