//! Resolving `{tenant}` and the caches of the request path: slugs resolve whatever plan
//! PostgreSQL picks, and a change of a tenant, a key or a membership is seen by every
//! server at its next request (several servers, one database).

use frontdesk_test::{OPERATOR_TOKEN, fixtures::seed_tenancy, json, spawn_app, spawn_app_on};
use uuid::Uuid;

#[tokio::test]
async fn slugs_resolve_after_analyze_with_many_tenants_and_an_unknown_slug_is_404() {
    let app = spawn_app().await;
    let owner = Uuid::now_v7();
    let token = frontdesk_test::user_token(owner, None);
    for i in 0..100 {
        let created = app
            .post(
                "/v1/tenants",
                &token,
                json!({"slug": format!("many-{i:03}"), "name": format!("Many {i}")}),
            )
            .await;
        assert_eq!(created.status, 201, "{}", created.text);
    }
    // What autovacuum's analyze does once the tables have grown: the planner now has
    // statistics, and with them (in 0001's lookup) chose to cast the slug to uuid first.
    app.db
        .admin()
        .await
        .batch_execute("analyze app.tenants; analyze app.tenant_slugs; analyze app.memberships")
        .await
        .unwrap();
    for slug in ["many-000", "many-042", "many-099"] {
        for credential in [token.as_str(), OPERATOR_TOKEN] {
            let reply = app.get(&format!("/v1/tenants/{slug}"), credential).await;
            assert_eq!(reply.status, 200, "{slug}: {}", reply.text);
            assert_eq!(reply.body["slug"], slug);
            let by_id = app
                .get(
                    &format!("/v1/tenants/{}", reply.body["id"].as_str().unwrap()),
                    credential,
                )
                .await;
            assert_eq!(by_id.status, 200, "{}", by_id.text);
            assert_eq!(by_id.body["slug"], slug);
        }
        let members = app
            .get(&format!("/v1/tenants/{slug}/members"), &token)
            .await;
        assert_eq!(members.status, 200, "{}", members.text);
    }
    for unknown in [
        "many-100",
        "no-such-tenant",
        "0190f5e2-7c3a-7d2e-9b1a-3c4d5e6f7a8b",
    ] {
        for credential in [token.as_str(), OPERATOR_TOKEN] {
            let reply = app.get(&format!("/v1/tenants/{unknown}"), credential).await;
            assert_eq!(reply.status, 404, "{unknown}: {}", reply.text);
            assert_eq!(reply.content_type(), "application/problem+json");
        }
    }
    // A reference that can be neither an id nor a slug names nothing either.
    for odd in [
        "ab",
        "UPPER-case",
        "0190F5E27C3A7D2E9B1A3C4D5E6F7A8B",
        "a%20b",
    ] {
        let reply = app.get(&format!("/v1/tenants/{odd}"), &token).await;
        assert_eq!(reply.status, 404, "{odd}: {}", reply.text);
    }
}

