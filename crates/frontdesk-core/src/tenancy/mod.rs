//! Tenancy: who the tenants are and who may act in them — tenants (profile, LLM
//! defaults, limits), users (as last seen in their tokens), memberships with their
//! roles, and the tenant's API keys.

pub mod api_keys;
pub mod members;
pub mod tenants;
pub mod users;
