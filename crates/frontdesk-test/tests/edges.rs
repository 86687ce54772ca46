//! The server's edges against hostile clients (issue 12, items 3–5): bodies of the wrong
//! shape, NUL characters and bad UTF-8 in paths, queries and token claims, metrics labels,
//! slow and surplus connections, and the size of JSON fields and pages.

use std::time::Duration;

use frontdesk_test::{
    AppOptions, OPERATOR_TOKEN, Reply, fixtures::seed_tenant, json, spawn_app, spawn_app_with,
    tenant_snapshot, user_token, wait,
};
use serde_json::Value;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use uuid::Uuid;

fn is_problem(reply: &Reply) -> bool {
    reply.content_type() == "application/problem+json" && reply.body["status"].is_u64()
}

// ---- item 3: bodies of the wrong shape ----

/// `POST …/contacts` with `["Array Person"]` created a contact and `PATCH …/members/{id}`
/// with `["agent"]` changed a role: arrays were mapped onto the fields in order. Only
/// objects are bodies, and object-typed fields take only objects; nothing is written.
#[tokio::test]
async fn arrays_are_refused_where_objects_are_expected_and_nothing_is_written() {
    let app = spawn_app().await;
    let t = seed_tenant(&app, "shapes").await;
    let admin = app.db.admin().await;
    let before = tenant_snapshot(&admin, t.id).await;
    let base = t.base();
    let json = "application/json";
    for (method, path, body, field) in [
        (
            "POST",
            format!("{base}/contacts"),
            r#"["Array Person"]"#,
            "body",
        ),
        (
            "PATCH",
            format!("{base}/members/{}", t.admin),
            r#"["agent"]"#,
            "body",
        ),
        (
            "PATCH",
            format!("{base}/contacts/{}", t.contact),
            r#"["Renamed", "+628111234567"]"#,
            "body",
        ),
        // Nested: object-typed fields given arrays.
        (
            "POST",
            format!("{base}/contacts"),
            r#"{"name": "Nested", "attributes": ["vip"]}"#,
            "attributes",
        ),
        (
            "POST",
            format!("{base}/contacts"),
            r#"{"name": "Nested", "channel_ids": [["whatsapp", "628111"]]}"#,
            "channel_ids",
        ),
        (
            "PATCH",
            format!("{base}/conversations/{}", t.conversation),
            r#"{"context": ["step", 2], "metadata": [1]}"#,
            "context",
        ),
        (
            "POST",
            format!("{base}/flows"),
            r#"{"key": "nested", "name": "Nested", "states": ["a", "b"], "initial_state": "a",
                "transitions": [["a", ["b"]]]}"#,
            "transitions",
        ),
        (
            "PATCH",
            format!("{base}/assistants/{}", t.assistant),
            r#"{"settings": ["temperature", 0.2]}"#,
            "settings",
        ),
    ] {
        let reply = app
            .raw(method, &path, &t.owner_token, json, body.into())
            .await;
        assert_eq!(reply.status, 422, "{method} {path} {body}: {}", reply.text);
        assert!(is_problem(&reply), "{}", reply.text);
        assert_eq!(
            reply.error_fields().first().map(String::as_str),
            Some(field),
            "{method} {path} {body}: {}",
            reply.text
        );
    }
    assert_eq!(tenant_snapshot(&admin, t.id).await, before);
    let member = app
        .get(&format!("{base}/members/{}", t.admin), &t.owner_token)
        .await;
    assert_eq!(member.body["role"], "admin", "{}", member.text);
}

