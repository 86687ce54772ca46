//! One module per resource; one function per action.

pub mod api_keys;
pub mod me;
pub mod members;
pub mod service;
pub mod tenants;

use utoipa::IntoParams;

/// `{tenant}`: the tenant's id or slug.
#[derive(serde::Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TenantPath {
    /// The tenant's id or slug.
    pub tenant: String,
}
