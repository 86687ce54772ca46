//! Frontdesk's domain: input types parsed at the edge (with field errors), the resources'
//! queries, and the mapping from database errors to domain errors. Every query runs in a
//! request transaction (`frontdesk_pg::Tx`) that carries the RLS context.
//!
//! One folder per domain, each holding its resources' types, rules and queries:
//! [`tenancy`], [`conversations`], [`usage`], [`events`], [`providers`]; shared code that belongs to no
//! domain (errors, input checks, paging, idempotency keys, the generic row writer) is in
//! [`platform`], and upkeep that spans domains in [`housekeeping`].

pub mod conversations;
pub mod events;
pub mod housekeeping;
pub mod operations;
pub mod platform;
pub mod providers;
pub mod tenancy;
pub mod usage;

pub use frontdesk_pg::{KeyScope, MemberRole, Principal, RequestContext, Tx};
pub use platform::error::{CoreError, FieldError, LimitReached};
