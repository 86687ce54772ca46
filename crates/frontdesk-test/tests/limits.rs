//! Limit checks and reservations (`POST /limits/check`), and feedback analytics from the
//! feedback rollup.

use frontdesk_test::{Reply, TestApp, fixtures::seed_tenant, post_all, spawn_app, spawn_app_on};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use uuid::Uuid;

const BASE: &str = "/v1/tenants/acme";

fn daily_limit(limits: &Value) -> &Value {
    limits
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "daily_token_limit")
        .unwrap()
}

/// The daily token limit's used, reserved and remaining (-1: unlimited).
async fn daily(app: &TestApp, token: &str) -> (i64, i64, i64) {
    let r = app.get(&format!("{BASE}/limits"), token).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let d = daily_limit(&r.body);
    let n = |v: &Value| v.as_str().map_or(-1, |s| s.parse::<i64>().unwrap());
    (n(&d["used"]), n(&d["reserved"]), n(&d["remaining"]))
}

/// The tenant's day count equals what is stored today plus what active reservations
/// hold: the invariant every settle, cancel, expiry and refusal must keep.
async fn assert_counter_matches(admin: &tokio_postgres::Client, tenant: Uuid) {
    let row = admin
        .query_one(
            "select (select day_used::numeric from app.limit_state where tenant_id = $1
                     and day_start = date_trunc('day', now())),
                    (select coalesce(sum(total_tokens), 0) from app.usage_daily
                     where tenant_id = $1 and day = current_date)::numeric
                    + (select coalesce(sum(tokens), 0) from app.limit_reservations
                       where tenant_id = $1 and status = 'active'
                         and day_window = date_trunc('day', now()))",
            &[&tenant],
        )
        .await
        .unwrap();
    let (counter, facts): (Option<Decimal>, Decimal) = (row.get(0), row.get(1));
    assert_eq!(counter, Some(facts), "day counter = stored + held");
}

async fn cancel_all_reservations(app: &TestApp, token: &str) {
    let active = app
        .get(&format!("{BASE}/limits/reservations?status=active"), token)
        .await;
    for r in active.body["data"].as_array().unwrap() {
        let id = r["id"].as_str().unwrap();
        let gone = app
            .delete(&format!("{BASE}/limits/reservations/{id}"), token)
            .await;
        assert_eq!(gone.status, 204, "{}", gone.text);
    }
}

