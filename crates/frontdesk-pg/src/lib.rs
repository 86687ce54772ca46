//! PostgreSQL plumbing for Frontdesk: the embedded cluster, database roles, the migration
//! runner and its catalog checks, the connection pool, and the request transaction that
//! carries the row-level-security context.

pub mod citus;
pub mod db;
pub mod embedded;
pub mod migrate;
pub mod pool;
pub mod roles;
pub mod row;
pub mod statements;
pub mod tx;
pub mod verify;

pub use db::{Db, StatementMode};
pub use row::RowExt;
pub use tx::{ContextMode, DbError, KeyScope, MemberRole, Principal, RequestContext, Tx};
pub mod setup;
