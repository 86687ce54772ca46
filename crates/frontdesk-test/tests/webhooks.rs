//! Webhooks: endpoints, signed delivery to a real receiver on loopback, retries, 410 and
//! long failure, rotation, the delivery log.

use std::time::Duration;

use frontdesk_server::{
    WorkerConfig,
    webhooks::{signature, worker::parse_schedule},
};
use frontdesk_test::{
    AppOptions, TestApp,
    fixtures::{Seeded, seed_tenant},
    receiver::{Received, Receiver},
    spawn_app, spawn_app_on_with,
    wait::{wait_until, within},
};
use serde_json::{Value, json};

const BASE: &str = "/v1/tenants/acme";
const WAIT: Duration = Duration::from_secs(20);

/// A fast schedule for the tests.
fn quick() -> WorkerConfig {
    WorkerConfig {
        retry_schedule: parse_schedule("100ms,100ms,200ms,200ms,300ms,300ms,500ms,500ms,1s,1s")
            .unwrap(),
        idle_poll: Duration::from_millis(20),
        ..Default::default()
    }
}

async fn endpoint(app: &TestApp, t: &Seeded, url: String, types: Value) -> (String, String) {
    let r = app
        .post(
            &format!("{BASE}/webhook-endpoints"),
            &t.owner_token,
            json!({"url": url, "event_types": types}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    (
        r.body["id"].as_str().unwrap().to_owned(),
        r.body["secret"].as_str().unwrap().to_owned(),
    )
}

/// Every signature in the header that `secret` verifies.
fn verified_by(r: &Received, secret: &str) -> bool {
    let key = signature::key_of(secret).unwrap();
    let id = r.header("webhook-id");
    let timestamp: i64 = r.header("webhook-timestamp").parse().unwrap();
    let expected = signature::sign(&key, id, timestamp, &r.body);
    r.header("webhook-signature")
        .split(' ')
        .any(|s| s == expected)
}

/// One pass of `worker`; how many deliveries it handled (fails after WAIT).
async fn pass(worker: &frontdesk_server::Worker) -> usize {
    within("a worker pass", WAIT, worker.run_once())
        .await
        .expect("a worker pass")
}

/// GET `path` until its body satisfies `done` (panics after WAIT); that body.
async fn poll(app: &TestApp, path: &str, token: &str, done: impl Fn(&Value) -> bool) -> Value {
    let done = &done;
    wait_until(
        format!("GET {path} to answer as expected"),
        WAIT,
        move || async move {
            let r = app.get(path, token).await;
            if done(&r.body) {
                Ok(r.body)
            } else {
                Err(r.text)
            }
        },
    )
    .await
}

async fn post_messages(app: &TestApp, t: &Seeded, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let r = app
            .post(
                &format!("{BASE}/conversations/{}/messages", t.conversation),
                &t.full_key,
                json!({"role": "user", "content": format!("message {i}")}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        ids.push(r.body["id"].as_str().unwrap().to_owned());
    }
    ids
}

#[tokio::test]
async fn events_reach_a_receiver_signed_in_order_and_filtered() {
    let app = spawn_app().await;
    let t = seed_tenant(&app, "acme").await;
    let receiver = Receiver::start().await;
    let (_, secret) = endpoint(
        &app,
        &t,
        format!("{}/messages", receiver.base),
        json!(["message.created"]),
    )
    .await;
    let (_, conversations_secret) = endpoint(
        &app,
        &t,
        format!("{}/conversations", receiver.base),
        json!(["conversation.*"]),
    )
    .await;
    let ids = post_messages(&app, &t, 20).await;
    let transition = app
        .post(
            &format!("{BASE}/conversations/{}/transitions", t.conversation),
            &t.full_key,
            json!({"to": "qualifying"}),
        )
        .await;
    assert_eq!(transition.status, 200, "{}", transition.text);
    let worker = app.worker(quick()).spawn();

    let got = receiver.wait_for("/messages", 20, WAIT).await;
    worker.abort();
    let delivered: Vec<String> = got
        .iter()
        .map(|r| r.json()["data"]["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        delivered, ids,
        "a healthy endpoint gets its events in order"
    );
    let now = chrono::Utc::now().timestamp();
    for r in &got {
        assert!(
            verified_by(r, &secret),
            "signature of {}",
            r.header("webhook-id")
        );
        assert!(!verified_by(r, &conversations_secret));
        let body = r.json();
        assert_eq!(body["type"], "message.created");
        assert!(body["timestamp"].is_string());
        let ts: i64 = r.header("webhook-timestamp").parse().unwrap();
        assert!((now - ts).abs() < 60);
        assert_eq!(r.header("content-type"), "application/json");
    }
    // webhook-id is the event's id: what a receiver de-duplicates on.
    let events = app
        .get(
            &format!("{BASE}/events?type=message.created&limit=20"),
            &t.owner_token,
        )
        .await;
    let mut event_ids: Vec<String> = events.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    event_ids.reverse();
    let webhook_ids: Vec<String> = got
        .iter()
        .map(|r| r.header("webhook-id").to_owned())
        .collect();
    assert_eq!(webhook_ids, event_ids);
    // The family filter: the conversation endpoint got the state change, no message.
    let conversation_events = receiver.wait_for("/conversations", 1, WAIT).await;
    assert!(conversation_events.iter().all(|r| {
        r.json()["type"]
            .as_str()
            .unwrap()
            .starts_with("conversation.")
    }));
    assert!(
        conversation_events
            .iter()
            .all(|r| verified_by(r, &conversations_secret))
    );
}

#[tokio::test]
async fn a_failing_receiver_gets_every_event_once_it_recovers() {
    let app = spawn_app().await;
    let t = seed_tenant(&app, "acme").await;
    let receiver = Receiver::start().await;
    receiver.answer(503);
    let (endpoint_id, _) = endpoint(
        &app,
        &t,
        format!("{}/hook", receiver.base),
        json!(["message.created"]),
    )
    .await;
    let ids = post_messages(&app, &t, 10).await;
    let worker = app.worker(quick()).spawn();
    // Failing for a while: every attempt recorded with the answer.
    let receiver_ref = &receiver;
    wait_until("10 failed attempts", WAIT, move || async move {
        match receiver_ref.received().len() {
            n if n >= 10 => Ok(()),
            n => Err(format!("{n} attempts")),
        }
    })
    .await;
    receiver.answer(200);
    let got = receiver.wait_for("/hook", 10, WAIT).await;
    worker.abort();
    let mut delivered: Vec<String> = got
        .iter()
        .map(|r| r.json()["data"]["id"].as_str().unwrap().to_owned())
        .collect();
    delivered.sort();
    delivered.dedup();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(delivered, want, "every event arrives");

    let deliveries = app
        .get(
            &format!("{BASE}/webhook-endpoints/{endpoint_id}/deliveries"),
            &t.owner_token,
        )
        .await;
    assert_eq!(deliveries.status, 200, "{}", deliveries.text);
    let list = deliveries.body["data"].as_array().unwrap();
    assert_eq!(list.len(), 10);
    assert!(list.iter().all(|d| d["status"] == "delivered"));
    let retried = list
        .iter()
        .find(|d| d["attempts"].as_i64().unwrap() > 1)
        .unwrap();
    let one = app
        .get(
            &format!(
                "{BASE}/webhook-deliveries/{}",
                retried["id"].as_str().unwrap()
            ),
            &t.owner_token,
        )
        .await;
    let log = one.body["attempt_log"].as_array().unwrap();
    assert_eq!(log.len() as i64, retried["attempts"].as_i64().unwrap());
    assert_eq!(log[0]["status_code"], 503);
    assert_eq!(log[0]["response_excerpt"], "answered 503");
    assert!(log[0]["duration_ms"].as_i64().unwrap() >= 0);
    assert_eq!(log.last().unwrap()["status_code"], 200);
    // The endpoint recovered: no failure on record.
    let e = app
        .get(
            &format!("{BASE}/webhook-endpoints/{endpoint_id}"),
            &t.owner_token,
        )
        .await;
    assert!(e.body["failing_since"].is_null());
    assert_eq!(e.body["enabled"], true);
    assert!(e.body.get("secret").is_none(), "the secret is shown once");

    // Retry one now: it is sent again, with the same webhook-id.
    let before = receiver.received().len();
    let retry = app
        .post(
            &format!(
                "{BASE}/webhook-deliveries/{}/retry",
                retried["id"].as_str().unwrap()
            ),
            &t.owner_token,
            json!({}),
        )
        .await;
    assert_eq!(retry.status, 202, "{}", retry.text);
    assert_eq!(retry.body["status"], "pending");
    pass(&app.worker(quick())).await;
    let again = &receiver.received()[before..];
    assert_eq!(again.len(), 1);
    assert_eq!(
        again[0].header("webhook-id"),
        retried["event_id"].as_str().unwrap()
    );
}

#[tokio::test]
async fn retry_after_is_honoured_and_the_schedule_ends_in_failure() {
    let app = spawn_app().await;
    let t = seed_tenant(&app, "acme").await;
    let receiver = Receiver::start().await;
    receiver.answer(429);
    receiver.retry_after(1);
    let (endpoint_id, _) = endpoint(&app, &t, format!("{}/slow", receiver.base), json!([])).await;
    let test = app
        .post(
            &format!("{BASE}/webhook-endpoints/{endpoint_id}/test"),
            &t.owner_token,
            json!({}),
        )
        .await;
    assert_eq!(test.status, 202, "{}", test.text);
    assert_eq!(test.body["event_type"], "webhook.test");
    let config = WorkerConfig {
        retry_schedule: parse_schedule("10ms,10ms").unwrap(),
        ..quick()
    };
    let worker = app.worker(config).spawn();
    let delivery = poll(
        &app,
        &format!(
            "{BASE}/webhook-deliveries/{}",
            test.body["id"].as_str().unwrap()
        ),
        &t.owner_token,
        |d| d["status"] == "failed",
    )
    .await;
    worker.abort();
    let log = delivery["attempt_log"].as_array().unwrap();
    assert_eq!(
        log.len(),
        3,
        "the first attempt and the schedule's two retries"
    );
    let at = |i: usize| {
        chrono::DateTime::parse_from_rfc3339(log[i]["started_at"].as_str().unwrap()).unwrap()
    };
    assert!(
        (at(1) - at(0)).num_milliseconds() >= 950,
        "Retry-After: 1 wins over a 10 ms schedule"
    );
    assert_eq!(delivery["next_attempt_at"], Value::Null);
}

#[tokio::test]
async fn gone_and_long_failure_disable_the_endpoint_and_say_so() {
    let app = spawn_app().await;
    let t = seed_tenant(&app, "acme").await;
    let receiver = Receiver::start().await;
    receiver.answer(410);
    let (gone, _) = endpoint(
        &app,
        &t,
        format!("{}/gone", receiver.base),
        json!(["message.created"]),
    )
    .await;
    post_messages(&app, &t, 1).await;
    pass(&app.worker(quick())).await;
    let e = app
        .get(&format!("{BASE}/webhook-endpoints/{gone}"), &t.owner_token)
        .await;
    assert_eq!(e.body["enabled"], false, "{}", e.text);
    assert!(e.body["disabled_reason"].as_str().unwrap().contains("410"));
    let disabled = app
        .get(
            &format!("{BASE}/events?type=webhook_endpoint.disabled"),
            &t.owner_token,
        )
        .await;
    assert_eq!(disabled.body["data"][0]["subject_id"], json!(gone));
    // A disabled endpoint gets nothing (events are not queued for it); enabling it again
    // clears its record.
    post_messages(&app, &t, 1).await;
    pass(&app.worker(quick())).await;
    assert_eq!(receiver.received().len(), 1);
    let deliveries = app
        .get(
            &format!("{BASE}/webhook-endpoints/{gone}/deliveries"),
            &t.owner_token,
        )
        .await;
    let list = deliveries.body["data"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{}", deliveries.text);
    assert_eq!(list[0]["status"], "failed");
    assert_eq!(list[0]["last_status"], 410);
    let enabled = app
        .post(
            &format!("{BASE}/webhook-endpoints/{gone}/enable"),
            &t.owner_token,
            json!({}),
        )
        .await;
    assert_eq!(enabled.status, 200, "{}", enabled.text);
    assert_eq!(enabled.body["enabled"], true);
    assert!(enabled.body["disabled_reason"].is_null() && enabled.body["failing_since"].is_null());
    receiver.answer(200);
    post_messages(&app, &t, 1).await;
    pass(&app.worker(quick())).await;
    assert_eq!(receiver.accepted("/gone").len(), 1);

    // Failing continuously for longer than disable_after.
    receiver.answer(500);
    let (failing, _) = endpoint(
        &app,
        &t,
        format!("{}/failing", receiver.base),
        json!(["message.created"]),
    )
    .await;
    post_messages(&app, &t, 1).await;
    let config = WorkerConfig {
        disable_after: Duration::from_millis(300),
        ..quick()
    };
    let worker = app.worker(config).spawn();
    let e = poll(
        &app,
        &format!("{BASE}/webhook-endpoints/{failing}"),
        &t.owner_token,
        |e| e["enabled"] == false,
    )
    .await;
    assert!(
        e["disabled_reason"]
            .as_str()
            .unwrap()
            .contains("failed since")
    );
    worker.abort();
}

#[tokio::test]
async fn a_rotated_secret_signs_beside_the_old_one_during_the_grace_period() {
    let app = spawn_app().await;
    let t = seed_tenant(&app, "acme").await;
    let receiver = Receiver::start().await;
    let (id, old) = endpoint(
        &app,
        &t,
        format!("{}/rotating", receiver.base),
        json!(["message.created"]),
    )
    .await;
    let rotated = app
        .post(
            &format!("{BASE}/webhook-endpoints/{id}/rotate-secret"),
            &t.owner_token,
            json!({"grace_seconds": 3600}),
        )
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    let new = rotated.body["secret"].as_str().unwrap().to_owned();
    assert!(new.starts_with("whsec_") && new != old);
    assert!(rotated.body["previous_secret_until"].is_string());
    post_messages(&app, &t, 1).await;
    pass(&app.worker(quick())).await;
    let got = receiver.wait_for("/rotating", 1, WAIT).await;
    assert_eq!(got[0].header("webhook-signature").split(' ').count(), 2);
    assert!(verified_by(&got[0], &new) && verified_by(&got[0], &old));
    // Without grace, only the new secret signs.
    let now = app
        .post(
            &format!("{BASE}/webhook-endpoints/{id}/rotate-secret"),
            &t.owner_token,
            json!({"grace_seconds": 0}),
        )
        .await;
    let newest = now.body["secret"].as_str().unwrap().to_owned();
    post_messages(&app, &t, 1).await;
    pass(&app.worker(quick())).await;
    let got = receiver.wait_for("/rotating", 2, WAIT).await;
    assert_eq!(got[1].header("webhook-signature").split(' ').count(), 1);
    assert!(verified_by(&got[1], &newest) && !verified_by(&got[1], &new));
    // No answer but creation and rotation carries a secret.
    let listed = app
        .get(&format!("{BASE}/webhook-endpoints"), &t.owner_token)
        .await;
    assert!(!listed.text.contains("whsec_"), "{}", listed.text);
}

#[tokio::test]
async fn endpoints_must_not_reach_inward_and_bad_input_is_refused() {
    let seeding = spawn_app().await;
    let t = seed_tenant(&seeding, "acme").await;
    let app = spawn_app_on_with(
        &seeding.db,
        AppOptions {
            webhook_refuse_private: true,
            ..Default::default()
        },
    )
    .await;
    let path = format!("{BASE}/webhook-endpoints");
    for (body, field) in [
        (json!({"url": "http://127.0.0.1:8080/hook"}), "url"),
        (json!({"url": "http://localhost/hook"}), "url"),
        (json!({"url": "http://10.1.2.3/hook"}), "url"),
        (
            json!({"url": "http://169.254.169.254/latest/meta-data"}),
            "url",
        ),
        (json!({"url": "http://[::1]/hook"}), "url"),
        (json!({"url": "http://[fd00::1]/hook"}), "url"),
        (json!({"url": "ftp://example.com/hook"}), "url"),
        (json!({"url": "https://user:pw@example.com/hook"}), "url"),
        (
            json!({"url": "http://93.184.216.34/hook", "event_types": ["Message.Created"]}),
            "event_types",
        ),
        (
            json!({"url": "http://93.184.216.34/hook", "event_types": ["*"]}),
            "event_types",
        ),
        (
            json!({"url": "http://93.184.216.34/hook", "description": "x".repeat(501)}),
            "description",
        ),
        (json!({"description": "no url"}), "url"),
    ] {
        let r = app.post(&path, &t.owner_token, body.clone()).await;
        assert_eq!(r.status, 422, "{body}: {}", r.text);
        assert_eq!(r.error_fields(), [field], "{body}");
    }
    let ok = app
        .post(
            &path,
            &t.owner_token,
            json!({"url": "http://93.184.216.34/hook"}),
        )
        .await;
    assert_eq!(ok.status, 201, "{}", ok.text);
    let id = ok.body["id"].as_str().unwrap();
    let inward = app
        .patch(
            &format!("{path}/{id}"),
            &t.owner_token,
            json!({"url": "http://192.168.0.10/hook"}),
        )
        .await;
    assert_eq!(inward.status, 422, "{}", inward.text);
    // Webhooks are managed by owners and admins only.
    for token in [&t.agent_token, &t.member_token, &t.full_key] {
        let r = app
            .post(&path, token, json!({"url": "http://93.184.216.34/hook"}))
            .await;
        assert_eq!(r.status, 403, "{}", r.text);
    }
    // The worker refuses inward addresses too, even for an endpoint saved before.
    let admin = app.db.admin().await;
    admin
        .execute(
            "update app.webhook_endpoints set url = 'http://127.0.0.1:9/hook' where id = $1",
            &[&id.parse::<uuid::Uuid>().unwrap()],
        )
        .await
        .unwrap();
    let test = app
        .post(&format!("{path}/{id}/test"), &t.owner_token, json!({}))
        .await;
    assert_eq!(test.status, 202);
    let strict = frontdesk_server::Worker::new(app.db.db(2), quick()).unwrap();
    pass(&strict).await;
    let d = app
        .get(
            &format!(
                "{BASE}/webhook-deliveries/{}",
                test.body["id"].as_str().unwrap()
            ),
            &t.owner_token,
        )
        .await;
    let error = d.body["attempt_log"][0]["error"].as_str().unwrap();
    assert!(error.contains("may not reach"), "{error}");
}

#[tokio::test]
async fn another_tenants_endpoint_never_gets_this_tenants_events() {
    let app = spawn_app().await;
    let a = seed_tenant(&app, "acme").await;
    let b = seed_tenant(&app, "beta").await;
    let receiver = Receiver::start().await;
    // B's endpoint takes every type.
    let r = app
        .post(
            "/v1/tenants/beta/webhook-endpoints",
            &b.owner_token,
            json!({"url": format!("{}/beta", receiver.base)}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let beta_endpoint = r.body["id"].as_str().unwrap().to_owned();
    post_messages(&app, &a, 5).await;
    let worker = app.worker(quick());
    let worker = &worker;
    wait_until(
        "the worker to run out of due deliveries",
        WAIT,
        move || async move {
            match worker.run_once().await.unwrap() {
                0 => Ok(()),
                n => Err(format!("a pass handled {n}")),
            }
        },
    )
    .await;
    assert!(
        receiver.received().is_empty(),
        "A's events reached B's endpoint"
    );
    // Nor can B's credentials read A's endpoints and deliveries, or test A's endpoint.
    let a_endpoints = app
        .get(&format!("{BASE}/webhook-endpoints"), &a.owner_token)
        .await;
    let a_endpoint = a_endpoints.body["data"][0]["id"].as_str().unwrap();
    for path in [
        format!("/v1/tenants/beta/webhook-endpoints/{a_endpoint}"),
        format!("/v1/tenants/beta/webhook-endpoints/{a_endpoint}/deliveries"),
    ] {
        assert_eq!(app.get(&path, &b.owner_token).await.status, 404, "{path}");
    }
    let test = app
        .post(
            &format!("/v1/tenants/beta/webhook-endpoints/{a_endpoint}/test"),
            &b.owner_token,
            json!({}),
        )
        .await;
    assert_eq!(test.status, 404, "{}", test.text);
    // B's own event reaches B.
    let own = app
        .post(
            &format!("/v1/tenants/beta/webhook-endpoints/{beta_endpoint}/test"),
            &b.owner_token,
            json!({}),
        )
        .await;
    assert_eq!(own.status, 202);
    pass(&app.worker(quick())).await;
    assert_eq!(receiver.accepted("/beta").len(), 1);
}

/// Claiming goes tenant by tenant (0007: the tenants with due deliveries are read first,
/// then each tenant's claimed under its own lock), the longest waiting first, and the batch
/// bounds the total: with one due delivery in each of two tenants, a batch of one takes
/// the older, the next claim the other, and then nothing is left (both are leased).
#[tokio::test]
async fn claims_go_tenant_by_tenant_longest_waiting_first_within_the_batch() {
    let app = spawn_app().await;
    let a = seed_tenant(&app, "acme").await;
    let b = seed_tenant(&app, "beta").await;
    let admin = app.db.admin().await;
    // Each seed left one delivery queued for a retry, holding its endpoint until then:
    // make B's due first, then A's.
    for (tenant, ago) in [(b.id, 20.0), (a.id, 10.0)] {
        let held = admin
            .execute(
                "update app.webhook_endpoints set held_until = now() - make_interval(secs => $2)
                  where tenant_id = $1 and held_until is not null",
                &[&tenant, &ago],
            )
            .await
            .unwrap();
        assert_eq!(held, 1);
        let queued = admin
            .execute(
                "update app.webhook_queue set due_at = now() - make_interval(secs => $2)
                  where tenant_id = $1",
                &[&tenant, &ago],
            )
            .await
            .unwrap();
        assert_eq!(queued, 1);
    }
    let pool = app.db.db(1);
    let worker = uuid::Uuid::now_v7();
    let lease = Duration::from_secs(60);
    let claim = async |batch: i32| -> Vec<uuid::Uuid> {
        frontdesk_core::events::delivery::claim(&pool, worker, batch, lease)
            .await
            .unwrap()
            .iter()
            .map(|d| d.tenant)
            .collect()
    };
    assert_eq!(claim(1).await, vec![b.id]);
    assert_eq!(claim(10).await, vec![a.id]);
    assert_eq!(claim(10).await, Vec::<uuid::Uuid>::new());
}
