//! Usage and cost: the model price catalog and tenants' own prices, usage events and the
//! daily rollups, the limits (rate, daily tokens, monthly budget) with their checks and
//! reservations, and the analytics read from the rollups.

pub mod analytics;
pub mod limits;
pub mod prices;
#[expect(
    clippy::module_inception,
    reason = "the domain is named after its central resource; `usage::usage` is the recorded usage and its rollups"
)]
pub mod usage;
