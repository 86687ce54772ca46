//! Inputs at the edges of their rules: sums that outgrow their columns, the decimal
//! format, flows, times, tokens not valid yet, the nil UUID, cursors.

use frontdesk_test::{
    JWT_SECRET, Reply, fixtures::seed_tenant, json, spawn_app, tenant_snapshot, user_token,
};
use uuid::Uuid;

#[tokio::test]
async fn costs_at_the_largest_value_add_up_exactly_and_the_conversation_keeps_accepting_them() {
    let app = spawn_app().await;
    let t = seed_tenant(&app, "big-costs").await;
    let conversation = format!("{}/conversations/{}", t.base(), t.member_conversation);
    let before = app
        .get(&format!("{conversation}/cost"), &t.owner_token)
        .await;
    let before: rust_decimal::Decimal = before.body["cost_usd"].as_str().unwrap().parse().unwrap();
    // The issue's two messages, then a third: each is valid, and so must their sum be.
    for _ in 0..3 {
        let sent = app
            .post(
                &format!("{conversation}/messages"),
                &t.full_key,
                json!({"role": "assistant", "content": "pricey", "cost_usd": "9999999999"}),
            )
            .await;
        assert_eq!(sent.status, 201, "{}", sent.text);
        assert_eq!(sent.body["cost_usd"], "9999999999");
    }
    let one_cent_more = app
        .post(
            &format!("{conversation}/messages"),
            &t.full_key,
            json!({"role": "user", "content": "and a little", "cost_usd": "0.0000000001"}),
        )
        .await;
    assert_eq!(one_cent_more.status, 201, "{}", one_cent_more.text);
    let expected = before
        + rust_decimal::Decimal::from(29_999_999_997i64)
        + "0.0000000001".parse::<rust_decimal::Decimal>().unwrap();
    let cost = app
        .get(&format!("{conversation}/cost"), &t.owner_token)
        .await;
    assert_eq!(cost.status, 200, "{}", cost.text);
    assert_eq!(cost.body["cost_usd"], expected.normalize().to_string());
    // The day's rollup and the usage events' rollup hold the sums too.
    for _ in 0..2 {
        let event = app
            .post(
                &format!("{}/usage", t.base()),
                &t.full_key,
                json!({"unit": "minute", "quantity": "1", "cost_usd": "9999999999"}),
            )
            .await;
        assert_eq!(event.status, 201, "{}", event.text);
    }
    let today = app
        .get(&format!("{}/usage/today", t.base()), &t.owner_token)
        .await;
    assert_eq!(today.status, 200, "{}", today.text);
    let today: rust_decimal::Decimal = today.body["cost_usd"].as_str().unwrap().parse().unwrap();
    assert!(
        today >= rust_decimal::Decimal::from(49_999_999_995i64),
        "{today}"
    );
    let monthly = app
        .get(&format!("{}/usage/monthly", t.base()), &t.owner_token)
        .await;
    assert_eq!(monthly.status, 200, "{}", monthly.text);
    let limits = app
        .get(&format!("{}/limits", t.base()), &t.owner_token)
        .await;
    assert_eq!(limits.status, 200, "{}", limits.text);

    // A unit price times a quantity is a cost too, bounded like a given one.
    let admin = app.db.admin().await;
    let stored = tenant_snapshot(&admin, t.id).await;
    let product = app
        .post(
            &format!("{}/usage", t.base()),
            &t.full_key,
            json!({"unit": "minute", "quantity": "9999999999", "unit_price_usd": "9999999999"}),
        )
        .await;
    assert_eq!(product.status, 422, "{}", product.text);
    assert_eq!(product.error_fields(), ["unit_price_usd"]);
    assert_eq!(tenant_snapshot(&admin, t.id).await, stored);
}

