//! Event routes: the tenant's event log, and its webhook endpoints and deliveries.

#[expect(
    clippy::module_inception,
    reason = "the domain is named after its central resource, as in frontdesk_core"
)]
pub mod events;
pub mod webhooks;
