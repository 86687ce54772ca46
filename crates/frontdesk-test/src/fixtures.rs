//! A tenant with one of everything, made through the API. The isolation tests check
//! that every tenant table holds a row of it: when a migration adds a tenant table,
//! extend `seed_tenant` so the generated tests cover the new table too.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::{OPERATOR_TOKEN, TestApp, user_token};

/// A tenant and credentials of every kind in it.
#[derive(Debug, Clone)]
pub struct Seeded {
    pub id: Uuid,
    pub slug: String,
    pub owner: Uuid,
    pub owner_token: String,
    pub admin: Uuid,
    pub admin_token: String,
    pub agent: Uuid,
    pub agent_token: String,
    pub member: Uuid,
    pub member_token: String,
    pub full_key: String,
    pub full_key_id: Uuid,
    pub read_key: String,
    pub read_key_id: Uuid,
}

fn uuid_of(v: &Value, field: &str) -> Uuid {
    v[field]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in {v}"))
}

/// Create tenant `slug` with an owner, an admin, an agent, a member, a full key and a
/// read key.
pub async fn seed_tenant(app: &TestApp, slug: &str) -> Seeded {
    let owner = Uuid::now_v7();
    let owner_token = user_token(owner, Some(&format!("owner@{slug}.test")));
    let created = app
        .post(
            "/v1/tenants",
            &owner_token,
            json!({"slug": slug, "name": format!("Tenant {slug}")}),
        )
        .await;
    assert_eq!(created.status, 201, "create tenant: {}", created.text);
    let id = uuid_of(&created.body, "id");
    let mut people = Vec::new();
    for role in ["admin", "agent", "member"] {
        let user = Uuid::now_v7();
        let token = user_token(user, Some(&format!("{role}@{slug}.test")));
        // Signing in once creates the user; then the owner adds them.
        assert_eq!(app.get("/v1/me", &token).await.status, 200);
        let added = app
            .post(
                &format!("/v1/tenants/{slug}/members"),
                &owner_token,
                json!({"user_id": user, "role": role}),
            )
            .await;
        assert_eq!(added.status, 201, "add {role}: {}", added.text);
        people.push((user, token));
    }
    let mut keys = Vec::new();
    for scope in ["full", "read"] {
        let key = app
            .post(
                &format!("/v1/tenants/{slug}/api-keys"),
                &owner_token,
                json!({"name": format!("{scope} key"), "scopes": [scope]}),
            )
            .await;
        assert_eq!(key.status, 201, "create key: {}", key.text);
        keys.push((
            key.body["secret"].as_str().unwrap().to_owned(),
            uuid_of(&key.body, "id"),
        ));
    }
    let [
        (admin, admin_token),
        (agent, agent_token),
        (member, member_token),
    ] = people.try_into().unwrap();
    let [(full_key, full_key_id), (read_key, read_key_id)] = keys.try_into().unwrap();
    Seeded {
        id,
        slug: slug.to_owned(),
        owner,
        owner_token,
        admin,
        admin_token,
        agent,
        agent_token,
        member,
        member_token,
        full_key,
        full_key_id,
        read_key,
        read_key_id,
    }
}

pub fn operator() -> &'static str {
    OPERATOR_TOKEN
}
