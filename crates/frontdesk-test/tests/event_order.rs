//! Events in commit order (issue 13, item 3): every event's `sequence` is its place in its
//! tenant's commit order, webhook deliveries go out per endpoint in that order (a failing
//! delivery holds the later ones back), `/events` lists in it, and every payload carries
//! the tenant and times in one `Z` format. Also the points of item 7 that touch events and
//! transitions: a transition's reason, `PATCH {"state"}`, a date as `since`, a cursor used
//! with another `order`.

use std::{collections::HashSet, time::Duration};

use frontdesk_server::{WorkerConfig, webhooks::worker::parse_schedule};
use frontdesk_test::{
    TestApp,
    fixtures::{Seeded, seed_tenant},
    post_all,
    receiver::{Received, Receiver},
    spawn_app,
    wait::wait_until,
};
use serde_json::{Value, json};
use uuid::Uuid;

const BASE: &str = "/v1/tenants/acme";
const WAIT: Duration = Duration::from_secs(180);

fn quick() -> WorkerConfig {
    WorkerConfig {
        retry_schedule: parse_schedule("100ms,100ms,200ms,200ms,300ms").unwrap(),
        idle_poll: Duration::from_millis(20),
        ..Default::default()
    }
}

async fn endpoint(app: &TestApp, t: &Seeded, url: String, types: Value) -> String {
    let r = app
        .post(
            &format!("{BASE}/webhook-endpoints"),
            &t.owner_token,
            json!({"url": url, "event_types": types}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body["id"].as_str().unwrap().to_owned()
}

/// The sequences of an endpoint's deliveries as the database queued them, ascending.
async fn queued_sequences(app: &TestApp, endpoint: &str) -> Vec<i64> {
    let admin = app.db.admin().await;
    admin
        .query(
            "select v.sequence from app.webhook_deliveries d
               join app.events v on v.tenant_id = d.tenant_id and v.id = d.event_id
              where d.endpoint_id = $1 order by v.sequence",
            &[&endpoint.parse::<Uuid>().unwrap()],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// The sequences in the order a path received them (each event once: its first 2xx).
fn received_sequences(received: &[Received]) -> Vec<i64> {
    let mut seen = HashSet::new();
    received
        .iter()
        .filter(|r| seen.insert(r.header("webhook-id").to_owned()))
        .map(|r| {
            r.json()["sequence"]
                .as_i64()
                .expect("a sequence in the body")
        })
        .collect()
}

/// Conversations of the seeded assistant, for parallel writers.
async fn conversations(app: &TestApp, t: &Seeded, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let r = app
            .post(
                &format!("{BASE}/conversations"),
                &t.full_key,
                json!({"assistant_id": t.assistant, "title": format!("writer {i}")}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        ids.push(r.body["id"].as_str().unwrap().to_owned());
    }
    ids
}

#[tokio::test]
async fn delivered_order_per_endpoint_is_commit_order_for_1000_events_from_parallel_transactions() {
    let app = spawn_app().await;
    let t = seed_tenant(&app, "acme").await;
    let writers = conversations(&app, &t, 8).await;
    let receiver = Receiver::start().await;
    let all = endpoint(&app, &t, format!("{}/all", receiver.base), json!([])).await;
    let messages = endpoint(
        &app,
        &t,
        format!("{}/messages", receiver.base),
        json!(["message.created"]),
    )
    .await;
    // Two workers, as two processes would run them.
    let workers = [app.worker(quick()).spawn(), app.worker(quick()).spawn()];

    // While the events are written, a reader checks in every snapshot that the numbers it
    // sees are 1..=n without a hole: a sequence is never seen before a lower one commits
    // (what a worker that has passed n relies on).
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let (db, done, tenant) = (app.db.clone(), done.clone(), t.id);
        tokio::spawn(async move {
            let admin = db.admin().await;
            let mut snapshots = 0;
            let mut last = 0i64;
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                let row = admin
                    .query_one(
                        "select count(*), coalesce(max(sequence), 0) from app.events where tenant_id = $1",
                        &[&tenant],
                    )
                    .await
                    .unwrap();
                let (count, max): (i64, i64) = (row.get(0), row.get(1));
                assert_eq!(
                    count, max,
                    "a snapshot saw sequence {max} with only {count} events"
                );
                assert!(
                    max >= last,
                    "the events seen went back from {last} to {max}"
                );
                last = max;
                snapshots += 1;
            }
            snapshots
        })
    };

    // One transaction writing 200 events in four statements, beside 800 messages posted
    // in parallel (each its own transaction) to eight conversations.
    let bulk = {
        let (db, tenant) = (app.db.clone(), t.id);
        tokio::spawn(async move {
            let mut admin = db.admin().await;
            let tx = admin.transaction().await.unwrap();
            tx.execute(
                "select set_config('frontdesk.tenant_id', $1, true)",
                &[&tenant.to_string()],
            )
            .await
            .unwrap();
            let mut ids = Vec::new();
            for part in 0..4i32 {
                let rows = tx
                    .query(
                        "select app.emit_event($1, 'bulk.written', null, jsonb_build_object(
                                    'n', $2::int * 50 + i, 'title', '2026-12-02T10:00:00+07:00',
                                    'happened_at', '2026-12-02T10:00:00+07:00'))
                           from generate_series(0, 49) i order by i",
                        &[&tenant, &part],
                    )
                    .await
                    .unwrap();
                ids.extend(rows.iter().map(|r| r.get::<_, Uuid>(0)));
                tx.execute("select pg_sleep(0.02)", &[]).await.unwrap();
            }
            tx.commit().await.unwrap();
            ids
        })
    };
    let posts = (0..800)
        .map(|i| {
            app.post_to(
                &format!("{BASE}/conversations/{}/messages", writers[i % writers.len()]),
                &t.full_key,
                json!({"role": if i % 2 == 0 { "user" } else { "assistant" }, "content": format!("message {i}")}),
            )
        })
        .collect();
    let replies = post_all(&app.http, posts).await;
    assert!(
        replies.iter().all(|r| r.status == 201),
        "{:?}",
        replies.iter().find(|r| r.status != 201).map(|r| &r.text)
    );
    let bulk_ids = bulk.await.unwrap();
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(watcher.await.unwrap() > 0);

    // The bulk transaction's events are one unbroken run of sequences, in write order:
    // nothing of the parallel transactions came between them.
    let admin = app.db.admin().await;
    let bulk_sequences: Vec<i64> = admin
        .query(
            "select v.sequence from unnest($1::uuid[]) with ordinality b (id, n)
               join app.events v on v.tenant_id = $2 and v.id = b.id order by b.n",
            &[&bulk_ids, &t.id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(bulk_sequences.len(), 200);
    assert!(
        bulk_sequences.windows(2).all(|w| w[1] == w[0] + 1),
        "{bulk_sequences:?}"
    );

    // Every endpoint got all of its events, each once, in sequence order.
    for (path, id, at_least) in [("/all", &all, 1000), ("/messages", &messages, 800)] {
        let want = queued_sequences(&app, id).await;
        assert!(want.len() >= at_least, "{path}: {} queued", want.len());
        let got = receiver.wait_for(path, want.len(), WAIT).await;
        assert_eq!(received_sequences(&got), want, "{path} in sequence order");
        assert_eq!(got.len(), want.len(), "{path}: each event once");
    }
    for w in workers {
        w.abort();
    }

    // /events lists in the same order, page by page, ascending as delivered.
    let mut listed = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("{BASE}/events?order=asc&limit=200&cursor={c}"),
            None => format!("{BASE}/events?order=asc&limit=200"),
        };
        let page = app.get(&path, &t.owner_token).await;
        assert_eq!(page.status, 200, "{}", page.text);
        listed.extend(page.body["data"].as_array().unwrap().iter().map(|e| {
            (
                e["sequence"].as_i64().unwrap(),
                e["id"].as_str().unwrap().to_owned(),
            )
        }));
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let n = listed.len() as i64;
    assert_eq!(
        listed.iter().map(|e| e.0).collect::<Vec<_>>(),
        (1..=n).collect::<Vec<_>>()
    );
    // The webhook-id of each delivery is the event listed at its sequence.
    let all_got = receiver.accepted("/all");
    for r in &all_got {
        let s = r.json()["sequence"].as_i64().unwrap();
        assert_eq!(listed[(s - 1) as usize].1, r.header("webhook-id"));
    }
    // The envelope: the tenant, and times in one format with a Z.
    let bulk_delivery = all_got
        .iter()
        .map(Received::json)
        .find(|b| b["type"] == "bulk.written")
        .unwrap();
    assert_eq!(bulk_delivery["tenant_id"], json!(t.id));
    assert_eq!(
        bulk_delivery["data"]["happened_at"],
        "2026-12-02T03:00:00.000000Z"
    );
    assert_eq!(bulk_delivery["data"]["title"], "2026-12-02T10:00:00+07:00");
    let message_delivery = receiver.accepted("/messages")[0].json();
    assert_eq!(message_delivery["tenant_id"], json!(t.id));
    for time in [
        &message_delivery["timestamp"],
        &message_delivery["data"]["created_at"],
    ] {
        let time = time.as_str().unwrap();
        assert!(
            chrono::DateTime::parse_from_rfc3339(time).is_ok()
                && time.ends_with('Z')
                && time.len() == "2026-12-02T03:00:00.000000Z".len(),
            "{time}"
        );
    }
}

#[tokio::test]
async fn a_failing_delivery_holds_back_the_endpoints_later_ones_until_it_is_delivered() {
    let app = spawn_app().await;
    let t = seed_tenant(&app, "acme").await;
    let receiver = Receiver::start().await;
    receiver.answer(503);
    let hook = endpoint(
        &app,
        &t,
        format!("{}/hook", receiver.base),
        json!(["message.created"]),
    )
    .await;
    for i in 0..5 {
        let r = app
            .post(
                &format!("{BASE}/conversations/{}/messages", t.conversation),
                &t.full_key,
                json!({"role": "user", "content": format!("held {i}")}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    // Room for the test to answer 200 before the first event's retries are spent.
    let config = WorkerConfig {
        retry_schedule: parse_schedule("100ms,100ms,200ms,1s,1s,1s,1s").unwrap(),
        ..quick()
    };
    let worker = app.worker(config).spawn();
    let receiver_ref = &receiver;
    wait_until("three failed attempts", WAIT, move || async move {
        match receiver_ref.received().len() {
            n if n >= 3 => Ok(()),
            n => Err(format!("{n} attempts")),
        }
    })
    .await;
    // Only the first event was tried while it failed.
    let tried: HashSet<String> = receiver
        .received()
        .iter()
        .map(|r| r.header("webhook-id").to_owned())
        .collect();
    assert_eq!(tried.len(), 1, "later events went ahead of a failing one");
    receiver.answer(200);
    let got = receiver.wait_for("/hook", 5, WAIT).await;
    worker.abort();
    assert_eq!(
        received_sequences(&got),
        queued_sequences(&app, &hook).await
    );
}

/// Retrying a later delivery by hand keeps the endpoint held while an earlier one waits
/// for its retry; retrying that earlier one lets the endpoint go on.
#[tokio::test]
async fn a_retry_of_a_later_delivery_keeps_the_endpoint_held_behind_an_earlier_one() {
    let app = spawn_app().await;
    let t = seed_tenant(&app, "acme").await;
    let receiver = Receiver::start().await;
    receiver.answer(503);
    let hook = endpoint(
        &app,
        &t,
        format!("{}/hook", receiver.base),
        json!(["message.created"]),
    )
    .await;
    for i in 0..2 {
        let r = app
            .post(
                &format!("{BASE}/conversations/{}/messages", t.conversation),
                &t.full_key,
                json!({"role": "user", "content": format!("held {i}")}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    // The first attempt fails and its retry is an hour away: the endpoint is held.
    let config = WorkerConfig {
        retry_schedule: parse_schedule("1h").unwrap(),
        ..quick()
    };
    let worker = app.worker(config).spawn();
    let admin = app.db.admin().await;
    let endpoint_id: Uuid = hook.parse().unwrap();
    let deliveries: Vec<Uuid> = admin
        .query(
            "select d.id from app.webhook_deliveries d
               join app.events v on v.tenant_id = d.tenant_id and v.id = d.event_id
              where d.endpoint_id = $1 order by v.sequence",
            &[&endpoint_id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(deliveries.len(), 2);
    let held = async || -> bool {
        admin
            .query_one(
                "select held_until is not null from app.webhook_endpoints where id = $1",
                &[&endpoint_id],
            )
            .await
            .unwrap()
            .get(0)
    };
    wait_until("the endpoint held", WAIT, async || {
        if held().await {
            Ok(())
        } else {
            Err("not held".to_owned())
        }
    })
    .await;
    // (Stopped once the failed attempt is recorded: nothing else is due for an hour.)
    worker.abort();
    assert_eq!(receiver.received().len(), 1);
    let retry = |id: Uuid| format!("{BASE}/webhook-deliveries/{id}/retry");
    let later = app
        .post(&retry(deliveries[1]), &t.owner_token, json!({}))
        .await;
    assert_eq!(later.status, 202, "{}", later.text);
    assert!(
        held().await,
        "a later retry let the endpoint go ahead of its first delivery"
    );
    let first = app
        .post(&retry(deliveries[0]), &t.owner_token, json!({}))
        .await;
    assert_eq!(first.status, 202, "{}", first.text);
    assert!(
        !held().await,
        "retrying the first delivery lets the endpoint go on"
    );
}

#[tokio::test]
async fn a_transition_records_its_reason_in_the_history_and_the_event() {
    let app = spawn_app().await;
    let t = seed_tenant(&app, "acme").await;
    let c = format!("{BASE}/conversations/{}", t.conversation);
    let r = app
        .post(
            &format!("{c}/transitions"),
            &t.full_key,
            json!({"to": "qualifying", "reason": "  asked about prices  "}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app
        .post(
            &format!("{c}/transitions"),
            &t.full_key,
            json!({"to": "scoring"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app
        .post(
            &format!("{c}/handoff"),
            &t.full_key,
            json!({"reason": "wants a discount"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let history = app.get(&format!("{c}/transitions"), &t.owner_token).await;
    assert_eq!(history.status, 200, "{}", history.text);
    let reasons: Vec<(Value, Value)> = history
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["to"].clone(), h["reason"].clone()))
        .collect();
    assert_eq!(
        reasons,
        [
            (json!("greeting"), Value::Null),
            (json!("qualifying"), json!("asked about prices")),
            (json!("scoring"), Value::Null),
            (json!("handoff"), json!("wants a discount")),
        ]
    );
    let events = app
        .get(
            &format!("{BASE}/events?type=conversation.state_changed&order=asc"),
            &t.owner_token,
        )
        .await;
    let data: Vec<&Value> = events.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["data"])
        .collect();
    assert_eq!(data[0]["to"], "qualifying");
    assert_eq!(data[0]["reason"], "asked about prices");
    assert_eq!(data[1]["reason"], Value::Null);

    // A reason is 1 to 2000 characters; a refused transition changes nothing.
    let r = app
        .post(
            &format!("{c}/transitions"),
            &t.full_key,
            json!({"to": "booking", "reason": "x".repeat(2001)}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.error_fields(), ["reason"]);
    let after = app.get(&format!("{c}/transitions"), &t.owner_token).await;
    assert_eq!(after.body.as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn patching_a_state_points_to_transitions_and_changes_nothing() {
    let app = spawn_app().await;
    let t = seed_tenant(&app, "acme").await;
    let c = format!("{BASE}/conversations/{}", t.conversation);
    let r = app
        .patch(
            &c,
            &t.full_key,
            json!({"state": "booking", "title": "new title"}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.error_fields(), ["state"]);
    let message = r.body["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("/transitions") && message.contains("\"to\""),
        "{message}"
    );
    let now = app.get(&c, &t.owner_token).await;
    assert_eq!(now.body["state"], "greeting");
    assert_ne!(now.body["title"], "new title");
}

#[tokio::test]
async fn events_since_a_date_start_at_midnight_utc_and_a_bad_time_is_refused() {
    let app = spawn_app().await;
    let t = seed_tenant(&app, "acme").await;
    let today = chrono::Utc::now().date_naive();
    let by_date = app
        .get(&format!("{BASE}/events?since={today}"), &t.owner_token)
        .await;
    assert_eq!(by_date.status, 200, "{}", by_date.text);
    let by_time = app
        .get(
            &format!("{BASE}/events?since={today}T00:00:00Z"),
            &t.owner_token,
        )
        .await;
    assert_eq!(by_date.body, by_time.body);
    assert!(!by_date.body["data"].as_array().unwrap().is_empty());
    let tomorrow = today.succ_opt().unwrap();
    let none = app
        .get(&format!("{BASE}/events?since={tomorrow}"), &t.owner_token)
        .await;
    assert_eq!(none.body["data"], json!([]));
    let until = app
        .get(&format!("{BASE}/events?until={today}"), &t.owner_token)
        .await;
    assert_eq!(
        until.body["data"],
        json!([]),
        "until a date: before its midnight"
    );

    for bad in ["2026-13-02", "2026-12-02T25:00", "yesterday"] {
        let r = app
            .get(&format!("{BASE}/events?since={bad}"), &t.owner_token)
            .await;
        assert_eq!(r.status, 422, "{bad}: {}", r.text);
        assert_eq!(r.error_fields(), ["since"]);
        let message = r.body["errors"][0]["message"].as_str().unwrap();
        assert!(
            message.contains("RFC 3339") && message.contains("midnight UTC"),
            "{message}"
        );
    }
}

#[tokio::test]
async fn a_cursor_used_with_another_order_is_refused() {
    let app = spawn_app().await;
    let t = seed_tenant(&app, "acme").await;
    let first = app
        .get(&format!("{BASE}/events?limit=1"), &t.owner_token)
        .await;
    let cursor = first.body["next_cursor"].as_str().unwrap().to_owned();
    // The same order (default desc, or named) continues; the other is refused.
    for ok in ["", "&order=desc"] {
        let r = app
            .get(
                &format!("{BASE}/events?limit=1&cursor={cursor}{ok}"),
                &t.owner_token,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(
            r.body["data"][0]["sequence"].as_i64() < first.body["data"][0]["sequence"].as_i64()
        );
    }
    let r = app
        .get(
            &format!("{BASE}/events?limit=1&order=asc&cursor={cursor}"),
            &t.owner_token,
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.error_fields(), ["cursor"]);
    assert!(r.text.contains("order=desc"), "{}", r.text);

    // A poller's form: everything after the last sequence it saw, in order.
    let last = first.body["data"][0]["sequence"].as_i64().unwrap();
    let after = app
        .get(
            &format!("{BASE}/events?order=asc&after={}", last - 2),
            &t.owner_token,
        )
        .await;
    assert_eq!(after.status, 200, "{}", after.text);
    let sequences: Vec<i64> = after.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["sequence"].as_i64().unwrap())
        .collect();
    assert_eq!(sequences, [last - 1, last]);
    let bad = app
        .get(&format!("{BASE}/events?before=0&after=-1"), &t.owner_token)
        .await;
    assert_eq!(bad.status, 422, "{}", bad.text);
    assert_eq!(bad.error_fields(), ["after", "before"]);

    // Messages: the history's cursor too.
    let path = format!("{BASE}/conversations/{}/messages", t.conversation);
    for i in 0..3 {
        let r = app
            .post(
                &path,
                &t.full_key,
                json!({"role": "user", "content": format!("m{i}")}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let page = app
        .get(&format!("{path}?order=asc&limit=1"), &t.owner_token)
        .await;
    let cursor = page.body["next_cursor"].as_str().unwrap().to_owned();
    let same = app
        .get(
            &format!("{path}?order=asc&limit=1&cursor={cursor}"),
            &t.owner_token,
        )
        .await;
    assert_eq!(same.status, 200, "{}", same.text);
    let other = app
        .get(&format!("{path}?limit=1&cursor={cursor}"), &t.owner_token)
        .await;
    assert_eq!(other.status, 422, "{}", other.text);
    assert_eq!(other.error_fields(), ["cursor"]);
}
