//! Tenancy routes: `/v1/me`, `/v1/tenants`, and a tenant's members, invitations and API keys.

pub mod api_keys;
pub mod invitations;
pub mod me;
pub mod members;
pub mod tenants;