#[tokio::test]
async fn cost_usd_takes_exactly_the_documented_decimal_format() {
    let app = spawn_app().await;
    let t = seed_tenant(&app, "cost-format").await;
    let messages = format!("{}/conversations/{}/messages", t.base(), t.conversation);
    let admin = app.db.admin().await;
    let stored = tenant_snapshot(&admin, t.id).await;
    for bad in [
        json!("1e3"),
        json!("1E3"),
        json!("1e-30"),
        json!("1_0"),
        json!("+1"),
        json!("-1"),
        json!("-0"),
        json!(".5"),
        json!("5."),
        json!(" 1"),
        json!("1 "),
        json!(""),
        json!("0x10"),
        json!("NaN"),
        json!("Infinity"),
        json!("1,5"),
        json!("١"),
        json!("0.00000000001"),
        json!("0.000000000000000000000000000001"),
        json!("10000000000"),
        json!("99999999999999999999999999999999"),
        json!(1),
        json!(0.5),
        json!(1e-30),
        json!(true),
        json!(["1"]),
        json!({"value": "1"}),
    ] {
        let reply = app
            .post(
                &messages,
                &t.full_key,
                json!({"role": "user", "content": "hi", "cost_usd": bad}),
            )
            .await;
        assert_eq!(reply.status, 422, "{bad}: {}", reply.text);
        assert_eq!(reply.error_fields(), ["cost_usd"], "{bad}");
    }
    // The same rule for every decimal the API takes.
    let usage = app
        .post(
            &format!("{}/usage", t.base()),
            &t.full_key,
            json!({"unit": "minute", "quantity": "1e3", "unit_price_usd": "+1", "cost_usd": ".5"}),
        )
        .await;
    assert_eq!(usage.status, 422, "{}", usage.text);
    assert_eq!(
        usage.error_fields(),
        ["quantity", "unit_price_usd", "cost_usd"]
    );
    let budget = app
        .patch(
            &t.base(),
            &t.owner_token,
            json!({"monthly_budget_usd": "1e2"}),
        )
        .await;
    assert_eq!(budget.status, 422, "{}", budget.text);
    assert_eq!(tenant_snapshot(&admin, t.id).await, stored);

    for (good, shown) in [
        ("0.0008", "0.0008"),
        ("0", "0"),
        ("12", "12"),
        ("007.50", "7.5"),
        ("9999999999.9999999999", "9999999999.9999999999"),
        ("0.0000000001", "0.0000000001"),
    ] {
        let reply = app
            .post(
                &messages,
                &t.full_key,
                json!({"role": "user", "content": "hi", "cost_usd": good}),
            )
            .await;
        assert_eq!(reply.status, 201, "{good}: {}", reply.text);
        assert_eq!(reply.body["cost_usd"], shown);
    }
}

#[tokio::test]
async fn flows_with_repeated_targets_or_repeated_terminal_states_are_refused() {
    let app = spawn_app().await;
    let t = seed_tenant(&app, "flow-rules").await;
    let flows = format!("{}/flows", t.base());
    let flow = |terminal: serde_json::Value, transitions: serde_json::Value| {
        json!({"key": "triage", "name": "Triage", "states": ["new", "open", "done"],
               "initial_state": "new", "terminal_states": terminal, "transitions": transitions})
    };
    for (body, fields) in [
        (
            flow(
                json!(["done"]),
                json!({"new": ["open", "open"], "open": ["done"]}),
            ),
            vec!["transitions.new[1]"],
        ),
        (
            flow(
                json!(["done", "done"]),
                json!({"new": ["open"], "open": ["done"]}),
            ),
            vec!["terminal_states[1]"],
        ),
        (
            flow(
                json!(["open", "done", "open"]),
                json!({"new": ["open", "done", "open"], "open": ["done", "new", "done"]}),
            ),
            vec![
                "terminal_states[2]",
                "transitions.new[2]",
                "transitions.open[2]",
            ],
        ),
    ] {
        let reply = app.post(&flows, &t.owner_token, body.clone()).await;
        assert_eq!(reply.status, 422, "{body}: {}", reply.text);
        assert_eq!(reply.error_fields(), fields, "{body}");
    }
    let listed = app.get(&flows, &t.owner_token).await;
    assert!(!listed.text.contains("\"triage\""), "{}", listed.text);
    // As documented, a terminal state may have a way out (the built-in `assistant`'s
    // `closed` reopens): only repetition is refused.
    let good = app
        .post(
            &flows,
            &t.owner_token,
            flow(
                json!(["done"]),
                json!({"new": ["open"], "open": ["done", "new"], "done": ["open"]}),
            ),
        )
        .await;
    assert_eq!(good.status, 201, "{}", good.text);
}

