//! Shared code that belongs to no domain: domain errors and the mapping of database
//! errors to them (`error`), the one shape of inputs (`input`: wire fields, the collected
//! field errors) and the values with rules they parse into (`values`; phone numbers
//! and channel ids in `phone`), cursor paging
//! (`page`), idempotency keys of creating requests (`idempotency`), and writing a checked
//! set of columns into a tenant table (`store`).

pub mod error;
pub mod idempotency;
pub mod input;
pub mod page;
pub mod phone;
pub mod store;
pub mod values;