#[tokio::test]
async fn reservations_hold_settle_cancel_and_expire_without_overshooting() {
    let app = spawn_app().await;
    let second = spawn_app_on(&app.db).await;
    let t = seed_tenant(&app, "acme").await;
    let admin = app.db.admin().await;
    cancel_all_reservations(&app, &t.owner_token).await;
    let (already, reserved, _) = daily(&app, &t.owner_token).await;
    assert_eq!(reserved, 0, "the fixture's reservation was cancelled");
    let set = app
        .patch(
            BASE,
            &t.owner_token,
            json!({"daily_token_limit": already + 1000}),
        )
        .await;
    assert_eq!(set.status, 200, "{}", set.text);

    // Asking holds nothing.
    let check = format!("{BASE}/limits/check");
    let fits = app
        .post(&check, &t.full_key, json!({"prompt_tokens": 600}))
        .await;
    assert_eq!(fits.status, 200, "{}", fits.text);
    assert_eq!(fits.body["allowed"], true);
    assert_eq!(fits.body["tokens"], 600);
    assert!(fits.body["reservation"].is_null());
    let too_big = app
        .post(
            &check,
            &t.full_key,
            json!({"prompt_tokens": 700, "completion_tokens": 301}),
        )
        .await;
    assert_eq!(too_big.status, 200, "{}", too_big.text);
    assert_eq!(too_big.body["allowed"], false);
    assert_eq!(too_big.body["refused_by"], json!(["daily_token_limit"]));
    assert_eq!(daily(&app, &t.owner_token).await, (already, 0, 1000));

    // 40 reservations of 100 tokens through two servers: exactly 10 fit.
    let posts = (0..40)
        .map(|i| {
            [&app, &second][i % 2].post_to(
                &check,
                &t.full_key,
                json!({"prompt_tokens": 100, "reserve": true}),
            )
        })
        .collect();
    let replies = post_all(&app.http, posts).await;
    let mut held = Vec::new();
    for Reply {
        status,
        body,
        headers,
        ..
    } in &replies
    {
        match status.as_u16() {
            201 => held.push(body["reservation"]["id"].as_str().unwrap().to_owned()),
            429 => {
                assert_eq!(body["limit_name"], "daily_token_limit", "{body}");
                assert!(headers.contains_key("retry-after"));
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(held.len(), 10, "exactly what fits is reserved");
    assert_eq!(daily(&app, &t.owner_token).await, (already, 1000, 0));
    assert_counter_matches(&admin, t.id).await;
    let refused = app
        .post(&check, &t.full_key, json!({"prompt_tokens": 1}))
        .await;
    assert_eq!(refused.status, 200, "{}", refused.text);
    assert_eq!(
        refused.body["allowed"], false,
        "reserved capacity is not free"
    );

    // A message settles its reservation: the 100 held go back, its 60 are charged.
    let messages = format!("{BASE}/conversations/{}/messages", t.conversation);
    let settled = app
        .post(
            &messages,
            &t.full_key,
            json!({"role": "assistant", "content": "answer", "prompt_tokens": 40,
                   "completion_tokens": 20, "reservation_id": held[0]}),
        )
        .await;
    assert_eq!(settled.status, 201, "{}", settled.text);
    assert_eq!(daily(&app, &t.owner_token).await, (already + 60, 900, 40));
    let first = app
        .get(
            &format!("{BASE}/limits/reservations/{}", held[0]),
            &t.full_key,
        )
        .await;
    assert_eq!(first.body["status"], "settled");
    assert_eq!(first.body["settled_by"], settled.body["id"]);
    let again = app
        .post(
            &messages,
            &t.full_key,
            json!({"role": "assistant", "content": "again", "prompt_tokens": 1, "reservation_id": held[0]}),
        )
        .await;
    assert_eq!(again.status, 409, "{}", again.text);
    assert_eq!(again.error_fields(), ["reservation_id"]);
    let unknown = app
        .post(
            &messages,
            &t.full_key,
            json!({"role": "assistant", "content": "?", "reservation_id": Uuid::now_v7()}),
        )
        .await;
    assert_eq!(unknown.status, 422, "{}", unknown.text);
    assert_eq!(unknown.error_fields(), ["reservation_id"]);

    // A usage event settles one too, and may use more than was held while it fits.
    let usage = app
        .post(
            &format!("{BASE}/usage"),
            &t.full_key,
            json!({"prompt_tokens": 130, "reservation_id": held[1]}),
        )
        .await;
    assert_eq!(usage.status, 201, "{}", usage.text);
    assert_eq!(daily(&app, &t.owner_token).await, (already + 190, 800, 10));
    assert_counter_matches(&admin, t.id).await;

    // Cancelling gives back; cancelling twice is a no-op; a settled one is a conflict.
    let one = format!("{BASE}/limits/reservations/{}", held[2]);
    assert_eq!(app.delete(&one, &t.full_key).await.status, 204);
    assert_eq!(app.delete(&one, &t.full_key).await.status, 204);
    assert_eq!(daily(&app, &t.owner_token).await, (already + 190, 700, 110));
    let settled_one = format!("{BASE}/limits/reservations/{}", held[0]);
    assert_eq!(app.delete(&settled_one, &t.full_key).await.status, 409);
    // A member sees neither the key's reservations nor can cancel them.
    assert_eq!(app.get(&one, &t.member_token).await.status, 404);
    let other = format!("{BASE}/limits/reservations/{}", held[3]);
    assert_eq!(app.delete(&other, &t.member_token).await.status, 404);
    // A read key may ask nothing that writes.
    let read = app
        .post(
            &check,
            &t.read_key,
            json!({"prompt_tokens": 1, "reserve": true}),
        )
        .await;
    assert_eq!(read.status, 403, "{}", read.text);

    // An unused reservation expires: from its expiry it holds nothing, before any sweep.
    let short = app
        .post(
            &check,
            &t.full_key,
            json!({"prompt_tokens": 110, "reserve": true, "ttl_seconds": 1}),
        )
        .await;
    assert_eq!(short.status, 201, "{}", short.text);
    let short_id = short.body["reservation"]["id"].as_str().unwrap().to_owned();
    let full = app
        .post(
            &check,
            &t.full_key,
            json!({"prompt_tokens": 100, "reserve": true}),
        )
        .await;
    assert_eq!(full.status, 429, "{}", full.text);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(daily(&app, &t.owner_token).await, (already + 190, 700, 110));
    let after = app
        .post(
            &check,
            &t.full_key,
            json!({"prompt_tokens": 100, "reserve": true}),
        )
        .await;
    assert_eq!(
        after.status, 201,
        "an expired hold is discounted at once: {}",
        after.text
    );
    let expired = app
        .get(
            &format!("{BASE}/limits/reservations/{short_id}"),
            &t.full_key,
        )
        .await;
    assert_eq!(expired.body["status"], "expired");
    // The sweep gives the expired hold back to the counter.
    let swept = frontdesk_server::housekeeping::sweep(&app.db.db(1))
        .await
        .unwrap();
    assert!(swept >= 1);
    assert_counter_matches(&admin, t.id).await;
    assert_eq!(daily(&app, &t.owner_token).await, (already + 190, 800, 10));
    // A write naming an expired reservation is charged like any other.
    let late = app
        .post(
            &messages,
            &t.full_key,
            json!({"role": "assistant", "content": "late", "prompt_tokens": 5, "reservation_id": short_id}),
        )
        .await;
    assert_eq!(late.status, 201, "{}", late.text);
    assert_eq!(daily(&app, &t.owner_token).await, (already + 195, 800, 5));
    assert_counter_matches(&admin, t.id).await;

    for bad in [
        json!({"prompt_tokens": -1}),
        json!({"ttl_seconds": 0, "reserve": true}),
        json!({"ttl_seconds": 3601}),
        json!({"cost_usd": "-1"}),
        json!({"provider": "Not A Provider!"}),
        json!({"tokens": 5}),
    ] {
        let r = app.post(&check, &t.full_key, bad.clone()).await;
        assert_eq!(r.status, 422, "{bad}: {}", r.text);
    }
}

/// The month's cost so far, as the rollups have it.
async fn month_cost(admin: &tokio_postgres::Client, tenant: Uuid) -> Decimal {
    admin
        .query_one(
            "select coalesce(sum(cost_usd), 0) from app.usage_daily
             where tenant_id = $1 and day >= date_trunc('month', current_date)::date",
            &[&tenant],
        )
        .await
        .unwrap()
        .get(0)
}

/// `usage.<kind>` events of the tenant: (limit_name, window_start) of each.
async fn notices(app: &TestApp, token: &str, kind: &str) -> Vec<(String, String)> {
    let r = app
        .get(&format!("{BASE}/events?type=usage.{kind}&limit=200"), token)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["data"]["limit_name"].as_str().unwrap().to_owned(),
                e["data"]["window_start"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn facts_past_every_limit_are_stored_flagged_and_counted_exactly() {
    let app = spawn_app().await;
    let second = spawn_app_on(&app.db).await;
    let t = seed_tenant(&app, "acme").await;
    let admin = app.db.admin().await;
    cancel_all_reservations(&app, &t.owner_token).await;

    // Every limit set tightly: 20 writes a minute, 2000 tokens (40 token writes) more
    // today, 0.002 USD (20 costed writes) more this month.
    let (already, _, _) = daily(&app, &t.owner_token).await;
    let budget = (month_cost(&admin, t.id).await + Decimal::new(2, 3))
        .round_dp_with_strategy(6, rust_decimal::RoundingStrategy::AwayFromZero);
    let set = app
        .patch(
            BASE,
            &t.owner_token,
            json!({"rate_limit_per_minute": 20, "daily_token_limit": already + 2000,
                   "monthly_budget_usd": budget.to_string()}),
        )
        .await;
    assert_eq!(set.status, 200, "{}", set.text);
    assert_eq!(set.body["strict_limits"], false, "not strict by default");

    // 200 messages of every role (the assistant's with 50 tokens and a cost) and 40 usage
    // events (50 tokens and a cost), all in parallel through two servers.
    let messages = format!("{BASE}/conversations/{}/messages", t.conversation);
    let usage = format!("{BASE}/usage");
    let posts = (0..240)
        .map(|i| {
            let (path, body) = match (i >= 200, i % 5) {
                (true, _) => (
                    &usage,
                    json!({"prompt_tokens": 50, "cost_usd": "0.0001",
                           "metadata": {"flood": true}}),
                ),
                (false, 0) => (&messages, json!({"role": "user", "content": "flood"})),
                (false, 1) => (
                    &messages,
                    json!({"role": "assistant", "content": "flood", "prompt_tokens": 30,
                           "completion_tokens": 20, "cost_usd": "0.0001"}),
                ),
                (false, 2) => (&messages, json!({"role": "system", "content": "flood"})),
                (false, 3) => (&messages, json!({"role": "tool", "content": "flood"})),
                (false, _) => (&messages, json!({"role": "agent", "content": "flood"})),
            };
            [&app, &second][i % 2].post_to(path, &t.full_key, body)
        })
        .collect();
    let replies = post_all(&app.http, posts).await;
    let mut flagged = std::collections::BTreeMap::<String, usize>::new();
    for r in &replies {
        assert_eq!(r.status, 201, "a fact is never refused: {}", r.text);
        let over = r.body["over_limits"].as_array().unwrap();
        assert_eq!(r.body["over_limit"], !over.is_empty(), "{}", r.text);
        for name in over {
            *flagged
                .entry(name.as_str().unwrap().to_owned())
                .or_default() += 1;
        }
    }
    let stored: i64 = admin
        .query_one(
            "select (select count(*) from app.messages where tenant_id = $1 and content = 'flood')
                  + (select count(*) from app.usage_events where tenant_id = $1
                     and metadata ? 'flood')",
            &[&t.id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 240, "every write was stored");

    // Exactly the token and costed writes past the limits are flagged: 80 carry 50 tokens
    // and 0.0001 USD (40 assistant messages, 40 usage events); 40 fit the day, 20 the
    // month.
    assert_eq!(flagged.get("daily_token_limit"), Some(&40), "{flagged:?}");
    assert_eq!(flagged.get("monthly_budget_usd"), Some(&60), "{flagged:?}");
    // Per minute, every write after the 20th of its minute.
    let per_minute: Vec<i64> = admin
        .query(
            "select count(*) from (
                 select created_at from app.messages where tenant_id = $1 and content = 'flood'
                 union all
                 select created_at from app.usage_events where tenant_id = $1 and metadata ? 'flood') w
             group by date_trunc('minute', created_at)",
            &[&t.id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let past_rate: i64 = per_minute.iter().map(|n| (n - 20).max(0)).sum();
    assert_eq!(
        flagged.get("rate_limit_per_minute").copied().unwrap_or(0) as i64,
        past_rate,
        "{per_minute:?}"
    );
    // The stored rows say the same as the answers.
    let stored_flags: i64 = admin
        .query_one(
            "select (select coalesce(sum(cardinality(over_limits)), 0) from app.messages
                     where tenant_id = $1 and content = 'flood')
                  + (select coalesce(sum(cardinality(over_limits)), 0) from app.usage_events
                     where tenant_id = $1 and metadata ? 'flood')",
            &[&t.id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored_flags as usize, flagged.values().sum::<usize>());

    // The counters equal the facts: tokens of the day, cost of the month, writes of the
    // current minute.
    assert_counter_matches(&admin, t.id).await;
    let (used, reserved, remaining) = daily(&app, &t.owner_token).await;
    assert_eq!((used, reserved, remaining), (already + 4000, 0, 0));
    let state = admin
        .query_one(
            "select month_used, minute_used::bigint, minute_start from app.limit_state where tenant_id = $1",
            &[&t.id],
        )
        .await
        .unwrap();
    let (month_used, minute_used, minute_start): (Decimal, i64, chrono::DateTime<chrono::Utc>) =
        (state.get(0), state.get(1), state.get(2));
    assert_eq!(
        month_used,
        month_cost(&admin, t.id).await,
        "month counter = cost stored"
    );
    let in_minute: i64 = admin
        .query_one(
            "select (select count(*) from app.messages where tenant_id = $1 and content = 'flood'
                     and date_trunc('minute', created_at) = $2)
                  + (select count(*) from app.usage_events where tenant_id = $1
                     and metadata ? 'flood' and date_trunc('minute', created_at) = $2)",
            &[&t.id, &minute_start],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        minute_used, in_minute,
        "minute counter = writes stored in it"
    );

    // The next check refuses, asked or reserved.
    let check = format!("{BASE}/limits/check");
    let asked = app
        .post(&check, &t.full_key, json!({"prompt_tokens": 1}))
        .await;
    assert_eq!(asked.status, 200, "{}", asked.text);
    assert_eq!(asked.body["allowed"], false, "{}", asked.text);
    let refused_by = asked.body["refused_by"].as_array().unwrap();
    for name in ["daily_token_limit", "monthly_budget_usd"] {
        assert!(refused_by.contains(&json!(name)), "{}", asked.text);
    }
    let reserved = second
        .post(
            &check,
            &t.full_key,
            json!({"prompt_tokens": 1, "reserve": true}),
        )
        .await;
    assert_eq!(reserved.status, 429, "{}", reserved.text);
    assert_eq!(reserved.body["type"], "/problems/limit-reached");
    let nothing = second
        .post(&check, &t.full_key, json!({"reserve": true}))
        .await;
    assert_eq!(
        nothing.status, 429,
        "a past limit refuses even an empty estimate: {}",
        nothing.text
    );

    // One usage.limit_exceeded per limit and window, for each limit; one warning (80 %)
    // for the day and the month.
    let exceeded = notices(&app, &t.owner_token, "limit_exceeded").await;
    let windows: std::collections::BTreeSet<_> = exceeded.iter().cloned().collect();
    assert_eq!(
        windows.len(),
        exceeded.len(),
        "once per limit and window: {exceeded:?}"
    );
    let names: std::collections::BTreeSet<&str> =
        exceeded.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "daily_token_limit",
            "monthly_budget_usd",
            "rate_limit_per_minute"
        ]
        .into(),
        "{exceeded:?}"
    );
    let minutes_past = per_minute.iter().filter(|n| **n > 20).count();
    assert_eq!(
        exceeded
            .iter()
            .filter(|(n, _)| n == "rate_limit_per_minute")
            .count(),
        minutes_past,
        "{exceeded:?}"
    );
    let mut warned: Vec<String> = notices(&app, &t.owner_token, "limit_warning")
        .await
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    warned.sort();
    assert_eq!(warned, ["daily_token_limit", "monthly_budget_usd"]);
}

#[tokio::test]
async fn a_warning_is_sent_once_when_the_budget_reaches_the_tenants_share() {
    let app = spawn_app().await;
    let t = seed_tenant(&app, "acme").await;
    let admin = app.db.admin().await;
    // A budget of the month so far plus 0.01 USD, warned at half of it.
    let spent = month_cost(&admin, t.id).await;
    let budget = (spent + Decimal::new(1, 2))
        .round_dp_with_strategy(6, rust_decimal::RoundingStrategy::AwayFromZero);
    let set = app
        .patch(
            BASE,
            &t.owner_token,
            json!({"monthly_budget_usd": budget.to_string(), "limit_warning_share": 0.5}),
        )
        .await;
    assert_eq!(set.status, 200, "{}", set.text);
    let threshold = budget / Decimal::TWO;
    let step = Decimal::new(1, 3);
    let mut counter = spent;
    // Ten writes of 0.001 USD use the budget exactly (a write that fits exactly is not
    // past it); the warning comes with the write that reaches half of it.
    for _ in 0..10 {
        let r = app
            .post(
                &format!("{BASE}/usage"),
                &t.full_key,
                json!({"prompt_tokens": 1, "cost_usd": "0.001"}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        assert_eq!(r.body["over_limit"], false, "{}", r.text);
        counter += step;
        let warned = notices(&app, &t.owner_token, "limit_warning").await;
        let budget_warnings = warned
            .iter()
            .filter(|(n, _)| n == "monthly_budget_usd")
            .count();
        let expected = usize::from(counter >= threshold);
        assert_eq!(
            budget_warnings, expected,
            "{counter} of {budget} (warned at {threshold}): {warned:?}"
        );
    }
    assert_eq!(counter, budget, "the loop used the budget exactly");
}

#[tokio::test]
async fn new_conversations_are_refused_only_by_the_limits_the_tenant_chose() {
    let app = spawn_app().await;
    let t = seed_tenant(&app, "acme").await;
    let admin = app.db.admin().await;
    cancel_all_reservations(&app, &t.owner_token).await;
    let (already, _, _) = daily(&app, &t.owner_token).await;
    // Nothing is left of the day's tokens.
    let set = app
        .patch(BASE, &t.owner_token, json!({"daily_token_limit": already}))
        .await;
    assert_eq!(set.status, 200, "{}", set.text);
    assert_eq!(set.body["limits_on_new_conversations"], json!([]));
    let conversations = format!("{BASE}/conversations");
    let new = || json!({"assistant_id": t.assistant, "title": "new"});
    let count = async || -> i64 {
        admin
            .query_one(
                "select count(*) from app.conversations where tenant_id = $1",
                &[&t.id],
            )
            .await
            .unwrap()
            .get(0)
    };
    let started = app.post(&conversations, &t.full_key, new()).await;
    assert_eq!(started.status, 201, "not chosen: {}", started.text);

    let choose = app
        .patch(
            BASE,
            &t.owner_token,
            json!({"limits_on_new_conversations": ["daily_token_limit"]}),
        )
        .await;
    assert_eq!(choose.status, 200, "{}", choose.text);
    assert_eq!(
        choose.body["limits_on_new_conversations"],
        json!(["daily_token_limit"])
    );
    let before = count().await;
    let refused = app.post(&conversations, &t.full_key, new()).await;
    assert_eq!(refused.status, 429, "{}", refused.text);
    assert_eq!(refused.body["type"], "/problems/limit-reached");
    assert_eq!(refused.body["limit_name"], "daily_token_limit");
    assert_eq!(refused.body["limit"], already.to_string());
    assert!(refused.headers.contains_key("retry-after"));
    assert_eq!(count().await, before, "nothing stored");
    // The refusal is noted: usage.limit_reached once per limit and window (the fixture's
    // refused reservation already noted this day's).
    let reached = app
        .get(
            &format!("{BASE}/events?type=usage.limit_reached"),
            &t.owner_token,
        )
        .await;
    assert_eq!(
        reached.body["data"].as_array().unwrap().len(),
        1,
        "{}",
        reached.text
    );
    // Messages (facts) still go in, flagged.
    let message = app
        .post(
            &format!("{BASE}/conversations/{}/messages", t.conversation),
            &t.full_key,
            json!({"role": "user", "content": "still here", "prompt_tokens": 5}),
        )
        .await;
    assert_eq!(message.status, 201, "{}", message.text);
    assert_eq!(message.body["over_limits"], json!(["daily_token_limit"]));

    // A chosen limit the tenant has not set refuses nothing; room again lets it through.
    let other = app
        .patch(
            BASE,
            &t.owner_token,
            json!({"limits_on_new_conversations": ["rate_limit_per_minute"]}),
        )
        .await;
    assert_eq!(other.status, 200, "{}", other.text);
    assert_eq!(
        app.post(&conversations, &t.full_key, new()).await.status,
        201
    );
    let room = app
        .patch(
            BASE,
            &t.owner_token,
            json!({"limits_on_new_conversations": ["daily_token_limit"],
                   "daily_token_limit": already + 1000}),
        )
        .await;
    assert_eq!(room.status, 200, "{}", room.text);
    assert_eq!(
        app.post(&conversations, &t.full_key, new()).await.status,
        201
    );

    // The limit settings and their rules.
    let tenant = app.get(BASE, &t.owner_token).await;
    assert_eq!(tenant.body["strict_limits"], false);
    assert_eq!(tenant.body["limit_warning_share"], 0.8);
    for (body, field) in [
        (
            json!({"limits_on_new_conversations": ["planet"]}),
            "limits_on_new_conversations",
        ),
        (
            json!({"limits_on_new_conversations": ["daily_token_limit", "daily_token_limit"]}),
            "limits_on_new_conversations",
        ),
        (
            json!({"limits_on_new_conversations": null}),
            "limits_on_new_conversations",
        ),
        (json!({"limit_warning_share": 0}), "limit_warning_share"),
        (json!({"limit_warning_share": 1.5}), "limit_warning_share"),
        (json!({"limit_warning_share": 0.125}), "limit_warning_share"),
        (json!({"limit_warning_share": "0.5"}), "limit_warning_share"),
        (json!({"strict_limits": null}), "strict_limits"),
    ] {
        let r = app.patch(BASE, &t.owner_token, body.clone()).await;
        assert_eq!(r.status, 422, "{body}: {}", r.text);
        assert_eq!(r.error_fields(), [field], "{body}");
    }
    let share = app
        .patch(BASE, &t.owner_token, json!({"limit_warning_share": 0.95}))
        .await;
    assert_eq!(share.status, 200, "{}", share.text);
    assert_eq!(share.body["limit_warning_share"], 0.95);
    let none = app
        .patch(BASE, &t.owner_token, json!({"limit_warning_share": null}))
        .await;
    assert_eq!(none.body["limit_warning_share"], Value::Null);
}

#[tokio::test]
async fn a_reservation_is_priced_from_the_catalog_and_holds_budget_and_rate() {
    let app = spawn_app().await;
    let t = seed_tenant(&app, "acme").await;
    let set = app
        .patch(
            BASE,
            &t.owner_token,
            json!({"monthly_budget_usd": "1000", "rate_limit_per_minute": 1000}),
        )
        .await;
    assert_eq!(set.status, 200, "{}", set.text);
    // gpt-4o: 2.50 in, 10.00 out per million tokens.
    let r = app
        .post(
            &format!("{BASE}/limits/check"),
            &t.full_key,
            json!({"provider": "openai", "model": "gpt-4o", "prompt_tokens": 1000,
                   "completion_tokens": 500, "reserve": true}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["cost_usd"], "0.0075");
    assert_eq!(r.body["cost_source"], "catalog");
    let reservation = &r.body["reservation"];
    assert!(reservation["minute_window"].is_string() && reservation["month_window"].is_string());
    let limits = r.body["limits"].as_array().unwrap();
    assert_eq!(limits[0]["name"], "rate_limit_per_minute");
    assert_eq!(limits[0]["reserved"], "1");
    assert_eq!(limits[2]["reserved"], "0.0075");
    // The message that settles it, in the same minute, takes the write it held.
    let m = app
        .post(
            &format!("{BASE}/conversations/{}/messages", t.conversation),
            &t.full_key,
            json!({"role": "assistant", "content": "ok", "provider": "openai", "model": "gpt-4o",
                   "prompt_tokens": 1000, "completion_tokens": 100,
                   "reservation_id": reservation["id"]}),
        )
        .await;
    assert_eq!(m.status, 201, "{}", m.text);
    let after = app.get(&format!("{BASE}/limits"), &t.owner_token).await;
    assert_eq!(after.body[0]["reserved"], "0");
    assert_eq!(after.body[2]["reserved"], "0");
    let counter: i32 = app
        .db
        .admin()
        .await
        .query_one(
            "select minute_used from app.limit_state where tenant_id = $1
             and minute_start = date_trunc('minute', now())",
            &[&t.id],
        )
        .await
        .unwrap()
        .get(0);
    // One reservation + its settling message = one write (unless the minute turned).
    let used: i64 = after.body[0]["used"].as_str().unwrap().parse().unwrap();
    assert_eq!(used, i64::from(counter));
    assert!(
        used <= 1,
        "the settled reservation's write is not counted twice"
    );
}

#[tokio::test]
async fn feedback_analytics_follow_ratings_changes_and_removals() {
    let app = spawn_app().await;
    let t = seed_tenant(&app, "acme").await;
    // The fixture: the owner rated the assistant's gpt-4o-mini message +1.
    let rate = |token: String, message: Uuid, rating: i64| {
        let app = &app;
        async move {
            let r = app
                .call(
                    "PUT",
                    &format!("{BASE}/messages/{message}/feedback"),
                    Some(&token),
                    Some(&json!({"rating": rating})),
                )
                .await;
            assert!(r.status == 200 || r.status == 201, "{}", r.text);
        }
    };
    rate(t.agent_token.clone(), t.message, -1).await;
    rate(t.member_token.clone(), t.member_message, 1).await;
    let get = |query: &'static str, token: String| {
        let app = &app;
        async move {
            let r = app
                .get(&format!("{BASE}/analytics/feedback{query}"), &token)
                .await;
            assert_eq!(r.status, 200, "{}", r.text);
            r.body
        }
    };
    let by_assistant = get("", t.owner_token.clone()).await;
    assert_eq!(
        by_assistant,
        json!([{"assistant_id": t.assistant, "ratings": 3, "positive": 2, "negative": 1,
                "positive_rate": 2.0 / 3.0}])
    );
    let by_model = get("?by=model", t.owner_token.clone()).await;
    assert_eq!(
        by_model,
        json!([{"provider": "openai", "model": "gpt-4o-mini", "ratings": 2, "positive": 1,
                "negative": 1, "positive_rate": 0.5},
               {"provider": null, "model": null, "ratings": 1, "positive": 1, "negative": 0,
                "positive_rate": 1.0}])
    );
    // A changed rating moves between up and down; a removed one leaves.
    rate(t.agent_token.clone(), t.message, 1).await;
    let removed = app
        .delete(
            &format!("{BASE}/messages/{}/feedback", t.message),
            &t.owner_token,
        )
        .await;
    assert_eq!(removed.status, 204, "{}", removed.text);
    let by_model = get("?by=model", t.owner_token.clone()).await;
    assert_eq!(by_model[0]["model"], "gpt-4o-mini");
    assert_eq!(
        (&by_model[0]["positive"], &by_model[0]["negative"]),
        (&json!(1), &json!(0))
    );
    // A member counts only ratings in their own conversations.
    let theirs = get("?by=model", t.member_token.clone()).await;
    assert_eq!(
        theirs,
        json!([{"provider": null, "model": null, "ratings": 1, "positive": 1, "negative": 0,
                "positive_rate": 1.0}])
    );
    // The rollup equals the ratings, row by row.
    let admin = app.db.admin().await;
    let mismatched: i64 = admin
        .query_one(
            "select count(*) from app.feedback_daily d
             cross join lateral (select count(*) filter (where f.rating = 1) as up,
                                        count(*) filter (where f.rating = -1) as down
                                 from app.feedback f
                                 where f.tenant_id = d.tenant_id and f.rollup_id = d.id) f
             where d.tenant_id = $1 and (d.positive <> f.up or d.negative <> f.down)",
            &[&t.id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(mismatched, 0);
    let csv = app
        .http
        .get(format!("{}{BASE}/analytics/feedback?by=model", app.base))
        .bearer_auth(&t.owner_token)
        .header("accept", "text/csv")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        csv.starts_with(
            "provider,model,ratings,positive,negative,positive_rate\r\nopenai,gpt-4o-mini,1,1,0,1.0\r\n"
        ),
        "{csv}"
    );
    for bad in ["?by=planet", "?days=0", "?colour=red"] {
        let r = app
            .get(&format!("{BASE}/analytics/feedback{bad}"), &t.owner_token)
            .await;
        assert_eq!(r.status, 422, "{bad}: {}", r.text);
    }
}
