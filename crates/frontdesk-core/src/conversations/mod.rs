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
