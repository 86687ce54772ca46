//! Conversation routes: a tenant's assistants, flows, contacts, conversations, messages,
//! feedback on messages, and search.

pub mod assistants;
pub mod contacts;
#[expect(
    clippy::module_inception,
    reason = "the domain is named after its central resource, as in frontdesk_core"
)]
pub mod conversations;
pub mod feedback;
pub mod flows;
pub mod messages;
pub mod search;
