//! Tenancy: who the tenants are and who may act in them — tenants (profile, LLM
//! defaults, limits), users (as last seen in their tokens), memberships with their
//! roles, and the tenant's API keys; and the lookups that authenticate a request (`auth`).

pub mod api_keys;
pub mod auth;
pub mod llm;
pub mod members;
pub mod tenants;
pub mod users;