#[tokio::test]
async fn times_outside_the_years_1_to_9999_are_refused() {
    let app = spawn_app().await;
    let t = seed_tenant(&app, "far-times").await;
    let events = format!("{}/events", t.base());
    let conversations = format!("{}/conversations", t.base());
    for (path, name, value) in [
        (&events, "since", "0000-12-31T00:00:00Z"),
        (&events, "until", "9999-12-31T23:00:00-05:00"),
        (&conversations, "updated_since", "0000-01-01T00:00:00Z"),
        (&conversations, "updated_since", "9999-12-31T23:59:59-01:00"),
    ] {
        let reply = app
            .get(
                &format!("{path}?{name}={}", value.replace('+', "%2B")),
                &t.owner_token,
            )
            .await;
        assert_eq!(reply.status, 422, "{name}={value}: {}", reply.text);
        assert_eq!(reply.error_fields(), [name]);
    }
    for (path, name) in [(&events, "since"), (&conversations, "updated_since")] {
        for value in ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z"] {
            let reply = app
                .get(&format!("{path}?{name}={value}"), &t.owner_token)
                .await;
            assert_eq!(reply.status, 200, "{name}={value}: {}", reply.text);
        }
    }
    let admin = app.db.admin().await;
    let stored = tenant_snapshot(&admin, t.id).await;
    let price = app
        .post(
            &format!("{}/prices", t.base()),
            &t.owner_token,
            json!({"provider": "openai", "model": "far-future", "input_usd_per_mtok": "1",
                   "output_usd_per_mtok": "2", "effective_from": "0000-06-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(price.status, 422, "{}", price.text);
    assert_eq!(price.error_fields(), ["effective_from"]);
    assert_eq!(tenant_snapshot(&admin, t.id).await, stored);
}

fn token_with_nbf(sub: Uuid, nbf_from_now: i64) -> String {
    let now = jsonwebtoken::get_current_timestamp() as i64;
    let claims =
        json!({"sub": sub.to_string(), "iat": now, "exp": now + 3600, "nbf": now + nbf_from_now});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .unwrap()
}

#[tokio::test]
async fn a_token_is_refused_before_its_nbf_beyond_the_leeway() {
    let app = spawn_app().await;
    let user = Uuid::now_v7();
    // The test servers tolerate 5 seconds of clock skew.
    let early = app.get("/v1/me", &token_with_nbf(user, 3600)).await;
    assert_eq!(early.status, 401, "{}", early.text);
    assert_eq!(early.content_type(), "application/problem+json");
    assert!(
        early.body["detail"]
            .as_str()
            .unwrap()
            .contains("not valid yet")
    );
    for nbf in [-60, 0, 2] {
        let reply = app.get("/v1/me", &token_with_nbf(user, nbf)).await;
        assert_eq!(reply.status, 200, "nbf {nbf}: {}", reply.text);
    }
}

#[tokio::test]
async fn the_nil_uuid_is_refused_as_a_member() {
    let app = spawn_app().await;
    let t = seed_tenant(&app, "nil-member").await;
    let admin = app.db.admin().await;
    let stored = tenant_snapshot(&admin, t.id).await;
    let reply: Reply = app
        .post(
            &format!("{}/members", t.base()),
            &t.owner_token,
            json!({"user_id": "00000000-0000-0000-0000-000000000000", "role": "agent"}),
        )
        .await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    assert_eq!(reply.error_fields(), ["user_id"]);
    assert_eq!(tenant_snapshot(&admin, t.id).await, stored);
    // A real id still works.
    let user = Uuid::now_v7();
    assert_eq!(app.get("/v1/me", &user_token(user, None)).await.status, 200);
    let added = app
        .post(
            &format!("{}/members", t.base()),
            &t.owner_token,
            json!({"user_id": user, "role": "agent"}),
        )
        .await;
    assert_eq!(added.status, 201, "{}", added.text);
}

#[tokio::test]
async fn a_cursor_works_only_in_the_listing_and_tenant_that_returned_it() {
    let app = spawn_app().await;
    let a = seed_tenant(&app, "cursor-a").await;
    let b = seed_tenant(&app, "cursor-b").await;
    let next = |reply: &Reply| {
        assert_eq!(reply.status, 200, "{}", reply.text);
        reply.body["next_cursor"]
            .as_str()
            .expect("a next page")
            .to_owned()
    };
    let conversations =
        |t: &frontdesk_test::fixtures::Seeded| format!("{}/conversations", t.base());
    let a_cursor = next(
        &app.get(&format!("{}?limit=1", conversations(&a)), &a.owner_token)
            .await,
    );
    let b_cursor = next(
        &app.get(&format!("{}?limit=1", conversations(&b)), &b.owner_token)
            .await,
    );
    // The cursor works where it came from: by slug or id, for any caller of the tenant,
    // on any server of the deployment.
    let other_server = frontdesk_test::spawn_app_on(&app.db).await;
    for (server, path, credential) in [
        (&app, conversations(&a), &a.owner_token),
        (
            &app,
            format!("/v1/tenants/{}/conversations", a.id),
            &a.full_key,
        ),
        (&other_server, conversations(&a), &a.agent_token),
    ] {
        let page = server
            .get(&format!("{path}?limit=1&cursor={a_cursor}"), credential)
            .await;
        assert_eq!(page.status, 200, "{}", page.text);
        assert_eq!(page.body["data"].as_array().unwrap().len(), 1);
    }
    // Another tenant's cursor, a cursor of another listing, an altered or hand-made one:
    // 422 on `cursor`, as documented.
    let keys_cursor = next(
        &app.get(&format!("{}/api-keys?limit=1", a.base()), &a.owner_token)
            .await,
    );
    let mut altered = a_cursor.clone().into_bytes();
    let last = altered.len() - 1;
    altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).unwrap();
    use base64::Engine;
    let hand_made =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(a.conversation.to_string());
    for (what, cursor) in [
        ("another tenant's", &b_cursor),
        ("another listing's", &keys_cursor),
        ("altered", &altered),
        ("hand-made", &hand_made),
    ] {
        let reply = app
            .get(
                &format!("{}?limit=1&cursor={cursor}", conversations(&a)),
                &a.owner_token,
            )
            .await;
        assert_eq!(reply.status, 422, "{what}: {}", reply.text);
        assert_eq!(reply.error_fields(), ["cursor"], "{what}");
    }
    // A conversation's messages: the cursor of one conversation is not another's.
    for _ in 0..2 {
        let sent = app
            .post(
                &format!(
                    "{}/messages",
                    &format!("{}/{}", conversations(&a), a.conversation)
                ),
                &a.full_key,
                json!({"role": "user", "content": "more"}),
            )
            .await;
        assert_eq!(sent.status, 201, "{}", sent.text);
    }
    let messages = |id: Uuid| format!("{}/{id}/messages", conversations(&a));
    let m_cursor = next(
        &app.get(
            &format!("{}?limit=1", messages(a.conversation)),
            &a.owner_token,
        )
        .await,
    );
    let same = app
        .get(
            &format!("{}?limit=1&cursor={m_cursor}", messages(a.conversation)),
            &a.owner_token,
        )
        .await;
    assert_eq!(same.status, 200, "{}", same.text);
    let elsewhere = app
        .get(
            &format!(
                "{}?limit=1&cursor={m_cursor}",
                messages(a.member_conversation)
            ),
            &a.owner_token,
        )
        .await;
    assert_eq!(elsewhere.status, 422, "{}", elsewhere.text);
    // Search pages by position; its cursors are sealed the same way.
    let forged = app
        .get(
            &format!("{}/search?q=more&cursor=o1", a.base()),
            &a.owner_token,
        )
        .await;
    assert_eq!(forged.status, 422, "{}", forged.text);
    assert_eq!(forged.error_fields(), ["cursor"]);
}

#[tokio::test]
async fn oversized_uris_and_headers_and_unreadable_header_values_get_problems() {
    let app = spawn_app().await;
    let token = user_token(Uuid::now_v7(), None);
    let is_problem = |reply: &Reply, status: u16| {
        assert_eq!(reply.status, status, "{}", reply.text);
        assert_eq!(reply.content_type(), "application/problem+json");
        assert_eq!(reply.body["status"], status);
        assert!(reply.headers.contains_key("x-request-id"));
    };
    for length in [8 * 1024 + 1, 20_000, 60_000] {
        let long = app
            .get(&format!("/v1/me?q={}", "a".repeat(length)), &token)
            .await;
        is_problem(&long, 414);
        assert_eq!(long.body["type"], "/problems/uri-too-long");
    }
    let send = async |headers: Vec<(&str, reqwest::header::HeaderValue)>| {
        let mut request = app.http.get(format!("{}/v1/me", app.base));
        for (name, value) in headers {
            request = request.header(name, value);
        }
        Reply::of(request).await
    };
    let bearer = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}")).unwrap();
    let big = reqwest::header::HeaderValue::from_str(&"b".repeat(40 * 1024)).unwrap();
    let large = send(vec![("authorization", bearer.clone()), ("x-big", big)]).await;
    is_problem(&large, 431);
    assert_eq!(large.body["type"], "/problems/headers-too-large");
    let many: Vec<(&str, reqwest::header::HeaderValue)> = (0..40)
        .map(|_| {
            (
                "x-many",
                reqwest::header::HeaderValue::from_str(&"m".repeat(1000)).unwrap(),
            )
        })
        .chain([("authorization", bearer.clone())])
        .collect();
    is_problem(&send(many).await, 431);
    // A header value that is not text, where the API reads it.
    let unreadable = reqwest::header::HeaderValue::from_bytes(b"Bearer \xff\xfe").unwrap();
    is_problem(&send(vec![("authorization", unreadable)]).await, 401);
    // Other headers that are not text, on a POST that reads them: problems naming them.
    let created = app
        .post(
            "/v1/tenants",
            &token,
            json!({"slug": "odd-headers", "name": "Odd"}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let post = async |name: &str, value: &[u8]| {
        let mut request = app
            .http
            .post(format!("{}/v1/tenants/odd-headers/contacts", app.base))
            .bearer_auth(&token);
        if name != "content-type" {
            request = request.header("content-type", "application/json");
        }
        let request = request
            .header(
                name,
                reqwest::header::HeaderValue::from_bytes(value).unwrap(),
            )
            .body(r#"{"name": "Odd"}"#);
        Reply::of(request).await
    };
    let key = post("idempotency-key", b"k\xff").await;
    is_problem(&key, 422);
    assert_eq!(key.error_fields(), ["Idempotency-Key"]);
    is_problem(&post("content-type", b"application/json\xff").await, 415);
    let contacts = app.get("/v1/tenants/odd-headers/contacts", &token).await;
    assert_eq!(contacts.body["data"], json!([]), "nothing was created");
    // Just under the limits, the request goes through.
    let fine = app.get(&format!("/v1/me?{}", "a".repeat(10)), &token).await;
    assert_eq!(fine.status, 422, "{}", fine.text);
    let ok = send(vec![
        ("authorization", bearer),
        (
            "x-fine",
            reqwest::header::HeaderValue::from_str(&"f".repeat(16 * 1024)).unwrap(),
        ),
    ])
    .await;
    assert_eq!(ok.status, 200, "{}", ok.text);
}
