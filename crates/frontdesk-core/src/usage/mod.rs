//! Usage and cost: the model price catalog and tenants' own prices, usage events and the
//! daily rollups, the limits (rate, daily tokens, monthly budget) with their checks and
//! reservations, and the analytics read from the rollups.

pub mod analytics;
pub mod limits;
pub mod period;
pub mod prices;
#[expect(
    clippy::module_inception,
    reason = "the domain is named after its central resource; `usage::usage` is the recorded usage and its rollups"
)]
pub mod usage;

use crate::platform::error::{Constraints, Meaning};

/// What the constraints of usage events and limit reservations mean to a client (see
/// `platform::error`).
pub(crate) const CONSTRAINTS: &Constraints = &[
    (
        "usage_events_user_id_fkey",
        Meaning::Field("user_id", "must be a member of this tenant"),
    ),
    (
        "usage_events_assistant_id_fkey",
        Meaning::Field("assistant_id", "no such assistant in this tenant"),
    ),
    (
        "usage_events_conversation_id_fkey",
        Meaning::Field("conversation_id", "no such conversation in this tenant"),
    ),
    (
        "limit_reservations_unknown",
        Meaning::Field("reservation_id", "no such reservation in this tenant"),
    ),
    (
        "limit_reservations_used",
        Meaning::Conflict(
            Some("reservation_id"),
            "this reservation was already settled or cancelled",
        ),
    ),
];
