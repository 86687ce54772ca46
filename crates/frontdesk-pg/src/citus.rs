//! Citus: what `migrate up` does differently on a database with the `citus` extension.
//!
//! - Each migration still runs in one transaction, but one statement at a time, with
//!   `citus.multi_shard_modify_mode = 'sequential'` (Citus refuses DDL and
//!   `create_distributed_table` after parallel multi-shard work in the same transaction,
//!   and work on tables with foreign keys to reference tables after parallel work) and
//!   `citus.enable_unsafe_triggers = on` (triggers on distributed tables).
//! - `CREATE TABLE` runs with DDL propagation off: the new table stays local until the
//!   migrations are done, and Citus would refuse a local table's foreign key to a
//!   distributed one (`foreign keys from reference tables and local tables to
//!   distributed tables are not supported`) or silently turn a table with a foreign key
//!   to a reference table into a "Citus local table".
//! - After the last pending migration, in a transaction of its own (repeated by the next
//!   `up` if it fails; landed migrations only become distributable together, a later one
//!   fixing an earlier one's keys), [`distribute`] makes every new
//!   table of schema `app` a reference table (no `tenant_id`) or distributes it by
//!   `tenant_id` co-located with `app.tenants` (itself distributed by `id`), read from
//!   the catalog: foreign keys touching the new tables are dropped, the tables
//!   distributed, the keys added again. Then every function of `app` that Citus created
//!   only on the coordinator (it depended on a table not yet distributed) is propagated.
//!
//! `frontdesk_meta.schema_migrations` stays a local table of the coordinator.

use anyhow::Context;
use tokio_postgres::Client;

/// Whether the database `client` is connected to has the `citus` extension.
pub async fn is_citus(client: &Client) -> anyhow::Result<bool> {
    Ok(client
        .query_one(
            "select exists (select from pg_extension where extname = 'citus')",
            &[],
        )
        .await?
        .get(0))
}

/// Settings for a migration's transaction on Citus, one statement each.
pub const TRANSACTION_SETTINGS: [&str; 2] = [
    "set local citus.multi_shard_modify_mode = 'sequential'",
    "set local citus.enable_unsafe_triggers = on",
];

/// Whether `statement` creates a new table (`CREATE [UNLOGGED] TABLE`, also `… AS`; not
/// a partition of an existing, possibly distributed, table), which migrations on Citus
/// run with DDL propagation off.
pub fn creates_local_table(statement: &str) -> bool {
    let words = crate::statements::leading_words(statement, 3);
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let creates = matches!(
        words.as_slice(),
        ["create", "table", ..] | ["create", "unlogged", "table"]
    );
    creates && !statement.to_ascii_lowercase().contains("partition of")
}

/// What [`distribute`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Distribution {
    /// Tables made reference tables.
    pub reference: Vec<String>,
    /// Tables distributed (by `tenant_id`, or `app.tenants` by `id`).
    pub distributed: Vec<String>,
    /// Functions propagated to the workers.
    pub functions: Vec<String>,
}

impl Distribution {
    pub fn is_empty(&self) -> bool {
        self.reference.is_empty() && self.distributed.is_empty() && self.functions.is_empty()
    }
}