/// A provider's callback is declared an object: a verified payload that is another JSON
/// value is a 400, and nothing is recorded.
#[tokio::test]
async fn a_signed_callback_whose_payload_is_not_an_object_is_a_400() {
    let app = spawn_app().await;
    let t = seed_tenant(&app, "hook-shapes").await;
    let admin = app.db.admin().await;
    let before = tenant_snapshot(&admin, t.id).await;
    let now = chrono::Utc::now().timestamp();
    for (i, body) in [r#"["payment", 1]"#, r#""paid""#, "42", "null"]
        .into_iter()
        .enumerate()
    {
        let headers = frontdesk_test::fixtures::signed_headers(
            &t.callback_secret,
            &format!("shape-{i}"),
            now,
            body.as_bytes(),
        );
        let reply = app
            .callback(&format!("/v1/hooks/test/{}", t.slug), &headers, body.into())
            .await;
        assert_eq!(reply.status, 400, "{body}: {}", reply.text);
        assert!(is_problem(&reply), "{}", reply.text);
    }
    assert_eq!(tenant_snapshot(&admin, t.id).await, before);
}

// ---- item 4: NUL characters and bad UTF-8 at the edge ----

/// `?q=%00` reached PostgreSQL and came back as a 422 on `body`: a query parameter holding
/// NUL is refused before the handler, naming the parameter.
#[tokio::test]
async fn a_nul_in_a_query_parameter_is_a_422_naming_the_parameter() {
    let app = spawn_app().await;
    let t = seed_tenant(&app, "nul-query").await;
    let base = t.base();
    for path in [
        format!("{base}/search?q=%00"),
        format!("{base}/contacts?q=ana%00"),
        format!("{base}/conversations?limit=1&cursor=%00"),
    ] {
        let reply = app.get(&path, &t.owner_token).await;
        assert_eq!(reply.status, 422, "{path}: {}", reply.text);
        assert!(is_problem(&reply), "{}", reply.text);
        let fields = reply.error_fields();
        assert_eq!(fields.len(), 1, "{path}: {}", reply.text);
        assert!(
            path.contains(&format!("{}=", fields[0])),
            "{path}: {}",
            reply.text
        );
        assert!(
            reply.text.contains("NUL"),
            "{path}: the message says why: {}",
            reply.text
        );
    }
}

/// NUL in a path parameter names nothing: a 404 problem naming the parameter, before the
/// database (which stores no NUL) sees it; for a collection too.
#[tokio::test]
async fn a_nul_in_a_path_parameter_is_a_404_naming_the_parameter() {
    let app = spawn_app().await;
    let t = seed_tenant(&app, "nul-path").await;
    for (path, name) in [
        (format!("{}/flows/ari%00sales", t.base()), "key"),
        ("/v1/tenants/nul%00path".to_owned(), "tenant"),
        ("/v1/tenants/nul%00path/contacts".to_owned(), "tenant"),
        (format!("{}/api-keys/%00{}", t.base(), t.full_key_id), "id"),
    ] {
        let reply = app.get(&path, &t.owner_token).await;
        assert_eq!(reply.status, 404, "{path}: {}", reply.text);
        assert!(is_problem(&reply), "{}", reply.text);
        let detail = reply.body["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains(&format!("parameter {name} ")) && detail.contains("NUL"),
            "{path}: {}",
            reply.text
        );
    }
}

/// `/v1/tenants/%FF` was a 500: a path parameter that is not UTF-8 once decoded is a 404
/// problem naming it.
#[tokio::test]
async fn invalid_utf8_in_a_path_parameter_is_a_404_not_a_500() {
    let app = spawn_app().await;
    let t = seed_tenant(&app, "utf8-path").await;
    for (path, name) in [
        ("/v1/tenants/%FF".to_owned(), "tenant"),
        ("/v1/tenants/%C3%28/contacts".to_owned(), "tenant"),
        (format!("{}/flows/%FF%FE", t.base()), "key"),
        (format!("{}/contacts/%FF", t.base()), "id"),
    ] {
        for token in [t.owner_token.as_str(), t.full_key.as_str(), OPERATOR_TOKEN] {
            let reply = app.get(&path, token).await;
            assert_eq!(reply.status, 404, "{path}: {}", reply.text);
            assert!(is_problem(&reply), "{}", reply.text);
            let detail = reply.body["detail"].as_str().unwrap_or_default();
            assert!(
                detail.contains(&format!("parameter {name} ")) && detail.contains("UTF-8"),
                "{path}: {}",
                reply.text
            );
        }
    }
}

/// A JWT whose `email` claim held `\u0000` came back as a 422 on `body` from the user
/// upsert: a token with NUL in a claim Frontdesk keeps is refused as a 401.
#[tokio::test]
async fn a_token_with_a_nul_in_a_claim_is_a_401() {
    let app = spawn_app().await;
    let now = jsonwebtoken::get_current_timestamp();
    let user = Uuid::now_v7().to_string();
    for (claim, claims) in [
        (
            "email",
            json!({"sub": user, "exp": now + 600, "email": "ana\u{0}@example.com"}),
        ),
        (
            "name",
            json!({"sub": user, "exp": now + 600, "name": "Ana\u{0}"}),
        ),
        ("sub", json!({"sub": "auth0|ana\u{0}", "exp": now + 600})),
    ] {
        let token = jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(frontdesk_test::JWT_SECRET.as_bytes()),
        )
        .unwrap();
        let reply = app.get("/v1/me", &token).await;
        assert_eq!(reply.status, 401, "{claim}: {}", reply.text);
        assert!(is_problem(&reply), "{}", reply.text);
        assert!(
            reply.body["detail"]
                .as_str()
                .is_some_and(|d| d.contains(&format!("{claim} claim"))),
            "{claim}: {}",
            reply.text
        );
    }
    // The same claims without the NUL are fine.
    let fine = app
        .get(
            "/v1/me",
            &user_token(Uuid::now_v7(), Some("ana@example.com")),
        )
        .await;
    assert_eq!(fine.status, 200, "{}", fine.text);
}

