//! Frontdesk's domain: input types parsed at the edge (with field errors), the resources'
//! queries, and the mapping from database errors to domain errors. Every query runs in a
//! request transaction (`frontdesk_pg::Tx`) that carries the RLS context.

pub mod analytics;
pub mod api_keys;
pub mod assistants;
pub mod contacts;
pub mod conversations;
pub mod error;
pub mod events;
pub mod feedback;
pub mod flows;
pub mod idempotency;
pub mod input;
pub mod limits;
pub mod members;
pub mod messages;
pub mod page;
pub mod prices;
pub mod search;
pub mod store;
pub mod tenants;
pub mod usage;
pub mod users;
pub mod webhooks;

pub use error::{CoreError, FieldError, LimitReached};
pub use frontdesk_pg::{KeyScope, MemberRole, Principal, RequestContext, Tx};
