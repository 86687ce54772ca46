//! Events: the tenant's event log (the transactional outbox every write path appends
//! to) and the webhook endpoints it is delivered to, with their deliveries and attempts.

pub mod delivery;
#[expect(
    clippy::module_inception,
    reason = "the domain is named after its central resource; `events::events` is the event log"
)]
pub mod events;
pub mod webhooks;

use crate::platform::error::{Constraints, Meaning};

/// What the constraints of webhook endpoints mean to a client (see
/// `platform::error`).
pub(crate) const CONSTRAINTS: &Constraints = &[
    (
        "webhook_endpoints_url_check",
        Meaning::Field(
            "url",
            "must be an http or https URL of at most 2000 characters",
        ),
    ),
    (
        "webhook_endpoints_description_check",
        Meaning::Field("description", "must be at most 500 characters"),
    ),
    (
        "webhook_endpoints_event_types_check",
        Meaning::Field(
            "event_types",
            "must be at most 50 event types (e.g. message.created) or families (e.g. conversation.*)",
        ),
    ),
];