// ---- item 5: bounded metrics labels ----

/// Random methods grew `/metrics` without bound (a series per method token). Every label
/// now comes from a fixed set: the standard methods or `other`, a route template or
/// `unmatched`.
#[tokio::test]
async fn metrics_labels_stay_in_a_fixed_set_whatever_clients_send() {
    use rand::Rng;
    let app = spawn_app().await;
    let t = seed_tenant(&app, "metrics").await;
    let mut sent = Vec::new();
    let mut requests = Vec::new();
    for i in 0..300 {
        let token: String = (0..12)
            .map(|_| rand::rng().random_range(b'A'..=b'Z') as char)
            .collect();
        let (method, path) = match i % 3 {
            0 => (format!("M{token}"), "/healthz".to_owned()),
            1 => ("GET".to_owned(), format!("/random/{token}/path")),
            _ => (
                format!("X{token}"),
                format!("{}/contacts/{token}", t.base()),
            ),
        };
        sent.push(token);
        let request = app
            .http
            .request(
                frontdesk_test::reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{}{path}", app.base),
            )
            .bearer_auth(&t.owner_token);
        requests.push(Reply::of(request));
    }
    for reply in futures_util::future::join_all(requests).await {
        assert!(reply.status.is_client_error(), "{}", reply.text);
    }
    let metrics = app.call("GET", "/metrics", None, None).await.text;
    for token in &sent {
        assert!(!metrics.contains(token.as_str()), "{token} became a label");
    }
    let methods = [
        "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT", "other",
    ];
    let mut routes: Vec<String> = frontdesk_server::router::route_table()
        .into_iter()
        .map(|r| r.path)
        .collect();
    routes.extend(
        [
            "/healthz",
            "/readyz",
            "/metrics",
            "/openapi.json",
            "/docs",
            "unmatched",
        ]
        .map(String::from),
    );
    let label = |line: &str, name: &str| -> Option<String> {
        let start = line.find(&format!("{name}=\""))? + name.len() + 2;
        let end = line[start..].find('"')? + start;
        Some(line[start..end].to_owned())
    };
    let mut series = 0;
    for line in metrics
        .lines()
        .filter(|l| l.starts_with("http_requests_total{"))
    {
        series += 1;
        let method = label(line, "method").expect("a method label");
        let route = label(line, "route").expect("a route label");
        assert!(methods.contains(&method.as_str()), "{line}");
        assert!(routes.contains(&route), "{line}");
    }
    assert!(series > 0, "{metrics}");
    // The probes above land in a handful of series, not one per request.
    let other = metrics
        .lines()
        .filter(|l| l.starts_with("http_requests_total{") && l.contains("method=\"other\""))
        .count();
    assert!((1..=10).contains(&other), "{other} series for method other");
}

// ---- item 5: slow and surplus connections ----

fn address(app: &frontdesk_test::TestApp) -> String {
    app.base.trim_start_matches("http://").to_owned()
}

/// Read until the server closes the connection (or 30 s pass: then the test fails);
/// what it sent.
async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut seen = Vec::new();
    wait::within(
        "the server to close the connection",
        Duration::from_secs(30),
        async {
            let mut buffer = [0u8; 4096];
            loop {
                match stream.read(&mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => seen.extend_from_slice(&buffer[..n]),
                }
            }
        },
    )
    .await;
    String::from_utf8_lossy(&seen).into_owned()
}

fn limits(header: Duration, body: Duration, connections: usize) -> AppOptions {
    AppOptions {
        limits: frontdesk_server::ServeLimits {
            header_read_timeout: header,
            body_read_timeout: body,
            max_connections: connections,
        },
        ..Default::default()
    }
}

