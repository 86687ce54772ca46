//! The request path through PgBouncer in transaction mode (`FRONTDESK_POOL_URL`): two
//! servers, one PgBouncer with few server connections, one database. Server connections
//! are shared between clients, tenants and servers from one transaction to the next, so
//! anything left on a connection (a setting, a named statement) would show here.

use frontdesk_pg::{Db, StatementMode, roles};
use frontdesk_test::{
    TestApp, cluster,
    fixtures::{Seeded, seed_tenant},
    json,
    pgbouncer::{self, PgBouncer},
    start_app_on_pools,
};
use uuid::Uuid;

const APP_PASSWORD: &str = "app-password-for-the-pooler";
const OPERATOR_PASSWORD: &str = "operator-password-for-the-pooler";

fn pgbouncer_or_skip() -> bool {
    if pgbouncer::installed() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "PgBouncer is not installed, and CI must run this test (apt-get install pgbouncer)"
    );
    eprintln!("PgBouncer is not installed here (apt-get install pgbouncer): skipping");
    false
}

/// A server whose app and operator pools both go through `bouncer`.
async fn server_through(db: &frontdesk_test::TestDb, bouncer: &PgBouncer) -> TestApp {
    let pool = |role, password| {
        frontdesk_pg::pool::build(bouncer.config(db, role, password), 8).expect("pool")
    };
    let pools = Db::with_statements(
        pool(roles::APP, APP_PASSWORD),
        pool(roles::OPERATOR, OPERATOR_PASSWORD),
        frontdesk_test::context_mode(),
        StatementMode::Unnamed,
    );
    start_app_on_pools(db.clone(), pools, Default::default()).await
}

fn message(i: usize) -> serde_json::Value {
    json!({
        "role": if i.is_multiple_of(2) { "user" } else { "assistant" },
        "content": format!("message {i}"),
        "prompt_tokens": 10, "completion_tokens": 5, "cost_usd": "0.001"
    })
}

#[tokio::test]
async fn two_servers_share_one_pgbouncer_without_leaking_state_between_tenants() {
    if !pgbouncer_or_skip() {
        return;
    }
    let db = cluster().database(true).await;
    db.admin()
        .await
        .batch_execute(&format!(
            "alter role {} password '{APP_PASSWORD}'; alter role {} password '{OPERATOR_PASSWORD}';",
            roles::APP,
            roles::OPERATOR
        ))
        .await
        .unwrap();
    // Two server connections per role for 2 × 8 client connections: every server
    // connection serves both tenants and both servers.
    let bouncer = PgBouncer::start(
        &db,
        &[
            (roles::APP, APP_PASSWORD),
            (roles::OPERATOR, OPERATOR_PASSWORD),
        ],
        2,
    );
    let one = server_through(&db, &bouncer).await;
    let two = server_through(&db, &bouncer).await;
    let a = seed_tenant(&one, "bounce-a").await;
    let b = seed_tenant(&two, "bounce-b").await;

    // 100 messages per tenant, sent in parallel through both servers alternately.
    let conversation = |app: &TestApp, t: &Seeded| {
        let url = format!("{}/v1/tenants/{}/conversations", app.base, t.slug);
        let token = t.owner_token.clone();
        let http = app.http.clone();
        let assistant = t.assistant;
        async move {
            let reply = http
                .post(url)
                .bearer_auth(token)
                .json(&json!({"assistant_id": assistant, "channel": "web", "title": "through the pooler"}))
                .send()
                .await
                .unwrap();
            let status = reply.status();
            let body: serde_json::Value = reply.json().await.unwrap();
            assert_eq!(status, 201, "{body}");
            body["id"].as_str().unwrap().parse::<Uuid>().unwrap()
        }
    };
    let ca = conversation(&one, &a).await;
    let cb = conversation(&two, &b).await;
    let mut sends = Vec::new();
    for i in 0..200 {
        let (app, t, c) = match i % 4 {
            0 => (&one, &a, ca),
            1 => (&two, &a, ca),
            2 => (&one, &b, cb),
            _ => (&two, &b, cb),
        };
        let http = app.http.clone();
        let url = format!(
            "{}/v1/tenants/{}/conversations/{c}/messages",
            app.base, t.slug
        );
        let token = t.full_key.clone();
        sends.push(tokio::spawn(async move {
            let reply = http
                .post(url)
                .bearer_auth(token)
                .json(&message(i))
                .send()
                .await
                .unwrap();
            let status = reply.status();
            assert_eq!(status, 201, "{}", reply.text().await.unwrap());
        }));
    }
    for send in sends {
        send.await.unwrap();
    }

    // Each tenant sees exactly its own: counters exact, history of its own messages only,
    // and the other tenant's conversation is not found, on either server.
    for (t, c, other) in [(&a, ca, cb), (&b, cb, ca)] {
        for app in [&one, &two] {
            let reply = app
                .http
                .get(format!(
                    "{}/v1/tenants/{}/conversations/{c}",
                    app.base, t.slug
                ))
                .bearer_auth(&t.owner_token)
                .send()
                .await
                .unwrap();
            assert_eq!(reply.status(), 200);
            let body: serde_json::Value = reply.json().await.unwrap();
            assert_eq!(body["message_count"], 100, "{body}");
            assert_eq!(body["total_tokens"], 1500, "{body}");
            assert_eq!(body["cost_usd"], "0.1", "{body}");
            let history = app
                .http
                .get(format!(
                    "{}/v1/tenants/{}/conversations/{c}/messages?limit=200",
                    app.base, t.slug
                ))
                .bearer_auth(&t.full_key)
                .send()
                .await
                .unwrap();
            assert_eq!(history.status(), 200);
            let history: serde_json::Value = history.json().await.unwrap();
            let items = history["data"].as_array().unwrap();
            assert_eq!(items.len(), 100);
            assert!(
                items.iter().all(|m| m["conversation_id"] == c.to_string()),
                "another conversation's message in {}'s history",
                t.slug
            );
            let stolen = app
                .http
                .get(format!(
                    "{}/v1/tenants/{}/conversations/{other}",
                    app.base, t.slug
                ))
                .bearer_auth(&t.owner_token)
                .send()
                .await
                .unwrap();
            assert_eq!(stolen.status(), 404);
        }
    }

    // After all that, a server connection handed out by PgBouncer carries no tenant's
    // context and no statement of anyone's.
    let raw = frontdesk_pg::pool::connect(&bouncer.config(&db, roles::APP, APP_PASSWORD))
        .await
        .unwrap();
    for _ in 0..4 {
        let left = raw
            .simple_query(
                "select coalesce(current_setting('frontdesk.tenant_id', true), '') || '|' ||
                        coalesce(current_setting('frontdesk.caller_kind', true), '') || '|' ||
                        (select count(*) from pg_prepared_statements)",
            )
            .await
            .unwrap();
        let value = left
            .iter()
            .find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
                _ => None,
            })
            .unwrap();
        assert_eq!(value, "||0", "state left on a server connection");
    }
    assert!(
        !bouncer.log().contains("ERROR"),
        "PgBouncer logged errors:\n{}",
        bouncer.log()
    );
}
