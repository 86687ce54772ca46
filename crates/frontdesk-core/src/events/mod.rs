//! Events: the tenant's event log (the transactional outbox every write path appends
//! to) and the webhook endpoints it is delivered to, with their deliveries and attempts.

pub mod delivery;
#[expect(
    clippy::module_inception,
    reason = "the domain is named after its central resource; `events::events` is the event log"
)]
pub mod events;
pub mod webhooks;
