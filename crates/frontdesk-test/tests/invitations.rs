//! Teammates by their identity provider's ids: `POST …/members` by `sub` (as the provider
//! issues it) or by email, and invitations by email — created, listed, revoked and
//! accepted over real HTTP with JWTs signed by the harness.

use chrono::{DateTime, Utc};
use frontdesk_core::tenancy::users::user_id_for_sub;
use frontdesk_test::{
    JWT_SECRET, OPERATOR_TOKEN, Reply, TestApp,
    fixtures::{Tenancy, seed_tenancy},
    spawn_app,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// A JWT signed with the test secret whose claims are `claims` plus a `sub` and an hour.
fn token(sub: &str, claims: Value) -> String {
    let now = jsonwebtoken::get_current_timestamp();
    let mut all = json!({"sub": sub, "iat": now, "exp": now + 3600});
    for (k, v) in claims.as_object().unwrap() {
        all[k] = v.clone();
    }
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &all,
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .unwrap()
}

/// A person who signed in once (so their user row exists, with their token's email).
async fn signed_in(app: &TestApp, sub: &str, claims: Value) -> String {
    let t = token(sub, claims);
    let me = app.get("/v1/me", &t).await;
    assert_eq!(me.status, 200, "{}", me.text);
    t
}

async fn memberships_of(app: &TestApp, tenant: Uuid, user: Uuid) -> i64 {
    app.db
        .admin()
        .await
        .query_one(
            "select count(*) from app.memberships where tenant_id = $1 and user_id = $2",
            &[&tenant, &user],
        )
        .await
        .unwrap()
        .get(0)
}

async fn invite(app: &TestApp, t: &Tenancy, by: &str, email: &str, role: &str) -> Reply {
    app.post(
        &format!("/v1/tenants/{}/invitations", t.slug),
        by,
        json!({"email": email, "role": role}),
    )
    .await
}

fn assert_problem(reply: &Reply, status: u16, detail_has: &str) {
    assert_eq!(reply.status, status, "{}", reply.text);
    assert!(
        reply.content_type().starts_with("application/problem+json"),
        "{}",
        reply.text
    );
    assert!(
        reply.body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains(detail_has),
        "expected {detail_has:?} in {}",
        reply.text
    );
}

#[tokio::test]
async fn members_are_added_by_their_identity_providers_sub_as_given() {
    let app = spawn_app().await;
    let t = seed_tenancy(&app, "subs").await;
    let path = format!("/v1/tenants/{}/members", t.slug);
    for (sub, role) in [
        ("auth0|65f1c2", "agent"),
        ("google-oauth2|109312345678901234567", "member"),
    ] {
        let added = app
            .post(&path, &t.admin_token, json!({"user_id": sub, "role": role}))
            .await;
        assert_eq!(added.status, 201, "{}", added.text);
        let id = user_id_for_sub(sub);
        assert_eq!(added.body["user_id"], id.to_string());
        // The person's own token, with that sub, is that member.
        let theirs = token(sub, json!({}));
        let tenant = app.get(&format!("/v1/tenants/{}", t.slug), &theirs).await;
        assert_eq!(tenant.status, 200, "{}", tenant.text);
        assert_eq!(tenant.body["role"], role);
        let me = app.get("/v1/me", &theirs).await;
        assert_eq!(me.body["id"], id.to_string());
    }
    // The documented mapping: UUIDv5 of the sub in the namespace.
    let ns = Uuid::parse_str("6a1f0e37-52d4-4c4b-9a2e-7d1bf0c38e55").unwrap();
    assert_eq!(
        user_id_for_sub("auth0|65f1c2"),
        Uuid::new_v5(&ns, b"auth0|65f1c2")
    );
    // A UUID sub is the id itself; the same person again is a 409.
    let uuid_sub = Uuid::now_v7();
    let added = app
        .post(
            &path,
            &t.admin_token,
            json!({"user_id": uuid_sub.to_string(), "role": "member"}),
        )
        .await;
    assert_eq!(added.status, 201, "{}", added.text);
    assert_eq!(added.body["user_id"], uuid_sub.to_string());
    let again = app
        .post(
            &path,
            &t.admin_token,
            json!({"user_id": "auth0|65f1c2", "role": "member"}),
        )
        .await;
    assert_eq!(again.status, 409, "{}", again.text);
    // Bad ids: one 422 naming every field.
    for (body, fields) in [
        (json!({"user_id": "", "role": "agent"}), vec!["user_id"]),
        (
            json!({"user_id": Uuid::nil().to_string(), "role": "agent"}),
            vec!["user_id"],
        ),
        (
            json!({"user_id": "x".repeat(256), "role": "boss"}),
            vec!["user_id", "role"],
        ),
        (json!({"role": "agent"}), vec!["user_id"]),
        (json!({"user_id": 7, "role": "agent"}), vec!["user_id"]),
    ] {
        let reply = app.post(&path, &t.admin_token, body.clone()).await;
        assert_eq!(reply.status, 422, "{body}: {}", reply.text);
        let named: Vec<&str> = reply.body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert_eq!(named, fields, "{body}: {}", reply.text);
    }
}

#[tokio::test]
async fn members_are_added_by_the_email_they_signed_in_with_and_only_that() {
    let app = spawn_app().await;
    let t = seed_tenancy(&app, "emails").await;
    let path = format!("/v1/tenants/{}/members", t.slug);
    let lee = "google-oauth2|1093";
    signed_in(
        &app,
        lee,
        json!({"email": "lee@example.com", "email_verified": true}),
    )
    .await;
    let added = app
        .post(
            &path,
            &t.admin_token,
            json!({"email": "LEE@Example.com", "role": "agent"}),
        )
        .await;
    assert_eq!(added.status, 201, "{}", added.text);
    assert_eq!(added.body["user_id"], user_id_for_sub(lee).to_string());
    assert_eq!(added.body["email"], "lee@example.com");

    // Nobody signed in with it: 422, nothing added.
    let nobody = app
        .post(
            &path,
            &t.admin_token,
            json!({"email": "nobody@example.com", "role": "agent"}),
        )
        .await;
    assert_eq!(nobody.status, 422, "{}", nobody.text);
    assert_eq!(nobody.body["errors"][0]["field"], "email");

    // An email an admin gave a user who never signed in is not that user's to be found by:
    // otherwise any tenant's admin could plant someone's email on an account of theirs.
    let planted = app
        .post(
            &path,
            &t.admin_token,
            json!({"user_id": "auth0|planted", "role": "member", "email": "victim@example.com"}),
        )
        .await;
    assert_eq!(planted.status, 201, "{}", planted.text);
    let other = seed_tenancy(&app, "other").await;
    let found = app
        .post(
            &format!("/v1/tenants/{}/members", other.slug),
            &other.owner_token,
            json!({"email": "victim@example.com", "role": "admin"}),
        )
        .await;
    assert_eq!(found.status, 422, "{}", found.text);

    // An email the identity provider marks unverified is not recorded, nor found.
    let unverified = signed_in(
        &app,
        "auth0|unverified",
        json!({"email": "unv@example.com", "email_verified": false}),
    )
    .await;
    assert_eq!(
        app.get("/v1/me", &unverified).await.body["email"],
        Value::Null
    );
    let reply = app
        .post(
            &path,
            &t.admin_token,
            json!({"email": "unv@example.com", "role": "agent"}),
        )
        .await;
    assert_eq!(reply.status, 422, "{}", reply.text);

    // Two people signed in with one email: the admin must say which (by user_id).
    for sub in ["auth0|twin-1", "auth0|twin-2"] {
        signed_in(&app, sub, json!({"email": "twin@example.com"})).await;
    }
    let twins = app
        .post(
            &path,
            &t.admin_token,
            json!({"email": "twin@example.com", "role": "agent"}),
        )
        .await;
    assert_problem(&twins, 422, "");
    assert!(twins.text.contains("several"), "{}", twins.text);

    // Only owners and admins look people up by email.
    let by_agent = app
        .post(
            &path,
            &t.agent_token,
            json!({"email": "lee@example.com", "role": "member"}),
        )
        .await;
    assert_eq!(by_agent.status, 403, "{}", by_agent.text);
}

#[tokio::test]
async fn an_invitation_is_accepted_once_by_the_signed_in_user_with_its_email() {
    let app = spawn_app().await;
    let t = seed_tenancy(&app, "inv").await;
    let created = invite(&app, &t, &t.admin_token, "Sam@Example.com", "agent").await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id: Uuid = created.body["id"].as_str().unwrap().parse().unwrap();
    let secret = created.body["token"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("fdi_"), "{secret}");
    let link = created.body["link"].as_str().unwrap().to_owned();
    assert_eq!(
        link,
        format!("/v1/tenants/{}/invitations/{id}/accept", t.id)
    );
    assert_eq!(created.body["status"], "pending");
    assert_eq!(created.body["role"], "agent");
    assert_eq!(created.body["created_by"], t.admin.to_string());
    let at = |v: &Value| v.as_str().unwrap().parse::<DateTime<Utc>>().unwrap();
    assert_eq!(
        at(&created.body["expires_at"]) - at(&created.body["created_at"]),
        chrono::Duration::days(7)
    );

    // Only the token's hash is stored.
    let admin = app.db.admin().await;
    let row = admin
        .query_one(
            "select token_hash, to_jsonb(i)::text from app.invitations i where tenant_id = $1 and id = $2",
            &[&t.id, &id],
        )
        .await
        .unwrap();
    assert_eq!(
        row.get::<_, Vec<u8>>(0),
        Sha256::digest(secret.as_bytes()).to_vec()
    );
    assert!(!row.get::<_, String>(1).contains(&secret[4..]));

    // Listed, without the token.
    let listed = app
        .get(
            &format!("/v1/tenants/{}/invitations", t.slug),
            &t.owner_token,
        )
        .await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    assert!(!listed.text.contains(&secret));
    let mine = listed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == id.to_string())
        .unwrap();
    assert_eq!(mine["link"], link);
    assert_eq!(mine["email"], "Sam@Example.com");

    // Sam signs in (their provider writes the email in lower case) and accepts.
    let sam_sub = "auth0|sam";
    let sam = token(
        sam_sub,
        json!({"email": "sam@example.com", "email_verified": true}),
    );
    let sam_id = user_id_for_sub(sam_sub);
    assert_eq!(
        app.get(&format!("/v1/tenants/{}", t.slug), &sam)
            .await
            .status,
        404,
        "not a member yet"
    );
    let accepted = app.post(&link, &sam, json!({"token": secret})).await;
    assert_eq!(accepted.status, 200, "{}", accepted.text);
    assert_eq!(accepted.body["role"], "agent");
    assert_eq!(accepted.body["user_id"], sam_id.to_string());
    assert_eq!(accepted.body["tenant_id"], t.id.to_string());
    let tenant = app.get(&format!("/v1/tenants/{}", t.slug), &sam).await;
    assert_eq!(tenant.status, 200, "{}", tenant.text);
    assert_eq!(tenant.body["role"], "agent");

    // Once: again (by Sam, or by anyone) is a 409, and Sam is a member once.
    let again = app.post(&link, &sam, json!({"token": secret})).await;
    assert_problem(&again, 409, "already accepted");
    assert_eq!(memberships_of(&app, t.id, sam_id).await, 1);
    let listed = app
        .get(
            &format!("/v1/tenants/{}/invitations", t.slug),
            &t.admin_token,
        )
        .await;
    let mine = listed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == id.to_string())
        .unwrap()
        .clone();
    assert_eq!(mine["status"], "accepted");
    assert_eq!(mine["accepted_by"], sam_id.to_string());
    // An accepted invitation is not revoked: the member is removed instead.
    let revoke = app
        .delete(
            &format!("/v1/tenants/{}/invitations/{id}", t.slug),
            &t.admin_token,
        )
        .await;
    assert_problem(&revoke, 409, "accepted");

    // The tenant's slug works in the link too.
    let by_slug = invite(&app, &t, &t.owner_token, "kim@example.com", "member").await;
    let kim = token("auth0|kim", json!({"email": "kim@example.com"}));
    let path = format!(
        "/v1/tenants/{}/invitations/{}/accept",
        t.slug,
        by_slug.body["id"].as_str().unwrap()
    );
    let accepted = app
        .post(&path, &kim, json!({"token": by_slug.body["token"]}))
        .await;
    assert_eq!(accepted.status, 200, "{}", accepted.text);
    assert_eq!(accepted.body["role"], "member");
}

