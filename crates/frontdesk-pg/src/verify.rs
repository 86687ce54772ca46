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
//!
//! And the rules that keep the schema distributable on Citus, sharded by tenant (the
//! tenant column is `tenant_id`, and `id` for `app.tenants` itself):
//! - every unique key (primary key, unique constraint or index, exclusion constraint) of a
//!   tenant table holds the tenant column; lookups across tenants live in global tables;
//! - no `ON DELETE`/`ON UPDATE SET NULL`/`SET DEFAULT` on a foreign key holding `tenant_id`;
//! - no SQL-language function with parameters reads a relation of schema `app`;
//! - no volatile function (nor a clock such as `now()`) in `ON CONFLICT DO UPDATE SET`;
//! - no clock and no context helper inside CASE or COALESCE in an UPDATE or DELETE;
//! - no table row type of schema `app` among a function's argument or result types;
//! - a function that locks with `SKIP LOCKED` filters `tenant_id = ` one of its parameters.
//!
//! The function rules allow, by name, the functions 0008_login_roles rewrites.

use tokio_postgres::Client;

/// Tenant tables with RLS enabled but not forced, so that their owner (and only their
/// owner, in `SECURITY DEFINER` functions) reads them without policies: the recursion trap.
pub const OWNER_EXEMPT: &[(&str, &str)] = &[
    (
        "memberships",
        "read by app.assert_principal(), app.tenant_by_id() and app.tenant_by_slug() as their owner",
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
    distribution(client, &mut findings).await?;
    Ok(findings)
}

/// The rules that keep the schema distributable on Citus (see the module's doc).
async fn distribution(client: &Client, findings: &mut Vec<String>) -> anyhow::Result<()> {
    let unique = client
        .query(
            "with tenant_tables as (
                 select c.oid, c.relname, a.attnum, a.attname::text as column_name
                 from pg_class c join pg_namespace n on n.oid = c.relnamespace
                 join pg_attribute a on a.attrelid = c.oid and not a.attisdropped
                  and a.attname = case when c.relname = 'tenants' then 'id' else 'tenant_id' end
                 where n.nspname = 'app' and c.relkind in ('r', 'p')
                   and (c.relname = 'tenants'
                        or exists (select 1 from pg_attribute t where t.attrelid = c.oid
                                   and t.attname = 'tenant_id' and not t.attisdropped)))
             select t.relname, ic.relname, t.column_name
             from tenant_tables t
             join pg_index i on i.indrelid = t.oid
             join pg_class ic on ic.oid = i.indexrelid
             where (i.indisunique or i.indisexclusion)
               and not (t.attnum = any ((i.indkey::int2[])[0:i.indnkeyatts - 1]))
             order by 1, 2",
            &[],
        )
        .await?;
    for row in &unique {
        let (table, index, column): (&str, &str, &str) = (row.get(0), row.get(1), row.get(2));
        findings.push(format!(
            "app.{table}: unique key {index} does not hold {column}; a key unique across tenants \
             belongs in a global lookup table (a reference table on Citus)"
        ));
    }

    let set_null = client
        .query(
            "select c.relname, k.conname
             from pg_constraint k
             join pg_class c on c.oid = k.conrelid
             join pg_namespace n on n.oid = c.relnamespace
             join pg_attribute a on a.attrelid = c.oid and a.attname = 'tenant_id' and not a.attisdropped
             where n.nspname = 'app' and k.contype = 'f' and a.attnum = any (k.conkey)
               and (k.confdeltype in ('n', 'd') or k.confupdtype in ('n', 'd'))
             order by 1, 2",
            &[],
        )
        .await?;
    for row in &set_null {
        let (table, constraint): (&str, &str) = (row.get(0), row.get(1));
        findings.push(format!(
            "app.{table}: foreign key {constraint} holds tenant_id and sets null or a default; \
             make it a plain key and null the column in a delete trigger on the referenced table"
        ));
    }

    let mut functions: Vec<(String, String, String)> = Vec::new();
    let sql_reading = client
        .query(
            r"select p.proname::text, p.oid::regprocedure::text
             from pg_proc p join pg_language l on l.oid = p.prolang
             where p.pronamespace = 'app'::regnamespace and l.lanname = 'sql' and p.pronargs > 0
               and (exists (select 1 from pg_class c
                            where c.relnamespace = 'app'::regnamespace
                              and c.relkind in ('r', 'p', 'v', 'm', 'f')
                              and p.prosrc ~* ('\mapp\.' || c.relname || '\M'))
                    or exists (select 1 from pg_depend d join pg_class c on c.oid = d.refobjid
                               where d.classid = 'pg_proc'::regclass and d.objid = p.oid
                                 and d.refclassid = 'pg_class'::regclass
                                 and c.relnamespace = 'app'::regnamespace))
             order by 2",
            &[],
        )
        .await?;
    for row in &sql_reading {
        functions.push((
            row.get(0),
            row.get(1),
            "is an SQL function with parameters that reads tables (Citus cannot plan it); \
             write it in PL/pgSQL"
                .to_owned(),
        ));
    }

    let row_types = client
        .query(
            "select distinct p.proname::text, p.oid::regprocedure::text, c.relname::text
             from pg_proc p
             cross join lateral unnest(coalesce(p.proallargtypes, p.proargtypes::oid[]) || p.prorettype) t (type_oid)
             join pg_type ty on ty.oid = t.type_oid
             join pg_class c on c.oid = ty.typrelid
             where p.pronamespace = 'app'::regnamespace and c.relnamespace = 'app'::regnamespace
               and c.relkind in ('r', 'p')
             order by 2, 3",
            &[],
        )
        .await?;
    for row in &row_types {
        let table: &str = row.get(2);
        functions.push((
            row.get(0),
            row.get(1),
            format!(
                "has the row type of table app.{table} in its signature; take or return the columns"
            ),
        ));
    }
    for (_, signature, rule) in &functions {
        findings.push(format!("{signature}: {rule}"));
    }

    // The statement's tail after `ON CONFLICT … DO UPDATE SET`, up to its end; a volatile
    // function or a clock there (on Citus, evaluated on every shard it reaches).
    let on_conflict = client
        .query(
            r"select p.oid::regprocedure::text, string_agg(distinct f.name, ', ' order by f.name)
             from pg_proc p
             cross join lateral regexp_matches(lower(p.prosrc), 'on\s+conflict[^;]*do\s+update\s+set([^;]*)', 'g') m (tail)
             cross join lateral (
                 select v.proname::text from pg_proc v
                 where v.provolatile = 'v' and m.tail[1] ~ ('\m' || v.proname || '\s*\(')
                 union
                 select (regexp_matches(m.tail[1], '\m(now|clock_timestamp|statement_timestamp|transaction_timestamp|timeofday|current_timestamp|current_time|current_date|localtimestamp|localtime)\M', 'g'))[1]
             ) f (name)
             where p.pronamespace = 'app'::regnamespace
             group by 1 order by 1",
            &[],
        )
        .await?;
    for row in &on_conflict {
        let (signature, called): (&str, &str) = (row.get(0), row.get(1));
        findings.push(format!(
            "{signature}: ON CONFLICT DO UPDATE SET calls {called}; put the value in the inserted row \
             and set excluded.…"
        ));
    }

    // An UPDATE or DELETE whose CASE or COALESCE calls the clock or reads the context
    // (the `app.current_*` helpers inline to a COALESCE over current_setting): Citus refuses
    // functions that are not immutable there. Read them into variables first.
    let case_or_coalesce = client
        .query(
            // (comments removed first; each pattern alone: a PostgreSQL regex with `|` at its
            // top is greedy throughout, so the CASE and COALESCE spans are found separately)
            r"with body as (
                 select p.oid::regprocedure::text as signature,
                        regexp_replace(lower(p.prosrc), '--[^\n]*', '', 'g') as src
                   from pg_proc p where p.pronamespace = 'app'::regnamespace),
             statement as (
                 select b.signature, st.text[1] as text
                   from body b
                   cross join lateral regexp_matches(b.src, '\m(?:update|delete)\M[^;]*', 'g') st (text)
                  where st.text[1] !~ '^update\s+of\M'),
             span as (
                 select s.signature, c.text[1] as text
                   from statement s cross join lateral regexp_matches(s.text, '\mcase\M.*?\mend\M', 'g') c (text)
                 union all
                 select s.signature, c.text[1]
                   from statement s cross join lateral regexp_matches(s.text, '\mcoalesce\s*\([^;)]*\)', 'g') c (text))
             select x.signature, string_agg(distinct x.name, ', ' order by x.name)
             from (select sp.signature, f.name[1] as name
                     from span sp
                     cross join lateral regexp_matches(sp.text,
                         '\m(now|clock_timestamp|statement_timestamp|transaction_timestamp|current_setting|app\.(?:is_tenant_admin|is_tenant_staff|can_write|caller_kind|current_[a-z_]+))\s*\(', 'g') f (name)
                   union all
                   -- the helpers whose own body is a COALESCE, anywhere in the statement
                   select s.signature, h.name[1]
                     from statement s
                     cross join lateral regexp_matches(s.text, '\m(app\.(?:is_tenant_admin|is_tenant_staff))\s*\(', 'g') h (name)) x
             group by 1 order by 1",
            &[],
        )
        .await?;
    for row in &case_or_coalesce {
        let (signature, called): (&str, &str) = (row.get(0), row.get(1));
        findings.push(format!(
            "{signature}: an UPDATE or DELETE calls {called} inside CASE or COALESCE (refused on Citus); \
             read the value into a variable first"
        ));
    }

    let skip_locked = client
        .query(
            r"select p.oid::regprocedure::text from pg_proc p
             where p.pronamespace = 'app'::regnamespace and p.prosrc ~* 'skip\s+locked'
               and not exists (select 1 from unnest(p.proargnames) a (name)
                               where a.name <> '' and p.prosrc ~* ('tenant_id\s*=\s*' || a.name || '\M'))
             order by 1",
            &[],
        )
        .await?;
    for row in &skip_locked {
        let signature: &str = row.get(0);
        findings.push(format!(
            "{signature}: locks with SKIP LOCKED across tenants; find the tenants with due work first, \
             then claim per tenant (tenant_id = a parameter)"
        ));
    }
    Ok(())
}
