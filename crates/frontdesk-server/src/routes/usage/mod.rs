//! Usage routes: prices, recorded usage and its rollups, limits and reservations, and
//! analytics.

pub mod analytics;
pub mod limits;
pub mod prices;
#[expect(
    clippy::module_inception,
    reason = "the domain is named after its central resource, as in frontdesk_core"
)]
pub mod usage;
