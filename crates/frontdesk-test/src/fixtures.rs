//! A tenant with one of everything, made through the API, one function per domain
//! (`seed_tenancy`, `seed_conversations`, `seed_usage`, `seed_webhooks`,
//! `seed_providers`) composed by
//! `seed_tenant`. The isolation tests check that every tenant table holds a row of it:
//! when a migration adds a tenant table, its domain's function creates one (a new domain
//! adds its own function, called from `seed_tenant`), so the generated tests cover it.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::{OPERATOR_TOKEN, TestApp, user_token};

/// A tenant and credentials of every kind in it.
#[derive(Debug, Clone)]
pub struct Seeded {
    /// The tenant and its principals (`seeded.owner_token` etc. reach them through `Deref`).
    pub tenancy: Tenancy,
    /// An `ari_sales` assistant.
    pub assistant: Uuid,
    pub contact: Uuid,
    /// A contact's conversation with the assistant, started by the full key.
    pub conversation: Uuid,
    /// A message in `conversation`, rated by the owner.
    pub message: Uuid,
    /// A conversation the member owns, with one message.
    pub member_conversation: Uuid,
    pub member_message: Uuid,
    /// The tenant's secret for the `test` provider (a `whsec_…`), which signs its callbacks.
    pub callback_secret: String,
}

fn uuid_of(v: &Value, field: &str) -> Uuid {
    v[field]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in {v}"))
}

/// Create tenant `slug` with an owner, an admin, an agent, a member, a full key and a
/// read key, and a row in every tenant table: each domain seeds its own tables, in turn.
pub async fn seed_tenant(app: &TestApp, slug: &str) -> Seeded {
    let tenancy = seed_tenancy(app, slug).await;
    let conversations = seed_conversations(app, &tenancy).await;
    seed_usage(app, &tenancy, &conversations).await;
    seed_webhooks(app, &tenancy).await;
    let callback_secret = seed_providers(app, &tenancy).await;
    // A new domain seeds its tables here, in a function of its own below
    // (`seed_bookings`, `seed_money`, …), after the domains it builds on.
    Seeded {
        tenancy,
        assistant: conversations.assistant,
        contact: conversations.contact,
        conversation: conversations.conversation,
        message: conversations.message,
        member_conversation: conversations.member_conversation,
        member_message: conversations.member_message,
        callback_secret,
    }
}

/// The tenant and who may act in it: what every other domain's seed starts from.
#[derive(Debug, Clone)]
pub struct Tenancy {
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

impl std::ops::Deref for Seeded {
    type Target = Tenancy;

