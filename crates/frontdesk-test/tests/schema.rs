//! Migrations, the catalog rules of `migrate verify`, and the request context as the
//! database itself enforces it.

use frontdesk_pg::{
    ContextMode, KeyScope, MemberRole, Principal, RequestContext, Tx,
    migrate::{MIGRATIONS, Migration, Migrator, State},
};
use frontdesk_test::{cluster, fixtures::seed_tenant, spawn_app};
use uuid::Uuid;

/// The catalog of schema `app` as text: tables, columns, constraints, indexes, policies,
/// functions, triggers, grants and comments.
async fn catalog(client: &tokio_postgres::Client) -> String {
    let rows = client
        .query(
            "select 'rel ' || c.relname || ' ' || c.relkind::text || ' rls=' || c.relrowsecurity || ' force=' || c.relforcerowsecurity
                    || ' acl=' || coalesce(c.relacl::text, '') || ' comment=' || coalesce(obj_description(c.oid), '')
             from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = 'app'
             union all
             select 'col ' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
                    || ' notnull=' || a.attnotnull || ' default=' || coalesce(pg_get_expr(d.adbin, d.adrelid), '')
                    || ' comment=' || coalesce(col_description(c.oid, a.attnum), '') || ' acl=' || coalesce(a.attacl::text, '')
             from pg_attribute a join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace
             left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
             where n.nspname = 'app' and a.attnum > 0 and not a.attisdropped
             union all
             select 'con ' || c.relname || '.' || k.conname || ' ' || pg_get_constraintdef(k.oid)
             from pg_constraint k join pg_class c on c.oid = k.conrelid join pg_namespace n on n.oid = c.relnamespace
             where n.nspname = 'app'
             union all
             select 'idx ' || pg_get_indexdef(i.indexrelid)
             from pg_index i join pg_class c on c.oid = i.indrelid join pg_namespace n on n.oid = c.relnamespace
             where n.nspname = 'app'
             union all
             select 'pol ' || tablename || '.' || policyname || ' ' || cmd || ' ' || roles::text || ' '
                    || coalesce(qual, '') || ' | ' || coalesce(with_check, '')
             from pg_policies where schemaname = 'app'
             union all
             select 'fn ' || pg_get_functiondef(p.oid) || ' acl=' || coalesce(p.proacl::text, '')
                    || ' comment=' || coalesce(obj_description(p.oid, 'pg_proc'), '')
             from pg_proc p join pg_namespace n on n.oid = p.pronamespace where n.nspname = 'app'
             union all
             select 'type ' || t.typname || ' ' || t.typtype::text
             from pg_type t join pg_namespace n on n.oid = t.typnamespace
             where n.nspname = 'app' and t.typrelid = 0 and t.typelem = 0
             union all
             select 'trg ' || pg_get_triggerdef(t.oid) || ' enabled=' || t.tgenabled::text
             from pg_trigger t join pg_class c on c.oid = t.tgrelid join pg_namespace n on n.oid = c.relnamespace
             where n.nspname = 'app' and not t.tgisinternal
             union all
             select 'schema ' || nspname || ' acl=' || coalesce(nspacl::text, '') from pg_namespace where nspname = 'app'
             order by 1",
            &[],
        )
        .await
        .unwrap();
    // One line per object (a function's body keeps its line breaks as ⏎).
    rows.iter()
        .map(|r| r.get::<_, String>(0).replace('\n', "⏎"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn up_down_up_leaves_the_catalog_identical() {
    let db = cluster().database(true).await;
    let client = db.admin().await;
    let first = catalog(&client).await;
    assert!(
        first.contains("rel tenants"),
        "the catalog query sees nothing"
    );
    let migrator = Migrator::new(&client);
    let reverted = migrator.down(Some(0)).await.unwrap();
    assert_eq!(reverted.len(), MIGRATIONS.len());
    assert_eq!(catalog(&client).await, "", "down left objects behind");
    assert!(
        migrator
            .status()
            .await
            .unwrap()
            .iter()
            .all(|s| s.state == State::Pending)
    );
    migrator.up().await.unwrap();
    assert_eq!(catalog(&client).await, first);
}

/// Lines of `a` missing from `b`, and of `b` missing from `a`.
fn catalog_diff(a: &str, b: &str) -> String {
    let (left, right): (std::collections::BTreeSet<_>, std::collections::BTreeSet<_>) =
        (a.lines().collect(), b.lines().collect());
    let mut out = String::new();
    for line in left.difference(&right) {
        out.push_str(&format!("- {line}\n"));
    }
    for line in right.difference(&left) {
        out.push_str(&format!("+ {line}\n"));
    }
    out
}

/// Steps through `migrations[applied..]` (the first `applied` are already applied): for
/// each version v, migrates up to v, takes one step down and checks the catalog is the one
/// after v−1, then goes up again. Returns the first down that does not restore its
/// predecessor exactly, with the catalog lines that differ.
async fn check_each_down_step(
    client: &tokio_postgres::Client,
    migrations: &'static [Migration],
    applied: usize,
) -> Result<(), String> {
    let mut before = catalog(client).await;
    for count in applied + 1..=migrations.len() {
        let migration = &migrations[count - 1];
        let migrator = Migrator::with_migrations(client, &migrations[..count]);
        assert_eq!(migrator.up().await.unwrap(), vec![migration.version]);
        let after = catalog(client).await;
        assert_eq!(migrator.down(None).await.unwrap(), vec![migration.version]);
        let back = catalog(client).await;
        if back != before {
            return Err(format!(
                "the down of {:04}_{} does not restore the catalog of the migration before it:\n{}",
                migration.version,
                migration.name,
                catalog_diff(&before, &back)
            ));
        }
        migrator.up().await.unwrap();
        assert_eq!(catalog(client).await, after, "up after down differs");
        before = after;
    }
    Ok(())
}

#[tokio::test]
async fn each_down_restores_exactly_the_schema_before_its_up() {
    let db = cluster().database(false).await;
    let client = db.admin().await;
    check_each_down_step(&client, MIGRATIONS, 0)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

/// The per-step check catches a down that restores a function with another body than the
/// one it had (here `statement_timestamp()` where the original said `now()`).
#[tokio::test]
async fn a_down_restoring_a_different_function_body_is_caught() {
    let db = cluster().database(true).await;
    let client = db.admin().await;
    let body = |clock: &str| {
        format!(
            "create or replace function app.touch_updated_at() returns trigger\n    language plpgsql\n    as $$\nbegin\n    new.updated_at := {clock};\n    return new;\nend\n$$;\n"
        )
    };
    let wrong = leak(
        MIGRATIONS
            .iter()
            .map(|m| Migration { ..*m })
            .chain([Migration {
                version: 9999,
                name: "wrong_down",
                up: body("clock_timestamp()").leak(),
                down: body("statement_timestamp()").leak(),
            }])
            .collect(),
    );
    let error = check_each_down_step(&client, wrong, MIGRATIONS.len())
        .await
        .unwrap_err();
    assert!(error.contains("9999_wrong_down"), "{error}");
    assert!(
        error.contains("- fn CREATE OR REPLACE FUNCTION app.touch_updated_at()")
            && error.contains("+ fn CREATE OR REPLACE FUNCTION app.touch_updated_at()")
            && error.contains("new.updated_at := statement_timestamp();"),
        "{error}"
    );
}

/// Every function is defined by one up script. A later up may replace one only with an
/// explicit, reviewed `-- replaces app.name (why)` line, and a down may (re)create only
/// what its own up replaced or dropped: later features add a trigger instead of copying
/// an earlier body, and the per-step down test proves the restored bodies are exact.
#[test]
fn no_function_is_defined_in_two_migrations() {
    let created = |sql: &str| -> Vec<String> {
        let lower = sql.to_lowercase();
        lower
            .match_indices("function app.")
            .filter(|(at, _)| {
                let head = lower[..*at].trim_end();
                head.ends_with("create") || head.ends_with("create or replace")
            })
            .map(|(at, _)| {
                lower[at + "function ".len()..]
                    .chars()
                    .take_while(|c| *c != '(')
                    .collect()
            })
            .collect()
    };
    let marked = |sql: &str, marker: &str| -> Vec<String> {
        sql.to_lowercase()
            .lines()
            .filter_map(|l| l.trim().strip_prefix(marker))
            .map(|rest| {
                rest.trim()
                    .chars()
                    .take_while(|c| !c.is_whitespace() && *c != '(')
                    .collect()
            })
            .collect()
    };
    let mut defined: std::collections::BTreeMap<String, String> = Default::default();
    for m in MIGRATIONS {
        let file = format!("{:04}_{}", m.version, m.name);
        let replaces = marked(m.up, "-- replaces ");
        for name in &replaces {
            assert!(
                defined.contains_key(name),
                "{file}.up.sql replaces {name}, which no earlier migration defines"
            );
        }
        for name in created(m.up) {
            if let Some(first) = defined.insert(name.clone(), file.clone()) {
                assert!(
                    replaces.contains(&name),
                    "{name} is defined in {first} and again in {file} without a `-- replaces {name}` line"
                );
            }
        }
        let dropped = marked(m.up, "drop function if exists ")
            .into_iter()
            .chain(marked(m.up, "drop function "));
        let restorable: Vec<String> = replaces.iter().cloned().chain(dropped).collect();
        for name in created(m.down) {
            assert!(
                restorable.contains(&name),
                "{file}.down.sql defines {name}: a down only drops, or restores what its up replaced or dropped"
            );
        }
    }
    assert!(defined.contains_key("app.messages_count_in_conversation"));
}

#[tokio::test]
async fn down_without_to_reverts_only_the_newest_and_status_reports_it() {
    let db = cluster().database(true).await;
    let client = db.admin().await;
    let migrator = Migrator::new(&client);
    let newest = MIGRATIONS.last().unwrap().version;
    assert_eq!(migrator.down(None).await.unwrap(), vec![newest]);
    let status = migrator.status().await.unwrap();
    assert_eq!(status.last().unwrap().state, State::Pending);
    assert_eq!(migrator.up().await.unwrap(), vec![newest]);
}

fn leak(migrations: Vec<Migration>) -> &'static [Migration] {
    Box::leak(migrations.into_boxed_slice())
}

#[tokio::test]
async fn an_edited_applied_migration_is_refused() {
    let db = cluster().database(true).await;
    let client = db.admin().await;
    let edited = leak(
        MIGRATIONS
            .iter()
            .map(|m| Migration {
                version: m.version,
                name: m.name,
                up: if m.version == 1 {
                    "select 1; -- edited"
                } else {
                    m.up
                },
                down: m.down,
            })
            .collect(),
    );
    let error = Migrator::with_migrations(&client, edited)
        .up()
        .await
        .unwrap_err();
    assert!(
        format!("{error:#}").contains("changed after it was applied"),
        "{error:#}"
    );
    let status = Migrator::with_migrations(&client, edited)
        .status()
        .await
        .unwrap();
    assert_eq!(status[0].state, State::Edited);
}

#[tokio::test]
async fn concurrent_migrators_apply_each_migration_once_and_no_transaction_scripts_run() {
    let db = cluster().database(false).await;
    let list = leak(vec![
        Migration {
            version: 1,
            name: "things",
            up: "create table public.things (id int primary key, label text); select pg_sleep(0.3);",
            down: "drop table public.things;",
        },
        Migration {
            version: 2,
            name: "things_label_idx",
            up: "-- no-transaction\ncreate index concurrently things_label_idx on public.things (label);\n\
                 create index concurrently things_id_label_idx on public.things (id, label);\n",
            down: "-- no-transaction\ndrop index concurrently public.things_label_idx;\n\
                   drop index concurrently public.things_id_label_idx;\n",
        },
    ]);
    let (a, b) = (db.admin().await, db.admin().await);
    let (ma, mb) = (
        Migrator::with_migrations(&a, list),
        Migrator::with_migrations(&b, list),
    );
    let (ra, rb) = tokio::join!(ma.up(), mb.up());
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    let mut all = [ra, rb].concat();
    all.sort();
    assert_eq!(all, vec![1, 2], "each migration applied exactly once");
    let indexed: bool = a
        .query_one(
            "select to_regclass('public.things_label_idx') is not null",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(indexed);
    assert_eq!(
        Migrator::with_migrations(&a, list)
            .down(Some(0))
            .await
            .unwrap(),
        vec![2, 1]
    );
}

#[tokio::test]
async fn verify_passes_on_the_schema_and_names_every_broken_rule() {
    let db = cluster().database(true).await;
    let client = db.admin().await;
    assert_eq!(
        frontdesk_pg::verify::verify(&client).await.unwrap(),
        Vec::<String>::new()
    );
    client
        .batch_execute(
            "set role frontdesk_owner;
             create table app.widgets (tenant_id uuid not null references app.tenants (id), id uuid not null,
                                       primary key (tenant_id, id));
             alter table app.widgets enable row level security;
             create policy widgets_all on app.widgets to frontdesk_app using (tenant_id = app.current_tenant());
             create table app.gadgets (id uuid primary key, tenant_id uuid not null, widget_id uuid,
                                       foreign key (widget_id, tenant_id) references app.widgets (id, tenant_id));
             alter table app.gadgets enable row level security;
             alter table app.gadgets force row level security;
             create policy gadgets_open on app.gadgets to public using (true);
             create policy gadgets_sub on app.gadgets to frontdesk_app
                 using (tenant_id in (select tenant_id from app.memberships));
             -- The distribution rules: a key unique across tenants (and one on tenants
             -- without its id), a SET NULL key holding tenant_id, an SQL function with
             -- parameters reading a table, a clock in ON CONFLICT DO UPDATE SET, a table's
             -- row type in a signature, SKIP LOCKED across tenants.
             create table app.sprockets (tenant_id uuid not null, id uuid not null, code text not null,
                                         widget_id uuid, seen_at timestamptz,
                                         primary key (tenant_id, id),
                                         constraint sprockets_code_key unique (code),
                                         foreign key (tenant_id, widget_id) references app.widgets (tenant_id, id)
                                             on delete set null (widget_id));
             create index sprockets_widget_idx on app.sprockets (tenant_id, widget_id);
             alter table app.sprockets enable row level security;
             alter table app.sprockets force row level security;
             create policy sprockets_all on app.sprockets to frontdesk_app using (tenant_id = app.current_tenant());
             create unique index tenants_name_idx on app.tenants (name);
             create function app.sprocket_count(p_tenant uuid) returns bigint language sql stable
                 as $$ select count(*) from app.sprockets s where s.tenant_id = p_tenant $$;
             create function app.sprocket_seen(p_tenant uuid, p_id uuid) returns void language plpgsql
                 as $$ begin
                     insert into app.sprockets (tenant_id, id, code) values (p_tenant, p_id, p_id::text)
                     on conflict (tenant_id, id) do update set seen_at = clock_timestamp();
                 end $$;
             create function app.sprocket_code(s app.sprockets) returns text language sql immutable
                 as $$ select s.code $$;
             create function app.claim_sprockets(p_limit integer) returns setof uuid language plpgsql
                 as $$ begin
                     return query select s.id from app.sprockets s where s.seen_at is null
                       limit p_limit for update skip locked;
                 end $$;
             create function app.touch_sprocket(p_tenant uuid, p_id uuid) returns void language plpgsql
                 as $$ begin
                     -- now() in a comment is not a finding
                     update app.sprockets s set seen_at = case when s.seen_at is null then now() end
                      where s.tenant_id = p_tenant and s.id = p_id;
                     delete from app.sprockets s where s.tenant_id = p_tenant and app.is_tenant_staff();
                 end $$;
             reset role;",
        )
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let findings = frontdesk_pg::verify::verify(&client).await.unwrap();
    let joined = findings.join("\n");
    for expected in [
        "app.widgets: holds tenant_id but row-level security is not forced",
        "app.gadgets: primary key gadgets_pkey must start with tenant_id",
        "app.gadgets policy gadgets_open: applies to PUBLIC",
        "app.gadgets policy gadgets_open: USING (true)",
        "app.gadgets policy gadgets_sub: USING contains a subquery",
        "app.gadgets: foreign key gadgets_widget_id_tenant_id_fkey to tenant table app.widgets must be composite",
        "app.gadgets: foreign key gadgets_widget_id_tenant_id_fkey has no index",
        "app.sprockets: unique key sprockets_code_key does not hold tenant_id",
        "app.tenants: unique key tenants_name_idx does not hold id",
        "app.sprockets: foreign key sprockets_tenant_id_widget_id_fkey holds tenant_id and sets null",
        "app.sprocket_count(uuid): is an SQL function with parameters that reads tables",
        "app.sprocket_seen(uuid,uuid): ON CONFLICT DO UPDATE SET calls clock_timestamp",
        "app.sprocket_code(app.sprockets): has the row type of table app.sprockets in its signature",
        "app.claim_sprockets(integer): locks with SKIP LOCKED across tenants",
        "app.touch_sprocket(uuid,uuid): an UPDATE or DELETE calls app.is_tenant_staff, now inside CASE or COALESCE",
    ] {
        assert!(
            joined.contains(expected),
            "missing finding {expected:?} in:\n{joined}"
        );
    }
    client
        .batch_execute("alter table app.widgets force row level security")
        .await
        .unwrap();
    let findings = frontdesk_pg::verify::verify(&client).await.unwrap();
    assert!(
        !findings.iter().any(|f| f.starts_with("app.widgets")),
        "{findings:?}"
    );
}

/// Send a hand-written context and `assert_principal`; the SQLSTATE if refused.
async fn hand_context(client: &tokio_postgres::Client, sql: &str) -> Option<String> {
    let result = client
        .batch_execute(&format!("begin; {sql} select app.assert_principal();"))
        .await;
    let _ = client.batch_execute("rollback").await;
    result
        .err()
        .map(|e| e.code().map(|c| c.code().to_owned()).unwrap_or_default())
}

#[tokio::test]
async fn the_database_refuses_a_context_that_does_not_match_memberships_and_keys() {
    let app = spawn_app().await;
    let a = seed_tenant(&app, "ctx-a").await;
    let b = seed_tenant(&app, "ctx-b").await;
    let client = app.db.app_login().await;
    let user = |tenant: Uuid, user: Uuid, role: &str| {
        format!(
            "set local frontdesk.caller_kind = 'user'; set local frontdesk.tenant_id = '{tenant}';
             set local frontdesk.user_id = '{user}'; set local frontdesk.member_role = '{role}';"
        )
    };
    let key = |tenant: Uuid, key: Uuid, scope: &str| {
        format!(
            "set local frontdesk.caller_kind = 'key'; set local frontdesk.tenant_id = '{tenant}';
             set local frontdesk.key_id = '{key}'; set local frontdesk.key_scope = '{scope}';"
        )
    };
    // The real contexts pass.
    assert_eq!(
        hand_context(&client, &user(a.id, a.owner, "owner")).await,
        None
    );
    assert_eq!(
        hand_context(&client, &user(a.id, a.member, "member")).await,
        None
    );
    assert_eq!(
        hand_context(&client, &key(a.id, a.full_key_id, "full")).await,
        None
    );
    assert_eq!(
        hand_context(&client, &key(a.id, a.read_key_id, "read")).await,
        None
    );
    let refused = Some("42501".to_owned());
    // A tenant the user is not a member of; a role they do not have.
    assert_eq!(
        hand_context(&client, &user(a.id, b.owner, "owner")).await,
        refused
    );
    assert_eq!(
        hand_context(&client, &user(a.id, a.member, "admin")).await,
        refused
    );
    assert_eq!(
        hand_context(&client, &user(a.id, a.member, "")).await,
        refused
    );
    // Another tenant's key; a scope the key lacks; a user pretending to be a key.
    assert_eq!(
        hand_context(&client, &key(a.id, b.full_key_id, "full")).await,
        refused
    );
    assert_eq!(
        hand_context(&client, &key(a.id, a.read_key_id, "full")).await,
        refused
    );
    assert_eq!(
        hand_context(
            &client,
            &format!(
                "{} set local frontdesk.key_id = '{}';",
                user(a.id, a.owner, "owner"),
                a.full_key_id
            )
        )
        .await,
        refused
    );
    // The service role with a user's settings, and no settings at all.
    assert_eq!(
        hand_context(&client, &format!("set local frontdesk.caller_kind = 'key'; set local frontdesk.tenant_id = '{}'; set local frontdesk.user_id = '{}';", a.id, a.owner)).await,
        refused
    );
    assert_eq!(
        hand_context(&client, "set local frontdesk.caller_kind = 'user';").await,
        refused
    );
    // A revoked key.
    app.db
        .admin()
        .await
        .execute(
            "update app.api_keys set revoked_at = now() where id = $1",
            &[&a.full_key_id],
        )
        .await
        .unwrap();
    assert_eq!(
        hand_context(&client, &key(a.id, a.full_key_id, "full")).await,
        refused
    );
    // A context resolved before the tenant's slug or active flag changed is refused (0010):
    // the server then looks the tenant up afresh.
    let versioned = |v: &str| {
        format!(
            "{} set local frontdesk.tenant_version = '{v}';",
            user(b.id, b.owner, "owner")
        )
    };
    assert_eq!(hand_context(&client, &versioned("0")).await, None);
    app.db
        .admin()
        .await
        .execute(
            "update app.tenants set slug = 'ctx-b-renamed' where id = $1",
            &[&b.id],
        )
        .await
        .unwrap();
    assert_eq!(hand_context(&client, &versioned("0")).await, refused);
    assert_eq!(hand_context(&client, &versioned("1")).await, None);
    for bad in ["-1", "x", "99999999999999999999"] {
        assert_eq!(
            hand_context(&client, &versioned(bad)).await,
            refused,
            "{bad}"
        );
    }
    // The request login without a context sees no tenant's rows, and cannot become the owner.
    assert!(
        client
            .query("select * from app.tenants", &[])
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        client
            .batch_execute("set role frontdesk_owner")
            .await
            .is_err()
    );
}

#[tokio::test]
async fn one_pooled_connection_serves_two_tenants_in_a_row_without_leaking() {
    let app = spawn_app().await;
    let a = seed_tenant(&app, "pool-a").await;
    let b = seed_tenant(&app, "pool-b").await;
    let pool = app.db.db(1);
    let context = |tenant: Uuid, user: Uuid| RequestContext {
        tenant: Some(tenant),
        tenant_version: None,
        principal: Principal::User {
            id: user,
            role: Some(MemberRole::Owner),
        },
        read_only: true,
    };
    let visible = "select id::text, current_setting('frontdesk.tenant_id', true), current_user::text from app.tenants";
    let mut tx = Tx::begin(&pool, &context(a.id, a.owner)).await.unwrap();
    let rows = tx.query(visible, &[]).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, String>(0), a.id.to_string());
    tx.commit().await.unwrap();

    // A transaction abandoned halfway (an error, a panic, a dropped future)…
    let mut abandoned = Tx::begin(&pool, &context(a.id, a.owner)).await.unwrap();
    abandoned.query(visible, &[]).await.unwrap();
    drop(abandoned);

    // …and the same connection serves B with nothing of A left.
    let mut tx = Tx::begin(&pool, &context(b.id, b.owner)).await.unwrap();
    let rows = tx.query(visible, &[]).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, String>(0), b.id.to_string());
    assert_eq!(rows[0].get::<_, String>(1), b.id.to_string());
    assert_eq!(rows[0].get::<_, String>(2), "frontdesk_app");
    tx.commit().await.unwrap();

    // A one-statement read can carry its COMMIT in the same round trip; nothing may follow.
    let mut tx = Tx::begin(&pool, &context(a.id, a.owner)).await.unwrap();
    tx.last();
    assert_eq!(tx.query(visible, &[]).await.unwrap().len(), 1);
    assert!(matches!(
        tx.query(visible, &[]).await,
        Err(frontdesk_pg::DbError::Finished)
    ));
    tx.commit().await.unwrap();

    // Outside any transaction the connection carries no context at all.
    let conn = pool.app().get().await.unwrap();
    let row = conn
        .query_one(
            "select coalesce(current_setting('frontdesk.tenant_id', true), ''), current_user::text",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "");
    assert_eq!(row.get::<_, String>(1), "frontdesk_app");
    assert_eq!(pool.app().status().size, 1, "one connection throughout");

    // A read key's transaction is read-only in the database too.
    drop(conn);
    let mut tx = Tx::begin(
        &pool,
        &RequestContext {
            tenant: Some(a.id),
            tenant_version: None,
            principal: Principal::Key {
                id: a.read_key_id,
                scope: KeyScope::Read,
            },
            read_only: true,
        },
    )
    .await
    .unwrap();
    let error = tx
        .execute("update app.tenants set name = 'x' where id = $1", &[&a.id])
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some("25006"), "{error:?}");
}

/// A message moves its conversation's counters without calling the conversation's touch
/// and state-history triggers (the message trigger sets `updated_at` itself); a handoff,
/// which they do watch, still calls both.
#[tokio::test]
async fn a_message_does_not_fire_the_conversations_touch_and_record_triggers() {
    let app = spawn_app().await;
    let a = seed_tenant(&app, "fire-a").await;
    let client = app.db.admin().await;
    let calls = async |function: &str| -> i64 {
        client
            .query_one(
                "select coalesce(sum(calls), 0)::bigint from pg_stat_xact_user_functions
                  where schemaname = 'app' and funcname = $1",
                &[&function],
            )
            .await
            .unwrap()
            .get(0)
    };
    client
        .batch_execute(&format!(
            "begin; set local track_functions = 'pl'; set local frontdesk.caller_kind = 'operator';
             set local frontdesk.tenant_id = '{}';",
            a.id
        ))
        .await
        .unwrap();
    let before: chrono::DateTime<chrono::Utc> = client
        .query_one(
            "select updated_at from app.conversations where tenant_id = $1 and id = $2",
            &[&a.id, &a.conversation],
        )
        .await
        .unwrap()
        .get(0);
    client
        .execute(
            "insert into app.messages (tenant_id, id, conversation_id, role, content)
             values ($1, app.uuid_v7(), $2, 'user', 'hello')",
            &[&a.id, &a.conversation],
        )
        .await
        .unwrap();
    assert_eq!(calls("messages_count_in_conversation").await, 1);
    assert_eq!(calls("touch_updated_at").await, 0);
    assert_eq!(calls("conversations_record").await, 0);
    let after: chrono::DateTime<chrono::Utc> = client
        .query_one(
            "select updated_at from app.conversations where tenant_id = $1 and id = $2",
            &[&a.id, &a.conversation],
        )
        .await
        .unwrap()
        .get(0);
    assert!(after > before, "a message moves updated_at");
    client
        .execute(
            "update app.conversations set handoff_at = now(), handoff_reason = 'help'
              where tenant_id = $1 and id = $2",
            &[&a.id, &a.conversation],
        )
        .await
        .unwrap();
    assert_eq!(calls("touch_updated_at").await, 1);
    assert_eq!(calls("conversations_record").await, 1);
    client.batch_execute("rollback").await.unwrap();
}

/// Both forms of sending the context (the prepared `set_config` statement, and separate
/// `SET LOCAL`s for Citus) set the same settings, pass the database's check for a real
/// principal, and are refused for a wrong one — on the request login, never a role switch.
#[tokio::test]
async fn both_context_forms_set_the_same_settings_and_are_checked_alike() {
    let app = spawn_app().await;
    let a = seed_tenant(&app, "forms-a").await;
    let b = seed_tenant(&app, "forms-b").await;
    let settings = "select current_user::text, current_setting('frontdesk.caller_kind'),
                           current_setting('frontdesk.tenant_id'), coalesce(current_setting('frontdesk.user_id', true), ''),
                           coalesce(current_setting('frontdesk.member_role', true), ''),
                           coalesce(current_setting('frontdesk.key_id', true), ''),
                           coalesce(current_setting('frontdesk.key_scope', true), '')";
    let mut seen = Vec::new();
    for mode in [ContextMode::Prepared, ContextMode::SetLocal] {
        let db = app.db.db(1);
        let db = frontdesk_pg::Db::new(db.app().clone(), db.operator().clone(), mode);
        for principal in [
            Principal::User {
                id: a.owner,
                role: Some(MemberRole::Owner),
            },
            Principal::Key {
                id: a.read_key_id,
                scope: KeyScope::Read,
            },
        ] {
            let context = RequestContext {
                tenant: Some(a.id),
                tenant_version: None,
                principal,
                read_only: true,
            };
            let mut tx = Tx::begin(&db, &context).await.unwrap();
            let row = tx.query_one(settings, &[]).await.unwrap();
            tx.commit().await.unwrap();
            let values: Vec<String> = (0..7).map(|i| row.get::<_, String>(i)).collect();
            assert_eq!(values[0], "frontdesk_app", "{mode:?}");
            seen.push(values);
        }
        // A's owner claiming B, and A's read key claiming full scope: refused by the database.
        for principal in [
            Principal::User {
                id: a.owner,
                role: Some(MemberRole::Owner),
            },
            Principal::Key {
                id: a.read_key_id,
                scope: KeyScope::Full,
            },
        ] {
            let tenant = if matches!(principal, Principal::User { .. }) {
                b.id
            } else {
                a.id
            };
            let context = RequestContext {
                tenant: Some(tenant),
                tenant_version: None,
                principal,
                read_only: false,
            };
            let mut tx = Tx::begin(&db, &context).await.unwrap();
            let error = tx.query("select 1", &[]).await.unwrap_err();
            assert!(error.is_refused_principal(), "{mode:?}: {error:?}");
        }
        // The operator's pool logs in as the operator, which the check requires.
        let mut tx = Tx::begin(
            &db,
            &RequestContext {
                tenant: None,
                tenant_version: None,
                principal: Principal::Operator,
                read_only: true,
            },
        )
        .await
        .unwrap();
        let row = tx
            .query_one("select current_user::text", &[])
            .await
            .unwrap();
        assert_eq!(row.get::<_, String>(0), "frontdesk_operator");
        tx.commit().await.unwrap();
    }
    assert_eq!(
        seen[0], seen[2],
        "a user's settings differ between the forms"
    );
    assert_eq!(
        seen[1], seen[3],
        "a key's settings differ between the forms"
    );
    assert_eq!(seen[0][1], "user");
    assert_eq!(seen[1][1], "key");
    assert_eq!(seen[1][6], "read");

    // The operator kind on the request login is refused.
    let db = app.db.db(1);
    let db = frontdesk_pg::Db::new(db.app().clone(), db.app().clone(), ContextMode::Prepared);
    let mut tx = Tx::begin(
        &db,
        &RequestContext {
            tenant: None,
            tenant_version: None,
            principal: Principal::Operator,
            read_only: true,
        },
    )
    .await
    .unwrap();
    let error = tx.query("select 1", &[]).await.unwrap_err();
    assert!(error.is_refused_principal(), "{error:?}");
}

/// The references that `ON DELETE SET NULL` used to clear are cleared by the referenced
/// table's delete triggers (0007): a removed member is no longer a conversation's owner or
/// assignee, a deleted contact no longer a conversation's contact; the rows stay.
#[tokio::test]
async fn deleting_a_member_or_a_contact_clears_the_conversations_references_to_it() {
    let app = spawn_app().await;
    let a = seed_tenant(&app, "clear-a").await;
    let client = app.db.admin().await;
    let tenant = a.id;
    let conversation = |id: Uuid| {
        let client = &client;
        async move {
            let row = client
                .query_one(
                    "select user_id, assignee_id, contact_id from app.conversations
                      where tenant_id = $1 and id = $2",
                    &[&tenant, &id],
                )
                .await
                .unwrap();
            (
                row.get::<_, Option<Uuid>>(0),
                row.get::<_, Option<Uuid>>(1),
                row.get::<_, Option<Uuid>>(2),
            )
        }
    };
    client
        .execute(
            "update app.conversations set assignee_id = $3 where tenant_id = $1 and id = $2",
            &[&a.id, &a.member_conversation, &a.agent],
        )
        .await
        .unwrap();
    assert_eq!(
        conversation(a.member_conversation).await,
        (Some(a.member), Some(a.agent), None)
    );
    assert_eq!(conversation(a.conversation).await.2, Some(a.contact));
    client
        .batch_execute(&format!(
            "begin; set local frontdesk.caller_kind = 'user'; set local frontdesk.tenant_id = '{}';
             set local frontdesk.user_id = '{}'; set local frontdesk.member_role = 'owner';
             delete from app.memberships where tenant_id = '{0}' and user_id in ('{}', '{}');
             delete from app.contacts where tenant_id = '{0}' and id = '{}';
             commit;",
            a.id, a.owner, a.member, a.agent, a.contact
        ))
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(
        conversation(a.member_conversation).await,
        (None, None, None)
    );
    assert_eq!(conversation(a.conversation).await.2, None);
}

/// Slugs and key hashes are looked up in global tables (0007), kept by triggers on the
/// tenant's rows: a renamed slug resolves at once and the old one no longer does, a
/// deleted tenant leaves neither its slug nor its keys' hashes behind, and the request
/// roles cannot read either table.
#[tokio::test]
async fn slugs_and_key_hashes_are_kept_in_their_global_lookups() {
    let app = spawn_app().await;
    let a = seed_tenant(&app, "lookup-a").await;
    let admin = app.db.admin().await;
    let auth = app.db.app_login().await;
    let resolve = async |reference: &str| -> Option<Uuid> {
        let row = match reference.parse::<Uuid>() {
            Ok(id) => {
                auth.query_opt("select tenant_id from app.tenant_by_id($1, null)", &[&id])
                    .await
            }
            Err(_) => {
                auth.query_opt(
                    "select tenant_id from app.tenant_by_slug($1, null)",
                    &[&reference],
                )
                .await
            }
        };
        row.unwrap().map(|r| r.get(0))
    };
    assert_eq!(resolve("lookup-a").await, Some(a.id));
    assert_eq!(resolve(&a.id.to_string()).await, Some(a.id));
    let renamed = app
        .patch(
            &format!("/v1/tenants/{}", a.id),
            &a.owner_token,
            frontdesk_test::json!({"slug": "lookup-renamed"}),
        )
        .await;
    assert_eq!(renamed.status, 200, "{}", renamed.text);
    assert_eq!(resolve("lookup-renamed").await, Some(a.id));
    assert_eq!(resolve("lookup-a").await, None);
    // A second tenant may not take the slug; once A gives it up, it may.
    let b = seed_tenant(&app, "lookup-b").await;
    let taken = app
        .patch(
            &format!("/v1/tenants/{}", b.id),
            &b.owner_token,
            frontdesk_test::json!({"slug": "lookup-renamed"}),
        )
        .await;
    assert_eq!(taken.status, 409, "{}", taken.text);
    assert_eq!(resolve("lookup-renamed").await, Some(a.id));
    // A slug changed behind the API's back resolves to nothing rather than to a stale tenant.
    admin
        .execute(
            "update app.tenants set slug = 'lookup-sideways' where id = $1",
            &[&b.id],
        )
        .await
        .unwrap();
    assert_eq!(resolve("lookup-b").await, None);

    use sha2::Digest;
    let hash = sha2::Sha256::digest(a.full_key.as_bytes()).to_vec();
    let found: Vec<Uuid> = auth
        .query("select key_id from app.authenticate_key($1)", &[&hash])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(found, vec![a.full_key_id]);

    let operator = frontdesk_pg::pool::connect(&app.db.config_as(frontdesk_pg::roles::OPERATOR))
        .await
        .unwrap();
    for table in ["tenant_slugs", "api_key_hashes"] {
        for (login, kind) in [(&auth, "user"), (&auth, "key"), (&operator, "operator")] {
            let read = login
                .batch_execute(&format!(
                    "begin; set local frontdesk.caller_kind = '{kind}'; select * from app.{table}; rollback;"
                ))
                .await;
            let _ = login.batch_execute("rollback").await;
            assert!(read.is_err(), "the {kind} kind reads app.{table}");
        }
    }

    let deleted = app
        .delete(&format!("/v1/tenants/{}", a.id), &a.owner_token)
        .await;
    assert!(deleted.status.is_success(), "{}", deleted.text);
    let left: i64 = admin
        .query_one(
            "select (select count(*) from app.tenant_slugs where tenant = $1)
                  + (select count(*) from app.api_key_hashes where tenant = $1)",
            &[&a.id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
    assert!(resolve("lookup-renamed").await.is_none());
}

/// 0014 copies the channel ids contacts already hold into app.contact_channels (a WhatsApp
/// id written as a number becomes its digits), and stops with a message naming contacts
/// that share an id, changing nothing, rather than dropping one of them.
#[tokio::test]
async fn the_channel_migration_copies_existing_ids_and_refuses_shared_ones() {
    let db = cluster().database(true).await;
    let client = db.admin().await;
    let migrator = Migrator::new(&client);
    migrator.down(Some(13)).await.unwrap();
    let before = catalog(&client).await;
    let tenant = Uuid::now_v7();
    client
        .execute(
            "insert into app.tenants (id, slug, name) values ($1, 'legacy-ids', 'Legacy')",
            &[&tenant],
        )
        .await
        .unwrap();
    let (budi, sari, copy) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    client
        .execute(
            r#"insert into app.contacts (tenant_id, id, name, channel_ids) values
                 ($1, $2, 'Budi', '{"whatsapp": "+62 811-1234-567", "telegram": "@budi"}'),
                 ($1, $3, 'Sari', '{"whatsapp": "628111234568"}'),
                 ($1, $4, 'Copy', '{"whatsapp": "628111234567"}')"#,
            &[&tenant, &budi, &sari, &copy],
        )
        .await
        .unwrap();
    let error = format!("{:#}", migrator.up().await.unwrap_err());
    assert!(
        error.contains("contacts share an id on a channel") && error.contains(&copy.to_string()),
        "{error}"
    );
    assert_eq!(
        catalog(&client).await,
        before,
        "the failed migration left changes"
    );
    client
        .execute(
            "delete from app.contacts where tenant_id = $1 and id = $2",
            &[&tenant, &copy],
        )
        .await
        .unwrap();
    migrator.up().await.unwrap();
    let rows: Vec<(Uuid, String, String)> = client
        .query(
            "select contact_id, channel, external_id from app.contact_channels
              where tenant_id = $1 order by contact_id, channel",
            &[&tenant],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let row =
        |id: Uuid, channel: &str, external: &str| (id, channel.to_owned(), external.to_owned());
    assert_eq!(
        rows,
        [
            row(budi, "telegram", "@budi"),
            row(budi, "whatsapp", "628111234567"),
            row(sari, "whatsapp", "628111234568"),
        ]
    );
    let stored: serde_json::Value = client
        .query_one(
            "select channel_ids from app.contacts where tenant_id = $1 and id = $2",
            &[&tenant, &budi],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        stored,
        serde_json::json!({"whatsapp": "628111234567", "telegram": "@budi"})
    );
}
