//! Issue 12, "numbers that do not survive the round trip": JSON numbers that would not
//! read back are refused with nothing written; a stored value that does not decode is a
//! 500 problem, not a dropped connection; one undeliverable event fails only its own
//! delivery; `/readyz` reports a webhook worker that stopped or makes no progress.

use std::time::Duration;

use frontdesk_server::{WorkerConfig, WorkerHealth, webhooks::worker::parse_schedule};
use frontdesk_test::{
    AppOptions, Reply, TestApp,
    fixtures::{seed_tenancy, seed_tenant, signed_headers},
    receiver::Receiver,
    spawn_app, spawn_app_on_with, tenant_snapshot,
    wait::{WAIT, wait_until},
};
use serde_json::{Value, json};
use uuid::Uuid;

/// POST `body` as it is written (numbers a `serde_json::Value` cannot hold).
async fn post_text(app: &TestApp, path: &str, token: &str, body: &str) -> Reply {
    app.raw("POST", path, token, "application/json", body.to_owned())
        .await
}

fn assert_refused(reply: &Reply, field: &str) {
    assert_eq!(reply.status, 422, "{}", reply.text);
    assert_eq!(reply.content_type(), "application/problem+json");
    assert_eq!(reply.error_fields(), [field], "{}", reply.text);
}

#[tokio::test]
async fn the_largest_double_round_trips_on_messages_contacts_usage_events_and_webhooks() {
    let app = spawn_app().await;
    let t = seed_tenant(&app, "acme").await;
    let base = t.base();
    let receiver = Receiver::start().await;
    let hook = app
        .post(
            &format!("{base}/webhook-endpoints"),
            &t.owner_token,
            json!({"url": format!("{}/messages", receiver.base), "event_types": ["message.created"]}),
        )
        .await;
    assert_eq!(hook.status, 201, "{}", hook.text);
    // The issue's request, on a message, a contact and a usage event: stored, and read
    // back as the same double everywhere (it used to make every later read panic).
    let message = post_text(
        &app,
        &format!("{base}/conversations/{}/messages", t.conversation),
        &t.full_key,
        r#"{"role": "user", "content": "hi", "metadata": {"x": 1.7976931348623157e308}}"#,
    )
    .await;
    assert_eq!(message.status, 201, "{}", message.text);
    assert_eq!(message.body["metadata"]["x"].as_f64(), Some(f64::MAX));
    let id = message.body["id"].as_str().unwrap();
    let one = app.get(&format!("{base}/messages/{id}"), &t.full_key).await;
    assert_eq!(one.status, 200, "{}", one.text);
    assert_eq!(one.body["metadata"]["x"].as_f64(), Some(f64::MAX));
    let history = app
        .get(
            &format!("{base}/conversations/{}/messages", t.conversation),
            &t.full_key,
        )
        .await;
    assert_eq!(history.status, 200, "{}", history.text);
    let listed = history.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == id)
        .expect("the message in its history");
    assert_eq!(listed["metadata"]["x"].as_f64(), Some(f64::MAX));
    let events = app.get(&format!("{base}/events"), &t.full_key).await;
    assert_eq!(events.status, 200, "{}", events.text);
    let event = events.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["subject_id"] == id)
        .expect("the message's event");
    assert_eq!(event["data"]["metadata"]["x"].as_f64(), Some(f64::MAX));
    let contact = post_text(
        &app,
        &format!("{base}/contacts"),
        &t.full_key,
        r#"{"name": "Big", "attributes": {"deep": [0, {"x": 1.7976931348623157e308}]}}"#,
    )
    .await;
    assert_eq!(contact.status, 201, "{}", contact.text);
    let contact = app
        .get(
            &format!("{base}/contacts/{}", contact.body["id"].as_str().unwrap()),
            &t.full_key,
        )
        .await;
    assert_eq!(
        contact.body["attributes"]["deep"][1]["x"].as_f64(),
        Some(f64::MAX)
    );
    let usage = post_text(
        &app,
        &format!("{base}/usage"),
        &t.full_key,
        r#"{"provider": "openai", "model": "gpt-4o", "prompt_tokens": 1, "metadata": {"x": 1.7976931348623157e308}}"#,
    )
    .await;
    assert_eq!(usage.status, 201, "{}", usage.text);
    let usage_events = app.get(&format!("{base}/usage/events"), &t.full_key).await;
    assert_eq!(usage_events.status, 200, "{}", usage_events.text);
    assert!(
        usage_events.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["metadata"]["x"].as_f64() == Some(f64::MAX)),
        "{}",
        usage_events.text
    );
    // And the webhook worker delivers the message's event.
    let worker = app.worker(WorkerConfig::default());
    let (worker, receiver_ref) = (&worker, &receiver);
    let delivered = wait_until("the message's event delivered", WAIT, move || async move {
        worker.run_once().await.expect("a worker pass");
        let got = receiver_ref.accepted("/messages");
        if got.is_empty() {
            Err("nothing yet".to_owned())
        } else {
            Ok(got)
        }
    })
    .await;
    assert_eq!(
        delivered[0].json()["data"]["metadata"]["x"].as_f64(),
        Some(f64::MAX)
    );
}