/// Make every table of schema `app` that Citus does not yet distribute or replicate a
/// reference table or a distributed one (see the module doc), inside the caller's
/// transaction (which should have [`TRANSACTION_SETTINGS`]).
pub async fn distribute(client: &Client) -> anyhow::Result<Distribution> {
    let mut done = Distribution::default();
    // Tables of app not yet hash-distributed nor reference tables (a "Citus local
    // table" counts as not distributed); partitions follow their parent.
    let pending = client
        .query(
            "select c.oid, c.oid::regclass::text, c.relname::text,
                    exists (select from pg_attribute a where a.attrelid = c.oid
                            and a.attname = 'tenant_id' and not a.attisdropped)
             from pg_class c join pg_namespace n on n.oid = c.relnamespace
             where n.nspname = 'app' and c.relkind in ('r', 'p') and not c.relispartition
               and not exists (select from pg_dist_partition p where p.logicalrelid = c.oid
                               and (p.partmethod = 'h' or p.repmodel = 't'))
             order by c.relname",
            &[],
        )
        .await
        .context("listing the tables to distribute")?;
    if !pending.is_empty() {
        let oids: Vec<u32> = pending.iter().map(|r| r.get(0)).collect();
        let tenants_pending = pending.iter().any(|r| r.get::<_, &str>(2) == "tenants");
        let tenant_tables_pending = pending
            .iter()
            .any(|r| r.get::<_, &str>(2) != "tenants" && r.get::<_, bool>(3));
        if tenant_tables_pending && !tenants_pending {
            let tenants_distributed: bool = client
                .query_one(
                    "select exists (select from pg_dist_partition
                                    where logicalrelid = to_regclass('app.tenants') and partmethod = 'h')",
                    &[],
                )
                .await?
                .get(0);
            anyhow::ensure!(
                tenants_distributed,
                "tenant tables can only be distributed co-located with app.tenants, which does not exist"
            );
        }
        // Foreign keys from or to a table about to change: Citus refuses keys between
        // a local and a distributed table, so they go and come back afterwards.
        let keys = client
            .query(
                "select k.conrelid::regclass::text, k.conname::text, pg_get_constraintdef(k.oid)
                 from pg_constraint k
                 where k.contype = 'f' and (k.conrelid = any($1) or k.confrelid = any($1))
                 order by 1, 2",
                &[&oids],
            )
            .await
            .context("reading foreign keys")?;
        for key in &keys {
            let (table, name): (&str, &str) = (key.get(0), key.get(1));
            client
                .batch_execute(&format!(
                    "alter table {table} drop constraint {}",
                    quote_ident(name)
                ))
                .await
                .with_context(|| format!("dropping foreign key {name} of {table}"))?;
        }
        // Reference tables, then app.tenants, then the tenant tables co-located with it.
        let rank = |r: &tokio_postgres::Row| match (r.get::<_, &str>(2), r.get::<_, bool>(3)) {
            ("tenants", _) => 1,
            (_, false) => 0,
            (_, true) => 2,
        };
        let mut order: Vec<&tokio_postgres::Row> = pending.iter().collect();
        order.sort_by_key(|r| rank(r));
        for row in order {
            let table: &str = row.get(1);
            let had_rows: bool = client
                .query_one(&format!("select exists (select from only {table})"), &[])
                .await?
                .get(0);
            let call = match rank(row) {
                0 => "select create_reference_table($1::text::regclass)",
                1 => {
                    "select create_distributed_table($1::text::regclass, 'id', colocate_with => 'none')"
                }
                _ => {
                    "select create_distributed_table($1::text::regclass, 'tenant_id', colocate_with => 'app.tenants')"
                }
            };
            client
                .execute(call, &[&table])
                .await
                .with_context(|| format!("distributing {table}"))?;
            if had_rows {
                // The rows were copied to the shards; the coordinator's copy is dead weight.
                client
                    .execute(
                        "select truncate_local_data_after_distributing_table($1::text::regclass)",
                        &[&table],
                    )
                    .await
                    .with_context(|| format!("truncating the local rows of {table}"))?;
            }
            if rank(row) == 0 {
                done.reference.push(table.to_owned());
            } else {
                done.distributed.push(table.to_owned());
            }
        }
        for key in &keys {
            let (table, name, definition): (&str, &str, &str) =
                (key.get(0), key.get(1), key.get(2));
            client
                .batch_execute(&format!(
                    "alter table {table} add constraint {} {definition}",
                    quote_ident(name)
                ))
                .await
                .with_context(|| {
                    format!("adding foreign key {name} of {table} again ({definition})")
                })?;
        }
    }
    // Functions created while a table they depend on was local exist only on the
    // coordinator; triggers and policies on the shards may need them on the workers.
    let functions = client
        .query(
            "select p.oid::regprocedure::text from pg_proc p
             join pg_namespace n on n.oid = p.pronamespace
             where n.nspname = 'app' and p.prokind in ('f', 'p')
               and not exists (select from pg_dist_object o
                               where o.classid = 'pg_proc'::regclass and o.objid = p.oid)
             order by 1",
            &[],
        )
        .await
        .context("listing functions Citus has not propagated")?;
    for function in functions {
        let function: String = function.get(0);
        client
            .execute(
                "select create_distributed_function($1::text::regprocedure)",
                &[&function],
            )
            .await
            .with_context(|| format!("propagating function {function}"))?;
        done.functions.push(function);
    }
    Ok(done)
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::creates_local_table;

    #[test]
    fn only_new_tables_are_created_without_propagation() {
        assert!(creates_local_table(
            "-- notes\ncreate table app.notes (tenant_id uuid references app.tenants (id))"
        ));
        assert!(creates_local_table(
            "CREATE UNLOGGED TABLE app.scratch (x int)"
        ));
        assert!(creates_local_table(
            "create table app.copy as select 1 as x"
        ));
        assert!(!creates_local_table(
            "create table app.messages_2027 partition of app.messages for values from ('2027-01-01') to ('2028-01-01')"
        ));
        assert!(!creates_local_table(
            "alter table app.notes add column y int"
        ));
        assert!(!creates_local_table(
            "create index on app.notes (tenant_id)"
        ));
        assert!(!creates_local_table("create temporary table t (x int)"));
    }
}