/// A connection that sent half a request line was held forever: it is closed once the
/// header read timeout passes.
#[tokio::test]
async fn a_connection_that_sends_half_a_request_line_is_closed_after_the_header_timeout() {
    let app = spawn_app_with(limits(
        Duration::from_millis(300),
        Duration::from_secs(30),
        64,
    ))
    .await;
    let mut stream = TcpStream::connect(address(&app)).await.unwrap();
    stream.write_all(b"GET /heal").await.unwrap();
    let answer = read_until_closed(&mut stream).await;
    assert!(!answer.contains("200 OK"), "{answer}");
    // Headers that stop halfway are cut off the same way.
    let mut stream = TcpStream::connect(address(&app)).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: 1")
        .await
        .unwrap();
    let answer = read_until_closed(&mut stream).await;
    assert!(!answer.contains("200 OK"), "{answer}");
    // The server still serves.
    let health = app.call("GET", "/healthz", None, None).await;
    assert_eq!(health.status, 200);
}

/// A body shorter than its Content-Length was waited for forever: after the body read
/// timeout the request is answered with a 408 problem, the connection closed, and
/// nothing is created.
#[tokio::test]
async fn a_body_shorter_than_its_content_length_gets_a_408_problem() {
    let app = spawn_app_with(limits(
        Duration::from_secs(30),
        Duration::from_millis(300),
        64,
    ))
    .await;
    let t = seed_tenant(&app, "slow-body").await;
    let admin = app.db.admin().await;
    let before = tenant_snapshot(&admin, t.id).await;
    for (method, path, extra) in [
        ("POST", "/v1/tenants".to_owned(), ""),
        ("POST", format!("{}/contacts", t.base()), ""),
        (
            "POST",
            format!("{}/contacts", t.base()),
            "Idempotency-Key: slow-1\r\n",
        ),
        ("PATCH", format!("{}/contacts/{}", t.base(), t.contact), ""),
    ] {
        let mut stream = TcpStream::connect(address(&app)).await.unwrap();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nContent-Length: 100\r\n{extra}\r\n{{\"name\":",
            t.owner_token
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let answer = read_until_closed(&mut stream).await;
        assert!(
            answer.starts_with("HTTP/1.1 408"),
            "{method} {path}: {answer}"
        );
        assert!(
            answer
                .to_ascii_lowercase()
                .contains("content-type: application/problem+json"),
            "{answer}"
        );
        assert!(answer.contains("\"status\":408"), "{answer}");
    }
    assert_eq!(tenant_snapshot(&admin, t.id).await, before);
}

/// Past the connection limit, a new connection waits to be accepted; the connections
/// being served go on working, and the waiting one is served as soon as one closes.
#[tokio::test]
async fn connections_past_the_limit_wait_without_affecting_the_others() {
    let app = spawn_app_with(limits(Duration::from_secs(30), Duration::from_secs(30), 2)).await;
    let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    async fn answer(stream: &mut TcpStream) -> String {
        let mut buffer = [0u8; 4096];
        let n = stream.read(&mut buffer).await.unwrap();
        String::from_utf8_lossy(&buffer[..n]).into_owned()
    }
    let mut a = TcpStream::connect(address(&app)).await.unwrap();
    let mut b = TcpStream::connect(address(&app)).await.unwrap();
    for stream in [&mut a, &mut b] {
        stream.write_all(request).await.unwrap();
        let reply = wait::within("a served connection", wait::WAIT, answer(stream)).await;
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    }
    // A third connection gets through TCP (the backlog) but is not served…
    let mut c = TcpStream::connect(address(&app)).await.unwrap();
    c.write_all(request).await.unwrap();
    let mut buffer = [0u8; 16];
    let early = tokio::time::timeout(Duration::from_millis(500), c.read(&mut buffer)).await;
    assert!(early.is_err(), "a connection past the limit was served");
    // …while the served ones go on working.
    a.write_all(request).await.unwrap();
    let reply = wait::within("a served connection", wait::WAIT, answer(&mut a)).await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    // Once one closes, the waiting one is served.
    drop(b);
    let reply = wait::within("the waiting connection", wait::WAIT, answer(&mut c)).await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
}

// ---- item 5: the size of JSON fields and of pages ----

/// Free-form JSON fields hold at most 64 KiB of JSON each: more is a 422 naming the
/// field, and nothing is written.
#[tokio::test]
async fn free_form_json_fields_over_64_kib_are_a_422_naming_the_field() {
    let app = spawn_app().await;
    let t = seed_tenant(&app, "json-size").await;
    let admin = app.db.admin().await;
    let before = tenant_snapshot(&admin, t.id).await;
    let base = t.base();
    let over = || json!({"blob": "x".repeat(65_536)});
    let over_array = || json!(["x".repeat(65_536)]);
    for (method, path, body, field) in [
        (
            "POST",
            format!("{base}/conversations"),
            json!({"assistant_id": t.assistant, "metadata": over()}),
            "metadata",
        ),
        (
            "PATCH",
            format!("{base}/conversations/{}", t.conversation),
            json!({"context": over(), "pending_questions": over_array()}),
            "context",
        ),
        (
            "PATCH",
            format!("{base}/conversations/{}", t.conversation),
            json!({"parsed_intent": over()}),
            "parsed_intent",
        ),
        (
            "POST",
            format!("{base}/conversations/{}/messages", t.conversation),
            json!({"role": "user", "content": "hi", "metadata": over()}),
            "metadata",
        ),
        (
            "POST",
            format!("{base}/conversations/{}/messages", t.conversation),
            json!({"role": "user", "content": "hi", "delegation_plan": over_array()}),
            "delegation_plan",
        ),
        (
            "POST",
            format!("{base}/contacts"),
            json!({"name": "Big", "attributes": over()}),
            "attributes",
        ),
        (
            "PATCH",
            format!("{base}/assistants/{}", t.assistant),
            json!({"settings": over()}),
            "settings",
        ),
        (
            "PATCH",
            base.clone(),
            json!({"features": over()}),
            "features",
        ),
    ] {
        let reply = app
            .call(method, &path, Some(&t.owner_token), Some(&body))
            .await;
        assert_eq!(reply.status, 422, "{method} {path} {field}: {}", reply.text);
        assert_eq!(
            reply.error_fields().first().map(String::as_str),
            Some(field),
            "{}",
            reply.text
        );
        assert!(reply.text.contains("65536 bytes"), "{}", reply.text);
    }
    assert_eq!(tenant_snapshot(&admin, t.id).await, before);
    // Just under the bound is fine ({"blob":"…"} is 11 bytes around the text).
    let fits = json!({"blob": "x".repeat(65_536 - 11)});
    let reply = app
        .post(
            &format!("{base}/contacts"),
            &t.owner_token,
            json!({"name": "Fits", "attributes": fits}),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
}

/// A page of 200 conversations with large JSON was 57 MB: a page ends before it passes
/// 4 MiB of JSON, with a cursor to the rest, and paging through returns every item once.
#[tokio::test]
async fn a_page_ends_early_at_the_page_size_bound_and_the_cursor_leads_to_the_rest() {
    let app = spawn_app().await;
    let t = seed_tenant(&app, "big-pages").await;
    let base = t.base();
    let blob = |c: char| json!({"blob": c.to_string().repeat(60_000)});
    let mut created = Vec::new();
    for _ in 0..20 {
        let body = json!({
            "assistant_id": t.assistant,
            "context": blob('c'),
            "metadata": blob('m'),
            "parsed_intent": blob('p'),
            "answered_questions": [blob('a')],
            "pending_questions": [blob('q')],
        });
        let reply = app
            .post(&format!("{base}/conversations"), &t.full_key, body)
            .await;
        assert_eq!(reply.status, 201, "{}", reply.text);
        created.push(reply.body["id"].as_str().unwrap().to_owned());
    }
    let mut seen: Vec<String> = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("{base}/conversations?limit=200&cursor={c}"),
            None => format!("{base}/conversations?limit=200"),
        };
        let page = app.get(&path, &t.owner_token).await;
        assert_eq!(page.status, 200, "{}", page.text);
        assert!(
            page.text.len() <= 4 * 1024 * 1024 + 1024,
            "a page of {} bytes",
            page.text.len()
        );
        pages += 1;
        let data = page.body["data"].as_array().unwrap();
        assert!(!data.is_empty());
        seen.extend(data.iter().map(|c| c["id"].as_str().unwrap().to_owned()));
        match &page.body["next_cursor"] {
            Value::String(next) => cursor = Some(next.clone()),
            _ => break,
        }
    }
    // About 300 KB each: a 4 MiB page holds about 13 of the 20.
    assert!(pages >= 2, "{pages} page(s)");
    for id in &created {
        assert_eq!(seen.iter().filter(|s| *s == id).count(), 1, "{id}");
    }
}
