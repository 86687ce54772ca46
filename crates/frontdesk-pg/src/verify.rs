//! `frontdesk migrate verify`: the schema rules of docs/ARCHITECTURE.md checked against
//! the live catalog. Each finding names the table (and policy or constraint) and the rule.
//!
//! For every table in schema `app` that holds a `tenant_id` column:
//! - RLS is enabled and forced (except the owner-exempt tables below), and it has policies;
//! - no policy is `true`, applies to PUBLIC, or contains a subquery;
//! - `tenant_id` leads its primary key;
//! - every foreign key to another tenant table starts with `tenant_id` on both sides,
//!   and every foreign key has an index whose leading columns are its columns.
//!
//! Every other table in `app` has RLS enabled unless it is a listed global catalog.

use tokio_postgres::Client;

/// Tenant tables with RLS enabled but not forced, so that their owner (and only their
/// owner, in `SECURITY DEFINER` functions) reads them without policies: the recursion trap.
pub const OWNER_EXEMPT: &[(&str, &str)] = &[
    (
        "memberships",
        "read by app.assert_principal() and app.resolve_tenant() as their owner",
    ),
    (
        "api_keys",
        "read by app.assert_principal() and app.authenticate_key() as their owner",
    ),
    (
        "provider_secrets",
        "read by app.provider_secret() (before the callback's transaction exists) and app.assert_callback() as their owner",
    ),
];

/// Global tables without RLS: readable by every request role, written only by the
/// operator and migrations.
pub const GLOBAL_CATALOGS: &[&str] = &["builtin_flows", "model_prices"];

/// Check the catalog of the database `client` is connected to; returns the findings.
pub async fn verify(client: &Client) -> anyhow::Result<Vec<String>> {
    let mut findings = Vec::new();
    let tables = client
        .query(
            "select c.relname, c.relrowsecurity, c.relforcerowsecurity,
                    exists (select 1 from pg_attribute a where a.attrelid = c.oid
                            and a.attname = 'tenant_id' and not a.attisdropped) as tenant_scoped,
                    (select count(*) from pg_policy p where p.polrelid = c.oid) as policies
             from pg_class c join pg_namespace n on n.oid = c.relnamespace
             where n.nspname = 'app' and c.relkind in ('r', 'p')
             order by c.relname",
            &[],
        )
        .await?;
    if tables.is_empty() {
        findings.push("schema app has no tables: run `frontdesk migrate up` first".to_owned());
    }
    for row in &tables {
        let name: &str = row.get(0);
        let enabled: bool = row.get(1);
        let forced: bool = row.get(2);
        let tenant_scoped: bool = row.get(3);
        let policies: i64 = row.get(4);
        if tenant_scoped {
            if !enabled {
                findings.push(format!(
                    "app.{name}: holds tenant_id but row-level security is not enabled"
                ));
            }
            let exempt = OWNER_EXEMPT.iter().any(|(t, _)| *t == name);
            if !forced && !exempt {
                findings.push(format!(
                    "app.{name}: holds tenant_id but row-level security is not forced (ALTER TABLE app.{name} FORCE ROW LEVEL SECURITY)"
                ));
            }
            if policies == 0 {
                findings.push(format!("app.{name}: holds tenant_id but has no policies"));
            }
        } else if !enabled && !GLOBAL_CATALOGS.contains(&name) {
            findings.push(format!(
                "app.{name}: row-level security is not enabled and it is not a listed global catalog"
            ));
        }
    }

    let policies = client
        .query(
            "select c.relname, p.polname, p.polroles,
                    coalesce(pg_get_expr(p.polqual, p.polrelid), ''),
                    coalesce(pg_get_expr(p.polwithcheck, p.polrelid), '')
             from pg_policy p join pg_class c on c.oid = p.polrelid
             join pg_namespace n on n.oid = c.relnamespace
             where n.nspname = 'app' order by 1, 2",
            &[],
        )
        .await?;
    for row in &policies {
        let table: &str = row.get(0);
        let policy: &str = row.get(1);
        let roles: Vec<u32> = row.get::<_, Vec<tokio_postgres::types::Oid>>(2);
        let using: &str = row.get(3);
        let check: &str = row.get(4);
        if roles.contains(&0) {
            findings.push(format!(
                "app.{table} policy {policy}: applies to PUBLIC; name the request roles"
            ));
        }
        for (what, expr) in [("USING", using), ("WITH CHECK", check)] {
            if expr.trim() == "true" {
                findings.push(format!(
                    "app.{table} policy {policy}: {what} (true) lets every row through"
                ));
            }
            if expr.to_ascii_lowercase().contains("select ") {
                findings.push(format!(
                    "app.{table} policy {policy}: {what} contains a subquery; policies may only read settings"
                ));
            }
        }
    }

    let keys = client
        .query(
            "with tenant_tables as (
                 select c.oid from pg_class c join pg_namespace n on n.oid = c.relnamespace
                 where n.nspname = 'app' and c.relkind in ('r', 'p')
                   and exists (select 1 from pg_attribute a where a.attrelid = c.oid
                               and a.attname = 'tenant_id' and not a.attisdropped))
             select c.relname, k.conname, k.contype::text,
                    (select a.attname from pg_attribute a where a.attrelid = k.conrelid and a.attnum = k.conkey[1]),
                    coalesce((select a.attname from pg_attribute a where a.attrelid = k.confrelid and a.attnum = k.confkey[1]), ''),
                    k.confrelid in (select oid from tenant_tables),
                    coalesce(f.relname, ''),
                    k.contype <> 'f' or exists (
                        select 1 from pg_index i where i.indrelid = k.conrelid
                        and (i.indkey::int2[])[0:cardinality(k.conkey) - 1] = k.conkey)
             from pg_constraint k
             join pg_class c on c.oid = k.conrelid
             left join pg_class f on f.oid = k.confrelid
             where k.conrelid in (select oid from tenant_tables) and k.contype in ('p', 'f')
             order by 1, 2",
            &[],
        )
        .await?;
    let mut with_pk = std::collections::HashSet::new();
    for row in &keys {
        let table: &str = row.get(0);
        let constraint: &str = row.get(1);
        let kind: &str = row.get(2);
        let first: &str = row.get(3);
        let ref_first: &str = row.get(4);
        let to_tenant_table: bool = row.get(5);
        let referenced: &str = row.get(6);
        let indexed: bool = row.get(7);
        if kind == "p" {
            with_pk.insert(table.to_owned());
            if first != "tenant_id" {
                findings.push(format!(
                    "app.{table}: primary key {constraint} must start with tenant_id"
                ));
            }
        } else {
            if to_tenant_table && (first != "tenant_id" || ref_first != "tenant_id") {
                findings.push(format!(
                    "app.{table}: foreign key {constraint} to tenant table app.{referenced} must be composite, \
                     (tenant_id, …) references app.{referenced} (tenant_id, …)"
                ));
            }
            if !indexed {
                findings.push(format!(
                    "app.{table}: foreign key {constraint} has no index starting with its columns"
                ));
            }
        }
    }
    for row in &tables {
        let name: &str = row.get(0);
        let tenant_scoped: bool = row.get(3);
        if tenant_scoped && !with_pk.contains(name) {
            findings.push(format!(
                "app.{name}: holds tenant_id but has no primary key"
            ));
        }
    }
    Ok(findings)
}
