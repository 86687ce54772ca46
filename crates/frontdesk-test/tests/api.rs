//! The API's behaviour over real HTTP: tenants, members, keys, auth, conventions.

use frontdesk_test::{
    JWT_SECRET, OPERATOR_TOKEN, fixtures::seed_tenant, json, spawn_app, tenant_snapshot,
    tenant_tables, token_with, user_token,
};
use uuid::Uuid;

#[tokio::test]
async fn a_signed_in_user_creates_a_tenant_and_becomes_its_owner() {
    let app = spawn_app().await;
    let user = Uuid::now_v7();
    let token = user_token(user, Some("ana@example.com"));
    let created = app
        .post(
            "/v1/tenants",
            &token,
            json!({"slug": "warung-ana", "name": "Warung Ana", "kind": "restaurant", "timezone": "Asia/Jakarta",
                   "llm_temperature": 0.7, "monthly_budget_usd": "25.5", "features": {"voice": true}}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.body["role"], "owner");
    assert_eq!(created.body["monthly_budget_usd"], "25.500000");
    assert_eq!(created.body["llm_temperature"], 0.7);
    let by_slug = app.get("/v1/tenants/warung-ana", &token).await;
    let by_id = app
        .get(
            &format!("/v1/tenants/{}", created.body["id"].as_str().unwrap()),
            &token,
        )
        .await;
    assert_eq!(by_slug.status, 200);
    assert_eq!(by_slug.body["id"], by_id.body["id"]);
    let mine = app.get("/v1/tenants", &token).await;
    assert_eq!(mine.body["data"].as_array().unwrap().len(), 1);
    let members = app.get("/v1/tenants/warung-ana/members", &token).await;
    assert_eq!(members.body["data"][0]["user_id"], user.to_string());
    assert_eq!(members.body["data"][0]["email"], "ana@example.com");
}

#[tokio::test]
async fn bad_tenant_input_is_a_422_with_field_errors_and_stores_nothing() {
    let app = spawn_app().await;
    let token = user_token(Uuid::now_v7(), None);
    for (body, field) in [
        (json!({"slug": "No Spaces!", "name": "x"}), "slug"),
        (json!({"slug": "ab", "name": "x"}), "slug"),
        (
            json!({"slug": "0190f5e2-7c3a-7d2e-9b1a-3c4d5e6f7a8b", "name": "x"}),
            "slug",
        ),
        (
            json!({"slug": "good-slug", "name": "x", "timezone": "Mars/Olympus_Mons"}),
            "timezone",
        ),
        (
            json!({"slug": "good-slug", "name": "x", "timezone": "asia/jakarta"}),
            "timezone",
        ),
        (
            json!({"slug": "good-slug", "name": "x", "colour": "red"}),
            "colour",
        ),
        (
            json!({"slug": "good-slug", "name": "x", "llm_temperature": 2.5}),
            "llm_temperature",
        ),
        (
            json!({"slug": "good-slug", "name": "x", "kind": "bakery"}),
            "kind",
        ),
        (
            json!({"slug": "good-slug", "name": "x", "phone": "0811"}),
            "phone",
        ),
        (
            json!({"slug": "good-slug", "name": "x", "monthly_budget_usd": "-1"}),
            "monthly_budget_usd",
        ),
        (
            json!({"slug": "good-slug", "name": "x", "features": []}),
            "features",
        ),
        (json!({"slug": "good-slug", "name": 5}), "name"),
        (json!({"slug": "good-slug"}), "name"),
        (json!({"slug": "good-slug", "name": "nul\u{0}name"}), "name"),
        (
            json!({"slug": "good-slug", "name": "x", "features": {"a": ["ok", "nul\u{0}"]}}),
            "features.a[1]",
        ),
    ] {
        let reply = app.post("/v1/tenants", &token, body.clone()).await;
        assert_eq!(reply.status, 422, "{body}: {}", reply.text);
        assert_eq!(reply.content_type(), "application/problem+json");
        assert!(
            reply.error_fields().contains(&field.to_owned()),
            "{body}: {}",
            reply.text
        );
    }
    let admin = app.db.admin().await;
    let n: i64 = admin
        .query_one("select count(*) from app.tenants", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
}

/// The sorted field names of a reply's errors.
fn sorted_fields(reply: &frontdesk_test::Reply) -> Vec<String> {
    let mut fields = reply.error_fields();
    fields.sort();
    fields
}

#[tokio::test]
async fn one_422_lists_every_invalid_field_of_a_body_at_once() {
    let app = spawn_app().await;
    let token = user_token(Uuid::now_v7(), None);
    let reply = app
        .post(
            "/v1/tenants",
            &token,
            json!({"slug": "No Spaces!", "name": "x", "timezone": "not a zone", "colour": "red"}),
        )
        .await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    assert_eq!(
        sorted_fields(&reply),
        ["colour", "slug", "timezone"],
        "{}",
        reply.text
    );
    // A well-formed zone the database does not know is named beside the others too (the
    // server checks the database's own list, read at start).
    let reply = app
        .post(
            "/v1/tenants",
            &token,
            json!({"slug": "No Spaces!", "name": "x", "timezone": "Mars/Olympus_Mons"}),
        )
        .await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    assert_eq!(
        sorted_fields(&reply),
        ["slug", "timezone"],
        "{}",
        reply.text
    );
    // Required fields missing are listed with the rest.
    let reply = app
        .post("/v1/tenants", &token, json!({"kind": "bakery", "shape": 1}))
        .await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    assert_eq!(
        sorted_fields(&reply),
        ["kind", "name", "shape", "slug"],
        "{}",
        reply.text
    );
}

#[tokio::test]
async fn a_wrong_json_type_in_one_field_and_a_bad_value_in_another_are_both_reported() {
    let app = spawn_app().await;
    let a = seed_tenant(&app, "typed").await;
    let reply = app
        .patch(
            "/v1/tenants/typed",
            &a.owner_token,
            json!({"name": 5, "llm_temperature": 7, "rate_limit_per_minute": "lots", "phone": "0811"}),
        )
        .await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    assert_eq!(
        sorted_fields(&reply),
        ["llm_temperature", "name", "phone", "rate_limit_per_minute"],
        "{}",
        reply.text
    );
    let member = app
        .post(
            "/v1/tenants/typed/members",
            &a.owner_token,
            json!({"user_id": 7, "role": "boss", "email": 3}),
        )
        .await;
    assert_eq!(member.status, 422, "{}", member.text);
    assert_eq!(
        sorted_fields(&member),
        ["email", "role", "user_id"],
        "{}",
        member.text
    );
    // Nothing was changed.
    let tenant = app.get("/v1/tenants/typed", &a.owner_token).await;
    assert_ne!(tenant.body["name"], 5);
    assert_eq!(tenant.body["phone"], serde_json::Value::Null);
}

#[tokio::test]
async fn a_create_body_names_each_bad_field_once_missing_ones_included() {
    let app = spawn_app().await;
    let a = seed_tenant(&app, "creates").await;
    let path = "/v1/tenants/creates/assistants";
    let missing = app
        .post(
            path,
            &a.owner_token,
            json!({"channel": "fax", "llm_max_tokens": 0}),
        )
        .await;
    assert_eq!(missing.status, 422, "{}", missing.text);
    assert_eq!(
        sorted_fields(&missing),
        ["channel", "llm_max_tokens", "name"],
        "{}",
        missing.text
    );
    let wrong_type = app.post(path, &a.owner_token, json!({"name": 5})).await;
    assert_eq!(wrong_type.status, 422, "{}", wrong_type.text);
    assert_eq!(wrong_type.error_fields(), ["name"], "{}", wrong_type.text);
    let message = app
        .post(
            &format!(
                "/v1/tenants/creates/conversations/{}/messages",
                Uuid::now_v7()
            ),
            &a.owner_token,
            json!({"role": "robot", "prompt_tokens": -1, "cost_usd": "-0.1", "metadata": []}),
        )
        .await;
    assert_eq!(message.status, 422, "{}", message.text);
    assert_eq!(
        sorted_fields(&message),
        ["content", "cost_usd", "metadata", "prompt_tokens", "role"],
        "{}",
        message.text
    );
}

#[tokio::test]
async fn every_bad_query_parameter_is_listed_in_one_422() {
    let app = spawn_app().await;
    let a = seed_tenant(&app, "queries").await;
    let token = &a.owner_token;
    let reply = app
        .get(
            "/v1/tenants/queries/conversations?limit=0&archived=maybe&assistant_id=nope&updated_since=yesterday",
            token,
        )
        .await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    assert_eq!(
        sorted_fields(&reply),
        ["archived", "assistant_id", "limit", "updated_since"],
        "{}",
        reply.text
    );
    let top = app
        .get("/v1/tenants/queries/analytics/top?days=0&limit=x", token)
        .await;
    assert_eq!(top.status, 422, "{}", top.text);
    assert_eq!(sorted_fields(&top), ["by", "days", "limit"], "{}", top.text);
    let twice = app
        .get("/v1/tenants/queries/conversations?limit=5&limit=6", token)
        .await;
    assert_eq!(twice.status, 422, "{}", twice.text);
    assert_eq!(twice.error_fields(), ["limit"], "{}", twice.text);
}

#[tokio::test]
async fn a_body_that_is_not_an_object_is_a_422_on_body() {
    let app = spawn_app().await;
    let a = seed_tenant(&app, "shapes").await;
    let json = "application/json";
    for (method, path, body) in [
        ("POST", "/v1/tenants", r#"["acme", "Acme"]"#),
        ("PATCH", "/v1/tenants/shapes", r#"["Other name"]"#),
        ("POST", "/v1/tenants/shapes/api-keys", r#"["bot"]"#),
        ("POST", "/v1/tenants/shapes/api-keys", r#""bot""#),
        ("POST", "/v1/tenants/shapes/api-keys", "42"),
    ] {
        let reply = app
            .raw(method, path, &a.owner_token, json, body.into())
            .await;
        assert_eq!(reply.status, 422, "{method} {path} {body}: {}", reply.text);
        assert_eq!(reply.error_fields(), ["body"], "{}", reply.text);
    }
}

#[tokio::test]
async fn duplicate_slug_is_409_malformed_json_400_oversized_413() {
    let app = spawn_app().await;
    let token = user_token(Uuid::now_v7(), None);
    assert_eq!(
        app.post(
            "/v1/tenants",
            &token,
            json!({"slug": "acme", "name": "Acme"})
        )
        .await
        .status,
        201
    );
    let again = app
        .post(
            "/v1/tenants",
            &token,
            json!({"slug": "acme", "name": "Other"}),
        )
        .await;
    assert_eq!(again.status, 409);
    assert_eq!(again.error_fields(), vec!["slug"]);

    let json = "application/json";
    let malformed = app
        .raw("POST", "/v1/tenants", &token, json, "{\"slug\": ".into())
        .await;
    assert_eq!(malformed.status, 400);
    assert_eq!(malformed.content_type(), "application/problem+json");
    let huge = format!(
        "{{\"slug\": \"big\", \"name\": \"{}\"}}",
        "x".repeat(2 * 1024 * 1024)
    );
    let oversized = app.raw("POST", "/v1/tenants", &token, json, huge).await;
    assert_eq!(oversized.status, 413);
    assert_eq!(oversized.content_type(), "application/problem+json");
    let not_json = app
        .raw(
            "POST",
            "/v1/tenants",
            &token,
            "text/plain",
            "slug=acme".into(),
        )
        .await;
    assert_eq!(not_json.status, 415);
    assert_eq!(not_json.content_type(), "application/problem+json");
}

#[tokio::test]
async fn patch_keeps_absent_fields_clears_nulls_and_validates() {
    let app = spawn_app().await;
    let a = seed_tenant(&app, "patchy").await;
    let path = "/v1/tenants/patchy";
    let set = app
        .patch(
            path,
            &a.owner_token,
            json!({"email": "hi@patchy.test", "daily_token_limit": 1000}),
        )
        .await;
    assert_eq!(set.status, 200, "{}", set.text);
    let cleared = app
        .patch(
            path,
            &a.owner_token,
            json!({"email": null, "name": "Patchy Co"}),
        )
        .await;
    assert_eq!(cleared.body["email"], serde_json::Value::Null);
    assert_eq!(cleared.body["daily_token_limit"], 1000);
    assert_eq!(cleared.body["name"], "Patchy Co");
    let bad = app.patch(path, &a.owner_token, json!({"name": null})).await;
    assert_eq!(bad.status, 422);
    assert_eq!(bad.error_fields(), vec!["name"]);
    // An agent may read but not change the tenant.
    assert_eq!(app.get(path, &a.agent_token).await.status, 200);
    assert_eq!(
        app.patch(path, &a.agent_token, json!({"name": "Mine"}))
            .await
            .status,
        403
    );
}

#[tokio::test]
async fn the_last_owner_cannot_be_removed_or_demoted() {
    let app = spawn_app().await;
    let a = seed_tenant(&app, "owners").await;
    let me = format!("/v1/tenants/owners/members/{}", a.owner);
    let demote = app
        .patch(&me, &a.owner_token, json!({"role": "admin"}))
        .await;
    assert_eq!(demote.status, 409, "{}", demote.text);
    let remove = app.delete(&me, &a.owner_token).await;
    assert_eq!(remove.status, 409);
    // With a second owner, one of them may go.
    let promote = app
        .patch(
            &format!("/v1/tenants/owners/members/{}", a.admin),
            &a.owner_token,
            json!({"role": "owner"}),
        )
        .await;
    assert_eq!(promote.status, 200, "{}", promote.text);
    assert_eq!(
        app.patch(&me, &a.owner_token, json!({"role": "member"}))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn concurrent_demotions_of_two_owners_leave_one_owner() {
    for round in 0..5 {
        let app = spawn_app().await;
        let a = seed_tenant(&app, &format!("race-{round}")).await;
        let base = format!("/v1/tenants/race-{round}/members");
        let promote = app
            .patch(
                &format!("{base}/{}", a.admin),
                &a.owner_token,
                json!({"role": "owner"}),
            )
            .await;
        assert_eq!(promote.status, 200);
        let (owner_path, admin_path) =
            (format!("{base}/{}", a.owner), format!("{base}/{}", a.admin));
        let (x, y) = tokio::join!(
            app.patch(&owner_path, &a.owner_token, json!({"role": "member"})),
            app.patch(&admin_path, &a.admin_token, json!({"role": "member"})),
        );
        let mut statuses = [x.status.as_u16(), y.status.as_u16()];
        statuses.sort();
        // One wins; the other is refused as the last owner (or, if it lost its own
        // ownership first, as no longer allowed).
        assert!(
            statuses == [200, 409] || statuses == [200, 403],
            "{statuses:?}: {} / {}",
            x.text,
            y.text
        );
        let owners: i64 = app
            .db
            .admin()
            .await
            .query_one(
                "select count(*) from app.memberships where tenant_id = $1 and role = 'owner'",
                &[&a.id],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(owners, 1);
    }
}

#[tokio::test]
async fn admins_manage_members_but_only_owners_make_owners() {
    let app = spawn_app().await;
    let a = seed_tenant(&app, "staff").await;
    let newcomer = Uuid::now_v7();
    let path = "/v1/tenants/staff/members";
    let as_owner = app
        .post(
            path,
            &a.admin_token,
            json!({"user_id": newcomer, "role": "owner"}),
        )
        .await;
    assert_eq!(as_owner.status, 403, "{}", as_owner.text);
    let as_agent = app
        .post(
            path,
            &a.admin_token,
            json!({"user_id": newcomer, "role": "agent", "email": "new@staff.test"}),
        )
        .await;
    assert_eq!(as_agent.status, 201, "{}", as_agent.text);
    assert_eq!(as_agent.body["email"], "new@staff.test");
    let twice = app
        .post(
            path,
            &a.admin_token,
            json!({"user_id": newcomer, "role": "agent"}),
        )
        .await;
    assert_eq!(twice.status, 409);
    let bad_role = app
        .post(
            path,
            &a.admin_token,
            json!({"user_id": Uuid::now_v7(), "role": "boss"}),
        )
        .await;
    assert_eq!(bad_role.status, 422);
    assert_eq!(bad_role.error_fields(), vec!["role"]);
    // An admin cannot demote an owner.
    let demote = app
        .patch(
            &format!("{path}/{}", a.owner),
            &a.admin_token,
            json!({"role": "member"}),
        )
        .await;
    assert_eq!(demote.status, 403);
    // The newcomer signs in and finds the tenant.
    let mine = app.get("/v1/tenants", &user_token(newcomer, None)).await;
    assert_eq!(mine.body["data"][0]["slug"], "staff");
    assert_eq!(mine.body["data"][0]["role"], "agent");
}

#[tokio::test]
async fn api_keys_show_their_secret_once_and_stop_working_when_revoked() {
    let app = spawn_app().await;
    let a = seed_tenant(&app, "keys").await;
    let created = app
        .post(
            "/v1/tenants/keys/api-keys",
            &a.admin_token,
            json!({"name": "bot"}),
        )
        .await;
    assert_eq!(created.status, 201);
    let secret = created.body["secret"].as_str().unwrap().to_owned();
    assert!(
        secret.starts_with("fd_") && secret.starts_with(created.body["prefix"].as_str().unwrap())
    );
    assert_eq!(created.body["scopes"], json!(["full"]));
    let listed = app.get("/v1/tenants/keys/api-keys", &a.admin_token).await;
    assert!(
        !listed.text.contains(&secret),
        "a listed key shows its secret"
    );
    let one = app
        .get(
            &format!(
                "/v1/tenants/keys/api-keys/{}",
                created.body["id"].as_str().unwrap()
            ),
            &a.admin_token,
        )
        .await;
    assert!(!one.text.contains(&secret));
    let stored: Vec<u8> = app
        .db
        .admin()
        .await
        .query_one(
            "select secret_hash from app.api_keys where prefix = $1",
            &[&created.body["prefix"].as_str().unwrap()],
        )
        .await
        .unwrap()
        .get(0);
    use sha2::Digest;
    assert_eq!(stored, sha2::Sha256::digest(secret.as_bytes()).to_vec());

    assert_eq!(app.get("/v1/tenants/keys", &secret).await.status, 200);
    let used = app
        .get(
            &format!(
                "/v1/tenants/keys/api-keys/{}",
                created.body["id"].as_str().unwrap()
            ),
            &a.admin_token,
        )
        .await;
    assert!(used.body["last_used_at"].is_string());
    let revoked = app
        .delete(
            &format!(
                "/v1/tenants/keys/api-keys/{}",
                created.body["id"].as_str().unwrap()
            ),
            &a.admin_token,
        )
        .await;
    assert_eq!(revoked.status, 204);
    // Immediately, even though this server cached the key a moment ago.
    let after = app.get("/v1/tenants/keys", &secret).await;
    assert_eq!(after.status, 401, "{}", after.text);
    assert_eq!(
        app.get("/v1/tenants/keys", "fd_not-a-real-key")
            .await
            .status,
        401
    );
}

#[tokio::test]
async fn a_revoked_key_is_refused_by_every_server_within_seconds() {
    // Two servers on one database: the second has the key cached when the first revokes it.
    let app = spawn_app().await;
    let a = seed_tenant(&app, "two-servers").await;
    let other = frontdesk_test::spawn_app_on(&app.db).await;
    assert_eq!(
        other
            .get("/v1/tenants/two-servers", &a.full_key)
            .await
            .status,
        200
    );
    assert_eq!(
        app.delete(
            &format!("/v1/tenants/two-servers/api-keys/{}", a.full_key_id),
            &a.owner_token
        )
        .await
        .status,
        204
    );
    let started = std::time::Instant::now();
    let reply = other.get("/v1/tenants/two-servers", &a.full_key).await;
    assert_eq!(reply.status, 401, "{}", reply.text);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[tokio::test]
async fn a_role_change_takes_effect_on_the_next_request_of_a_server_that_cached_the_old_role() {
    let app = spawn_app().await;
    let a = seed_tenant(&app, "demoted").await;
    let other = frontdesk_test::spawn_app_on(&app.db).await;
    assert_eq!(
        other
            .get("/v1/tenants/demoted/members", &a.admin_token)
            .await
            .status,
        200
    );
    let demote = app
        .patch(
            &format!("/v1/tenants/demoted/members/{}", a.admin),
            &a.owner_token,
            json!({"role": "member"}),
        )
        .await;
    assert_eq!(demote.status, 200);
    assert_eq!(
        other
            .get("/v1/tenants/demoted/members", &a.admin_token)
            .await
            .status,
        403
    );
    assert_eq!(
        other
            .get("/v1/tenants/demoted", &a.admin_token)
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn expired_tampered_foreign_and_malformed_tokens_are_401() {
    let app = spawn_app().await;
    let user = Uuid::now_v7();
    let good = user_token(user, None);
    assert_eq!(app.get("/v1/me", &good).await.status, 200);
    let expired = token_with(user, None, -120, JWT_SECRET);
    let foreign = token_with(user, None, 3600, "some-other-secret-some-other-secret-0000");
    let mut tampered = good.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    // alg "none": header {"alg":"none"} and no signature.
    let none = format!("eyJhbGciOiJub25lIn0.{}.", good.split('.').nth(1).unwrap());
    for (what, token) in [
        ("expired", &expired),
        ("foreign", &foreign),
        ("tampered", &tampered),
        ("none", &none),
    ] {
        let reply = app.get("/v1/me", token).await;
        assert_eq!(reply.status, 401, "{what}: {}", reply.text);
        assert_eq!(reply.headers["www-authenticate"], "Bearer");
    }
    assert_eq!(app.call("GET", "/v1/me", None, None).await.status, 401);
    assert_eq!(app.get("/v1/me", "garbage").await.status, 401);
}

#[tokio::test]
async fn deleting_a_tenant_removes_everything_it_owns() {
    let app = spawn_app().await;
    let a = seed_tenant(&app, "doomed").await;
    let b = seed_tenant(&app, "survivor").await;
    let admin = app.db.admin().await;
    let b_before = tenant_snapshot(&admin, b.id).await;
    assert_eq!(
        app.delete("/v1/tenants/doomed", &a.admin_token)
            .await
            .status,
        403
    );
    assert_eq!(
        app.delete("/v1/tenants/doomed", &a.owner_token)
            .await
            .status,
        204
    );
    for table in tenant_tables(&admin).await {
        let n: i64 = admin
            .query_one(
                &format!("select count(*) from app.{table} where tenant_id = $1"),
                &[&a.id],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 0, "app.{table} kept rows of a deleted tenant");
    }
    assert_eq!(tenant_snapshot(&admin, b.id).await, b_before);
    // The operator may delete any tenant.
    assert_eq!(
        app.delete("/v1/tenants/survivor", OPERATOR_TOKEN)
            .await
            .status,
        204
    );
    assert_eq!(
        app.get("/v1/tenants/survivor", OPERATOR_TOKEN).await.status,
        404
    );
}

#[tokio::test]
async fn the_operator_lists_every_tenant_and_pages_through_them() {
    let app = spawn_app().await;
    let token = user_token(Uuid::now_v7(), None);
    for i in 0..5 {
        assert_eq!(
            app.post(
                "/v1/tenants",
                &token,
                json!({"slug": format!("t-{i}"), "name": "T"})
            )
            .await
            .status,
            201
        );
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/tenants?limit=2&cursor={c}"),
            None => "/v1/tenants?limit=2".to_owned(),
        };
        let page = app.get(&path, OPERATOR_TOKEN).await;
        assert_eq!(page.status, 200, "{}", page.text);
        for t in page.body["data"].as_array().unwrap() {
            seen.push(t["slug"].as_str().unwrap().to_owned());
        }
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, ["t-4", "t-3", "t-2", "t-1", "t-0"]);
    assert_eq!(app.get("/v1/tenants?limit=500", &token).await.status, 422);
    assert_eq!(
        app.get("/v1/tenants?cursor=nonsense", &token).await.status,
        422
    );
    assert_eq!(app.get("/v1/tenants?colour=red", &token).await.status, 422);
}

#[tokio::test]
async fn service_endpoints_request_ids_and_docs_work_offline() {
    let app = spawn_app().await;
    let health = app.call("GET", "/healthz", None, None).await;
    assert_eq!(health.status, 200);
    assert!(health.headers.contains_key("x-request-id"));
    assert_eq!(app.call("GET", "/readyz", None, None).await.status, 200);
    let _ = app.get("/v1/me", &user_token(Uuid::now_v7(), None)).await;
    let metrics = app.call("GET", "/metrics", None, None).await;
    assert!(
        metrics.text.contains("http_requests_total"),
        "{}",
        metrics.text
    );
    assert!(metrics.text.contains("db_pool_max_size"));
    let doc = app.call("GET", "/openapi.json", None, None).await;
    assert!(doc.body["openapi"].as_str().unwrap().starts_with("3.1"));
    assert!(doc.body["paths"]["/v1/tenants/{tenant}/members/{user_id}"]["patch"].is_object());
    let page = app.call("GET", "/docs", None, None).await;
    assert_eq!(page.status, 200);
    assert!(page.text.contains("/v1/tenants/{tenant}/api-keys"));
    // (examples in the reference may show URLs; nothing may be loaded from one)
    assert!(
        !page.text.contains("<script src")
            && !["src=\"http", "href=\"http", "url(http", "import(\"http"]
                .iter()
                .any(|load| page.text.contains(load)),
        "the docs page loads something"
    );
    let nul_tenant = app.get("/v1/tenants/a%00b", OPERATOR_TOKEN).await;
    assert_eq!(nul_tenant.status, 404, "{}", nul_tenant.text);
    let missing = app.call("GET", "/nowhere", None, None).await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.content_type(), "application/problem+json");
    let wrong_method = app
        .call("PUT", "/v1/tenants", Some(OPERATOR_TOKEN), None)
        .await;
    assert_eq!(wrong_method.status, 405);
}

#[tokio::test]
async fn openapi_document_matches_the_snapshot() {
    let app = spawn_app().await;
    let doc = app.call("GET", "/openapi.json", None, None).await.body;
    insta::assert_json_snapshot!("openapi", doc);
}

/// Every route refuses query parameters it does not declare, in one 422 naming each,
/// before anything else happens; a declared one beside them is not named.
#[tokio::test]
async fn every_route_refuses_unknown_query_parameters_in_one_422() {
    let app = spawn_app().await;
    let t = seed_tenant(&app, "query-guard").await;
    let routes = frontdesk_server::router::route_table();
    assert!(routes.len() > 50, "the route table is complete");
    for route in &routes {
        let mut path = route.path.replace("{tenant}", &t.slug);
        while let (Some(open), Some(close)) = (path.find('{'), path.find('}')) {
            path.replace_range(open..=close, &Uuid::now_v7().to_string());
        }
        let known = route
            .query
            .first()
            .map(|name| format!("&{name}=x"))
            .unwrap_or_default();
        let reply = app
            .call(
                &route.method,
                &format!("{path}?typo_limit=1&other=2&typo_limit=3{known}"),
                Some(&t.owner_token),
                None,
            )
            .await;
        assert_eq!(reply.status, 422, "{} {path}: {}", route.method, reply.text);
        assert_eq!(
            reply.error_fields(),
            vec!["typo_limit", "other"],
            "{} {path}",
            route.method
        );
    }
    // Declared parameters still work.
    let listed = app
        .get(
            &format!("/v1/tenants/{}/conversations?limit=1", t.slug),
            &t.owner_token,
        )
        .await;
    assert_eq!(listed.status, 200, "{}", listed.text);
}