async fn set_active(app: &frontdesk_test::TestApp, slug: &str, token: &str, active: bool) {
    let reply = app
        .patch(
            &format!("/v1/tenants/{slug}"),
            token,
            json!({"is_active": active}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["is_active"], active);
}

#[tokio::test]
async fn keys_work_on_every_server_as_soon_as_their_tenant_is_reactivated() {
    let one = spawn_app().await;
    let two = spawn_app_on(&one.db).await;
    let t = seed_tenancy(&one, "reactivated").await;
    let path = "/v1/tenants/reactivated";
    // Both servers know both keys and the tenant as active.
    for app in [&one, &two] {
        for key in [&t.full_key, &t.read_key] {
            assert_eq!(app.get(path, key).await.status, 200);
        }
    }
    set_active(&one, "reactivated", &t.owner_token, false).await;
    // Deactivated: its keys are refused (401) on both servers at once; its members and
    // the operator keep access. The read key is not used meanwhile on server two, which
    // learns from the operator's request that the tenant is deactivated.
    for app in [&one, &two] {
        let refused = app.get(path, &t.full_key).await;
        assert_eq!(refused.status, 401, "{}", refused.text);
        assert_eq!(refused.content_type(), "application/problem+json");
        assert_eq!(app.get(path, &t.owner_token).await.status, 200);
        let operator = app.get(path, OPERATOR_TOKEN).await;
        assert_eq!(operator.status, 200);
        assert_eq!(operator.body["is_active"], false);
    }
    assert_eq!(one.get(path, &t.read_key).await.status, 401);
    set_active(&two, "reactivated", &t.owner_token, true).await;
    // Reactivated: every key works at once on both servers — the one used while the
    // tenant was deactivated (was 401 for seconds) and the one not used meanwhile (was a
    // 403 "deactivated" from the cached tenant).
    for app in [&one, &two] {
        for key in [&t.full_key, &t.read_key] {
            let reply = app.get(path, key).await;
            assert_eq!(reply.status, 200, "{}", reply.text);
            assert_eq!(reply.body["is_active"], true);
        }
        let write = app
            .post(
                &format!("{path}/contacts"),
                &t.full_key,
                json!({"name": "Back again"}),
            )
            .await;
        assert_eq!(write.status, 201, "{}", write.text);
    }
}

#[tokio::test]
async fn membership_changes_take_effect_at_once_on_every_server() {
    let one = spawn_app().await;
    let two = spawn_app_on(&one.db).await;
    let t = seed_tenancy(&one, "promoted").await;
    let members = "/v1/tenants/promoted/members";
    let member = |user: Uuid| format!("{members}/{user}");
    // Server two has the agent's role cached: too low for the admin routes.
    assert_eq!(two.get(members, &t.agent_token).await.status, 403);
    let promote = one
        .patch(&member(t.agent), &t.owner_token, json!({"role": "admin"}))
        .await;
    assert_eq!(promote.status, 200, "{}", promote.text);
    let now_admin = two.get(members, &t.agent_token).await;
    assert_eq!(now_admin.status, 200, "{}", now_admin.text);
    // And back: the demotion is seen at once too.
    let demote = one
        .patch(&member(t.agent), &t.owner_token, json!({"role": "agent"}))
        .await;
    assert_eq!(demote.status, 200, "{}", demote.text);
    assert_eq!(two.get(members, &t.agent_token).await.status, 403);
    assert_eq!(
        two.get("/v1/tenants/promoted", &t.agent_token).await.status,
        200
    );

    // Someone refused on server two (not a member) is let in as soon as they are added.
    let newcomer = Uuid::now_v7();
    let token = frontdesk_test::user_token(newcomer, None);
    assert_eq!(two.get("/v1/me", &token).await.status, 200);
    assert_eq!(two.get("/v1/tenants/promoted", &token).await.status, 404);
    let added = one
        .post(
            members,
            &t.owner_token,
            json!({"user_id": newcomer, "role": "admin"}),
        )
        .await;
    assert_eq!(added.status, 201, "{}", added.text);
    assert_eq!(two.get("/v1/tenants/promoted", &token).await.status, 200);
    assert_eq!(two.get(members, &token).await.status, 200);
    // Removed: out at once.
    assert_eq!(
        one.delete(&member(newcomer), &t.owner_token).await.status,
        204
    );
    assert_eq!(two.get("/v1/tenants/promoted", &token).await.status, 404);
    assert_eq!(two.get(members, &token).await.status, 403);

    // A key's scope is no membership, but the same holds for a read key's write refused
    // on the cached scope: nothing else changed, so still 403.
    let write = two
        .post(
            "/v1/tenants/promoted/contacts",
            &t.read_key,
            json!({"name": "No"}),
        )
        .await;
    assert_eq!(write.status, 403, "{}", write.text);
}

#[tokio::test]
async fn a_renamed_slug_stops_resolving_on_every_server_at_once() {
    let one = spawn_app().await;
    let two = spawn_app_on(&one.db).await;
    let t = seed_tenancy(&one, "old-name").await;
    for credential in [t.full_key.as_str(), t.owner_token.as_str(), OPERATOR_TOKEN] {
        assert_eq!(
            two.get("/v1/tenants/old-name", credential).await.status,
            200
        );
    }
    let renamed = one
        .patch(
            "/v1/tenants/old-name",
            &t.owner_token,
            json!({"slug": "new-name"}),
        )
        .await;
    assert_eq!(renamed.status, 200, "{}", renamed.text);
    for credential in [t.full_key.as_str(), t.owner_token.as_str(), OPERATOR_TOKEN] {
        let old = two.get("/v1/tenants/old-name", credential).await;
        assert_eq!(old.status, 404, "{}", old.text);
        let new = two.get("/v1/tenants/new-name", credential).await;
        assert_eq!(new.status, 200, "{}", new.text);
    }
    // Another tenant takes the old slug: server two sends it there, not to the first.
    let other = seed_tenancy(&one, "taken-over").await;
    let moved = one
        .patch(
            "/v1/tenants/taken-over",
            &other.owner_token,
            json!({"slug": "old-name"}),
        )
        .await;
    assert_eq!(moved.status, 200, "{}", moved.text);
    let reply = two.get("/v1/tenants/old-name", OPERATOR_TOKEN).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["id"], other.id.to_string());
}
