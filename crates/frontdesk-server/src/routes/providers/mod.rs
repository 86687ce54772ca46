//! Providers: a tenant's secrets per provider (`secrets`), and the signed callbacks the
//! providers send, with the log of those received (`callbacks`).

pub mod callbacks;
pub mod secrets;

use utoipa::IntoParams;

/// `{tenant}` and `{provider}`.
#[derive(serde::Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ProviderPath {
    /// The tenant's id or slug.
    pub tenant: String,
    /// The provider: `test` (Standard Webhooks signatures); later `midtrans`, `stripe`,
    /// `twilio`.
    #[param(example = "test")]
    pub provider: String,
}