#[tokio::test]
async fn a_wrong_token_email_or_caller_or_a_dead_invitation_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let t = seed_tenancy(&app, "refusals").await;
    let admin = app.db.admin().await;
    let created = invite(&app, &t, &t.admin_token, "ana@example.com", "admin").await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let secret = created.body["token"].as_str().unwrap().to_owned();
    let link = created.body["link"].as_str().unwrap().to_owned();
    let ana = token("auth0|ana", json!({"email": "ana@example.com"}));
    let ana_id = user_id_for_sub("auth0|ana");
    let before = frontdesk_test::tenant_snapshot(&admin, t.id).await;

    let other = seed_tenancy(&app, "elsewhere").await;
    let refusals: Vec<(&str, String, String, Value, u16, &str)> = vec![
        // (who, token, path, body, status, detail)
        (
            "a wrong token",
            ana.clone(),
            link.clone(),
            json!({"token": "fdi_wrong"}),
            404,
            "",
        ),
        (
            "an unknown invitation",
            ana.clone(),
            format!("/v1/tenants/{}/invitations/{}/accept", t.id, Uuid::now_v7()),
            json!({"token": secret}),
            404,
            "",
        ),
        (
            "another tenant's path",
            ana.clone(),
            format!("/v1/tenants/{}/invitations/{id}/accept", other.id),
            json!({"token": secret}),
            404,
            "",
        ),
        (
            "an unknown tenant",
            ana.clone(),
            format!("/v1/tenants/no-such-tenant/invitations/{id}/accept"),
            json!({"token": secret}),
            404,
            "",
        ),
        (
            "another email",
            token("auth0|eve", json!({"email": "eve@example.com"})),
            link.clone(),
            json!({"token": secret}),
            403,
            "another email",
        ),
        (
            "no email",
            token("auth0|eve", json!({})),
            link.clone(),
            json!({"token": secret}),
            403,
            "no verified email",
        ),
        (
            "an unverified email",
            token(
                "auth0|eve2",
                json!({"email": "ana@example.com", "email_verified": false}),
            ),
            link.clone(),
            json!({"token": secret}),
            403,
            "no verified email",
        ),
        (
            "B's owner",
            other.owner_token.clone(),
            link.clone(),
            json!({"token": secret}),
            403,
            "",
        ),
        (
            "an API key",
            t.full_key.clone(),
            link.clone(),
            json!({"token": secret}),
            403,
            "",
        ),
        (
            "the operator",
            OPERATOR_TOKEN.to_owned(),
            link.clone(),
            json!({"token": secret}),
            403,
            "",
        ),
        ("no token", ana.clone(), link.clone(), json!({}), 422, ""),
        (
            "an unknown field",
            ana.clone(),
            link.clone(),
            json!({"token": secret, "role": "owner"}),
            422,
            "",
        ),
    ];
    for (who, bearer, path, body, status, detail) in refusals {
        let reply = app.post(&path, &bearer, body).await;
        assert_eq!(reply.status, status, "{who}: {}", reply.text);
        assert!(
            reply.content_type().starts_with("application/problem+json"),
            "{who}"
        );
        assert!(reply.text.contains(detail), "{who}: {}", reply.text);
        assert!(!reply.text.contains(&secret), "{who}: echoed the token");
    }
    assert_eq!(
        frontdesk_test::tenant_snapshot(&admin, t.id).await,
        before,
        "a refused acceptance changed the tenant"
    );

    // Expired: a week later it cannot be accepted (the clock moved by hand).
    admin
        .execute(
            "update app.invitations set created_at = created_at - interval '8 days', \
             expires_at = expires_at - interval '8 days' where tenant_id = $1 and id = $2::text::uuid",
            &[&t.id, &id],
        )
        .await
        .unwrap();
    let expired = app.post(&link, &ana, json!({"token": secret})).await;
    assert_problem(&expired, 409, "expired");
    let listed = app
        .get(
            &format!("/v1/tenants/{}/invitations", t.slug),
            &t.owner_token,
        )
        .await;
    assert!(
        listed.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["id"] == id && i["status"] == "expired"),
        "{}",
        listed.text
    );

    // Revoked: refused, and revoking again is fine.
    let fresh = invite(&app, &t, &t.admin_token, "ana@example.com", "agent").await;
    let fresh_path = format!(
        "/v1/tenants/{}/invitations/{}",
        t.slug,
        fresh.body["id"].as_str().unwrap()
    );
    for _ in 0..2 {
        let revoked = app.delete(&fresh_path, &t.admin_token).await;
        assert_eq!(revoked.status, 204, "{}", revoked.text);
    }
    let refused = app
        .post(
            fresh.body["link"].as_str().unwrap(),
            &ana,
            json!({"token": fresh.body["token"]}),
        )
        .await;
    assert_problem(&refused, 409, "revoked");
    assert_eq!(memberships_of(&app, t.id, ana_id).await, 0);
    let unknown = app
        .delete(
            &format!("/v1/tenants/{}/invitations/{}", t.slug, Uuid::now_v7()),
            &t.admin_token,
        )
        .await;
    assert_eq!(unknown.status, 404, "{}", unknown.text);

    // Already a member (added meanwhile): a 409, the role stays.
    let later = invite(&app, &t, &t.admin_token, "member@refusals.test", "admin").await;
    let member = frontdesk_test::user_token(t.member, Some("member@refusals.test"));
    let reply = app
        .post(
            later.body["link"].as_str().unwrap(),
            &member,
            json!({"token": later.body["token"]}),
        )
        .await;
    assert_problem(&reply, 409, "already a member");
    let role: String = admin
        .query_one(
            "select role from app.memberships where tenant_id = $1 and user_id = $2",
            &[&t.id, &t.member],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(role, "member");
}