#[tokio::test]
async fn numbers_that_would_not_read_back_are_refused_naming_the_field_and_nothing_is_written() {
    let app = spawn_app().await;
    let t = seed_tenant(&app, "acme").await;
    let base = t.base();
    let admin = app.db.admin().await;
    let before = tenant_snapshot(&admin, t.id).await;
    // Out of the double's range, and too small to be anything but 0: a 422 naming the
    // field (not a 400), on a message, a contact and a usage event.
    let message = post_text(
        &app,
        &format!("{base}/conversations/{}/messages", t.conversation),
        &t.full_key,
        r#"{"role": "user", "content": "hi", "metadata": {"x": 1e400}}"#,
    )
    .await;
    assert_refused(&message, "metadata.x");
    let huge = post_text(
        &app,
        &format!("{base}/contacts"),
        &t.full_key,
        r#"{"name": "Huge", "attributes": {"deep": [0, {"x": -1e400}]}}"#,
    )
    .await;
    assert_refused(&huge, "attributes.deep[1].x");
    let tiny = post_text(
        &app,
        &format!("{base}/contacts"),
        &t.full_key,
        r#"{"name": "Tiny", "attributes": {"x": 1e-400}}"#,
    )
    .await;
    assert_refused(&tiny, "attributes.x");
    let usage = post_text(
        &app,
        &format!("{base}/usage"),
        &t.full_key,
        r#"{"provider": "openai", "model": "gpt-4o", "prompt_tokens": 1, "metadata": {"id": 18446744073709551616}}"#,
    )
    .await;
    assert_refused(&usage, "metadata.id");
    // A tenant's own JSON fields too.
    let features = app
        .raw(
            "PATCH",
            &base,
            &t.owner_token,
            "application/json",
            r#"{"features": {"limit": 123456789012345678901234567890}}"#.into(),
        )
        .await;
    assert_refused(&features, "features.limit");
    // Nothing was written, and the history and the events read as before.
    assert_eq!(tenant_snapshot(&admin, t.id).await, before);
    let history = app
        .get(
            &format!("{base}/conversations/{}/messages", t.conversation),
            &t.full_key,
        )
        .await;
    assert_eq!(history.status, 200, "{}", history.text);
    let events = app.get(&format!("{base}/events"), &t.full_key).await;
    assert_eq!(events.status, 200, "{}", events.text);
}

