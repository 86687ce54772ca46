//! Frontdesk on Citus: a coordinator and two workers (Citus 13 for PostgreSQL 15),
//! `migrate up` distributing the schema, tenant data on the shards, and the API.
//! Skipped with a message where Citus is not installed; never skipped under CI.

use std::sync::OnceLock;

use frontdesk_pg::migrate::{MIGRATIONS, Migration, Migrator, State};
use frontdesk_test::{
    TestDb,
    citus::{self, Citus},
    json, user_token,
};
use uuid::Uuid;

/// One Citus cluster for this test binary (its nodes are stopped and deleted when the
/// binary exits), or None where Citus is not installed.
fn cluster() -> Option<&'static Citus> {
    static CITUS: OnceLock<Option<Citus>> = OnceLock::new();
    CITUS
        .get_or_init(|| {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(
                    std::env::var("FRONTDESK_TEST_LOG").unwrap_or_else(|_| "warn".into()),
                )
                .with_test_writer()
                .try_init();
            citus::start()
        })
        .as_ref()
}

/// A fresh database on the Citus cluster, or None (skip).
async fn database(prefix: &str) -> Option<TestDb> {
    let citus = cluster()?;
    let name = format!("{prefix}_{}", Uuid::new_v4().simple());
    Some(citus.database(&name).await)
}

/// A database migrated with `migrations`, and its admin (superuser) connection.
async fn migrated(prefix: &str) -> Option<(TestDb, tokio_postgres::Client)> {
    let db = database(prefix).await?;
    // The nodes turn unsafe triggers on server-wide; off here, so that what `migrate up`
    // sets itself is what makes the triggers distributable.
    db.admin()
        .await
        .batch_execute(&format!(
            "alter database {} set citus.enable_unsafe_triggers = off",
            db.name
        ))
        .await
        .unwrap();
    let client = db.admin().await;
    let applied = Migrator::new(&client)
        .up()
        .await
        .unwrap_or_else(|e| panic!("migrate up on Citus: {e:#}"));
    assert_eq!(applied.len(), MIGRATIONS.len());
    Some((db, client))
}

