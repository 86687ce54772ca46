//! Tenancy routes: `/v1/me`, `/v1/tenants`, and a tenant's members and API keys.

pub mod api_keys;
pub mod me;
pub mod members;
pub mod tenants;
