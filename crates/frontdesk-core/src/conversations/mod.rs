//! Conversations: what the tenant's assistants say and to whom — assistants, the flows
//! (state machines) their conversations follow, contacts (the business's customers),
//! conversations with their state and handoffs, the append-only messages, feedback on
//! messages, and full-text search over messages.

pub mod assistants;
pub mod contacts;
#[expect(
    clippy::module_inception,
    reason = "the domain is named after its central resource; `conversations::conversations` is that resource"
)]
pub mod conversations;
pub mod feedback;
pub mod flows;
pub mod messages;
pub mod search;

use crate::platform::error::{Constraints, Meaning};

/// What the constraints of flows, assistants, contacts, conversations and feedback mean to a client (see
/// `platform::error`).
pub(crate) const CONSTRAINTS: &Constraints = &[
    (
        "flows_pkey",
        Meaning::Conflict(Some("key"), "a flow with this key exists"),
    ),
    (
        "flows_valid",
        Meaning::Field(
            "states",
            "the flow's states and transitions do not fit together",
        ),
    ),
    (
        "assistants_flow_key_fkey",
        Meaning::Field("flow", "no such flow"),
    ),
    (
        "contacts_phone_key",
        Meaning::Conflict(Some("phone"), "another contact has this phone number"),
    ),
    (
        "contact_channels_external_id_key",
        Meaning::Conflict(
            Some("channel_ids"),
            "another contact has this id on the channel",
        ),
    ),
    (
        "contact_channels_channel_check",
        Meaning::Field(
            "channel_ids",
            "channel names are 1 to 32 lower-case letters, digits and underscores, starting with a letter",
        ),
    ),
    (
        "contact_channels_external_id_check",
        Meaning::Field(
            "channel_ids",
            "ids are strings of 1 to 200 characters without surrounding spaces",
        ),
    ),
    (
        "contact_channels_whatsapp_check",
        Meaning::Field(
            "channel_ids",
            "WhatsApp ids are the international number's digits, without +",
        ),
    ),
    (
        "conversations_assistant_id_fkey",
        Meaning::Field("assistant_id", "no such assistant in this tenant"),
    ),
    (
        "conversations_user_id_fkey",
        Meaning::Field("user_id", "must be a member of this tenant"),
    ),
    (
        "conversations_assistant_active",
        Meaning::Field("assistant_id", "this assistant is inactive"),
    ),
    (
        "conversations_contact_id_fkey",
        Meaning::Field("contact_id", "no such contact in this tenant"),
    ),
    (
        "conversations_assignee_id_fkey",
        Meaning::Field("assignee_id", "must be a member of this tenant"),
    ),
    (
        "conversations_one_open_per_contact",
        Meaning::Conflict(
            Some("contact_id"),
            "this contact already has an open conversation with this assistant",
        ),
    ),
    (
        "conversations_state_in_flow",
        Meaning::Conflict(
            Some("state"),
            "the state is not a state of the conversation's flow",
        ),
    ),
    (
        "conversations_transition",
        Meaning::Conflict(
            Some("to"),
            "the conversation's flow does not allow this transition",
        ),
    ),
    (
        "feedback_rating_check",
        Meaning::Field("rating", "must be 1 or -1"),
    ),
    (
        "feedback_comment_check",
        Meaning::Field("comment", "must be at most 5000 characters"),
    ),
];