/// How every table of schema `app` is placed: (table, kind, distribution column,
/// colocation id); kind is Citus's `citus_table_type` or "local".
async fn placement(client: &tokio_postgres::Client) -> Vec<(String, String, String, i32)> {
    client
        .query(
            "select c.relname::text, coalesce(t.citus_table_type, 'local'),
                    coalesce(t.distribution_column::text, ''), coalesce(t.colocation_id, 0)
             from pg_class c join pg_namespace n on n.oid = c.relnamespace
             left join citus_tables t on t.table_name = c.oid
             where n.nspname = 'app' and c.relkind in ('r', 'p') and not c.relispartition
             order by 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect()
}

/// Every tenant table distributed by tenant_id co-located with app.tenants (distributed
/// by id), every other table a reference table; schema_migrations stays local.
async fn assert_distributed(client: &tokio_postgres::Client) {
    let tenant_tables = frontdesk_test::tenant_tables(client).await;
    let placement = placement(client).await;
    let tenants = placement
        .iter()
        .find(|p| p.0 == "tenants")
        .expect("app.tenants");
    assert_eq!(
        (tenants.1.as_str(), tenants.2.as_str()),
        ("distributed", "id"),
        "{placement:#?}"
    );
    let mut wrong = Vec::new();
    for (table, kind, column, colocation) in &placement {
        let ok = if table == "tenants" {
            true
        } else if tenant_tables.contains(table) {
            kind == "distributed" && column == "tenant_id" && *colocation == tenants.3
        } else {
            kind == "reference"
        };
        if !ok {
            wrong.push(format!(
                "{table}: {kind} by {column:?}, colocation {colocation}"
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "tables not placed as they should be (tenant tables distributed by tenant_id with \
         app.tenants, colocation {}; others reference tables):\n{}",
        tenants.3,
        wrong.join("\n")
    );
    let bookkeeping_local: bool = client
        .query_one(
            "select not exists (select from pg_dist_partition
                                where logicalrelid = 'frontdesk_meta.schema_migrations'::regclass)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        bookkeeping_local,
        "schema_migrations must stay a local table of the coordinator"
    );
}

#[tokio::test]
async fn migrate_up_distributes_tenant_tables_with_tenants_and_makes_the_others_reference_tables() {
    let Some((_db, client)) = migrated("fresh").await else {
        return;
    };
    assert_distributed(&client).await;
    // Every shard of the tenant tables lives on a worker, none on the coordinator.
    let nodes: Vec<i32> = client
        .query(
            "select distinct nodeport from citus_shards where citus_table_type = 'distributed' order by 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let citus = cluster().unwrap();
    let workers: Vec<i32> = citus
        .workers
        .iter()
        .map(|w| i32::from(w.tcp_port().unwrap()))
        .collect();
    let mut expected = workers.clone();
    expected.sort();
    assert_eq!(nodes, expected, "shards on both workers only");
    // A second `up` has nothing to do, and the bookkeeping says so.
    let migrator = Migrator::new(&client);
    assert_eq!(migrator.up().await.unwrap(), Vec::<u32>::new());
    assert!(
        migrator
            .status()
            .await
            .unwrap()
            .iter()
            .all(|s| matches!(s.state, State::Applied { .. }))
    );
}

/// A later migration adding a global table, a tenant table with keys to app.tenants, a
/// tenant table and the global one, a trigger and a policy, and a column to a
/// distributed table (and, in `with_later`, a `-- no-transaction` one adding indexes).
const LATER: &str = "
-- A later feature, on a database that is already distributed.
create table app.citus_probe_kinds (
    kind text primary key,
    label text not null
);
insert into app.citus_probe_kinds values ('note', 'A note'), ('todo', 'To do');

create table app.citus_probe_notes (
    tenant_id       uuid not null references app.tenants (id) on delete cascade,
    id              uuid not null,
    conversation_id uuid not null,
    kind            text not null references app.citus_probe_kinds (kind),
    body            text not null,
    updated_at      timestamptz not null default now(),
    constraint citus_probe_notes_pkey primary key (tenant_id, id),
    constraint citus_probe_notes_conversation_fkey foreign key (tenant_id, conversation_id)
        references app.conversations (tenant_id, id) on delete cascade
);
create trigger citus_probe_notes_touch before update on app.citus_probe_notes
    for each row execute function app.touch_updated_at();
alter table app.citus_probe_notes enable row level security;
alter table app.citus_probe_notes force row level security;
create policy citus_probe_notes_tenant on app.citus_probe_notes to frontdesk_app
    using (tenant_id = app.current_tenant());

alter table app.conversations add column citus_probe text;
";

fn with_later() -> &'static [Migration] {
    let mut all: Vec<Migration> = MIGRATIONS
        .iter()
        .map(|m| Migration {
            version: m.version,
            name: m.name,
            up: m.up,
            down: m.down,
        })
        .collect();
    all.push(Migration {
        version: 9001,
        name: "citus_probe",
        up: LATER,
        down: "drop table app.citus_probe_notes; drop table app.citus_probe_kinds; \
               alter table app.conversations drop column citus_probe;",
    });
    // A `-- no-transaction` script on distributed tables, statement by statement.
    all.push(Migration {
        version: 9002,
        name: "citus_probe_index",
        up: "-- no-transaction\n\
             create index concurrently citus_probe_notes_kind_idx on app.citus_probe_notes (tenant_id, kind);\n\
             create index concurrently conversations_citus_probe_idx on app.conversations (tenant_id, citus_probe);\n",
        down: "-- no-transaction\n\
               drop index concurrently app.conversations_citus_probe_idx;\n\
               drop index concurrently app.citus_probe_notes_kind_idx;\n",
    });
    Box::leak(all.into_boxed_slice())
}

#[tokio::test]
async fn a_later_migration_adding_tables_distributes_them_on_an_already_distributed_database() {
    let Some((_db, client)) = migrated("upgrade").await else {
        return;
    };
    let applied = Migrator::with_migrations(&client, with_later())
        .up()
        .await
        .unwrap_or_else(|e| panic!("the later migration on Citus: {e:#}"));
    assert_eq!(applied, vec![9001, 9002]);
    let indexes: Vec<String> = client
        .query(
            "select result from run_command_on_shards('app.conversations',
                 $$select count(*) from pg_index where indrelid = '%s'::regclass
                   and indexrelid::regclass::text like '%%conversations_citus_probe_idx%%'$$)",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        !indexes.is_empty() && indexes.iter().all(|n| n == "1"),
        "the concurrent index on every shard: {indexes:?}"
    );
    assert_distributed(&client).await;
    let placed = placement(&client).await;
    assert!(
        placed
            .iter()
            .any(|p| p.0 == "citus_probe_notes" && p.1 == "distributed")
    );
    // The keys came back, on every shard: a note of a tenant that does not exist is
    // refused, and each shard of the new table has its three foreign keys.
    let missing = client
        .execute(
            "insert into app.citus_probe_notes (tenant_id, id, conversation_id, kind, body)
             values ($1, $2, $3, 'note', 'hello')",
            &[&Uuid::now_v7(), &Uuid::now_v7(), &Uuid::now_v7()],
        )
        .await
        .unwrap_err();
    assert_eq!(
        missing.code(),
        Some(&tokio_postgres::error::SqlState::FOREIGN_KEY_VIOLATION),
        "{missing:?}"
    );
    let keys: Vec<String> = client
        .query(
            "select result from run_command_on_shards('app.citus_probe_notes',
                 $$select count(*) from pg_constraint where conrelid = '%s'::regclass and contype = 'f'$$)",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        !keys.is_empty() && keys.iter().all(|k| k == "3"),
        "foreign keys per shard: {keys:?}"
    );
    // The new column of a distributed table reached its shards.
    client
        .query("select citus_probe from app.conversations limit 1", &[])
        .await
        .expect("the new column on the shards");
    // Down drops the distributed tables; up again distributes them again.
    let migrator = Migrator::with_migrations(&client, with_later());
    let before = MIGRATIONS.last().unwrap().version;
    assert_eq!(migrator.down(Some(before)).await.unwrap(), vec![9002, 9001]);
    assert!(
        !placement(&client)
            .await
            .iter()
            .any(|p| p.0.starts_with("citus_probe"))
    );
    assert_eq!(migrator.up().await.unwrap(), vec![9001, 9002]);
    assert_distributed(&client).await;
}

/// Begin a transaction with the tenant in context, as the owner's triggers need it (each
/// statement on its own: Citus replays `SET LOCAL` on the workers it reaches).
async fn begin_in_tenant(client: &tokio_postgres::Client, tenant: Uuid) {
    client.batch_execute("begin").await.unwrap();
    client
        .batch_execute(&format!("set local frontdesk.tenant_id = '{tenant}'"))
        .await
        .unwrap();
    // Staff of the tenant: the triggers' own updates are held to the tenant's policies.
    client
        .batch_execute("set local frontdesk.member_role = 'owner'")
        .await
        .unwrap();
}

/// A tenant with an assistant of a built-in flow and a conversation, written as the
/// superuser with the tenant in context.
async fn tenant_with_conversation(client: &tokio_postgres::Client) -> (Uuid, Uuid) {
    let (tenant, assistant, conversation) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let slug = format!("t{}", &tenant.simple().to_string()[20..]);
    begin_in_tenant(client, tenant).await;
    client
        .execute(
            "insert into app.tenants (id, slug, name) values ($1, $2, 'A tenant')",
            &[&tenant, &slug],
        )
        .await
        .expect("insert a tenant");
    client
        .execute(
            "insert into app.assistants (tenant_id, id, name, flow_key) values ($1, $2, 'ARI', 'ari_sales')",
            &[&tenant, &assistant],
        )
        .await
        .expect("insert an assistant");
    client
        .execute(
            "insert into app.conversations (tenant_id, id, assistant_id) values ($1, $2, $3)",
            &[&tenant, &conversation, &assistant],
        )
        .await
        .expect("insert a conversation");
    client.batch_execute("commit").await.expect("commit");
    (tenant, conversation)
}

#[tokio::test]
async fn tenant_rows_written_through_the_coordinator_live_on_the_shards_and_read_back() {
    let Some((_db, client)) = migrated("rows").await else {
        return;
    };
    let (tenant, conversation) = tenant_with_conversation(&client).await;
    begin_in_tenant(&client, tenant).await;
    for (role, content) in [("user", "Hello"), ("assistant", "Hi, how can I help?")] {
        client
            .execute(
                "insert into app.messages (tenant_id, id, conversation_id, role, content)
                 values ($1, $2, $3, $4, $5)",
                &[&tenant, &Uuid::now_v7(), &conversation, &role, &content],
            )
            .await
            .unwrap_or_else(|e| panic!("insert a message: {e:?}"));
    }
    client.batch_execute("commit").await.unwrap();
    let contents: Vec<String> = client
        .query(
            "select content from app.messages where tenant_id = $1 and conversation_id = $2 order by id",
            &[&tenant, &conversation],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(contents, ["Hello", "Hi, how can I help?"]);
    // The messages trigger on the shard kept the conversation's counter.
    let count: i64 = client
        .query_one(
            "select message_count from app.conversations where tenant_id = $1 and id = $2",
            &[&tenant, &conversation],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 2);
    // Everything of the tenant sits in one shard group, on one worker.
    let nodes: Vec<i32> = client
        .query(
            "select distinct s.nodeport from citus_shards s
             where s.citus_table_type = 'distributed'
               and s.shardid in (select get_shard_id_for_distribution_column(t.table_name, $1::uuid)
                                 from citus_tables t where t.citus_table_type = 'distributed')",
            &[&tenant],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let workers: Vec<i32> = cluster()
        .unwrap()
        .workers
        .iter()
        .map(|w| i32::from(w.tcp_port().unwrap()))
        .collect();
    assert!(
        nodes.len() == 1 && workers.contains(&nodes[0]),
        "a tenant's shards are co-located on one worker: {nodes:?} (workers {workers:?})"
    );
}

/// A server on the coordinator, its request path as `frontdesk serve` picks it on Citus:
/// the login roles, the context as separate SET LOCALs.
async fn server_on_coordinator(db: TestDb) -> frontdesk_test::TestApp {
    let pool = |role| frontdesk_pg::pool::build(db.config_as(role), 8).expect("pool");
    let pools = frontdesk_pg::Db::new(
        pool(frontdesk_pg::roles::APP),
        pool(frontdesk_pg::roles::OPERATOR),
        frontdesk_pg::ContextMode::SetLocal,
    );
    frontdesk_test::start_app_on_pools(db, pools, Default::default()).await
}

/// The API's first steps on Citus: sign in, create a tenant, an assistant, a
/// conversation and a message, and read them back. Each failure is listed.
#[tokio::test]
async fn the_api_creates_and_reads_a_tenants_conversation() {
    let Some((db, _client)) = migrated("api").await else {
        return;
    };
    let app = server_on_coordinator(db).await;
    let mut failures = Vec::new();
    let mut check = |what: &str, reply: &frontdesk_test::Reply, status: u16| {
        if reply.status.as_u16() != status {
            failures.push(format!("{what}: {} {}", reply.status, reply.text));
            false
        } else {
            true
        }
    };
    let owner = Uuid::now_v7();
    let token = user_token(owner, Some("owner@citus.test"));
    let me = app.get("/v1/me", &token).await;
    check("GET /v1/me", &me, 200);
    let tenant = app
        .post(
            "/v1/tenants",
            &token,
            json!({"slug": "citus", "name": "Citus tenant"}),
        )
        .await;
    if check("POST /v1/tenants", &tenant, 201) {
        let base = "/v1/tenants/citus";
        check("GET tenant", &app.get(base, &token).await, 200);
        let assistant = app
            .post(
                &format!("{base}/assistants"),
                &token,
                json!({"name": "ARI", "channel": "web", "flow": "ari_sales"}),
            )
            .await;
        if check("POST assistant", &assistant, 201) {
            let conversation = app
                .post(
                    &format!("{base}/conversations"),
                    &token,
                    json!({"assistant_id": assistant.body["id"]}),
                )
                .await;
            if check("POST conversation", &conversation, 201) {
                let path = format!(
                    "{base}/conversations/{}/messages",
                    conversation.body["id"].as_str().unwrap()
                );
                let message = app
                    .post(&path, &token, json!({"role": "user", "content": "Hello"}))
                    .await;
                check("POST message", &message, 201);
                let list = app.get(&path, &token).await;
                check("GET messages", &list, 200);
            }
        }
    }
    assert!(
        failures.is_empty(),
        "requests that failed on Citus:\n{}\n\nerrors in the nodes' logs:\n{}",
        failures.join("\n"),
        cluster().unwrap().log_errors()
    );
}

/// Two tenants with contacts and a conversation each, written as the superuser with triggers off
/// (`session_replication_role = replica`, replayed on the workers like any `SET LOCAL`):
/// rows to read back through the request roles, whatever the write paths can do yet.
async fn two_tenants_with_contacts(client: &tokio_postgres::Client) -> (Uuid, Uuid) {
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    client.batch_execute("begin").await.unwrap();
    client
        .batch_execute("set local session_replication_role = replica")
        .await
        .unwrap();
    for (tenant, contacts) in [(a, 2), (b, 1)] {
        let slug = format!("t{}", &tenant.simple().to_string()[20..]);
        client
            .execute(
                "insert into app.tenants (id, slug, name) values ($1, $2, 'A tenant')",
                &[&tenant, &slug],
            )
            .await
            .expect("insert a tenant");
        let assistant = Uuid::now_v7();
        client
            .execute(
                "insert into app.assistants (tenant_id, id, name) values ($1, $2, 'ARI')",
                &[&tenant, &assistant],
            )
            .await
            .expect("insert an assistant");
        client
            .execute(
                "insert into app.conversations (tenant_id, id, assistant_id, channel, flow_key, state)
                 values ($1, $2, $3, 'web', 'assistant', 'active')",
                &[&tenant, &Uuid::now_v7(), &assistant],
            )
            .await
            .expect("insert a conversation");
        for _ in 0..contacts {
            client
                .execute(
                    "insert into app.contacts (tenant_id, id, name) values ($1, $2, 'A contact')",
                    &[&tenant, &Uuid::now_v7()],
                )
                .await
                .expect("insert a contact");
        }
    }
    client.batch_execute("commit").await.unwrap();
    (a, b)
}

/// What the request path must send on Citus: the context as separate `SET LOCAL`
/// statements reaches the shards (RLS is applied there, reads fan out or route, writes
/// pass the policies) and the connections of SECURITY DEFINER functions (as their owner);
/// `set_config(…, true)` does not reach them, and reads come back silently empty. And a
/// transaction may not touch a tenant's shards as two users once one of them wrote
/// there. As `frontdesk_app`, the request path's login.
#[tokio::test]
async fn the_context_in_separate_set_local_statements_reaches_the_shards_and_set_config_does_not() {
    let Some((db, admin)) = migrated("context").await else {
        return;
    };
    let (a, b) = two_tenants_with_contacts(&admin).await;
    for statement in [
        "set role frontdesk_owner",
        "create function public.conversations_seen_by_owner() returns bigint
             language plpgsql stable security definer set search_path = pg_catalog
             as $$ begin return (select count(*) from app.conversations); end $$",
        "grant execute on function public.conversations_seen_by_owner() to frontdesk_app",
        "create function public.title_conversations_as_owner() returns bigint
             language plpgsql security definer set search_path = pg_catalog
             as $$ declare n bigint; begin
                 update app.conversations set title = 'By the owner' where tenant_id = app.current_tenant();
                 get diagnostics n = row_count; return n; end $$",
        "grant execute on function public.title_conversations_as_owner() to frontdesk_app",
        "reset role",
    ] {
        admin.batch_execute(statement).await.expect(statement);
    }
    let user = frontdesk_pg::pool::connect(&db.config_as(frontdesk_pg::roles::APP))
        .await
        .expect("frontdesk_app logs in");
    let count = |tenant: Option<Uuid>| {
        let user = &user;
        async move {
            let row = match tenant {
                Some(t) => {
                    user.query_one(
                        "select count(*) from app.contacts where tenant_id = $1",
                        &[&t],
                    )
                    .await
                }
                None => {
                    user.query_one("select count(*) from app.contacts", &[])
                        .await
                }
            };
            row.expect("count contacts").get::<_, i64>(0)
        }
    };
    user.batch_execute("begin").await.unwrap();
    for statement in [
        "set local frontdesk.caller_kind = 'user'".to_owned(),
        format!("set local frontdesk.tenant_id = '{a}'"),
        format!("set local frontdesk.user_id = '{}'", Uuid::now_v7()),
        "set local frontdesk.member_role = 'owner'".to_owned(),
    ] {
        user.batch_execute(&statement).await.unwrap();
    }
    // A SECURITY DEFINER function runs as its owner on the workers too (Citus opens
    // connections as the owner), with the transaction's context: the owner's policy sees
    // the tenant's one conversation. First in the transaction, as app.assert_principal().
    let seen_by_owner = || {
        let user = &user;
        async move {
            user.query_one("select public.conversations_seen_by_owner()", &[])
                .await
                .map(|r| r.get::<_, i64>(0))
        }
    };
    assert_eq!(
        seen_by_owner()
            .await
            .expect("a SECURITY DEFINER function reading a distributed table"),
        1
    );
    assert_eq!(
        count(None).await,
        2,
        "all shards, filtered by the policies there"
    );
    assert_eq!(count(Some(a)).await, 2, "routed to the tenant's shard");
    assert_eq!(
        count(Some(b)).await,
        0,
        "another tenant's rows stay invisible"
    );
    user.execute(
        "insert into app.contacts (tenant_id, id, name) values ($1, $2, 'New')",
        &[&a, &Uuid::now_v7()],
    )
    .await
    .expect("insert through the policies");
    let renamed = user
        .execute(
            "update app.contacts set name = 'Renamed' where tenant_id = $1",
            &[&a],
        )
        .await
        .expect("update through the policies");
    assert_eq!(renamed, 3);
    // But once the request role has written a tenant's shards in a transaction, a
    // SECURITY DEFINER function may not touch them in it: Citus keeps one connection per
    // user and placement, and refuses the owner's.
    let refused = seen_by_owner().await.unwrap_err();
    assert_eq!(
        refused.as_db_error().map(|e| e.message()),
        Some(
            "cannot perform query on placements that were modified in this transaction by a different user"
        ),
        "{refused:?}"
    );
    user.batch_execute("rollback").await.unwrap();
    // The other way round: what a SECURITY DEFINER function wrote, the request role
    // may not read in the same transaction.
    user.batch_execute("begin").await.unwrap();
    user.batch_execute("set local frontdesk.caller_kind = 'user'")
        .await
        .unwrap();
    user.batch_execute(&format!("set local frontdesk.tenant_id = '{a}'"))
        .await
        .unwrap();
    user.batch_execute("set local frontdesk.member_role = 'owner'")
        .await
        .unwrap();
    let titled = user
        .query_one("select public.title_conversations_as_owner()", &[])
        .await
        .map(|r| r.get::<_, i64>(0));
    let after = user
        .query_one(
            "select count(*) from app.contacts where tenant_id = $1",
            &[&a],
        )
        .await
        .map(|r| r.get::<_, i64>(0));
    assert_eq!(titled.expect("the owner's update"), 1);
    let refused = after.unwrap_err();
    assert_eq!(
        refused.as_db_error().map(|e| e.message()),
        Some(
            "cannot perform query on placements that were modified in this transaction by a different user"
        ),
        "{refused:?}"
    );
    user.batch_execute("rollback").await.unwrap();

    user.batch_execute("begin read only").await.unwrap();
    user.query(
        "select set_config('frontdesk.caller_kind', 'user', true), set_config('frontdesk.tenant_id', $1, true),
                set_config('frontdesk.member_role', 'owner', true)",
        &[&a.to_string()],
    )
    .await
    .unwrap();
    assert_eq!(
        count(Some(a)).await,
        0,
        "set_config now reaches the workers: the context form could be reconsidered"
    );
    user.batch_execute("commit").await.unwrap();
}

/// The whole journey of the other settings (`frontdesk_test::journey`: two tenants with
/// every principal, 200 parallel messages with exact counters, rollups, limits and events,
/// history, search, analytics, feedback, a 429, a webhook delivered and verified, and
/// cross-tenant attempts on a sample of routes) through a server on the coordinator.
#[tokio::test]
async fn the_journey_runs_through_a_server_on_the_coordinator() {
    let Some((db, _client)) = migrated("journey").await else {
        return;
    };
    let app = server_on_coordinator(db).await;
    // On a failure, what the nodes logged says why.
    let journey = tokio::spawn(async move { frontdesk_test::journey::run(&[&app]).await });
    match journey.await {
        Ok(report) => eprintln!("{report:?}"),
        Err(panic) => panic!(
            "the journey failed on Citus: {panic:?}\n\nthe nodes' logs:\n{}",
            cluster().unwrap().log_errors()
        ),
    }
}

/// Fails the test unless `reply` has `status`, with the nodes' logged errors.
fn expect(what: &str, reply: &frontdesk_test::Reply, status: u16) {
    assert_eq!(
        reply.status.as_u16(),
        status,
        "{what} on Citus: {}\n\nerrors in the nodes' logs:\n{}",
        reply.text,
        cluster().unwrap().log_errors()
    );
}

/// A new user who creates tenant `slug` through `app`, with `settings` set on it: the
/// user's token, the tenant's path and its id.
async fn new_tenant(
    app: &frontdesk_test::TestApp,
    slug: &str,
    settings: serde_json::Value,
) -> (String, String, Uuid) {
    let token = user_token(Uuid::now_v7(), Some(&format!("owner@{slug}.test")));
    expect("GET /v1/me", &app.get("/v1/me", &token).await, 200);
    let tenant = app
        .post("/v1/tenants", &token, json!({"slug": slug, "name": slug}))
        .await;
    expect("POST /v1/tenants", &tenant, 201);
    let base = format!("/v1/tenants/{slug}");
    let patched = app.patch(&base, &token, settings).await;
    expect("PATCH the tenant", &patched, 200);
    let id = tenant.body["id"].as_str().unwrap().parse().unwrap();
    (token, base, id)
}

/// Pricing on Citus (issue 13): a dated model name priced from the catalog name it
/// extends, then a back-dated tenant price and a recost, whose corrections of the facts,
/// the conversation's total, the rollups and the month's cost add up.
#[tokio::test]
async fn dated_models_are_priced_and_a_recost_corrects_every_total() {
    let Some((db, client)) = migrated("pricing").await else {
        return;
    };
    let app = server_on_coordinator(db).await;
    let (token, base, tenant_id) =
        new_tenant(&app, "priced", json!({"monthly_budget_usd": "1000"})).await;
    let assistant = app
        .post(
            &format!("{base}/assistants"),
            &token,
            json!({"name": "A", "channel": "web"}),
        )
        .await;
    expect("POST assistant", &assistant, 201);
    let conversation = app
        .post(
            &format!("{base}/conversations"),
            &token,
            json!({"assistant_id": assistant.body["id"]}),
        )
        .await;
    expect("POST conversation", &conversation, 201);
    let path = format!(
        "{base}/conversations/{}/messages",
        conversation.body["id"].as_str().unwrap()
    );
    let started: chrono::DateTime<chrono::Utc> = client
        .query_one("select now() - interval '1 minute'", &[])
        .await
        .unwrap()
        .get(0);
    let haiku = app
        .post(
            &path,
            &token,
            json!({"role": "assistant", "content": "a", "provider": "anthropic",
                   "model": "claude-3-5-haiku-20241022", "prompt_tokens": 1000, "cached_tokens": 200,
                   "completion_tokens": 500}),
        )
        .await;
    expect("POST message", &haiku, 201);
    assert_eq!(haiku.body["cost_source"], "catalog_prefix");
    assert_eq!(haiku.body["priced_model"], "claude-3-5-haiku");
    let unpriced = app
        .post(
            &path,
            &token,
            json!({"role": "assistant", "content": "b", "provider": "acme-ai", "model": "x-1",
                   "prompt_tokens": 1000}),
        )
        .await;
    expect("POST message", &unpriced, 201);
    let event = app
        .post(
            &format!("{base}/usage"),
            &token,
            json!({"provider": "acme-ai", "model": "x-1", "prompt_tokens": 2000}),
        )
        .await;
    expect("POST usage", &event, 201);
    let seen = app.get(&format!("{base}/usage/unpriced"), &token).await;
    expect("GET usage/unpriced", &seen, 200);
    assert_eq!(seen.body[0]["unpriced_count"], 2, "{}", seen.body);
    for model in ["claude-3-5-haiku", "x-1"] {
        let provider = if model == "x-1" {
            "acme-ai"
        } else {
            "anthropic"
        };
        let price = app
            .post(
                &format!("{base}/prices"),
                &token,
                json!({"provider": provider, "model": model, "input_usd_per_mtok": "5",
                       "output_usd_per_mtok": "9", "effective_from": started}),
            )
            .await;
        expect("POST price", &price, 201);
    }
    let recost = app
        .post(
            &format!("{base}/prices/recost"),
            &token,
            json!({"from": started}),
        )
        .await;
    expect("POST prices/recost", &recost, 200);
    assert_eq!(
        (
            recost.body["messages"].as_i64(),
            recost.body["usage_events"].as_i64(),
            recost.body["conversations"].as_i64(),
            recost.body["limit_state"].as_i64()
        ),
        (Some(2), Some(1), Some(1), Some(1)),
        "{}",
        recost.body
    );
    let again = app
        .post(
            &format!("{base}/prices/recost"),
            &token,
            json!({"from": started}),
        )
        .await;
    expect("POST prices/recost again", &again, 200);
    assert_eq!(again.body["messages"], 0, "{}", again.body);
    // 1000 × 5 + 500 × 9 = 0.0095 (the cached tokens at the input price: the new price
    // has no cached-input price);
    // 1000 × 5 = 0.005; the event 2000 × 5 = 0.01.
    let sums: (
        rust_decimal::Decimal,
        rust_decimal::Decimal,
        rust_decimal::Decimal,
        rust_decimal::Decimal,
    ) = {
        let row = client
            .query_one(
                "select (select sum(cost_usd) from app.messages where tenant_id = $1),
                        (select cost_usd from app.conversations where tenant_id = $1),
                        (select sum(cost_usd) from app.usage_daily where tenant_id = $1),
                        (select month_used from app.limit_state where tenant_id = $1)",
                &[&tenant_id],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1), row.get(2), row.get(3))
    };
    let messages: rust_decimal::Decimal = "0.0145".parse().unwrap();
    let all: rust_decimal::Decimal = "0.0245".parse().unwrap();
    assert_eq!(
        (
            sums.0.normalize(),
            sums.1.normalize(),
            sums.2.normalize(),
            sums.3.normalize()
        ),
        (messages, messages, all, all)
    );
    let seen = app.get(&format!("{base}/usage/unpriced"), &token).await;
    assert_eq!(seen.body, json!([]));
}

/// Members by `sub` and by email, and an invitation created, listed, accepted (once) and
/// revoked, through a server on the coordinator: `app.user_by_email` and
/// `app.accept_invitation` run as the owner on the shards. Each failure is listed.
#[tokio::test]
async fn members_by_sub_or_email_and_invitations_work_through_the_coordinator() {
    let Some((db, _client)) = migrated("invitations").await else {
        return;
    };
    let app = server_on_coordinator(db).await;
    let mut failures = Vec::new();
    let mut check = |what: &str, reply: &frontdesk_test::Reply, status: u16| {
        if reply.status.as_u16() != status {
            failures.push(format!("{what}: {} {}", reply.status, reply.text));
        }
    };
    let owner = user_token(Uuid::now_v7(), Some("owner@citus.test"));
    check(
        "POST /v1/tenants",
        &app.post(
            "/v1/tenants",
            &owner,
            json!({"slug": "team", "name": "Team"}),
        )
        .await,
        201,
    );
    let base = "/v1/tenants/team";
    let by_sub = app
        .post(
            &format!("{base}/members"),
            &owner,
            json!({"user_id": "auth0|65f1c2", "role": "agent"}),
        )
        .await;
    check("POST member by sub", &by_sub, 201);
    let lee = user_token(Uuid::now_v7(), Some("lee@citus.test"));
    check("GET /v1/me", &app.get("/v1/me", &lee).await, 200);
    let by_email = app
        .post(
            &format!("{base}/members"),
            &owner,
            json!({"email": "lee@citus.test", "role": "member"}),
        )
        .await;
    check("POST member by email", &by_email, 201);
    let invited = app
        .post(
            &format!("{base}/invitations"),
            &owner,
            json!({"email": "sam@citus.test", "role": "admin"}),
        )
        .await;
    check("POST invitation", &invited, 201);
    check(
        "GET invitations",
        &app.get(&format!("{base}/invitations"), &owner).await,
        200,
    );
    if let (Some(link), Some(token)) = (
        invited.body["link"].as_str(),
        invited.body["token"].as_str(),
    ) {
        let sam = user_token(Uuid::now_v7(), Some("sam@citus.test"));
        check(
            "POST accept",
            &app.post(link, &sam, json!({"token": token})).await,
            200,
        );
        check(
            "POST accept again",
            &app.post(link, &sam, json!({"token": token})).await,
            409,
        );
        let tenant = app.get(base, &sam).await;
        let status = if tenant.body["role"] == "admin" {
            200
        } else {
            0
        };
        check("GET tenant as the new admin (role admin)", &tenant, status);
    }
    let other = app
        .post(
            &format!("{base}/invitations"),
            &owner,
            json!({"email": "kim@citus.test", "role": "member"}),
        )
        .await;
    check("POST another invitation", &other, 201);
    if let Some(id) = other.body["id"].as_str() {
        check(
            "DELETE invitation",
            &app.delete(&format!("{base}/invitations/{id}"), &owner)
                .await,
            204,
        );
    }
    assert!(
        failures.is_empty(),
        "requests that failed on Citus:\n{}\n\nerrors in the nodes' logs:\n{}",
        failures.join("\n"),
        cluster().unwrap().log_errors()
    );
}

/// Contacts by channel and events in commit order through a server on the coordinator
/// (issue 13): a phone as typed with the tenant's default country, an upsert by WhatsApp
/// id (twice: one contact), lookups, a duplicate refused; the tenant's events numbered
/// 1, 2, 3, … with no gap across parallel transactions, listed in that order, their times
/// in the one `Z` format. Each failure is listed.
#[tokio::test]
async fn contacts_by_channel_and_events_in_order_work_through_the_coordinator() {
    let Some((db, client)) = migrated("channels").await else {
        return;
    };
    let app = server_on_coordinator(db).await;
    let (token, base, _) = new_tenant(&app, "channels", json!({"default_country": "ID"})).await;
    let mut failures = Vec::new();
    let mut check = |what: &str, reply: &frontdesk_test::Reply, status: u16| {
        if reply.status.as_u16() != status {
            failures.push(format!("{what}: {} {}", reply.status, reply.text));
        }
    };
    let sari = app
        .post(
            &format!("{base}/contacts"),
            &token,
            json!({"name": "Sari", "phone": "0812-3456-7890"}),
        )
        .await;
    check("POST contact", &sari, 201);
    assert_eq!(sari.body["phone"], "+6281234567890", "{}", sari.text);
    let upsert = format!("{base}/contacts/by-channel/whatsapp/6281277770001");
    let body = json!({"name": "Rina"});
    let first = app.call("PUT", &upsert, Some(&token), Some(&body)).await;
    check("PUT by-channel (new)", &first, 201);
    let again = app.call("PUT", &upsert, Some(&token), Some(&body)).await;
    check("PUT by-channel (known)", &again, 200);
    assert_eq!(first.body["id"], again.body["id"]);
    let by_id = app
        .get(
            &format!("{base}/contacts/lookup?channel=whatsapp&id=0812-7777-0001"),
            &token,
        )
        .await;
    check("GET lookup by channel", &by_id, 200);
    assert_eq!(by_id.body["id"], first.body["id"]);
    let by_phone = app
        .get(
            &format!("{base}/contacts/lookup?phone=%2B6281234567890"),
            &token,
        )
        .await;
    check("GET lookup by phone", &by_phone, 200);
    assert_eq!(by_phone.body["id"], sari.body["id"]);
    let duplicate = app
        .post(
            &format!("{base}/contacts"),
            &token,
            json!({"channel_ids": {"whatsapp": "+62 812-7777-0001"}}),
        )
        .await;
    check("POST a duplicate WhatsApp id", &duplicate, 409);

    // Conversations created in parallel: each transaction writes events.
    let assistant = app
        .post(
            &format!("{base}/assistants"),
            &token,
            json!({"name": "A", "channel": "whatsapp"}),
        )
        .await;
    check("POST assistant", &assistant, 201);
    let posts = (0..16)
        .map(|_| frontdesk_test::Post {
            url: format!("{}{base}/conversations", app.base),
            token: token.clone(),
            body: json!({"assistant_id": assistant.body["id"]}),
            idempotency_key: None,
        })
        .collect();
    for reply in frontdesk_test::post_all(&app.http, posts).await {
        check("POST conversation (parallel)", &reply, 201);
    }
    let listed = app
        .get(&format!("{base}/events?order=asc&limit=200"), &token)
        .await;
    check("GET events", &listed, 200);
    assert!(
        failures.is_empty(),
        "requests that failed on Citus:\n{}\n\nerrors in the nodes' logs:\n{}",
        failures.join("\n"),
        cluster().unwrap().log_errors()
    );
    let sequences: Vec<i64> = listed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["sequence"].as_i64().unwrap())
        .collect();
    let stored: Vec<i64> = client
        .query(
            "select e.sequence from app.events e join app.tenants t on t.id = e.tenant_id \
             where t.slug = 'channels' order by e.sequence",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(stored.len() >= 16, "{stored:?}");
    assert_eq!(stored, (1..=stored.len() as i64).collect::<Vec<_>>());
    assert_eq!(sequences, stored, "listed in sequence order");
    for event in listed.body["data"].as_array().unwrap() {
        let created = event["data"]["created_at"].as_str();
        assert!(
            created.is_none_or(|t| t.ends_with('Z')),
            "{}",
            event["data"]
        );
    }
}