#[tokio::test]
async fn boundary_numbers_are_refused_or_read_back_as_the_same_number() {
    let app = spawn_app().await;
    let t = seed_tenancy(&app, "acme").await;
    let base = t.base();
    // (literal, refused): the rule is that a number is stored only if it reads back as the
    // same number; these are the edges of i64/u64 and of the double.
    let cases = [
        ("1.7976931348623157e308", false),
        ("-1.7976931348623157e308", false),
        ("1e400", true),
        ("1e-400", true),
        ("1e308", false),
        ("1e300", false),
        ("-1e-320", false),
        ("5e-324", false),
        ("18446744073709551615", false),
        ("18446744073709551616", true),
        ("-9223372036854775808", false),
        ("-9223372036854775809", true),
        ("123456789012345678901234567890", true),
        ("0.1", false),
        ("-0.0", false),
        ("1.50e1", false),
    ];
    for (literal, refused) in cases {
        let reply = post_text(
            &app,
            &format!("{base}/contacts"),
            &t.full_key,
            &format!(r#"{{"name": "N {literal}", "attributes": {{"n": {literal}}}}}"#),
        )
        .await;
        if refused {
            assert_refused(&reply, "attributes.n");
            continue;
        }
        assert_eq!(reply.status, 201, "{literal}: {}", reply.text);
        let id = reply.body["id"].as_str().unwrap();
        let read = app.get(&format!("{base}/contacts/{id}"), &t.full_key).await;
        assert_eq!(read.status, 200, "{literal}: {}", read.text);
        let sent: Value = serde_json::from_str(literal).unwrap();
        let back = &read.body["attributes"]["n"];
        if sent.is_i64() || sent.is_u64() {
            assert_eq!(back, &sent, "{literal} reads back as the same integer");
        } else {
            assert_eq!(
                back.as_f64(),
                sent.as_f64(),
                "{literal} reads back as {back}"
            );
        }
    }
    // The list reads them all back too.
    let list = app.get(&format!("{base}/contacts"), &t.full_key).await;
    assert_eq!(list.status, 200, "{}", list.text);
}

#[tokio::test]
async fn a_provider_callback_with_a_number_that_would_not_read_back_is_refused() {
    let app = spawn_app().await;
    let t = seed_tenant(&app, "acme").await;
    let admin = app.db.admin().await;
    let before = tenant_snapshot(&admin, t.id).await;
    let body = r#"{"type": "payment", "amount": 18446744073709551616}"#;
    let headers = signed_headers(
        &t.callback_secret,
        "big-1",
        chrono::Utc::now().timestamp(),
        body.as_bytes(),
    );
    let reply = app
        .callback("/v1/hooks/test/acme", &headers, body.to_owned())
        .await;
    assert_refused(&reply, "amount");
    assert_eq!(tenant_snapshot(&admin, t.id).await, before);
}

#[tokio::test]
async fn a_stored_value_that_does_not_decode_is_a_500_problem_not_a_dropped_connection() {
    let app = spawn_app().await;
    let t = seed_tenant(&app, "acme").await;
    let base = t.base();
    let admin = app.db.admin().await;
    // What the API no longer accepts, stored behind its back (as before the fix).
    admin
        .execute(
            "update app.contacts set attributes = '{\"x\": 1e400}'::jsonb
             where tenant_id = $1 and id = $2",
            &[&t.id, &t.contact],
        )
        .await
        .unwrap();
    admin
        .execute(
            "select app.emit_event($1, 'message.created', null, '{\"x\": 1e400}'::jsonb)",
            &[&t.id],
        )
        .await
        .unwrap();
    for path in [
        format!("{base}/contacts/{}", t.contact),
        format!("{base}/contacts"),
        format!("{base}/events"),
    ] {
        // Twice: the server answers every time, on a connection that stays usable.
        for _ in 0..2 {
            let reply = app.get(&path, &t.full_key).await;
            assert_eq!(reply.status, 500, "{path}: {}", reply.text);
            assert_eq!(reply.content_type(), "application/problem+json", "{path}");
            assert_eq!(reply.body["type"], "/problems/internal");
            assert!(
                !reply.text.contains("0000000000"),
                "no stored value in the problem: {}",
                reply.text
            );
        }
    }
    // The rest of the tenant reads as usual.
    let tenant = app.get(&base, &t.full_key).await;
    assert_eq!(tenant.status, 200, "{}", tenant.text);
    let history = app
        .get(
            &format!("{base}/conversations/{}/messages", t.conversation),
            &t.full_key,
        )
        .await;
    assert_eq!(history.status, 200, "{}", history.text);
}

/// Emit a `message.created` event with `data` for `tenant`, as the operator's SQL would
/// (in the tenant's context, so that it fans out to the tenant's endpoints).
async fn emit(admin: &mut tokio_postgres::Client, tenant: Uuid, data: &str) -> Uuid {
    let tx = admin.transaction().await.unwrap();
    tx.execute(
        "select set_config('frontdesk.tenant_id', $1, true)",
        &[&tenant.to_string()],
    )
    .await
    .unwrap();
    let id = tx
        .query_one(
            &format!("select app.emit_event($1, 'message.created', null, '{data}'::jsonb)"),
            &[&tenant],
        )
        .await
        .unwrap()
        .get::<_, Uuid>(0);
    tx.commit().await.unwrap();
    id
}

/// Deliveries of the endpoint `endpoint` as the API lists them.
async fn deliveries(app: &TestApp, base: &str, token: &str, endpoint: &str) -> Vec<Value> {
    let r = app
        .get(
            &format!("{base}/webhook-endpoints/{endpoint}/deliveries"),
            token,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["data"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn one_undeliverable_event_fails_its_own_delivery_and_every_other_is_delivered() {
    let app = spawn_app().await;
    let acme = seed_tenancy(&app, "acme").await;
    let globex = seed_tenancy(&app, "globex").await;
    let receiver = Receiver::start().await;
    let mut endpoints = Vec::new();
    for t in [&acme, &globex] {
        let r = app
            .post(
                &format!("{}/webhook-endpoints", t.base()),
                &t.owner_token,
                json!({"url": format!("{}/{}", receiver.base, t.slug), "event_types": ["message.created"]}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        endpoints.push(r.body["id"].as_str().unwrap().to_owned());
    }
    let mut admin = app.db.admin().await;
    // acme's first event cannot be read back (a number PostgreSQL's numeric holds and a
    // double cannot, stored behind the API's back), its second can; globex's three can.
    let bad = emit(&mut admin, acme.id, r#"{"x": 1e400}"#).await;
    emit(&mut admin, acme.id, r#"{"n": "after"}"#).await;
    for n in 0..3 {
        emit(&mut admin, globex.id, &format!(r#"{{"n": {n}}}"#)).await;
    }
    let worker = app.worker(WorkerConfig {
        retry_schedule: parse_schedule("10ms,10ms").unwrap(),
        idle_poll: Duration::from_millis(10),
        ..Default::default()
    });
    let (worker, receiver_ref, app_ref, acme_ref) = (&worker, &receiver, &app, &acme);
    let endpoint = endpoints[0].as_str();
    let failed = wait_until("every delivery settled", WAIT, move || async move {
        worker.run_once().await.expect("a worker pass never fails");
        let (a, g) = (
            receiver_ref.accepted("/acme").len(),
            receiver_ref.accepted("/globex").len(),
        );
        let listed = deliveries(app_ref, &acme_ref.base(), &acme_ref.owner_token, endpoint).await;
        let bad_one = listed
            .into_iter()
            .find(|d| d["event_id"] == bad.to_string())
            .expect("the bad event's delivery");
        if a == 1 && g == 3 && bad_one["status"] == "failed" {
            Ok(bad_one)
        } else {
            Err(format!(
                "acme {a}/1, globex {g}/3 delivered; the bad one is {}",
                bad_one["status"]
            ))
        }
    })
    .await;
    // globex's events arrived in order, and acme's readable one after the bad one failed.
    let globex_got: Vec<Value> = receiver
        .accepted("/globex")
        .iter()
        .map(|r| r.json()["data"]["n"].clone())
        .collect();
    assert_eq!(globex_got, [json!(0), json!(1), json!(2)]);
    assert_eq!(receiver.accepted("/acme")[0].json()["data"]["n"], "after");
    assert_eq!(receiver.received().len(), 4, "the bad event was never sent");
    // The bad delivery: three attempts (the first and two retries), each with the reason,
    // then failed.
    let id = failed["id"].as_str().unwrap();
    let detail = app
        .get(
            &format!("{}/webhook-deliveries/{id}", acme.base()),
            &acme.owner_token,
        )
        .await;
    assert_eq!(detail.status, 200, "{}", detail.text);
    let attempts = detail.body["attempt_log"].as_array().unwrap();
    assert_eq!(attempts.len(), 3, "{}", detail.text);
    for attempt in attempts {
        assert_eq!(attempt["status_code"], Value::Null);
        let error = attempt["error"].as_str().unwrap();
        assert!(
            error.contains("could not be read") && error.contains("event_data"),
            "{error}"
        );
    }
}

async fn readyz(app: &TestApp) -> Reply {
    Reply::of(app.http.get(format!("{}/readyz", app.base))).await
}

#[tokio::test]
async fn readyz_reports_a_worker_that_stopped_or_makes_no_progress() {
    let app = spawn_app().await;
    let config = || WorkerConfig {
        idle_poll: Duration::from_millis(10),
        ..Default::default()
    };
    // A running worker within its bound: ready.
    let worker = app.worker(config());
    let health = WorkerHealth {
        heartbeat: worker.heartbeat(),
        stale_after: Duration::from_secs(3600),
    };
    let server = spawn_app_on_with(
        &app.db,
        AppOptions {
            worker: Some(health),
            ..Default::default()
        },
    )
    .await;
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(worker.run_until(async move {
        let _ = stopped.changed().await;
    }));
    let ready = readyz(&server).await;
    assert_eq!(ready.status, 200, "{}", ready.text);
    // Its loop ended: not ready, saying why.
    stop.send(true).unwrap();
    task.await.unwrap();
    let stopped = readyz(&server).await;
    assert_eq!(stopped.status, 503, "{}", stopped.text);
    assert_eq!(stopped.content_type(), "application/problem+json");
    assert!(
        stopped.body["detail"].as_str().unwrap().contains("stopped"),
        "{}",
        stopped.text
    );
    // A task that dies (aborted here, as a panic would end it): not ready either.
    let worker = app.worker(config());
    let heartbeat = worker.heartbeat();
    let server = spawn_app_on_with(
        &app.db,
        AppOptions {
            worker: Some(WorkerHealth {
                heartbeat,
                stale_after: Duration::from_secs(3600),
            }),
            ..Default::default()
        },
    )
    .await;
    let task = worker.spawn();
    assert_eq!(readyz(&server).await.status, 200);
    task.abort();
    let _ = task.await;
    let died = readyz(&server).await;
    assert_eq!(died.status, 503, "{}", died.text);
    // A worker that has completed no pass within its bound (here: none at all, and a
    // bound of zero): not ready, saying so.
    let idle = app.worker(config());
    let server = spawn_app_on_with(
        &app.db,
        AppOptions {
            worker: Some(WorkerHealth {
                heartbeat: idle.heartbeat(),
                stale_after: Duration::ZERO,
            }),
            ..Default::default()
        },
    )
    .await;
    let stale = readyz(&server).await;
    assert_eq!(stale.status, 503, "{}", stale.text);
    assert!(
        stale.body["detail"]
            .as_str()
            .unwrap()
            .contains("has not completed a pass"),
        "{}",
        stale.text
    );
    // Without a worker to watch, the database alone decides.
    assert_eq!(readyz(&app).await.status, 200);
}