#[tokio::test]
async fn owners_invite_owners_admins_manage_invitations_and_nobody_else_does() {
    let app = spawn_app().await;
    let t = seed_tenancy(&app, "roles").await;
    let base = format!("/v1/tenants/{}/invitations", t.slug);
    // Only an owner invites an owner, and revokes an owner's invitation.
    let by_admin = invite(&app, &t, &t.admin_token, "boss@example.com", "owner").await;
    assert_problem(&by_admin, 403, "owner");
    let by_owner = invite(&app, &t, &t.owner_token, "boss@example.com", "owner").await;
    assert_eq!(by_owner.status, 201, "{}", by_owner.text);
    let owner_invitation = format!("{base}/{}", by_owner.body["id"].as_str().unwrap());
    let revoke = app.delete(&owner_invitation, &t.admin_token).await;
    assert_problem(&revoke, 403, "owner");
    // The owner-to-be accepts and is an owner.
    let boss = token("auth0|boss", json!({"email": "boss@example.com"}));
    let accepted = app
        .post(
            by_owner.body["link"].as_str().unwrap(),
            &boss,
            json!({"token": by_owner.body["token"]}),
        )
        .await;
    assert_eq!(accepted.status, 200, "{}", accepted.text);
    assert_eq!(
        app.get(&format!("/v1/tenants/{}", t.slug), &boss)
            .await
            .body["role"],
        "owner"
    );

    // Agents, members and keys neither invite nor list nor revoke.
    let pending = invite(&app, &t, &t.admin_token, "x@example.com", "member").await;
    let pending_path = format!("{base}/{}", pending.body["id"].as_str().unwrap());
    for who in [&t.agent_token, &t.member_token, &t.full_key, &t.read_key] {
        assert_eq!(
            invite(&app, &t, who, "y@example.com", "member")
                .await
                .status,
            403
        );
        assert_eq!(app.get(&base, who).await.status, 403);
        assert_eq!(app.delete(&pending_path, who).await.status, 403);
    }
    // The operator lists them.
    let listed = app.get(&base, OPERATOR_TOKEN).await;
    assert_eq!(listed.status, 200, "{}", listed.text);

    // Bad input: one 422 naming every field; nothing stored.
    let reply = app
        .post(
            &base,
            &t.owner_token,
            json!({"email": "not an email", "role": "boss", "note": "hi"}),
        )
        .await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    let mut named: Vec<&str> = reply.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    named.sort();
    assert_eq!(named, ["email", "note", "role"]);
    let reply = app.post(&base, &t.owner_token, json!({})).await;
    assert_eq!(reply.status, 422, "{}", reply.text);

    // Paged like other lists, newest first.
    for i in 0..3 {
        invite(
            &app,
            &t,
            &t.admin_token,
            &format!("p{i}@example.com"),
            "member",
        )
        .await;
    }
    let first = app.get(&format!("{base}?limit=2"), &t.admin_token).await;
    assert_eq!(first.body["data"].as_array().unwrap().len(), 2);
    assert_eq!(first.body["data"][0]["email"], "p2@example.com");
    let cursor = first.body["next_cursor"].as_str().unwrap();
    let second = app
        .get(&format!("{base}?limit=2&cursor={cursor}"), &t.admin_token)
        .await;
    assert_eq!(second.status, 200, "{}", second.text);
    assert_eq!(second.body["data"][0]["email"], "p0@example.com");
}