    fn deref(&self) -> &Tenancy {
        &self.tenancy
    }
}

impl Tenancy {
    /// `/v1/tenants/{slug}`, the prefix of the tenant's routes.
    pub fn base(&self) -> String {
        format!("/v1/tenants/{}", self.slug)
    }
}

/// What the conversations domain seeded.
pub struct Conversations {
    pub assistant: Uuid,
    pub contact: Uuid,
    pub conversation: Uuid,
    pub message: Uuid,
    pub member_conversation: Uuid,
    pub member_message: Uuid,
}

/// Assert a 201 and return the created resource's id.
fn created(reply: crate::Reply, what: &str) -> Uuid {
    assert_eq!(reply.status, 201, "create {what}: {}", reply.text);
    uuid_of(&reply.body, "id")
}

/// Tenancy: the tenant, its owner, an admin, an agent and a member (memberships, users),
/// a full key and a read key, and a pending invitation.
pub async fn seed_tenancy(app: &TestApp, slug: &str) -> Tenancy {
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
    // A pending invitation (invitations).
    let invited = app
        .post(
            &format!("/v1/tenants/{slug}/invitations"),
            &owner_token,
            json!({"email": format!("invitee@{slug}.test"), "role": "agent"}),
        )
        .await;
    assert_eq!(invited.status, 201, "invite: {}", invited.text);
    let [
        (admin, admin_token),
        (agent, agent_token),
        (member, member_token),
    ] = people.try_into().unwrap();
    let [(full_key, full_key_id), (read_key, read_key_id)] = keys.try_into().unwrap();
    Tenancy {
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

/// Conversations: a flow, an assistant, a contact, a conversation (made through an
/// idempotency key) with a rated message, and a member's own conversation with a message.
pub async fn seed_conversations(app: &TestApp, t: &Tenancy) -> Conversations {
    let base = t.base();
    let flow = app
        .post(
            &format!("{base}/flows"),
            &t.owner_token,
            json!({"key": "support", "name": "Support", "states": ["new", "resolved"],
                   "initial_state": "new", "terminal_states": ["resolved"],
                   "transitions": {"new": ["resolved"]}}),
        )
        .await;
    assert_eq!(flow.status, 201, "create flow: {}", flow.text);
    let assistant = created(
        app.post(
            &format!("{base}/assistants"),
            &t.owner_token,
            json!({"name": "ARI", "channel": "whatsapp", "flow": "ari_sales"}),
        )
        .await,
        "assistant",
    );
    let contact = created(
        app.post(
            &format!("{base}/contacts"),
            &t.full_key,
            json!({"name": "Budi", "phone": "+628111234567", "lead_temperature": "warm",
                   "channel_ids": {"whatsapp": "628111234567"}}),
        )
        .await,
        "contact",
    );
    // Through an idempotency key, so app.idempotency_keys holds a row too.
    let conversation = created(
        app.post_idempotent(
            &format!("{base}/conversations"),
            &t.full_key,
            "seed-conversation",
            json!({"assistant_id": assistant, "contact_id": contact, "title": "Trip to Bali"}),
        )
        .await,
        "conversation",
    );
    let message = created(
        app.post(
            &format!("{base}/conversations/{conversation}/messages"),
            &t.full_key,
            json!({"role": "assistant", "content": "Bali is lovely in May.", "prompt_tokens": 12,
                   "completion_tokens": 7, "model": "gpt-4o-mini", "provider": "openai", "cost_usd": "0.0004"}),
        )
        .await,
        "message",
    );
    let rated = app
        .call(
            "PUT",
            &format!("{base}/messages/{message}/feedback"),
            Some(&t.owner_token),
            Some(&json!({"rating": 1})),
        )
        .await;
    assert_eq!(rated.status, 201, "feedback: {}", rated.text);
    let member_conversation = created(
        app.post(
            &format!("{base}/conversations"),
            &t.member_token,
            json!({"assistant_id": assistant, "title": "My question"}),
        )
        .await,
        "member conversation",
    );
    let member_message = created(
        app.post(
            &format!("{base}/conversations/{member_conversation}/messages"),
            &t.member_token,
            json!({"role": "user", "content": "Is breakfast included?"}),
        )
        .await,
        "member message",
    );
    Conversations {
        assistant,
        contact,
        conversation,
        message,
        member_conversation,
        member_message,
    }
}

/// Usage: a model price, a usage event against the seeded conversation, a limit's window
/// counter, a reservation held against the limit and left to expire, and a refusal (which
/// records the limit as reached). The tenant ends with no daily limit.
pub async fn seed_usage(app: &TestApp, t: &Tenancy, c: &Conversations) {
    let base = t.base();
    let price = app
        .post(
            &format!("{base}/prices"),
            &t.owner_token,
            json!({"provider": "selfhosted", "model": "llama-3-8b", "input_usd_per_mtok": "0.05",
                   "output_usd_per_mtok": "0.10", "effective_from": "2025-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(price.status, 201, "create price: {}", price.text);
    let usage = app
        .post(
            &format!("{base}/usage"),
            &t.full_key,
            json!({"provider": "openai", "model": "text-embedding-3-small", "prompt_tokens": 5000,
                   "assistant_id": c.assistant, "conversation_id": c.conversation}),
        )
        .await;
    assert_eq!(usage.status, 201, "record usage: {}", usage.text);
    let set = app
        .patch(
            &base,
            &t.owner_token,
            json!({"daily_token_limit": 1_000_000}),
        )
        .await;
    assert_eq!(set.status, 200, "set daily_token_limit: {}", set.text);
    let reserved = app
        .post(
            &format!("{base}/limits/check"),
            &t.full_key,
            json!({"prompt_tokens": 100, "reserve": true, "ttl_seconds": 600}),
        )
        .await;
    assert_eq!(reserved.status, 201, "reserve: {}", reserved.text);
    // Usage is stored under any limit; past one it is flagged.
    for (limit, over) in [
        (json!(1_000_000), Some(false)),
        (json!(1), Some(true)),
        (Value::Null, None),
    ] {
        let set = app
            .patch(&base, &t.owner_token, json!({"daily_token_limit": limit}))
            .await;
        assert_eq!(set.status, 200, "set daily_token_limit: {}", set.text);
        if let Some(over) = over {
            let charged = app
                .post(
                    &format!("{base}/usage"),
                    &t.full_key,
                    json!({"prompt_tokens": 10}),
                )
                .await;
            assert_eq!(charged.status, 201, "usage under a limit: {}", charged.text);
            assert_eq!(charged.body["over_limit"], over, "{}", charged.text);
            if over {
                // Past the limit (a usage.limit_exceeded, in app.limit_notices), the next
                // reservation is refused (a usage.limit_reached, in app.limit_hits).
                let refused = app
                    .post(
                        &format!("{base}/limits/check"),
                        &t.full_key,
                        json!({"prompt_tokens": 1, "reserve": true}),
                    )
                    .await;
                assert_eq!(
                    refused.status, 429,
                    "reserve past a limit: {}",
                    refused.text
                );
            }
        }
    }
}

/// Webhooks: an endpoint whose receiver is failing, with one attempt of a test event
/// recorded and the delivery left queued for a retry (no worker runs in the tests unless
/// one starts).
pub async fn seed_webhooks(app: &TestApp, t: &Tenancy) {
    let base = t.base();
    let receiver = crate::receiver::Receiver::start().await;
    receiver.answer(503);
    let endpoint = created(
        app.post(
            &format!("{base}/webhook-endpoints"),
            &t.owner_token,
            json!({"url": format!("{}/hooks", receiver.base), "event_types": ["conversation.*"],
                   "description": "the bot runtime"}),
        )
        .await,
        "webhook endpoint",
    );
    let test = app
        .post(
            &format!("{base}/webhook-endpoints/{endpoint}/test"),
            &t.owner_token,
            json!({}),
        )
        .await;
    assert_eq!(test.status, 202, "test event: {}", test.text);
    let (worker, receiver) = (&app.worker(Default::default()), &receiver);
    crate::wait::wait_until(
        "the seeded test event's first attempt",
        crate::wait::WAIT,
        move || async move {
            let sent = worker.run_once().await.expect("a worker pass");
            if receiver.received().is_empty() {
                Err(format!(
                    "a worker pass sent {sent}, the receiver got nothing"
                ))
            } else {
                Ok(())
            }
        },
    )
    .await;
}

/// A fresh `whsec_` secret: the base64 of 32 random bytes.
pub fn new_callback_secret() -> String {
    use base64::Engine;
    let bytes: [u8; 32] = std::array::from_fn(|_| rand::random());
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// The Standard Webhooks headers of a callback signed with `secret` at `timestamp`.
pub fn signed_headers(
    secret: &str,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Vec<(String, String)> {
    let key = frontdesk_server::webhooks::signature::key_of(secret).expect("a whsec_ secret");
    vec![
        ("webhook-id".into(), id.into()),
        ("webhook-timestamp".into(), timestamp.to_string()),
        (
            "webhook-signature".into(),
            frontdesk_server::webhooks::signature::sign(&key, id, timestamp, body),
        ),
    ]
}

/// Providers: a secret for the `test` provider, and one callback signed with it.
/// Returns the secret.
pub async fn seed_providers(app: &TestApp, t: &Tenancy) -> String {
    let secret = new_callback_secret();
    let put = app
        .call(
            "PUT",
            &format!("{}/provider-secrets/test", t.base()),
            Some(&t.owner_token),
            Some(&json!({"secret": secret})),
        )
        .await;
    assert_eq!(
        put.status, 200,
        "set the test provider's secret: {}",
        put.text
    );
    let body = json!({"type": "seed.ping", "tenant": t.slug}).to_string();
    let headers = signed_headers(
        &secret,
        &format!("seed-{}", t.slug),
        chrono::Utc::now().timestamp(),
        body.as_bytes(),
    );
    let received = app
        .callback(&format!("/v1/hooks/test/{}", t.slug), &headers, body)
        .await;
    assert_eq!(received.status, 200, "a signed callback: {}", received.text);
    secret
}

pub fn operator() -> &'static str {
    OPERATOR_TOKEN
}
