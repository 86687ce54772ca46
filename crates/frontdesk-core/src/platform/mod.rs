//! Shared code that belongs to no domain: domain errors and the mapping of database
//! errors to them (`error`), input checks (`input`), cursor paging (`page`), idempotency
//! keys of creating requests (`idempotency`), and writing a checked set of columns into a
//! tenant table (`store`).

pub mod error;
pub mod idempotency;
pub mod input;
pub mod page;
pub mod store;
pub mod values;