#[tokio::test]
async fn parallel_acceptances_of_one_invitation_make_one_membership() {
    let app = spawn_app().await;
    let t = seed_tenancy(&app, "race").await;
    let created = invite(&app, &t, &t.admin_token, "twin@example.com", "agent").await;
    let link = created.body["link"].as_str().unwrap().to_owned();
    let secret = created.body["token"].as_str().unwrap().to_owned();
    // The same person many times over, and two people whose tokens carry the email.
    let subs = ["auth0|twin-a", "auth0|twin-b"];
    let tokens: Vec<String> = subs
        .iter()
        .map(|s| token(s, json!({"email": "twin@example.com"})))
        .collect();
    for bearer in &tokens {
        assert_eq!(app.get("/v1/me", bearer).await.status, 200);
    }
    let posts = (0..12)
        .map(|i| app.post_to(&link, &tokens[i % 2], json!({"token": secret})))
        .collect();
    let replies = frontdesk_test::post_all(&app.http, posts).await;
    let ok = replies.iter().filter(|r| r.status == 200).count();
    let used = replies
        .iter()
        .filter(|r| r.status == 409 && r.text.contains("already accepted"))
        .count();
    assert_eq!(
        (ok, used),
        (1, 11),
        "{:?}",
        replies.iter().map(|r| &r.text).collect::<Vec<_>>()
    );
    let admin = app.db.admin().await;
    let joined: i64 = admin
        .query_one(
            "select count(*) from app.memberships where tenant_id = $1 and user_id = any($2)",
            &[
                &t.id,
                &subs.iter().map(|s| user_id_for_sub(s)).collect::<Vec<_>>(),
            ],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(joined, 1);
}
