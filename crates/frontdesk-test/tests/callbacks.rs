//! Signed callbacks from providers, over real HTTP with real signatures (the `test`
//! provider signs like Standard Webhooks), and the callback caller kind in plain SQL.

use frontdesk_test::{
    TestApp,
    fixtures::{Tenancy, new_callback_secret, seed_tenancy, signed_headers},
    spawn_app, tenant_tables,
};
use serde_json::json;
use uuid::Uuid;

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Set `t`'s secret for the test provider; the answer's body.
async fn put_secret(app: &TestApp, t: &Tenancy, secret: &str) -> serde_json::Value {
    let reply = app
        .call(
            "PUT",
            &format!("{}/provider-secrets/test", t.base()),
            Some(&t.owner_token),
            Some(&json!({ "secret": secret })),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(!reply.text.contains(secret), "the secret came back");
    reply.body
}

/// A callback to `tenant` (id or slug) signed with `secret` as delivery `id`.
async fn send(
    app: &TestApp,
    tenant: &str,
    secret: &str,
    id: &str,
    body: &str,
) -> frontdesk_test::Reply {
    let headers = signed_headers(secret, id, now(), body.as_bytes());
    app.callback(
        &format!("/v1/hooks/test/{tenant}"),
        &headers,
        body.to_owned(),
    )
    .await
}

async fn callbacks_of(app: &TestApp, tenant: Uuid) -> i64 {
    app.db
        .admin()
        .await
        .query_one(
            "select count(*) from app.provider_callbacks where tenant_id = $1",
            &[&tenant],
        )
        .await
        .unwrap()
        .get(0)
}

fn assert_401(reply: &frontdesk_test::Reply, what: &str) {
    assert_eq!(reply.status, 401, "{what}: {}", reply.text);
    assert_eq!(reply.content_type(), "application/problem+json", "{what}");
    assert_eq!(reply.body["type"], "/problems/unauthorized", "{what}");
}

#[tokio::test]
async fn a_signed_callback_is_recorded_once_and_a_redelivery_adds_no_row() {
    let app = spawn_app().await;
    let a = seed_tenancy(&app, "hooks-a").await;
    let secret = new_callback_secret();
    put_secret(&app, &a, &secret).await;
    let body = r#"{"type": "payment.settled", "order": "A-1", "amount": 150000}"#;
    let first = send(&app, &a.slug, &secret, "msg_1", body).await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(first.body, json!({"received": true, "duplicate": false}));
    // The provider redelivers (by slug and by id): answered alike, recorded once.
    for tenant in [a.slug.clone(), a.id.to_string()] {
        let again = send(&app, &tenant, &secret, "msg_1", body).await;
        assert_eq!(again.status, 200, "{}", again.text);
        assert_eq!(again.body, json!({"received": true, "duplicate": true}));
    }
    assert_eq!(callbacks_of(&app, a.id).await, 1);
    let second = send(&app, &a.slug, &secret, "msg_2", r#"{"type": "ping"}"#).await;
    assert_eq!(second.body["duplicate"], false);
    assert_eq!(callbacks_of(&app, a.id).await, 2);
    // Staff read the log, newest first, with the payload as sent; members see none.
    let log = app
        .get(
            &format!("{}/provider-callbacks?limit=1", a.base()),
            &a.agent_token,
        )
        .await;
    assert_eq!(log.status, 200, "{}", log.text);
    assert_eq!(log.body["data"][0]["external_id"], "msg_2");
    assert_eq!(log.body["data"][0]["provider"], "test");
    let next = log.body["next_cursor"].as_str().unwrap();
    let older = app
        .get(
            &format!("{}/provider-callbacks?cursor={next}", a.base()),
            &a.full_key,
        )
        .await;
    assert_eq!(older.body["data"][0]["external_id"], "msg_1");
    assert_eq!(older.body["data"][0]["payload"]["amount"], 150000);
    assert_eq!(older.body["next_cursor"], serde_json::Value::Null);
    let member = app
        .get(&format!("{}/provider-callbacks", a.base()), &a.member_token)
        .await;
    assert_eq!(member.status, 200);
    assert_eq!(member.body["data"], json!([]));
}

#[tokio::test]
async fn another_tenants_secret_on_a_tenants_path_is_refused_and_writes_nothing() {
    let app = spawn_app().await;
    let a = seed_tenancy(&app, "hooks-a").await;
    let b = seed_tenancy(&app, "hooks-b").await;
    let (secret_a, secret_b) = (new_callback_secret(), new_callback_secret());
    put_secret(&app, &a, &secret_a).await;
    put_secret(&app, &b, &secret_b).await;
    let body = r#"{"type": "payment.settled"}"#;
    for tenant in [a.slug.clone(), a.id.to_string()] {
        assert_401(
            &send(&app, &tenant, &secret_b, "msg_b", body).await,
            "B's secret on A's path",
        );
    }
    // A tenant that does not exist, and one without a secret, get the same answer as a
    // bad signature: which tenants exist is not revealed.
    let c = seed_tenancy(&app, "hooks-c").await;
    let refusals = [
        send(&app, &a.slug, &secret_b, "msg_b", body).await,
        send(&app, "no-such-tenant", &secret_b, "msg_b", body).await,
        send(&app, &Uuid::now_v7().to_string(), &secret_b, "msg_b", body).await,
        send(&app, &c.slug, &secret_b, "msg_b", body).await,
    ];
    for reply in &refusals {
        assert_401(reply, "refused");
        assert_eq!(reply.body["detail"], refusals[0].body["detail"]);
    }
    // An unknown provider is refused alike.
    let headers = signed_headers(&secret_a, "msg_x", now(), body.as_bytes());
    assert_401(
        &app.callback(
            &format!("/v1/hooks/stripe/{}", a.slug),
            &headers,
            body.into(),
        )
        .await,
        "unknown provider",
    );
    for tenant in [a.id, b.id, c.id] {
        assert_eq!(callbacks_of(&app, tenant).await, 0);
    }
    // B's own path takes B's secret.
    assert_eq!(
        send(&app, &b.slug, &secret_b, "msg_b", body).await.status,
        200
    );
    assert_eq!(callbacks_of(&app, a.id).await, 0);
    assert_eq!(callbacks_of(&app, b.id).await, 1);
}

#[tokio::test]
async fn unsigned_tampered_wrongly_keyed_and_stale_callbacks_are_401() {
    let app = spawn_app().await;
    let a = seed_tenancy(&app, "hooks-a").await;
    let secret = new_callback_secret();
    put_secret(&app, &a, &secret).await;
    let path = format!("/v1/hooks/test/{}", a.slug);
    let body = r#"{"type": "payment.settled", "amount": 100}"#;
    // Unsigned; one header missing; a bearer token instead of a signature.
    assert_401(&app.callback(&path, &[], body.into()).await, "unsigned");
    let mut partial = signed_headers(&secret, "msg_1", now(), body.as_bytes());
    partial.pop();
    assert_401(
        &app.callback(&path, &partial, body.into()).await,
        "no signature",
    );
    let bearer = app
        .call("POST", &path, Some(&a.owner_token), Some(&json!({})))
        .await;
    assert_401(&bearer, "bearer token");
    // Tampered: signed over another body, or another id.
    let signed = signed_headers(&secret, "msg_1", now(), body.as_bytes());
    assert_401(
        &app.callback(&path, &signed, body.replace("100", "900"))
            .await,
        "tampered body",
    );
    let mut other_id = signed.clone();
    other_id[0].1 = "msg_2".into();
    assert_401(
        &app.callback(&path, &other_id, body.into()).await,
        "tampered id",
    );
    // The wrong secret.
    assert_401(
        &send(&app, &a.slug, &new_callback_secret(), "msg_1", body).await,
        "wrong secret",
    );
    // Timestamps more than 5 minutes old or ahead.
    for skew in [-301, 301, -3600] {
        let headers = signed_headers(&secret, "msg_1", now() + skew, body.as_bytes());
        let reply = app.callback(&path, &headers, body.into()).await;
        assert_401(&reply, &format!("timestamp {skew} s away"));
        assert!(reply.body["detail"].as_str().unwrap().contains("5 minutes"));
    }
    assert_eq!(callbacks_of(&app, a.id).await, 0);
    // A correctly signed body that is not JSON: 400, nothing written.
    let reply = send(&app, &a.slug, &secret, "msg_1", "not json").await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    // One over the body limit: 413.
    let huge = format!(r#"{{"pad": "{}"}}"#, "x".repeat(2 * 1024 * 1024));
    let reply = send(&app, &a.slug, &secret, "msg_1", &huge).await;
    assert_eq!(reply.status, 413, "{}", reply.text);
    assert_eq!(reply.body["type"], "/problems/payload-too-large");
    assert_eq!(callbacks_of(&app, a.id).await, 0);
    // And the good one passes.
    assert_eq!(
        send(&app, &a.slug, &secret, "msg_1", body).await.status,
        200
    );
}

#[tokio::test]
async fn admins_set_replace_and_remove_secrets_and_never_see_them_again() {
    let app = spawn_app().await;
    let a = seed_tenancy(&app, "hooks-a").await;
    let base = format!("{}/provider-secrets", a.base());
    let empty = app.get(&base, &a.admin_token).await;
    assert_eq!(empty.status, 200, "{}", empty.text);
    assert_eq!(empty.body["data"], json!([]));
    let (old, new) = (new_callback_secret(), new_callback_secret());
    let set = put_secret(&app, &a, &old).await;
    assert_eq!(set["provider"], "test");
    assert_eq!(set["fingerprint"].as_str().unwrap().len(), 16);
    let listed = app.get(&base, &a.admin_token).await;
    assert_eq!(listed.body["data"][0]["fingerprint"], set["fingerprint"]);
    assert!(!listed.text.contains(&old));
    assert!(listed.body["data"][0].get("secret").is_none());
    assert_eq!(send(&app, &a.slug, &old, "m1", "{}").await.status, 200);
    // Replaced: the new secret works at once, the old one no more.
    let replaced = put_secret(&app, &a, &new).await;
    assert_ne!(replaced["fingerprint"], set["fingerprint"]);
    assert_eq!(replaced["created_at"], set["created_at"]);
    assert_eq!(send(&app, &a.slug, &new, "m2", "{}").await.status, 200);
    assert_ne!(send(&app, &a.slug, &old, "m3", "{}").await.status, 200);
    // Rules: a secret the provider would not issue is a 422 on `secret`; an unknown
    // provider names nothing; members, agents and keys may not manage secrets.
    let bad = app
        .call(
            "PUT",
            &format!("{base}/test"),
            Some(&a.owner_token),
            Some(&json!({"secret": "hunter2"})),
        )
        .await;
    assert_eq!(bad.status, 422, "{}", bad.text);
    assert_eq!(bad.error_fields(), vec!["secret"]);
    assert!(!bad.text.contains("hunter2"));
    // The body's shape: a missing secret and an unknown field, both in one 422.
    let shapeless = app
        .call(
            "PUT",
            &format!("{base}/test"),
            Some(&a.owner_token),
            Some(&json!({"secrett": new})),
        )
        .await;
    assert_eq!(shapeless.status, 422, "{}", shapeless.text);
    let mut fields = shapeless.error_fields();
    fields.sort();
    assert_eq!(fields, vec!["secret", "secrett"]);
    assert!(!shapeless.text.contains(&new));
    let unknown = app
        .call(
            "PUT",
            &format!("{base}/paypal"),
            Some(&a.owner_token),
            Some(&json!({"secret": new})),
        )
        .await;
    assert_eq!(unknown.status, 404);
    for token in [&a.agent_token, &a.member_token, &a.full_key] {
        let reply = app
            .call(
                "PUT",
                &format!("{base}/test"),
                Some(token),
                Some(&json!({"secret": old})),
            )
            .await;
        assert_eq!(reply.status, 403, "{}", reply.text);
        assert_eq!(app.get(&base, token).await.status, 403);
    }
    // Removed: callbacks are refused from then on.
    assert_eq!(
        app.delete(&format!("{base}/test"), &a.admin_token)
            .await
            .status,
        204
    );
    assert_eq!(
        app.delete(&format!("{base}/test"), &a.admin_token)
            .await
            .status,
        404
    );
    assert_ne!(send(&app, &a.slug, &new, "m4", "{}").await.status, 200);
    assert_eq!(send(&app, &a.slug, &new, "m5", "{}").await.status, 401);
    assert_eq!(callbacks_of(&app, a.id).await, 2);
}

/// The callback route is streamed: a context the database refuses is not retried. Here
/// the secret is removed behind the server's back (as another server would): the cached
/// secret still verifies the signature, `app.assert_callback()` refuses the context (the
/// secret is gone), and the answer is that refusal (403), not a second run (which would
/// look the secret up afresh and answer 401). The refusal cleared the caches, so the
/// provider's next attempt gets the 401.
#[tokio::test]
async fn a_refused_callback_context_is_not_retried_and_writes_nothing() {
    let app = spawn_app().await;
    let a = seed_tenancy(&app, "hooks-a").await;
    let secret = new_callback_secret();
    put_secret(&app, &a, &secret).await;
    assert_eq!(send(&app, &a.slug, &secret, "m1", "{}").await.status, 200);
    app.db
        .admin()
        .await
        .execute(
            "delete from app.provider_secrets where tenant_id = $1",
            &[&a.id],
        )
        .await
        .unwrap();
    let refused = send(&app, &a.slug, &secret, "m2", "{}").await;
    assert_eq!(refused.status, 403, "{}", refused.text);
    assert_eq!(refused.content_type(), "application/problem+json");
    assert_401(
        &send(&app, &a.slug, &secret, "m3", "{}").await,
        "after the refusal",
    );
    assert_eq!(callbacks_of(&app, a.id).await, 1);
    let route = frontdesk_server::router::route_table()
        .into_iter()
        .find(|r| r.path == "/v1/hooks/{provider}/{tenant}")
        .unwrap();
    assert_eq!(route.access, frontdesk_server::access::Access::Callback);
    assert!(!route.body.retries());
}

/// Run `sql` after `context` in a transaction of its own; the SQLSTATE if it failed.
async fn try_as(client: &tokio_postgres::Client, context: &str, sql: &str) -> Option<String> {
    let result = client
        .batch_execute(&format!("begin; {context} {sql};"))
        .await;
    let _ = client.batch_execute("rollback").await;
    result
        .err()
        .map(|e| e.code().map(|c| c.code().to_owned()).unwrap_or_default())
}

#[tokio::test]
async fn the_callback_role_may_only_record_callbacks_of_its_own_tenant_and_provider() {
    let app = spawn_app().await;
    let a = seed_tenancy(&app, "hooks-a").await;
    let b = seed_tenancy(&app, "hooks-b").await;
    let secret_a = new_callback_secret();
    let fingerprint_a = put_secret(&app, &a, &secret_a).await["fingerprint"]
        .as_str()
        .unwrap()
        .to_owned();
    let secret_b = new_callback_secret();
    put_secret(&app, &b, &secret_b).await;
    let b_row = send(&app, &b.slug, &secret_b, "b-1", "{}").await;
    assert_eq!(b_row.status, 200, "{}", b_row.text);
    let client = app.db.app_login().await;
    let context = |tenant: Uuid, fingerprint: &str| {
        format!(
            "set local frontdesk.tenant_id = '{tenant}';
             set local frontdesk.caller_kind = 'callback'; set local frontdesk.provider = 'test';
             set local frontdesk.secret_fingerprint = '{fingerprint}';"
        )
    };
    let ours = context(a.id, &fingerprint_a);
    let refused = Some("42501".to_owned());
    // The real context passes its check; assert_principal refuses the kind outright.
    assert_eq!(
        try_as(&client, &ours, "select app.assert_callback()").await,
        None
    );
    assert_eq!(
        try_as(&client, &ours, "select app.assert_principal()").await,
        refused
    );
    // Wrong contexts: another tenant with A's secret, a fingerprint of no secret, no
    // provider, a user or key set alongside, another caller kind, another role.
    for (what, wrong) in [
        ("B with A's secret", context(b.id, &fingerprint_a)),
        ("unknown fingerprint", context(a.id, "0000000000000000")),
        (
            "no provider",
            ours.replace("set local frontdesk.provider = 'test';", ""),
        ),
        (
            "a user too",
            format!("{ours} set local frontdesk.user_id = '{}';", a.owner),
        ),
        (
            "a member role too",
            format!("{ours} set local frontdesk.member_role = 'owner';"),
        ),
        ("another caller kind", ours.replace("'callback'", "'user'")),
        (
            "the operator kind",
            ours.replace("'callback'", "'operator'"),
        ),
    ] {
        assert_eq!(
            try_as(&client, &wrong, "select app.assert_callback()").await,
            refused,
            "{what}"
        );
    }
    // No row of any tenant table can be read, not even of its own log (the callback kind
    // has no select policy anywhere; the rows exist, the superuser sees them).
    let admin = app.db.admin().await;
    let tables: Vec<String> = admin
        .query(
            "select c.relname::text from pg_class c join pg_namespace n on n.oid = c.relnamespace
             where n.nspname = 'app' and c.relkind in ('r', 'p', 'v', 'm')
               and exists (select from pg_attribute a where a.attrelid = c.oid and a.attname = 'tenant_id')",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(tables.len() > 10);
    let mut seen_by_admin = 0;
    for table in tables
        .iter()
        .map(String::as_str)
        .chain(["tenants", "users"])
    {
        let sql = format!("select count(*) from app.{table}");
        seen_by_admin += admin.query_one(&sql, &[]).await.unwrap().get::<_, i64>(0);
        client
            .batch_execute(&format!("begin; {ours}"))
            .await
            .unwrap();
        let visible = client.query_one(&sql, &[]).await;
        client.batch_execute("rollback").await.unwrap();
        match visible {
            Ok(row) => assert_eq!(
                row.get::<_, i64>(0),
                0,
                "the callback kind reads app.{table}"
            ),
            Err(e) => assert_eq!(
                e.code().map(|c| c.code()),
                Some("42501"),
                "app.{table}: {e:?}"
            ),
        }
    }
    assert!(seen_by_admin > 10, "the tables hold rows to hide");
    // It records for its own tenant and provider only, and cannot change a record.
    let insert = |tenant: Uuid, id: &str| {
        format!(
            "insert into app.provider_callbacks (tenant_id, id, provider, external_id, payload)
             values ('{tenant}', '{}', 'test', '{id}', '{{}}')",
            Uuid::now_v7()
        )
    };
    assert_eq!(try_as(&client, &ours, &insert(a.id, "sql-1")).await, None);
    assert_eq!(
        try_as(&client, &ours, &insert(b.id, "sql-1")).await,
        refused
    );
    assert_eq!(
        try_as(&client, &ours, "delete from app.provider_callbacks").await,
        refused
    );
    assert_eq!(
        try_as(
            &client,
            &ours,
            "select * from app.provider_secret(null, 'test')"
        )
        .await,
        refused
    );
    // The tenant's own admin cannot read a secret either, only that it exists.
    let admin_a = format!(
        "set local frontdesk.caller_kind = 'user'; set local frontdesk.tenant_id = '{}';
         set local frontdesk.user_id = '{}'; set local frontdesk.member_role = 'owner';
         select app.assert_principal();",
        a.id, a.owner
    );
    assert_eq!(
        try_as(&client, &admin_a, "select secret from app.provider_secrets").await,
        refused
    );
    assert_eq!(
        try_as(
            &client,
            &admin_a,
            "select fingerprint from app.provider_secrets"
        )
        .await,
        None
    );
    // Nothing above was committed: A holds none, B holds its one callback.
    assert_eq!(callbacks_of(&app, a.id).await, 0);
    assert_eq!(callbacks_of(&app, b.id).await, 1);
    assert!(
        tenant_tables(&admin)
            .await
            .contains(&"provider_callbacks".to_owned())
    );
}
