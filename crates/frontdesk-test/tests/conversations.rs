//! The conversation store over HTTP: flows and transitions, messages and their figures,
//! permissions by role, feedback, search, events, idempotency, and the invariants the
//! database holds under parallel requests.

use std::collections::HashSet;

use frontdesk_test::{
    Post, TestApp,
    fixtures::{Seeded, seed_tenant},
    post_all, spawn_app, tenant_snapshot,
};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use uuid::Uuid;

fn id(v: &Value) -> Uuid {
    v["id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no id in {v}"))
}

/// The SQL that opens a transaction as `user` with `role` in `tenant`, as the server does.
fn as_user(tenant: Uuid, user: Uuid, role: &str) -> String {
    format!(
        "begin; set local frontdesk.caller_kind = 'user'; set local frontdesk.tenant_id = '{tenant}';
         set local frontdesk.user_id = '{user}'; set local frontdesk.member_role = '{role}';
         select app.assert_principal();"
    )
}

fn base(t: &Seeded) -> String {
    format!("/v1/tenants/{}", t.slug)
}

async fn count(app: &TestApp, sql: &str, tenant: Uuid) -> i64 {
    app.db
        .admin()
        .await
        .query_one(sql, &[&tenant])
        .await
        .unwrap()
        .get(0)
}

/// A fresh conversation of `assistant` (by the full key unless `token` says otherwise).
async fn conversation(app: &TestApp, t: &Seeded, token: &str, body: Value) -> Value {
    let reply = app
        .post(&format!("{}/conversations", base(t)), token, body)
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    reply.body
}

#[tokio::test]
async fn a_message_into_another_tenants_conversation_is_404_and_writes_nothing() {
    let app = spawn_app().await;
    let a = seed_tenant(&app, "tenant-a").await;
    let b = seed_tenant(&app, "tenant-b").await;
    let admin = app.db.admin().await;
    let before = tenant_snapshot(&admin, a.id).await;
    let body = json!({"role": "user", "content": "hello"});
    for token in [&b.owner_token, &b.full_key, &b.agent_token] {
        for tenant in [&a.slug, &b.slug] {
            let reply = app
                .post(
                    &format!(
                        "/v1/tenants/{tenant}/conversations/{}/messages",
                        a.conversation
                    ),
                    token,
                    body.clone(),
                )
                .await;
            assert_eq!(reply.status, 404, "{tenant}: {}", reply.text);
        }
    }
    // B's conversation may not point at A's assistant or contact.
    for (field, body) in [
        ("assistant_id", json!({"assistant_id": a.assistant})),
        (
            "contact_id",
            json!({"assistant_id": b.assistant, "contact_id": a.contact}),
        ),
    ] {
        let reply = app
            .post(&format!("{}/conversations", base(&b)), &b.full_key, body)
            .await;
        assert_eq!(reply.status, 422, "{}", reply.text);
        assert_eq!(reply.error_fields(), [field]);
    }
    assert_eq!(tenant_snapshot(&admin, a.id).await, before);
    assert_eq!(
        count(
            &app,
            "select count(*) from app.conversations where tenant_id = $1",
            b.id
        )
        .await,
        2,
        "B gained no conversation"
    );
}

#[tokio::test]
async fn transitions_follow_the_flow_and_are_recorded() {
    let app = spawn_app().await;
    let t = seed_tenant(&app, "acme").await;
    let c = id(&conversation(
        &app,
        &t,
        &t.agent_token,
        json!({"assistant_id": t.assistant}),
    )
    .await);
    let path = format!("{}/conversations/{c}", base(&t));

    let got = app.get(&path, &t.agent_token).await;
    assert_eq!(got.body["state"], "greeting");
    assert_eq!(got.body["flow"], "ari_sales");

    // Not allowed from greeting: 409 naming the allowed targets; nothing changes.
    let refused = app
        .post(
            &format!("{path}/transitions"),
            &t.agent_token,
            json!({"to": "payment"}),
        )
        .await;
    assert_eq!(refused.status, 409, "{}", refused.text);
    assert_eq!(refused.body["type"], "/problems/transition-not-allowed");
    assert_eq!(refused.body["current_state"], "greeting");
    assert_eq!(
        refused.body["allowed_transitions"],
        json!(["qualifying", "handoff", "completed"])
    );
    let unknown = app
        .post(
            &format!("{path}/transitions"),
            &t.agent_token,
            json!({"to": "nirvana"}),
        )
        .await;
    assert_eq!(unknown.status, 409);

    for to in [
        "qualifying",
        "scoring",
        "booking",
        "payment",
        "scheduling",
        "completed",
    ] {
        let moved = app
            .post(
                &format!("{path}/transitions"),
                &t.agent_token,
                json!({"to": to}),
            )
            .await;
        assert_eq!(moved.status, 200, "{to}: {}", moved.text);
        assert_eq!(moved.body["state"], to);
    }
    let done = app.get(&path, &t.agent_token).await;
    assert!(
        done.body["completed_at"].is_string(),
        "terminal state sets completed_at"
    );

    let history = app
        .get(&format!("{path}/transitions"), &t.agent_token)
        .await;
    assert_eq!(history.status, 200);
    let steps: Vec<(Value, Value)> = history
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["from"].clone(), s["to"].clone()))
        .collect();
    assert_eq!(steps.len(), 7);
    assert_eq!(steps[0], (Value::Null, json!("greeting")));
    assert_eq!(steps[6], (json!("scheduling"), json!("completed")));
    assert!(
        history
            .body
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["actor_user_id"] == json!(t.agent))
    );
    let events = app
        .get(
            &format!("{}/events?type=conversation.state_changed", base(&t)),
            &t.owner_token,
        )
        .await;
    assert_eq!(
        events.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["subject_id"] == json!(c))
            .count(),
        6
    );
}

#[tokio::test]
async fn a_state_outside_the_flow_is_refused_by_the_database_itself() {
    let app = spawn_app().await;
    let t = seed_tenant(&app, "acme").await;
    let client = app.db.app_login().await;
    let context = as_user(t.id, t.owner, "owner");
    for (sql, constraint) in [
        (
            "update app.conversations set state = 'nirvana' where id = $1",
            "conversations_state_in_flow",
        ),
        (
            "update app.conversations set state = 'payment' where id = $1",
            "conversations_transition",
        ),
    ] {
        client.batch_execute(&context).await.unwrap();
        let err = client.execute(sql, &[&t.conversation]).await.unwrap_err();
        client.batch_execute("rollback").await.unwrap();
        assert_eq!(
            err.as_db_error().unwrap().constraint(),
            Some(constraint),
            "{err:?}"
        );
    }
    // Inserting straight into a state the flow does not have fails the same way.
    client.batch_execute(&context).await.unwrap();
    let err = client
        .execute(
            "insert into app.conversations (tenant_id, id, assistant_id, state) values ($1, $2, $3, 'nirvana')",
            &[&t.id, &Uuid::now_v7(), &t.assistant],
        )
        .await
        .unwrap_err();
    client.batch_execute("rollback").await.unwrap();
    assert_eq!(
        err.as_db_error().unwrap().constraint(),
        Some("conversations_state_in_flow")
    );
}

