//! Reading a row's columns so that a value which does not decode is an error naming the
//! column, never a panic: `row.col::<T>("name")?` instead of `row.get("name")`.
//!
//! `Row::get` panics when a value does not fit the Rust type it is read into: a `jsonb`
//! number `serde_json` cannot parse, a `numeric` too large for `Decimal`, an `infinity`
//! timestamp. Stored client data can hold any of those, so every read of a row in a
//! request or worker path goes through [`RowExt::col`]. The error (`DbError::Decode`)
//! names the column, its table (by oid) and the Rust type, never the value.
//!
//! `Row::get` remains only where no stored client data is read, at start-up and in the
//! CLI, over the catalog and the migration runner's own table: `migrate` (versions,
//! checksums), `verify` and `citus` (catalog names, oids and flags), `roles` and `setup`
//! (role flags, `select 1`-style probes). Their columns are typed by PostgreSQL's
//! catalog (text, oid, bool, int8), so decoding them cannot fail, and a panic there
//! would stop a command, not a request.

use tokio_postgres::{Column, Row, types::FromSql};

use crate::DbError;

/// A column named by position or by name.
pub trait ColumnIndex {
    /// Its position in `columns`, if it is there.
    fn position(&self, columns: &[Column]) -> Option<usize>;
    /// How an error names it when it is not there.
    fn describe(&self) -> String;
}

impl ColumnIndex for usize {
    fn position(&self, columns: &[Column]) -> Option<usize> {
        (*self < columns.len()).then_some(*self)
    }

    fn describe(&self) -> String {
        format!("#{self}")
    }
}

impl ColumnIndex for &str {
    fn position(&self, columns: &[Column]) -> Option<usize> {
        columns.iter().position(|c| c.name() == *self)
    }

    fn describe(&self) -> String {
        (*self).to_owned()
    }
}

/// Fallible column reads for [`Row`].
pub trait RowExt {
    /// The value of `column` as a `T`, or `DbError::Decode` naming the column when it is
    /// missing, of another type, or holds a value a `T` cannot represent.
    fn col<'a, T: FromSql<'a>>(&'a self, column: impl ColumnIndex) -> Result<T, DbError>;
}

impl RowExt for Row {
    fn col<'a, T: FromSql<'a>>(&'a self, column: impl ColumnIndex) -> Result<T, DbError> {
        let columns = self.columns();
        let rust_type = std::any::type_name::<T>();
        let Some(at) = column.position(columns) else {
            return Err(DbError::Decode {
                column: column.describe(),
                table: None,
                rust_type,
                reason: "the row has no such column".into(),
            });
        };
        self.try_get(at).map_err(|e| DbError::Decode {
            column: columns[at].name().to_owned(),
            table: columns[at].table_oid().filter(|oid| *oid != 0),
            rust_type,
            // The decoder's own words (e.g. serde_json's "number out of range at line 1
            // column 310"): they say what is wrong, not what the value is.
            reason: std::error::Error::source(&e).map_or_else(|| e.to_string(), |c| c.to_string()),
        })
    }
}