#[tokio::test]
async fn five_hundred_parallel_messages_add_up_exactly() {
    let app = spawn_app().await;
    let t = seed_tenant(&app, "acme").await;
    let c = id(&conversation(&app, &t, &t.full_key, json!({"assistant_id": t.assistant})).await);
    let path = format!("{}/conversations/{c}/messages", base(&t));
    let posts = (0..500u32)
        .map(|i| {
            app.post_to(
                &path,
                &t.full_key,
                json!({
                    "role": if i % 2 == 0 { "user" } else { "assistant" },
                    "content": format!("message {i}"),
                    "prompt_tokens": i, "completion_tokens": 2 * i + 1,
                    "cost_usd": format!("0.{:010}", 1_234_567 + i as u64 * 7),
                }),
            )
        })
        .collect();
    let statuses: Vec<u16> = post_all(&app.http, posts)
        .await
        .iter()
        .map(|r| r.status.as_u16())
        .collect();
    assert!(statuses.iter().all(|s| *s == 201), "{statuses:?}");
    let expected_prompt: i64 = (0..500).sum();
    let expected_completion: i64 = (0..500).map(|i| 2 * i + 1).sum();
    let expected_cost: Decimal = (0..500u64)
        .map(|i| Decimal::new((1_234_567 + i * 7) as i64, 10))
        .sum();

    let cost = app
        .get(
            &format!("{}/conversations/{c}/cost", base(&t)),
            &t.agent_token,
        )
        .await;
    assert_eq!(cost.body["message_count"], 500);
    assert_eq!(cost.body["prompt_tokens"], expected_prompt);
    assert_eq!(cost.body["completion_tokens"], expected_completion);
    assert_eq!(
        cost.body["total_tokens"],
        expected_prompt + expected_completion
    );
    let reported: Decimal = cost.body["cost_usd"].as_str().unwrap().parse().unwrap();
    assert_eq!(reported, expected_cost);

    // The counters equal the rows, and last activity is the newest message.
    let admin = app.db.admin().await;
    let row = admin
        .query_one(
            "select count(*), sum(m.total_tokens)::bigint, sum(m.cost_usd),
                    max(m.created_at) = c.last_activity_at
             from app.messages m join app.conversations c on c.tenant_id = m.tenant_id and c.id = m.conversation_id
             where m.conversation_id = $1 group by c.last_activity_at",
            &[&c],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 500);
    assert_eq!(row.get::<_, i64>(1), expected_prompt + expected_completion);
    assert_eq!(row.get::<_, Decimal>(2), expected_cost);
    assert!(
        row.get::<_, bool>(3),
        "last_activity_at is the newest message's time"
    );

    let stats = app
        .get(
            &format!("{}/conversations/{c}/stats", base(&t)),
            &t.agent_token,
        )
        .await;
    let roles: Vec<(&str, i64)> = stats
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["role"].as_str().unwrap(),
                r["message_count"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(roles, [("assistant", 250), ("user", 250)]);

    // Every message emitted its event.
    let events = count(
        &app,
        "select count(*) from app.events where tenant_id = $1 and type = 'message.created'",
        t.id,
    )
    .await;
    assert_eq!(events, 502, "two seeded messages and 500 new ones");
}

#[tokio::test]
async fn history_pages_both_ways() {
    let app = spawn_app().await;
    let t = seed_tenant(&app, "acme").await;
    let c = id(&conversation(&app, &t, &t.full_key, json!({"assistant_id": t.assistant})).await);
    let path = format!("{}/conversations/{c}/messages", base(&t));
    let mut ids = Vec::new();
    for i in 0..7 {
        let r = app
            .post(
                &path,
                &t.full_key,
                json!({"role": "user", "content": format!("m{i}")}),
            )
            .await;
        ids.push(id(&r.body));
    }
    let page = |r: &Value| -> Vec<Uuid> { r["data"].as_array().unwrap().iter().map(id).collect() };
    let first = app.get(&format!("{path}?limit=3"), &t.read_key).await;
    assert_eq!(page(&first.body), [ids[6], ids[5], ids[4]]);
    let cursor = first.body["next_cursor"].as_str().unwrap().to_owned();
    let second = app
        .get(&format!("{path}?limit=3&cursor={cursor}"), &t.read_key)
        .await;
    assert_eq!(page(&second.body), [ids[3], ids[2], ids[1]]);
    let asc = app
        .get(
            &format!("{path}?order=asc&limit=2&after={}", ids[1]),
            &t.read_key,
        )
        .await;
    assert_eq!(page(&asc.body), [ids[2], ids[3]]);
    let before = app
        .get(&format!("{path}?before={}", ids[2]), &t.read_key)
        .await;
    assert_eq!(page(&before.body), [ids[1], ids[0]]);
    assert!(before.body["next_cursor"].is_null());
    let bad = app
        .get(&format!("{path}?order=sideways"), &t.read_key)
        .await;
    assert_eq!(bad.status, 422);
    assert_eq!(bad.error_fields(), ["order"]);

    // A page is written from the rows, a single message from a `Message`: the same JSON.
    let full = app
        .post(
            &path,
            &t.full_key,
            json!({"role": "assistant", "content": "tab\tquote\" ünïcode", "prompt_tokens": 3,
                   "completion_tokens": 4, "model": "gpt-4o", "provider": "openai", "cost_usd": "0.00010",
                   "latency_ms": 5, "action_taken": "booked", "questions_asked": [{"q": "when?"}],
                   "delegation_plan": {"steps": [1, 2.5, null, "x"]}, "metadata": {"a": {"b": [true]}}}),
        )
        .await;
    assert_eq!(full.status, 201, "{}", full.text);
    let one = app
        .get(
            &format!("{}/messages/{}", base(&t), id(&full.body)),
            &t.read_key,
        )
        .await;
    let newest = app.get(&format!("{path}?limit=1"), &t.read_key).await;
    assert_eq!(newest.body["data"][0], one.body);
    assert_eq!(one.body, full.body);
}

#[tokio::test]
async fn members_see_and_write_only_their_own_conversations() {
    let app = spawn_app().await;
    let t = seed_tenant(&app, "acme").await;
    let list = |token: String| {
        let app = &app;
        let path = format!("{}/conversations", base(&t));
        async move {
            let r = app.get(&path, &token).await;
            assert_eq!(r.status, 200, "{}", r.text);
            r.body["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(id)
                .collect::<HashSet<_>>()
        }
    };
    assert_eq!(
        list(t.member_token.clone()).await,
        HashSet::from([t.member_conversation])
    );
    for staff in [&t.agent_token, &t.admin_token, &t.owner_token, &t.read_key] {
        assert_eq!(
            list(staff.clone()).await,
            HashSet::from([t.member_conversation, t.conversation])
        );
    }
    let theirs = format!("{}/conversations/{}", base(&t), t.conversation);
    assert_eq!(app.get(&theirs, &t.member_token).await.status, 404);
    let post = app
        .post(
            &format!("{theirs}/messages"),
            &t.member_token,
            json!({"role": "user", "content": "hi"}),
        )
        .await;
    assert_eq!(post.status, 404);
    assert_eq!(
        app.get(
            &format!("{}/messages/{}", base(&t), t.message),
            &t.member_token
        )
        .await
        .status,
        404
    );
    // Their own: readable and writable.
    let mine = format!("{}/conversations/{}", base(&t), t.member_conversation);
    let post = app
        .post(
            &format!("{mine}/messages"),
            &t.member_token,
            json!({"role": "user", "content": "and dinner?"}),
        )
        .await;
    assert_eq!(post.status, 201, "{}", post.text);
    // A member cannot assign, or own for someone else.
    let assign = app
        .patch(&mine, &t.member_token, json!({"assignee_id": t.agent}))
        .await;
    assert_eq!(assign.status, 403);
    // Members see no contacts and no events.
    let contacts = app
        .get(&format!("{}/contacts", base(&t)), &t.member_token)
        .await;
    assert_eq!(contacts.body["data"], json!([]));
    let events = app
        .get(&format!("{}/events", base(&t)), &t.member_token)
        .await;
    assert_eq!(events.body["data"], json!([]));
    // Read keys read but never write.
    let write = app
        .post(
            &format!("{mine}/messages"),
            &t.read_key,
            json!({"role": "user", "content": "x"}),
        )
        .await;
    assert_eq!(write.status, 403);
    // Admins delete; agents cannot.
    assert_eq!(app.delete(&mine, &t.agent_token).await.status, 403);
    assert_eq!(app.delete(&mine, &t.admin_token).await.status, 204);
    assert_eq!(
        count(
            &app,
            "select count(*) from app.messages where tenant_id = $1",
            t.id
        )
        .await,
        1,
        "the deleted conversation's messages went with it"
    );
}

#[tokio::test]
async fn messages_are_append_only_and_admins_redact_once() {
    let app = spawn_app().await;
    let t = seed_tenant(&app, "acme").await;
    let path = format!("{}/messages/{}/redact", base(&t), t.message);
    assert_eq!(app.post(&path, &t.agent_token, json!({})).await.status, 403);
    let redacted = app.post(&path, &t.admin_token, json!({})).await;
    assert_eq!(redacted.status, 200, "{}", redacted.text);
    assert_eq!(redacted.body["content"], "[redacted]");
    assert_eq!(redacted.body["redacted_by"], json!(t.admin));
    assert_eq!(app.post(&path, &t.admin_token, json!({})).await.status, 409);
    let hits = app
        .get(&format!("{}/search?q=lovely", base(&t)), &t.owner_token)
        .await;
    assert_eq!(
        hits.body["data"],
        json!([]),
        "redacted text is not found any more"
    );

    // Even as the owner in plain SQL, messages cannot be edited or deleted.
    let client = app.db.app_login().await;
    let context = as_user(t.id, t.owner, "owner");
    for sql in [
        "update app.messages set content = 'rewritten' where id = $1",
        "update app.messages set redacted_at = null, redacted_by = null where id = $1",
        "delete from app.messages where id = $1",
    ] {
        client.batch_execute(&context).await.unwrap();
        let result = client.execute(sql, &[&t.message]).await;
        client.batch_execute("rollback").await.unwrap();
        assert!(result.is_err(), "{sql} succeeded");
    }
}

#[tokio::test]
async fn feedback_is_one_per_person_per_message() {
    let app = spawn_app().await;
    let t = seed_tenant(&app, "acme").await;
    let path = format!("{}/messages/{}/feedback", base(&t), t.member_message);
    let put = |token: String, body: Value| {
        let (app, path) = (&app, path.clone());
        async move { app.call("PUT", &path, Some(&token), Some(&body)).await }
    };
    assert_eq!(
        put(t.member_token.clone(), json!({"rating": 1}))
            .await
            .status,
        201
    );
    let changed = put(
        t.member_token.clone(),
        json!({"rating": -1, "comment": "not quite"}),
    )
    .await;
    assert_eq!(changed.status, 200);
    assert_eq!(changed.body["rating"], -1);
    assert_eq!(
        put(t.agent_token.clone(), json!({"rating": 1}))
            .await
            .status,
        201
    );
    assert_eq!(
        put(t.full_key.clone(), json!({"rating": 1})).await.status,
        201
    );
    for bad in [
        json!({"rating": 0}),
        json!({"rating": 1, "comment": "x".repeat(5001)}),
    ] {
        assert_eq!(put(t.member_token.clone(), bad).await.status, 422);
    }
    // A member cannot rate a message outside their conversations.
    let other = app
        .call(
            "PUT",
            &format!("{}/messages/{}/feedback", base(&t), t.message),
            Some(&t.member_token),
            Some(&json!({"rating": 1})),
        )
        .await;
    assert_eq!(other.status, 404);

    let own = app.get(&path, &t.member_token).await;
    assert_eq!(own.body.as_array().unwrap().len(), 1);
    assert_eq!(own.body[0]["comment"], "not quite");
    let all = app.get(&path, &t.owner_token).await;
    assert_eq!(all.body.as_array().unwrap().len(), 3);
    let summary = app.get(&format!("{path}/summary"), &t.owner_token).await;
    assert_eq!(
        summary.body,
        json!({"message_id": t.member_message, "up": 2, "down": 1, "count": 3})
    );

    assert_eq!(app.delete(&path, &t.member_token).await.status, 204);
    assert_eq!(app.delete(&path, &t.member_token).await.status, 404);
    let summary = app.get(&format!("{path}/summary"), &t.owner_token).await;
    assert_eq!(summary.body["count"], 2);
    let created = count(
        &app,
        "select count(*) from app.events where tenant_id = $1 and type = 'feedback.created'",
        t.id,
    )
    .await;
    assert_eq!(
        created, 4,
        "the seeded rating and three new ones (a change is not a creation)"
    );
}

#[tokio::test]
async fn search_ranks_highlights_and_respects_ownership() {
    let app = spawn_app().await;
    let t = seed_tenant(&app, "acme").await;
    let patched = app
        .patch(
            &base(&t),
            &t.owner_token,
            json!({"search_language": "english"}),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    let c = id(&conversation(&app, &t, &t.full_key, json!({"assistant_id": t.assistant})).await);
    for content in [
        "We are booking flights to Lombok",
        "The booked hotel has a pool",
        "Nothing relevant",
    ] {
        let r = app
            .post(
                &format!("{}/conversations/{c}/messages", base(&t)),
                &t.full_key,
                json!({"role": "user", "content": content}),
            )
            .await;
        assert_eq!(r.status, 201);
    }
    let hits = app
        .get(&format!("{}/search?q=book", base(&t)), &t.agent_token)
        .await;
    assert_eq!(hits.status, 200, "{}", hits.text);
    let data = hits.body["data"].as_array().unwrap();
    assert_eq!(
        data.len(),
        2,
        "english stemming finds booking and booked: {data:?}"
    );
    assert!(
        data.iter()
            .all(|h| h["snippet"].as_str().unwrap().contains("<mark>"))
    );
    assert!(data.iter().all(|h| h["conversation_id"] == json!(c)));
    // The member finds their own conversation's messages only.
    let member = app
        .get(&format!("{}/search?q=breakfast", base(&t)), &t.member_token)
        .await;
    assert_eq!(member.body["data"].as_array().unwrap().len(), 1);
    let member = app
        .get(&format!("{}/search?q=book", base(&t)), &t.member_token)
        .await;
    assert_eq!(member.body["data"], json!([]));
    for bad in ["", "?q=", "?q=%20%20"] {
        let r = app
            .get(&format!("{}/search{bad}", base(&t)), &t.agent_token)
            .await;
        assert_eq!(r.status, 422, "{bad}");
    }
    let bad = app
        .patch(
            &base(&t),
            &t.owner_token,
            json!({"search_language": "klingon"}),
        )
        .await;
    assert_eq!(bad.status, 422);
    assert_eq!(bad.error_fields(), ["search_language"]);
}

#[tokio::test]
async fn idempotency_keys_replay_refuse_and_serialize() {
    let app = spawn_app().await;
    let t = seed_tenant(&app, "acme").await;
    let path = format!("{}/conversations/{}/messages", base(&t), t.conversation);
    let body = json!({"role": "user", "content": "pay now", "cost_usd": "0.01"});
    let first = app
        .post_idempotent(&path, &t.full_key, "k-1", body.clone())
        .await;
    assert_eq!(first.status, 201);
    let again = app
        .post_idempotent(&path, &t.full_key, "k-1", body.clone())
        .await;
    assert_eq!(again.status, 201);
    assert_eq!(again.text, first.text, "the same response");
    assert_eq!(again.headers["idempotent-replayed"], "true");
    let different = app
        .post_idempotent(
            &path,
            &t.full_key,
            "k-1",
            json!({"role": "user", "content": "pay later"}),
        )
        .await;
    assert_eq!(different.status, 422);
    assert_eq!(different.error_fields(), ["Idempotency-Key"]);
    // Keys are the principal's own: another principal's same key is a new request.
    let other = app
        .post_idempotent(&path, &t.owner_token, "k-1", body.clone())
        .await;
    assert_eq!(other.status, 201);
    assert_ne!(id(&other.body), id(&first.body));
    let messages = count(
        &app,
        "select count(*) from app.messages where tenant_id = $1",
        t.id,
    )
    .await;
    assert_eq!(messages, 4, "two seeded, one per principal");

    // Concurrent duplicates: one creates, the others replay it or are told it is in flight.
    let posts = (0..20)
        .map(|_| Post {
            idempotency_key: Some("k-2".into()),
            ..app.post_to(&path, &t.full_key, body.clone())
        })
        .collect();
    let replies = post_all(&app.http, posts).await;
    let mut created = HashSet::new();
    for reply in &replies {
        match reply.status.as_u16() {
            201 => {
                created.insert(id(&reply.body));
            }
            409 => {}
            other => panic!("unexpected {other}: {}", reply.text),
        }
    }
    assert_eq!(created.len(), 1, "every 201 is the same message");
    let messages = count(
        &app,
        "select count(*) from app.messages where tenant_id = $1",
        t.id,
    )
    .await;
    assert_eq!(messages, 5);
    let bad = app
        .post_idempotent(&path, &t.full_key, &"x".repeat(300), body)
        .await;
    assert_eq!(bad.status, 422);
}

#[tokio::test]
async fn one_open_conversation_per_contact_holds_under_parallel_creation() {
    let app = spawn_app().await;
    let t = seed_tenant(&app, "acme").await;
    let assistant = app
        .post(
            &format!("{}/assistants", base(&t)),
            &t.owner_token,
            json!({"name": "Desk", "flow": "assistant", "one_open_conversation_per_contact": true}),
        )
        .await;
    assert_eq!(assistant.status, 201, "{}", assistant.text);
    let body = json!({"assistant_id": id(&assistant.body), "contact_id": t.contact});
    let posts = (0..10)
        .map(|_| {
            app.post_to(
                &format!("{}/conversations", base(&t)),
                &t.full_key,
                body.clone(),
            )
        })
        .collect();
    let replies = post_all(&app.http, posts).await;
    let mut statuses: Vec<u16> = replies.iter().map(|r| r.status.as_u16()).collect();
    statuses.sort();
    assert_eq!(statuses, [201, 409, 409, 409, 409, 409, 409, 409, 409, 409]);
    // Each refusal names the one that was created.
    let created = replies
        .iter()
        .find(|r| r.status == 201)
        .map(|r| id(&r.body));
    for refused in replies.iter().filter(|r| r.status == 409) {
        assert_eq!(
            refused.body["conversation_id"],
            json!(created),
            "{}",
            refused.text
        );
    }
    // Closing it frees the contact for a new one.
    let open = app
        .get(
            &format!("{}/conversations?contact_id={}", base(&t), t.contact),
            &t.full_key,
        )
        .await;
    let open = open.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["assistant_id"] == json!(id(&assistant.body)))
        .map(id)
        .unwrap();
    let closed = app
        .post(
            &format!("{}/conversations/{open}/transitions", base(&t)),
            &t.full_key,
            json!({"to": "closed"}),
        )
        .await;
    assert_eq!(closed.status, 200, "{}", closed.text);
    assert_eq!(
        app.post(&format!("{}/conversations", base(&t)), &t.full_key, body)
            .await
            .status,
        201
    );
}

#[tokio::test]
async fn handoff_moves_ari_sales_into_handoff_and_emits_its_event() {
    let app = spawn_app().await;
    let t = seed_tenant(&app, "acme").await;
    let path = format!("{}/conversations/{}/handoff", base(&t), t.conversation);
    let bad = app
        .post(
            &path,
            &t.full_key,
            json!({"reason": "x", "assignee_id": Uuid::now_v7()}),
        )
        .await;
    assert_eq!(bad.status, 422, "{}", bad.text);
    assert_eq!(bad.error_fields(), ["assignee_id"]);
    let done = app
        .post(
            &path,
            &t.full_key,
            json!({"reason": "asks for a discount", "assignee_id": t.agent}),
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.text);
    assert_eq!(done.body["state"], "handoff");
    assert_eq!(done.body["assignee_id"], json!(t.agent));
    assert_eq!(done.body["handoff_reason"], "asks for a discount");
    let events = app
        .get(
            &format!("{}/events?type=conversation.*", base(&t)),
            &t.owner_token,
        )
        .await;
    let types: Vec<&str> = events.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert!(
        types.contains(&"conversation.handoff_requested"),
        "{types:?}"
    );
    assert!(types.contains(&"conversation.state_changed"));
    assert!(types.iter().all(|t| t.starts_with("conversation.")));
    // A family's bare name is refused with the spelling that filters it; a malformed
    // type is refused too (both used to answer an empty page).
    let bare = app
        .get(
            &format!("{}/events?type=conversation", base(&t)),
            &t.owner_token,
        )
        .await;
    assert_eq!(bare.status, 422, "{}", bare.text);
    assert_eq!(bare.body["errors"][0]["field"], "type", "{}", bare.text);
    assert!(
        bare.body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("conversation.*"),
        "{}",
        bare.text
    );
    let malformed = app
        .get(
            &format!("{}/events?type=Conversation.State", base(&t)),
            &t.owner_token,
        )
        .await;
    assert_eq!(malformed.status, 422, "{}", malformed.text);
    // The assignee is filterable; archiving hides it from the default list.
    let assigned = app
        .get(
            &format!("{}/conversations?assignee_id={}", base(&t), t.agent),
            &t.agent_token,
        )
        .await;
    assert_eq!(assigned.body["data"].as_array().unwrap().len(), 1);
    let c = format!("{}/conversations/{}", base(&t), t.conversation);
    assert_eq!(
        app.post(&format!("{c}/archive"), &t.agent_token, json!({}))
            .await
            .body["archived"],
        true
    );
    let listed = app
        .get(&format!("{}/conversations", base(&t)), &t.agent_token)
        .await;
    assert!(
        listed.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| id(x) != t.conversation)
    );
    let archived = app
        .get(
            &format!("{}/conversations?archived=true", base(&t)),
            &t.agent_token,
        )
        .await;
    assert_eq!(archived.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(
        app.post(&format!("{c}/unarchive"), &t.agent_token, json!({}))
            .await
            .body["archived"],
        false
    );
}

#[tokio::test]
async fn custom_flows_are_validated_and_creative_briefs_complete_or_cancel() {
    let app = spawn_app().await;
    let t = seed_tenant(&app, "acme").await;
    let flows = format!("{}/flows", base(&t));
    for (body, field) in [
        (
            json!({"key": "x1", "name": "X", "states": ["a"], "initial_state": "b", "transitions": {}}),
            "initial_state",
        ),
        (
            json!({"key": "x2", "name": "X", "states": ["a", "a"], "initial_state": "a", "transitions": {}}),
            "states",
        ),
        (
            json!({"key": "x3", "name": "X", "states": ["a"], "initial_state": "a", "transitions": {"a": ["z"]}}),
            "transitions.a[0]",
        ),
        (
            json!({"key": "Bad Key", "name": "X", "states": ["a"], "initial_state": "a", "transitions": {}}),
            "key",
        ),
    ] {
        let r = app.post(&flows, &t.owner_token, body).await;
        assert_eq!(r.status, 422, "{}", r.text);
        assert!(
            r.error_fields().contains(&field.to_owned()),
            "{field}: {}",
            r.text
        );
    }
    let builtin = app
        .post(&flows, &t.owner_token, json!({"key": "assistant", "name": "Mine", "states": ["a"], "initial_state": "a", "transitions": {}}))
        .await;
    assert_eq!(builtin.status, 409);
    assert_eq!(
        app.post(&flows, &t.agent_token, json!({})).await.status,
        403
    );
    let listed = app.get(&flows, &t.member_token).await;
    let keys: Vec<&str> = listed
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        ["ari_sales", "assistant", "creative_brief", "support"]
    );

    let assistant = app
        .post(
            &format!("{}/assistants", base(&t)),
            &t.owner_token,
            json!({"name": "CD", "flow": "creative_brief"}),
        )
        .await;
    let missing = app
        .post(
            &format!("{}/assistants", base(&t)),
            &t.owner_token,
            json!({"name": "CD", "flow": "nope"}),
        )
        .await;
    assert_eq!(missing.status, 422);
    assert_eq!(missing.error_fields(), ["flow"]);
    for (path, last) in [
        (
            vec![
                "gathering",
                "planning",
                "confirming",
                "processing",
                "verifying",
                "delivered",
            ],
            "delivered",
        ),
        (vec!["gathering", "cancelled"], "cancelled"),
    ] {
        let c = id(&conversation(
            &app,
            &t,
            &t.member_token,
            json!({"assistant_id": id(&assistant.body)}),
        )
        .await);
        for to in &path {
            let r = app
                .post(
                    &format!("{}/conversations/{c}/transitions", base(&t)),
                    &t.member_token,
                    json!({"to": to}),
                )
                .await;
            assert_eq!(r.status, 200, "{to}: {}", r.text);
        }
        let got = app
            .get(&format!("{}/conversations/{c}", base(&t)), &t.member_token)
            .await;
        assert_eq!(got.body["state"], last);
        assert!(got.body["completed_at"].is_string());
        let after = app
            .post(
                &format!("{}/conversations/{c}/transitions", base(&t)),
                &t.member_token,
                json!({"to": "gathering"}),
            )
            .await;
        assert_eq!(after.status, 409, "terminal states have no way out");
        assert_eq!(after.body["allowed_transitions"], json!([]));
    }
}

#[tokio::test]
async fn bad_message_input_is_refused_with_field_errors() {
    let app = spawn_app().await;
    let t = seed_tenant(&app, "acme").await;
    let path = format!("{}/conversations/{}/messages", base(&t), t.conversation);
    let before = count(
        &app,
        "select count(*) from app.messages where tenant_id = $1",
        t.id,
    )
    .await;
    for (body, field) in [
        (json!({"role": "robot", "content": "x"}), "role"),
        (json!({"role": "user", "content": "   "}), "content"),
        (
            json!({"role": "user", "content": "x".repeat(100 * 1024 + 1)}),
            "content",
        ),
        (
            json!({"role": "user", "content": "x", "prompt_tokens": -1}),
            "prompt_tokens",
        ),
        (
            json!({"role": "user", "content": "x", "prompt_tokens": 3_000_000_000i64}),
            "prompt_tokens",
        ),
        (
            json!({"role": "user", "content": "x", "cost_usd": "-0.1"}),
            "cost_usd",
        ),
        (
            json!({"role": "user", "content": "x", "cost_usd": "0.00000000001"}),
            "cost_usd",
        ),
        (
            json!({"role": "user", "content": "x", "cost_usd": "lots"}),
            "cost_usd",
        ),
        (
            json!({"role": "user", "content": "x", "latency_ms": -5}),
            "latency_ms",
        ),
        (
            json!({"role": "user", "content": "x", "metadata": []}),
            "metadata",
        ),
        (
            json!({"role": "user", "content": "x", "questions_asked": {}}),
            "questions_asked",
        ),
        (
            json!({"role": "user", "content": "x", "colour": "red"}),
            "colour",
        ),
    ] {
        let r = app.post(&path, &t.full_key, body).await;
        assert_eq!(r.status, 422, "{field}: {}", r.text);
        assert_eq!(r.error_fields(), [field], "{}", r.text);
    }
    assert_eq!(
        count(
            &app,
            "select count(*) from app.messages where tenant_id = $1",
            t.id
        )
        .await,
        before
    );
    let number = app
        .post(
            &path,
            &t.full_key,
            json!({"role": "user", "content": "x", "cost_usd": 0.0008}),
        )
        .await;
    assert!(
        number.status == 201 || number.status == 422,
        "a JSON number is no 5xx: {}",
        number.text
    );
}

#[tokio::test]
async fn odd_requests_never_get_a_5xx() {
    let app = spawn_app().await;
    let t = seed_tenant(&app, "acme").await;
    let b = base(&t);
    let c = format!("{b}/conversations/{}", t.conversation);
    let other = Uuid::now_v7();
    let cases: Vec<(&str, String, Option<Value>)> = vec![
        (
            "GET",
            format!("{b}/conversations?updated_since=yesterday"),
            None,
        ),
        ("GET", format!("{b}/conversations?cursor=bm9wZQ"), None),
        ("GET", format!("{b}/conversations?archived=maybe"), None),
        ("GET", format!("{b}/conversations?limit=0"), None),
        ("GET", format!("{b}/events?since=soon"), None),
        (
            "GET",
            format!("{b}/search?q=%22unterminated%20or%20-"),
            None,
        ),
        ("GET", format!("{b}/search?q=a&cursor=o-5"), None),
        ("GET", format!("{b}/contacts?q=%25_%5C"), None),
        ("GET", format!("{b}/flows/{}", "x".repeat(300)), None),
        ("GET", format!("{c}/messages?before=not-a-uuid"), None),
        ("PATCH", c.clone(), Some(json!({"contact_id": other}))),
        ("PATCH", c.clone(), Some(json!({"assignee_id": other}))),
        ("PATCH", c.clone(), Some(json!({"state": "payment"}))),
        (
            "PATCH",
            c.clone(),
            Some(json!({"selected_kb_ids": ["nope"]})),
        ),
        (
            "PATCH",
            c.clone(),
            Some(json!({"title": null, "context": null})),
        ),
        (
            "PATCH",
            format!("{b}/assistants/{}", t.assistant),
            Some(json!({"flow": "nope"})),
        ),
        (
            "PATCH",
            format!("{b}/assistants/{}", t.assistant),
            Some(json!({"llm_temperature": 9})),
        ),
        ("DELETE", format!("{b}/assistants/{}", t.assistant), None),
        (
            "POST",
            format!("{b}/contacts"),
            Some(json!({"phone": "+628111234567"})),
        ),
        (
            "POST",
            format!("{b}/contacts"),
            Some(json!({"phone": "0811", "lead_score": 101, "channel_ids": {"wa": 5}})),
        ),
        (
            "POST",
            format!("{b}/conversations"),
            Some(json!({"assistant_id": "nope"})),
        ),
        (
            "POST",
            format!("{b}/conversations"),
            Some(json!({"assistant_id": other})),
        ),
        (
            "POST",
            format!("{b}/conversations"),
            Some(json!({"assistant_id": t.assistant, "channel": "fax"})),
        ),
        ("POST", format!("{c}/transitions"), Some(json!({"to": ""}))),
        (
            "POST",
            format!("{c}/handoff"),
            Some(json!({"reason": "   "})),
        ),
        (
            "POST",
            format!("{b}/flows"),
            Some(
                json!({"key": "big", "name": "B", "states": vec!["s"; 0], "initial_state": "s", "transitions": {}}),
            ),
        ),
        (
            "PUT",
            format!("{b}/messages/{}/feedback", t.message),
            Some(json!({"rating": "up"})),
        ),
    ];
    for (method, path, body) in cases {
        let reply = app
            .call(method, &path, Some(&t.owner_token), body.as_ref())
            .await;
        assert!(
            reply.status.as_u16() < 500 && (method == "GET" || reply.status.is_client_error()),
            "{method} {path}: {} {}",
            reply.status,
            reply.text
        );
    }
}

#[tokio::test]
async fn expired_idempotency_keys_are_forgotten_and_swept() {
    let app = spawn_app().await;
    let t = seed_tenant(&app, "acme").await;
    let path = format!("{}/contacts", base(&t));
    let first = app
        .post_idempotent(&path, &t.full_key, "old", json!({"name": "Sari"}))
        .await;
    assert_eq!(first.status, 201);
    let admin = app.db.admin().await;
    admin
        .execute(
            "update app.idempotency_keys set created_at = now() - interval '25 hours' where key = 'old'",
            &[],
        )
        .await
        .unwrap();
    // Past its retention a key is a new request, even before the sweeper ran.
    let again = app
        .post_idempotent(&path, &t.full_key, "old", json!({"name": "Sari"}))
        .await;
    assert_eq!(again.status, 201);
    assert_ne!(id(&again.body), id(&first.body));
    admin
        .execute(
            "update app.idempotency_keys set created_at = now() - interval '25 hours'",
            &[],
        )
        .await
        .unwrap();
    let swept = frontdesk_server::housekeeping::sweep(&app.db.db(1))
        .await
        .unwrap();
    assert_eq!(swept, 2, "the seeded key and this one");
    let left: i64 = admin
        .query_one("select count(*) from app.idempotency_keys", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
}

#[tokio::test]
async fn counters_history_and_events_are_written_only_by_the_database() {
    let app = spawn_app().await;
    let t = seed_tenant(&app, "acme").await;
    let client = app.db.app_login().await;
    let as_owner = as_user(t.id, t.owner, "owner");
    let as_member = as_user(t.id, t.member, "member");
    for sql in [
        format!(
            "update app.conversations set message_count = 0 where id = '{}'",
            t.conversation
        ),
        format!(
            "update app.conversations set cost_usd = 0 where id = '{}'",
            t.conversation
        ),
        format!(
            "insert into app.events (tenant_id, id, type, data) values ('{}', app.uuid_v7(), 'message.created', '{{}}')",
            t.id
        ),
        format!(
            "insert into app.conversation_transitions (tenant_id, id, conversation_id, to_state)
             values ('{}', app.uuid_v7(), '{}', 'completed')",
            t.id, t.conversation
        ),
        format!(
            "select app.emit_event('{}', 'message.created', null, '{{}}')",
            t.id
        ),
    ] {
        client.batch_execute(&as_owner).await.unwrap();
        let result = client.batch_execute(&sql).await;
        client.batch_execute("rollback").await.unwrap();
        assert!(result.is_err(), "allowed: {sql}");
    }
    // A member sees the history of their own conversations only.
    client.batch_execute(&as_member).await.unwrap();
    let seen: Vec<Uuid> = client
        .query(
            "select distinct conversation_id from app.conversation_transitions",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    client.batch_execute("rollback").await.unwrap();
    assert_eq!(seen, [t.member_conversation]);
    let theirs = app
        .get(
            &format!("{}/conversations/{}/transitions", base(&t), t.conversation),
            &t.member_token,
        )
        .await;
    assert_eq!(theirs.status, 404);
}

#[tokio::test]
async fn snippets_are_escaped_and_owners_must_be_members() {
    let app = spawn_app().await;
    let t = seed_tenant(&app, "acme").await;
    let path = format!("{}/conversations/{}/messages", base(&t), t.conversation);
    let r = app
        .post(&path, &t.full_key, json!({"role": "user", "content": "see <img src=x onerror=alert(1)> pictures & \"maps\""}))
        .await;
    assert_eq!(r.status, 201);
    let hits = app
        .get(&format!("{}/search?q=pictures", base(&t)), &t.owner_token)
        .await;
    let snippet = hits.body["data"][0]["snippet"].as_str().unwrap().to_owned();
    assert!(!snippet.contains("<img"), "{snippet}");
    assert!(
        snippet.contains("<mark>pictures</mark>") && snippet.contains("&amp;"),
        "{snippet}"
    );
    let bare = snippet.replace("<mark>", "").replace("</mark>", "");
    assert!(!bare.contains(['<', '>', '"']), "{snippet}");

    // A conversation's owner is a member of the tenant.
    let stranger = Uuid::now_v7();
    let r = app
        .post(
            &format!("{}/conversations", base(&t)),
            &t.agent_token,
            json!({"assistant_id": t.assistant, "user_id": stranger}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.error_fields(), ["user_id"]);
    let r = app
        .post(
            &format!("{}/conversations", base(&t)),
            &t.agent_token,
            json!({"assistant_id": t.assistant, "user_id": t.member}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    // An inactive assistant starts no conversation.
    let off = app
        .patch(
            &format!("{}/assistants/{}", base(&t), t.assistant),
            &t.owner_token,
            json!({"is_active": false}),
        )
        .await;
    assert_eq!(off.status, 200);
    let r = app
        .post(
            &format!("{}/conversations", base(&t)),
            &t.full_key,
            json!({"assistant_id": t.assistant}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.error_fields(), ["assistant_id"]);
    // The event carries no content (a redaction could not reach it) and the API's cost format.
    let events = app
        .get(
            &format!("{}/events?type=message.created", base(&t)),
            &t.owner_token,
        )
        .await;
    let seeded = events.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["subject_id"] == json!(t.message))
        .unwrap()
        .clone();
    assert!(seeded["data"].get("content").is_none());
    assert_eq!(seeded["data"]["cost_usd"], "0.0004");
}

/// PUT a JSON body.
async fn put(app: &TestApp, path: &str, token: &str, body: Value) -> frontdesk_test::Reply {
    app.call("PUT", path, Some(token), Some(&body)).await
}

#[tokio::test]
async fn phone_numbers_as_typed_are_stored_in_e164_with_the_tenants_default_country() {
    let app = spawn_app().await;
    let t = seed_tenant(&app, "acme").await;
    let contacts = format!("{}/contacts", base(&t));
    // No default country yet: a number without its country code names no number.
    let refused = app
        .post(&contacts, &t.full_key, json!({"phone": "0812-3456-7890"}))
        .await;
    assert_eq!(refused.status, 422, "{}", refused.text);
    assert_eq!(refused.error_fields(), ["phone"]);
    assert!(refused.text.contains("default_country"), "{}", refused.text);
    for bad in [json!("id"), json!("XX"), json!("IDN"), json!(62)] {
        let reply = app
            .patch(&base(&t), &t.owner_token, json!({"default_country": bad}))
            .await;
        assert_eq!(reply.status, 422, "{bad}: {}", reply.text);
        assert_eq!(reply.error_fields(), ["default_country"]);
    }
    let tenant = app
        .patch(&base(&t), &t.owner_token, json!({"default_country": "ID"}))
        .await;
    assert_eq!(tenant.status, 200, "{}", tenant.text);
    assert_eq!(tenant.body["default_country"], "ID");
    assert_eq!(
        app.get(&base(&t), &t.full_key).await.body["default_country"],
        "ID"
    );
    // `0812-3456-7890` in Indonesia is +6281234567890.
    let created = app
        .post(
            &contacts,
            &t.full_key,
            json!({"name": "Sari", "phone": "0812-3456-7890"}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.body["phone"], "+6281234567890");
    let sari = id(&created.body);
    // The same number in its other forms is the same number: taken.
    for typed in ["+62 812-3456-7890", "6281234567890", "(0812) 3456 7890"] {
        let reply = app
            .post(&contacts, &t.full_key, json!({"phone": typed}))
            .await;
        assert_eq!(reply.status, 409, "{typed}: {}", reply.text);
        assert_eq!(reply.error_fields(), ["phone"], "{typed}");
    }
    // Not a number of the country, or not a number at all.
    for typed in ["0811", "phone me", "0812-3456-7890 ext 5"] {
        let reply = app
            .post(&contacts, &t.full_key, json!({"phone": typed}))
            .await;
        assert_eq!(reply.status, 422, "{typed}: {}", reply.text);
        assert_eq!(reply.error_fields(), ["phone"], "{typed}");
    }
    // A lookup reads the number the same way.
    for typed in ["0812%203456%207890", "%2B6281234567890", "6281234567890"] {
        let found = app
            .get(&format!("{contacts}/lookup?phone={typed}"), &t.full_key)
            .await;
        assert_eq!(found.status, 200, "{typed}: {}", found.text);
        assert_eq!(id(&found.body), sari);
    }
    // PATCH too; clearing the default country refuses local numbers again.
    let patched = app
        .patch(
            &format!("{contacts}/{sari}"),
            &t.full_key,
            json!({"phone": "0813 1111 2222"}),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    assert_eq!(patched.body["phone"], "+6281311112222");
    let cleared = app
        .patch(&base(&t), &t.owner_token, json!({"default_country": null}))
        .await;
    assert_eq!(cleared.status, 200, "{}", cleared.text);
    assert_eq!(cleared.body["default_country"], Value::Null);
    let refused = app
        .patch(
            &format!("{contacts}/{sari}"),
            &t.full_key,
            json!({"phone": "0813 1111 3333"}),
        )
        .await;
    assert_eq!(refused.status, 422, "{}", refused.text);
    let international = app
        .patch(
            &format!("{contacts}/{sari}"),
            &t.full_key,
            json!({"phone": "+62 813 1111 3333"}),
        )
        .await;
    assert_eq!(international.status, 200, "{}", international.text);
    assert_eq!(international.body["phone"], "+6281311113333");
}

#[tokio::test]
async fn channel_ids_are_unique_per_tenant_and_channel_and_found_by_lookup() {
    let app = spawn_app().await;
    let a = seed_tenant(&app, "tenant-a").await;
    let b = seed_tenant(&app, "tenant-b").await;
    let contacts = format!("{}/contacts", base(&a));
    let tenant = app
        .patch(&base(&a), &a.owner_token, json!({"default_country": "ID"}))
        .await;
    assert_eq!(tenant.status, 200, "{}", tenant.text);
    let created = app
        .post(
            &contacts,
            &a.full_key,
            json!({"name": "Rina", "channel_ids": {"whatsapp": "+62 812-7777-0001", "telegram": "@rina", "email": "Rina@Warung.ID"}}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(
        created.body["channel_ids"],
        json!({"whatsapp": "6281277770001", "telegram": "@rina", "email": "rina@warung.id"})
    );
    let rina = id(&created.body);
    // Two contacts with the same WhatsApp id, in any form: 409, nothing stored.
    let before = count(
        &app,
        "select count(*) from app.contacts where tenant_id = $1",
        a.id,
    )
    .await;
    for whatsapp in ["6281277770001", "0812-7777-0001", "+6281277770001"] {
        let reply = app
            .post(
                &contacts,
                &a.full_key,
                json!({"name": "Copy", "channel_ids": {"whatsapp": whatsapp}}),
            )
            .await;
        assert_eq!(reply.status, 409, "{whatsapp}: {}", reply.text);
        assert_eq!(reply.error_fields(), ["channel_ids"]);
    }
    assert_eq!(
        count(
            &app,
            "select count(*) from app.contacts where tenant_id = $1",
            a.id
        )
        .await,
        before
    );
    // The same id on another channel is another id.
    let other_channel = app
        .post(
            &contacts,
            &a.full_key,
            json!({"name": "Other", "channel_ids": {"instagram": "@rina"}}),
        )
        .await;
    assert_eq!(other_channel.status, 201, "{}", other_channel.text);
    // Bad channel names and ids.
    for ids in [
        json!({"WhatsApp": "6281277770002"}),
        json!({"whatsapp": "12"}),
        json!({"telegram": "  "}),
        json!({"telegram": 5}),
    ] {
        let reply = app
            .post(&contacts, &a.full_key, json!({"channel_ids": ids}))
            .await;
        assert_eq!(reply.status, 422, "{ids}: {}", reply.text);
        assert!(
            reply.error_fields()[0].starts_with("channel_ids"),
            "{ids}: {}",
            reply.text
        );
    }
    // Lookups by channel, as typed.
    for query in [
        "channel=whatsapp&id=0812-7777-0001",
        "channel=whatsapp&id=6281277770001",
        "channel=telegram&id=%40rina",
        "channel=email&id=RINA%40warung.id",
    ] {
        let found = app
            .get(&format!("{contacts}/lookup?{query}"), &a.read_key)
            .await;
        assert_eq!(found.status, 200, "{query}: {}", found.text);
        assert_eq!(id(&found.body), rina, "{query}");
    }
    let missing = app
        .get(
            &format!("{contacts}/lookup?channel=telegram&id=%40nobody"),
            &a.full_key,
        )
        .await;
    assert_eq!(missing.status, 404, "{}", missing.text);
    for query in [
        "",
        "?channel=whatsapp",
        "?id=6281277770001",
        "?phone=%2B6281277770001&channel=whatsapp&id=6281277770001",
        "?channel=Bad!&id=x",
        "?channel=whatsapp&id=hello",
    ] {
        let reply = app
            .get(&format!("{contacts}/lookup{query}"), &a.full_key)
            .await;
        assert_eq!(reply.status, 422, "{query}: {}", reply.text);
    }
    // Searchable: ?q= finds a contact by the start of a channel id.
    let searched = app
        .get(&format!("{contacts}?q=62812777"), &a.full_key)
        .await;
    assert_eq!(searched.status, 200, "{}", searched.text);
    let ids: Vec<Uuid> = searched.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(id)
        .collect();
    assert_eq!(ids, [rina]);
    // Another tenant's contact is never found: B's credentials find nothing of A, and
    // B may hold the same id for its own contact.
    let b_contacts = format!("{}/contacts", base(&b));
    let by_b = app
        .get(
            &format!("{b_contacts}/lookup?channel=telegram&id=%40rina"),
            &b.full_key,
        )
        .await;
    assert_eq!(by_b.status, 404, "{}", by_b.text);
    let on_a = app
        .get(
            &format!("{contacts}/lookup?channel=telegram&id=%40rina"),
            &b.full_key,
        )
        .await;
    assert_eq!(on_a.status, 403, "{}", on_a.text);
    let b_rina = app
        .post(
            &b_contacts,
            &b.full_key,
            json!({"name": "B's Rina", "channel_ids": {"telegram": "@rina"}}),
        )
        .await;
    assert_eq!(b_rina.status, 201, "{}", b_rina.text);
    let found = app
        .get(
            &format!("{b_contacts}/lookup?channel=telegram&id=%40rina"),
            &b.full_key,
        )
        .await;
    assert_eq!(id(&found.body), id(&b_rina.body));
    // Both seeded tenants' contacts hold the same WhatsApp id; each finds its own.
    for t in [&a, &b] {
        let found = app
            .get(
                &format!(
                    "{}/contacts/lookup?channel=whatsapp&id=628111234567",
                    base(t)
                ),
                &t.full_key,
            )
            .await;
        assert_eq!(found.status, 200, "{}", found.text);
        assert_eq!(id(&found.body), t.contact);
    }
    // Members see no contacts, so find none.
    let member = app
        .get(
            &format!("{contacts}/lookup?channel=telegram&id=%40rina"),
            &a.member_token,
        )
        .await;
    assert_eq!(member.status, 404, "{}", member.text);
    // Changing a contact's ids frees the old ones; deleting it frees the rest.
    let changed = app
        .patch(
            &format!("{contacts}/{rina}"),
            &a.full_key,
            json!({"channel_ids": {"telegram": "@rina2"}}),
        )
        .await;
    assert_eq!(changed.status, 200, "{}", changed.text);
    assert_eq!(changed.body["channel_ids"], json!({"telegram": "@rina2"}));
    let gone = app
        .get(
            &format!("{contacts}/lookup?channel=whatsapp&id=6281277770001"),
            &a.full_key,
        )
        .await;
    assert_eq!(gone.status, 404, "{}", gone.text);
    assert_eq!(
        app.delete(&format!("{contacts}/{rina}"), &a.full_key)
            .await
            .status,
        204
    );
    assert_eq!(
        count(
            &app,
            &format!("select count(*) from app.contact_channels where tenant_id = $1 and contact_id = '{rina}'"),
            a.id
        )
        .await,
        0
    );
}

#[tokio::test]
async fn upsert_by_channel_makes_one_contact_under_parallel_first_messages() {
    let app = spawn_app().await;
    let a = seed_tenant(&app, "tenant-a").await;
    let b = seed_tenant(&app, "tenant-b").await;
    let path = format!("{}/contacts/by-channel/whatsapp/6281299990000", base(&a));
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..12 {
        let request = app
            .http
            .put(format!("{}{path}", app.base))
            .bearer_auth(&a.full_key)
            .json(&json!({"name": format!("Sari {n}")}));
        tasks.spawn(frontdesk_test::Reply::of(request));
    }
    let mut statuses = Vec::new();
    let mut ids = HashSet::new();
    while let Some(reply) = tasks.join_next().await {
        let reply = reply.unwrap();
        statuses.push(reply.status.as_u16());
        ids.insert(id(&reply.body));
    }
    statuses.sort();
    assert_eq!(
        statuses,
        [200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 201]
    );
    assert_eq!(ids.len(), 1, "one contact");
    let sari = *ids.iter().next().unwrap();
    assert_eq!(
        count(
            &app,
            "select count(*) from app.contact_channels where tenant_id = $1 and channel = 'whatsapp' and external_id = '6281299990000'",
            a.id
        )
        .await,
        1
    );
    // Again, in another form of the number: the fields given change, the rest stays.
    let tenant = app
        .patch(&base(&a), &a.owner_token, json!({"default_country": "ID"}))
        .await;
    assert_eq!(tenant.status, 200, "{}", tenant.text);
    let again = put(
        &app,
        &format!("{}/contacts/by-channel/whatsapp/0812-9999-0000", base(&a)),
        &a.full_key,
        json!({"lead_score": 50, "channel_ids": {"whatsapp": "6281299990000", "telegram": "@sari"}}),
    )
    .await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(id(&again.body), sari);
    assert_eq!(again.body["lead_score"], 50);
    assert!(again.body["name"].as_str().unwrap().starts_with("Sari "));
    assert_eq!(
        again.body["channel_ids"],
        json!({"whatsapp": "6281299990000", "telegram": "@sari"})
    );
    // The body's id on the path's channel must be the path's.
    let differs = put(
        &app,
        &path,
        &a.full_key,
        json!({"channel_ids": {"whatsapp": "6281299990001"}}),
    )
    .await;
    assert_eq!(differs.status, 422, "{}", differs.text);
    assert_eq!(differs.error_fields(), ["channel_ids.whatsapp"]);
    // A channel that cannot exist names nothing; a bad id or body is a 422.
    let bad_channel = put(
        &app,
        &format!("{}/contacts/by-channel/Bad!/x", base(&a)),
        &a.full_key,
        json!({}),
    )
    .await;
    assert_eq!(bad_channel.status, 404, "{}", bad_channel.text);
    let bad_id = put(
        &app,
        &format!("{}/contacts/by-channel/whatsapp/hello", base(&a)),
        &a.full_key,
        json!({}),
    )
    .await;
    assert_eq!(bad_id.status, 422, "{}", bad_id.text);
    let bad_body = put(&app, &path, &a.full_key, json!({"lead_score": 101})).await;
    assert_eq!(bad_body.status, 422, "{}", bad_body.text);
    // A read key and a member cannot; B's key makes B's own contact, A's stays A's.
    assert_eq!(put(&app, &path, &a.read_key, json!({})).await.status, 403);
    assert_eq!(
        put(&app, &path, &a.member_token, json!({})).await.status,
        403
    );
    let in_b = put(
        &app,
        &format!("{}/contacts/by-channel/whatsapp/6281299990000", base(&b)),
        &b.full_key,
        json!({"name": "B's Sari"}),
    )
    .await;
    assert_eq!(in_b.status, 201, "{}", in_b.text);
    assert_ne!(id(&in_b.body), sari);
    let on_a = put(&app, &path, &b.full_key, json!({"name": "hijack"})).await;
    assert_eq!(on_a.status, 404, "{}", on_a.text);
    let still = app
        .get(&format!("{}/contacts/{sari}", base(&a)), &a.full_key)
        .await;
    assert!(still.body["name"].as_str().unwrap().starts_with("Sari "));
}

#[tokio::test]
async fn the_open_conversation_conflict_names_it_and_lists_filter_open_and_unassigned() {
    let app = spawn_app().await;
    let t = seed_tenant(&app, "acme").await;
    let assistant = app
        .post(
            &format!("{}/assistants", base(&t)),
            &t.owner_token,
            json!({"name": "Desk", "flow": "assistant", "one_open_conversation_per_contact": true}),
        )
        .await;
    assert_eq!(assistant.status, 201, "{}", assistant.text);
    let assistant = id(&assistant.body);
    let body = json!({"assistant_id": assistant, "contact_id": t.contact});
    let first = id(&conversation(&app, &t, &t.full_key, body.clone()).await);
    let again = app
        .post(
            &format!("{}/conversations", base(&t)),
            &t.full_key,
            body.clone(),
        )
        .await;
    assert_eq!(again.status, 409, "{}", again.text);
    assert_eq!(again.body["conversation_id"], json!(first));
    assert_eq!(again.error_fields(), ["contact_id"]);
    // Under an idempotency key too.
    let keyed = app
        .post_idempotent(
            &format!("{}/conversations", base(&t)),
            &t.full_key,
            "second-try",
            body.clone(),
        )
        .await;
    assert_eq!(keyed.status, 409, "{}", keyed.text);
    assert_eq!(keyed.body["conversation_id"], json!(first));

    let list = async |query: &str| -> Vec<Uuid> {
        let reply = app
            .get(&format!("{}/conversations?{query}", base(&t)), &t.full_key)
            .await;
        assert_eq!(reply.status, 200, "{query}: {}", reply.text);
        reply.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(id)
            .collect()
    };
    let of_desk = format!("assistant_id={assistant}");
    assert_eq!(list(&format!("{of_desk}&open=true")).await, [first]);
    assert!(list(&format!("{of_desk}&open=false")).await.is_empty());
    let closed = app
        .post(
            &format!("{}/conversations/{first}/transitions", base(&t)),
            &t.full_key,
            json!({"to": "closed"}),
        )
        .await;
    assert_eq!(closed.status, 200, "{}", closed.text);
    let second = id(&conversation(&app, &t, &t.full_key, body).await);
    assert_eq!(list(&format!("{of_desk}&open=true")).await, [second]);
    assert_eq!(list(&format!("{of_desk}&open=false")).await, [first]);
    let mut both = list(&of_desk).await;
    both.sort();
    assert_eq!(both, [first, second]);

    // Nobody is assigned yet; a handoff to the agent takes one off the unassigned list.
    let unassigned = list("assignee_id=none").await;
    assert!(unassigned.contains(&t.conversation) && unassigned.contains(&second));
    let handoff = app
        .post(
            &format!("{}/conversations/{}/handoff", base(&t), t.conversation),
            &t.full_key,
            json!({"reason": "wants a person", "assignee_id": t.agent}),
        )
        .await;
    assert_eq!(handoff.status, 200, "{}", handoff.text);
    let unassigned = list("assignee_id=none").await;
    assert!(!unassigned.contains(&t.conversation) && unassigned.contains(&second));
    assert_eq!(
        list(&format!("assignee_id={}", t.agent)).await,
        [t.conversation]
    );
    assert_eq!(
        list(&format!("assignee_id=none&open=true&{of_desk}")).await,
        [second]
    );
    for bad in ["assignee_id=nobody", "open=maybe"] {
        let reply = app
            .get(&format!("{}/conversations?{bad}", base(&t)), &t.full_key)
            .await;
        assert_eq!(reply.status, 422, "{bad}: {}", reply.text);
    }
}
