//! Usage: costing from the price catalog and the daily rollups, exact under parallel
//! writes through two server processes.

use frontdesk_test::{Reply, fixtures::seed_tenant, post_all, spawn_app, spawn_app_on, user_token};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use uuid::Uuid;

fn decimal(v: &Value) -> Decimal {
    v.as_str()
        .unwrap_or_else(|| panic!("not a decimal string: {v}"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn messages_are_costed_from_the_catalog_unless_a_cost_is_given() {
    let app = spawn_app().await;
    let t = seed_tenant(&app, "acme").await;
    let path = format!("/v1/tenants/acme/conversations/{}/messages", t.conversation);
    let post = |body: Value| {
        let (app, path, key) = (&app, path.clone(), t.full_key.clone());
        async move {
            let r = app.post(&path, &key, body).await;
            assert_eq!(r.status, 201, "{}", r.text);
            r.body
        }
    };
    // gpt-4o: 2.50 in, 10.00 out per million tokens.
    let costed = post(
        json!({"role": "assistant", "content": "a", "provider": "OpenAI", "model": "gpt-4o",
                             "prompt_tokens": 1000, "completion_tokens": 500}),
    )
    .await;
    assert_eq!(decimal(&costed["cost_usd"]), "0.0075".parse().unwrap());
    assert_eq!(costed["cost_source"], "catalog");
    assert_eq!(
        costed["provider"], "openai",
        "providers are kept lower-case"
    );
    let given = post(
        json!({"role": "assistant", "content": "b", "provider": "openai", "model": "gpt-4o",
                            "prompt_tokens": 1000, "completion_tokens": 500, "cost_usd": "0.001"}),
    )
    .await;
    assert_eq!(decimal(&given["cost_usd"]), "0.001".parse().unwrap());
    assert_eq!(given["cost_source"], "provided");
    let unknown = post(
        json!({"role": "assistant", "content": "c", "provider": "acme-ai", "model": "x-1",
                              "prompt_tokens": 10}),
    )
    .await;
    assert_eq!(decimal(&unknown["cost_usd"]), Decimal::ZERO);
    assert_eq!(unknown["cost_source"], "unpriced");
    let plain = post(json!({"role": "user", "content": "d"})).await;
    assert!(plain["cost_usd"].is_null() && plain["cost_source"].is_null());

    // The tenant's own price wins from its effective time on (the fixture priced
    // selfhosted/llama-3-8b at 0.05/0.10); a later price applies to later messages.
    let own = post(
        json!({"role": "assistant", "content": "e", "provider": "selfhosted", "model": "llama-3-8b",
                          "prompt_tokens": 2_000_000, "completion_tokens": 1_000_000}),
    )
    .await;
    assert_eq!(decimal(&own["cost_usd"]), "0.2".parse().unwrap());
    let override_4o = app
        .post("/v1/tenants/acme/prices", &t.owner_token,
              json!({"provider": "openai", "model": "gpt-4o", "input_usd_per_mtok": "1", "output_usd_per_mtok": "2"}))
        .await;
    assert_eq!(override_4o.status, 201, "{}", override_4o.text);
    let cheaper = post(
        json!({"role": "assistant", "content": "f", "provider": "openai", "model": "gpt-4o",
                              "prompt_tokens": 1000, "completion_tokens": 500}),
    )
    .await;
    assert_eq!(decimal(&cheaper["cost_usd"]), "0.002".parse().unwrap());
    let duplicate = app
        .post("/v1/tenants/acme/prices", &t.owner_token,
              json!({"provider": "openai", "model": "gpt-4o", "input_usd_per_mtok": "1", "output_usd_per_mtok": "2",
                     "effective_from": override_4o.body["effective_from"]}))
        .await;
    assert_eq!(duplicate.status, 409);
    let bad = app
        .post("/v1/tenants/acme/prices", &t.owner_token,
              json!({"provider": "Open AI", "model": "", "input_usd_per_mtok": "-1", "output_usd_per_mtok": "2"}))
        .await;
    assert_eq!(bad.status, 422);
    assert_eq!(
        bad.error_fields(),
        ["provider", "model", "input_usd_per_mtok"]
    );
    assert_eq!(
        app.post("/v1/tenants/acme/prices", &t.agent_token, json!({}))
            .await
            .status,
        403
    );

    // The catalog: anyone signed in reads it, only the operator adds to it.
    let catalog = app.get("/v1/prices", &t.member_token).await;
    assert!(
        catalog
            .body
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["model"] == "claude-sonnet-4")
    );
    let price = json!({"provider": "acme-ai", "model": "x-1", "input_usd_per_mtok": "1", "output_usd_per_mtok": "1"});
    assert_eq!(
        app.post("/v1/prices", &t.owner_token, price.clone())
            .await
            .status,
        403
    );
    assert_eq!(
        app.post("/v1/prices", frontdesk_test::OPERATOR_TOKEN, price)
            .await
            .status,
        201
    );
    let priced = post(
        json!({"role": "assistant", "content": "g", "provider": "acme-ai", "model": "x-1",
                             "prompt_tokens": 1_000_000}),
    )
    .await;
    assert_eq!(decimal(&priced["cost_usd"]), Decimal::ONE);
}

#[tokio::test]
async fn rollups_equal_the_messages_under_parallel_writes_through_two_servers() {
    let app = spawn_app().await;
    let second = spawn_app_on(&app.db).await;
    let t = seed_tenant(&app, "acme").await;
    // Four members, each with a conversation.
    let mut writers = Vec::new();
    for i in 0..4 {
        let user = Uuid::now_v7();
        let token = user_token(user, None);
        assert_eq!(app.get("/v1/me", &token).await.status, 200);
        let added = app
            .post(
                "/v1/tenants/acme/members",
                &t.owner_token,
                json!({"user_id": user, "role": "member"}),
            )
            .await;
        assert_eq!(added.status, 201);
        let c = app
            .post(
                "/v1/tenants/acme/conversations",
                &token,
                json!({"assistant_id": t.assistant, "title": format!("c{i}")}),
            )
            .await;
        assert_eq!(c.status, 201, "{}", c.text);
        writers.push((token, c.body["id"].as_str().unwrap().to_owned()));
    }
    let before = app
        .get("/v1/tenants/acme/usage/today", &t.owner_token)
        .await
        .body;
    let posts = (0..2000usize)
        .map(|n| {
            let (token, conversation) = &writers[n % 4];
            let server = if n % 2 == 0 { &app } else { &second };
            let model = ["gpt-4o", "gpt-4o-mini", "claude-3-5-haiku"][n % 3];
            let provider = if n % 3 == 2 { "anthropic" } else { "openai" };
            let mut body = json!({"role": if n % 5 == 0 { "user" } else { "assistant" }, "content": format!("m{n}"),
                                  "provider": provider, "model": model,
                                  "prompt_tokens": 100 + n, "completion_tokens": 7 * n % 301});
            if n % 4 == 0 {
                body["cost_usd"] = json!(format!("0.{:010}", 123_456_789 + n));
            }
            server.post_to(&format!("/v1/tenants/acme/conversations/{conversation}/messages"), token, body)
        })
        .collect();
    for reply in post_all(&app.http, posts).await {
        assert_eq!(reply.status, 201);
    }
    // Every rollup row equals the sum of its messages, to the last decimal.
    let admin = app.db.admin().await;
    let mismatches: i64 = admin
        .query_one(
            "with facts as (
                 select m.tenant_id, m.created_at, m.owner_user_id as user_id, c.assistant_id, m.provider, m.model,
                        (m.cost_source is not null)::int as requests, 1 as messages,
                        coalesce(m.prompt_tokens, 0) as prompt_tokens, coalesce(m.completion_tokens, 0) as completion_tokens,
                        coalesce(m.cost_usd, 0) as cost_usd
                 from app.messages m join app.conversations c on c.tenant_id = m.tenant_id and c.id = m.conversation_id
                 union all
                 select e.tenant_id, e.created_at, e.user_id, e.assistant_id, e.provider, e.model, 1, 0,
                        coalesce(e.prompt_tokens, 0), coalesce(e.completion_tokens, 0), e.cost_usd
                 from app.usage_events e),
             m as (
                 select f.tenant_id, (f.created_at at time zone t.timezone)::date as day, f.user_id,
                        f.assistant_id, f.provider, f.model,
                        sum(f.requests) as request_count, sum(f.messages) as message_count,
                        sum(f.prompt_tokens) as prompt_tokens, sum(f.completion_tokens) as completion_tokens,
                        sum(f.cost_usd) as cost_usd
                 from facts f join app.tenants t on t.id = f.tenant_id
                 where f.tenant_id = $1 group by 1, 2, 3, 4, 5, 6)
             select count(*) from m full join app.usage_daily u
               on u.tenant_id = m.tenant_id and u.day = m.day and u.user_id is not distinct from m.user_id
              and u.assistant_id is not distinct from m.assistant_id and u.provider is not distinct from m.provider
              and u.model is not distinct from m.model
             where (u.tenant_id = $1 or m.tenant_id = $1)
               and (u.id is null or m.tenant_id is null or u.request_count <> m.request_count
                    or u.message_count <> m.message_count or u.prompt_tokens <> m.prompt_tokens
                    or u.completion_tokens <> m.completion_tokens or u.cost_usd <> m.cost_usd
                    or u.total_tokens <> m.prompt_tokens + m.completion_tokens)",
            &[&t.id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(mismatches, 0, "rollups differ from the messages");
    // And the API's figures add up: today's totals moved by exactly what was posted.
    let after = app
        .get("/v1/tenants/acme/usage/today", &t.owner_token)
        .await
        .body;
    let expected_prompt: i64 = (0..2000).map(|n| 100 + n as i64).sum();
    assert_eq!(
        after["prompt_tokens"].as_i64().unwrap() - before["prompt_tokens"].as_i64().unwrap(),
        expected_prompt
    );
    assert_eq!(
        after["message_count"].as_i64().unwrap() - before["message_count"].as_i64().unwrap(),
        2000
    );
    let stored: Decimal = admin
        .query_one(
            "select (select sum(cost_usd) from app.messages where tenant_id = $1)
                     + (select coalesce(sum(cost_usd), 0) from app.usage_events where tenant_id = $1)",
            &[&t.id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(decimal(&after["cost_usd"]), stored.normalize());
    // A member sees only their own usage.
    let mine = app
        .get("/v1/tenants/acme/usage/today", &writers[0].0)
        .await
        .body;
    assert_eq!(mine["message_count"], 500);
    let daily = app
        .get("/v1/tenants/acme/usage/daily?days=7", &t.owner_token)
        .await;
    assert_eq!(daily.body.as_array().unwrap().len(), 7);
    assert_eq!(daily.body[6], after, "the last day is today");
    let monthly = app
        .get("/v1/tenants/acme/usage/monthly?months=2", &t.owner_token)
        .await;
    assert_eq!(monthly.body.as_array().unwrap().len(), 2);
    assert_eq!(
        app.get("/v1/tenants/acme/usage/daily?days=0", &t.owner_token)
            .await
            .status,
        422
    );
}

#[tokio::test]
async fn usage_events_are_costed_rolled_up_and_idempotent() {
    let app = spawn_app().await;
    let t = seed_tenant(&app, "acme").await;
    let other = seed_tenant(&app, "other").await;
    let before = app
        .get("/v1/tenants/acme/usage/today", &t.owner_token)
        .await
        .body;
    let minutes = app
        .post_idempotent("/v1/tenants/acme/usage", &t.full_key, "call-42",
                         json!({"unit": "minute", "quantity": "3.5", "unit_price_usd": "0.02", "assistant_id": t.assistant}))
        .await;
    assert_eq!(minutes.status, 201, "{}", minutes.text);
    assert_eq!(decimal(&minutes.body["cost_usd"]), "0.07".parse().unwrap());
    let replay = app
        .post_idempotent("/v1/tenants/acme/usage", &t.full_key, "call-42",
                         json!({"unit": "minute", "quantity": "3.5", "unit_price_usd": "0.02", "assistant_id": t.assistant}))
        .await;
    assert_eq!(replay.text, minutes.text);
    let embedded = app
        .post("/v1/tenants/acme/usage", &t.full_key,
              json!({"provider": "openai", "model": "text-embedding-3-large", "prompt_tokens": 1_000_000}))
        .await;
    assert_eq!(decimal(&embedded.body["cost_usd"]), "0.13".parse().unwrap());
    assert_eq!(embedded.body["cost_source"], "catalog");
    let after = app
        .get("/v1/tenants/acme/usage/today", &t.owner_token)
        .await
        .body;
    assert_eq!(
        after["request_count"].as_i64().unwrap() - before["request_count"].as_i64().unwrap(),
        2
    );
    assert_eq!(
        decimal(&after["cost_usd"]) - decimal(&before["cost_usd"]),
        "0.2".parse().unwrap()
    );
    assert_eq!(
        after["message_count"], before["message_count"],
        "usage events are not messages"
    );

    for (body, field) in [
        (json!({"unit": "minute"}), "quantity"),
        (
            json!({"prompt_tokens": 5, "unit": "minute", "quantity": "1"}),
            "unit",
        ),
        (json!({}), "prompt_tokens"),
        (json!({"prompt_tokens": -5}), "prompt_tokens"),
        (json!({"unit": "Minutes!", "quantity": "1"}), "unit"),
        (
            json!({"prompt_tokens": 5, "assistant_id": other.assistant}),
            "assistant_id",
        ),
        (
            json!({"prompt_tokens": 5, "user_id": other.owner}),
            "user_id",
        ),
    ] {
        let r = app.post("/v1/tenants/acme/usage", &t.full_key, body).await;
        assert_eq!(r.status, 422, "{field}: {}", r.text);
        assert_eq!(r.error_fields(), [field], "{}", r.text);
    }
    // Members and read keys record none; B's key records nothing on A.
    assert_eq!(
        app.post(
            "/v1/tenants/acme/usage",
            &t.member_token,
            json!({"prompt_tokens": 5})
        )
        .await
        .status,
        403
    );
    assert_eq!(
        app.post(
            "/v1/tenants/acme/usage",
            &t.read_key,
            json!({"prompt_tokens": 5})
        )
        .await
        .status,
        403
    );
    assert_eq!(
        app.post(
            "/v1/tenants/acme/usage",
            &other.full_key,
            json!({"prompt_tokens": 5})
        )
        .await
        .status,
        403
    );
    let listed = app
        .get("/v1/tenants/acme/usage/events", &t.agent_token)
        .await;
    assert_eq!(
        listed.body["data"].as_array().unwrap().len(),
        5,
        "the seeded three (one past a limit, stored all the same) and two new"
    );
}

async fn today_tokens(admin: &tokio_postgres::Client, tenant: Uuid) -> i64 {
    admin
        .query_one(
            "select coalesce(sum(total_tokens), 0)::bigint from app.usage_daily
             where tenant_id = $1 and day = current_date",
            &[&tenant],
        )
        .await
        .unwrap()
        .get(0)
}

/// Post `n` messages in parallel, alternating between two servers; the replies.
async fn flood(
    apps: [&frontdesk_test::TestApp; 2],
    token: &str,
    conversation: Uuid,
    n: usize,
    body: Value,
) -> Vec<Reply> {
    let path = format!("/v1/tenants/acme/conversations/{conversation}/messages");
    let posts = (0..n)
        .map(|i| apps[i % 2].post_to(&path, token, body.clone()))
        .collect();
    post_all(&apps[0].http, posts).await
}

fn check_refusals(replies: &[Reply], limit: &str) -> usize {
    let mut refused = 0;
    for Reply {
        status,
        headers,
        body,
        ..
    } in replies
    {
        match status.as_u16() {
            201 => {}
            429 => {
                refused += 1;
                assert_eq!(body["limit_name"], limit, "{body}");
                assert_eq!(body["type"], "/problems/limit-reached");
                let retry: i64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
                assert!(retry >= 1, "Retry-After {retry}");
                assert_eq!(headers["ratelimit-remaining"], "0");
                assert!(
                    headers.contains_key("ratelimit-limit")
                        && headers.contains_key("ratelimit-reset")
                );
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    refused
}

#[tokio::test]
async fn strict_limits_refuse_writes_exactly_under_parallel_writes_through_two_servers() {
    let app = spawn_app().await;
    let second = spawn_app_on(&app.db).await;
    let t = seed_tenant(&app, "acme").await;
    let admin = app.db.admin().await;
    let already = today_tokens(&admin, t.id).await;
    // The tenant chose strict limits: writes past a limit are refused, not flagged.
    let strict = app
        .patch(
            "/v1/tenants/acme",
            &t.owner_token,
            json!({"strict_limits": true}),
        )
        .await;
    assert_eq!(strict.status, 200, "{}", strict.text);
    assert_eq!(strict.body["strict_limits"], true);

    // Daily tokens: room for 50 messages of 100 tokens, 120 tried (the fixture's live
    // reservation holds another 100).
    let limit = already + 100 + 5_000;
    let set = app
        .patch(
            "/v1/tenants/acme",
            &t.owner_token,
            json!({"daily_token_limit": limit}),
        )
        .await;
    assert_eq!(set.status, 200, "{}", set.text);
    let messages_before: i64 = admin
        .query_one(
            "select count(*) from app.messages where tenant_id = $1",
            &[&t.id],
        )
        .await
        .unwrap()
        .get(0);
    let replies = flood(
        [&app, &second],
        &t.full_key,
        t.conversation,
        120,
        json!({"role": "assistant", "content": "x", "prompt_tokens": 60, "completion_tokens": 40}),
    )
    .await;
    let refused = check_refusals(&replies, "daily_token_limit");
    let used = today_tokens(&admin, t.id).await;
    assert!(used <= limit, "{used} > {limit}");
    assert!(
        used - already >= 4_500,
        "at least 90 % usable: {}",
        used - already
    );
    assert_eq!(
        refused, 70,
        "exactly the writes that did not fit were refused"
    );
    let messages_after: i64 = admin
        .query_one(
            "select count(*) from app.messages where tenant_id = $1",
            &[&t.id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        messages_after - messages_before,
        50,
        "refused writes stored nothing"
    );
    let limits_hit = app
        .get(
            "/v1/tenants/acme/events?type=usage.limit_reached",
            &t.owner_token,
        )
        .await;
    assert_eq!(
        limits_hit.body["data"].as_array().unwrap().len(),
        1,
        "one event per window"
    );

    // Monthly budget: the month's cost so far plus room for 40 messages of 0.0003.
    let clear = app
        .patch(
            "/v1/tenants/acme",
            &t.owner_token,
            json!({"daily_token_limit": null}),
        )
        .await;
    assert_eq!(clear.status, 200);
    let month_cost: Decimal = admin
        .query_one(
            "select coalesce(sum(cost_usd), 0) from app.usage_daily
             where tenant_id = $1 and day >= date_trunc('month', current_date)::date",
            &[&t.id],
        )
        .await
        .unwrap()
        .get(0);
    // A budget keeps 6 decimal places (more is refused): round the room up, never down.
    let budget = (month_cost + Decimal::new(120, 4))
        .round_dp_with_strategy(6, rust_decimal::RoundingStrategy::AwayFromZero);
    let set = app
        .patch(
            "/v1/tenants/acme",
            &t.owner_token,
            json!({"monthly_budget_usd": budget.to_string()}),
        )
        .await;
    assert_eq!(set.status, 200, "{}", set.text);
    let replies = flood(
        [&app, &second],
        &t.full_key,
        t.conversation,
        100,
        json!({"role": "assistant", "content": "x", "cost_usd": "0.0003"}),
    )
    .await;
    assert_eq!(check_refusals(&replies, "monthly_budget_usd"), 60);
    let spent: Decimal = admin
        .query_one(
            "select coalesce(sum(cost_usd), 0) from app.usage_daily
             where tenant_id = $1 and day >= date_trunc('month', current_date)::date",
            &[&t.id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        spent, budget,
        "the budget is used to the last decimal, never passed"
    );

    // Rate per minute: 30 writes a minute.
    let set = app
        .patch(
            "/v1/tenants/acme",
            &t.owner_token,
            json!({"monthly_budget_usd": null, "rate_limit_per_minute": 30}),
        )
        .await;
    assert_eq!(set.status, 200, "{}", set.text);
    let replies = flood(
        [&app, &second],
        &t.full_key,
        t.conversation,
        80,
        json!({"role": "user", "content": "hi"}),
    )
    .await;
    let refused = check_refusals(&replies, "rate_limit_per_minute");
    let per_minute: Vec<i64> = admin
        .query(
            "select count(*) from app.messages where tenant_id = $1 and content = 'hi'
             group by date_trunc('minute', created_at)",
            &[&t.id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(per_minute.iter().all(|n| *n <= 30), "{per_minute:?}");
    assert_eq!(per_minute.iter().sum::<i64>() as usize, 80 - refused);
    assert!(80 - refused >= 30 || per_minute.len() > 1);
    let limits = app.get("/v1/tenants/acme/limits", &t.agent_token).await;
    assert_eq!(limits.status, 200, "{}", limits.text);
    let rate = &limits.body[0];
    assert_eq!(rate["name"], "rate_limit_per_minute");
    assert_eq!(rate["limit"], "30");
    assert!(rate["remaining"].is_string());
    assert!(limits.body[1]["limit"].is_null() && limits.body[1]["remaining"].is_null());
}

#[tokio::test]
async fn analytics_come_from_the_rollups_as_json_or_csv() {
    let app = spawn_app().await;
    let t = seed_tenant(&app, "acme").await;
    let mine = format!(
        "/v1/tenants/acme/conversations/{}/messages",
        t.member_conversation
    );
    for (tokens, latency) in [(1000, 200), (3000, 400)] {
        let r = app
            .post(&mine, &t.member_token,
                  json!({"role": "assistant", "content": "x", "provider": "openai", "model": "gpt-4.1-nano",
                         "prompt_tokens": tokens, "completion_tokens": 0, "latency_ms": latency}))
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let providers = app
        .get(
            "/v1/tenants/acme/analytics/providers?days=7",
            &t.owner_token,
        )
        .await;
    assert_eq!(providers.status, 200, "{}", providers.text);
    let mini = providers
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["model"] == "gpt-4.1-nano")
        .unwrap()
        .clone();
    assert_eq!(mini["request_count"], 2);
    assert_eq!(mini["prompt_tokens"], 4000);
    assert_eq!(mini["avg_latency_ms"], 300.0);
    assert_eq!(decimal(&mini["cost_usd"]), "0.0004".parse().unwrap());

    let csv = app
        .http
        .get(format!("{}/v1/tenants/acme/analytics/providers", app.base))
        .bearer_auth(&t.owner_token)
        .header("accept", "text/csv")
        .send()
        .await
        .unwrap();
    assert!(
        csv.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let text = csv.text().await.unwrap();
    let mut lines = text.split("\r\n");
    assert_eq!(
        lines.next().unwrap(),
        "provider,model,request_count,prompt_tokens,completion_tokens,total_tokens,cost_usd,avg_latency_ms,first_used_at,last_used_at"
    );
    assert!(
        text.contains("openai,gpt-4.1-nano,2,4000,0,4000,0.0004,300.0,"),
        "{text}"
    );

    let daily = app
        .get("/v1/tenants/acme/analytics/messages/daily", &t.owner_token)
        .await;
    let member_row = daily
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["user_id"] == json!(t.member))
        .unwrap()
        .clone();
    assert_eq!(
        member_row["message_count"], 3,
        "the seeded question and two answers"
    );
    assert_eq!(member_row["assistant_messages"], 2);
    // A member sees only their own usage.
    let theirs = app
        .get("/v1/tenants/acme/analytics/messages/daily", &t.member_token)
        .await;
    assert!(
        theirs
            .body
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["user_id"] == json!(t.member))
    );
    let top = app
        .get(
            "/v1/tenants/acme/analytics/top?by=assistants&limit=1",
            &t.owner_token,
        )
        .await;
    assert_eq!(top.body.as_array().unwrap().len(), 1);
    for bad in [
        "top?by=planets",
        "top?by=users&limit=0",
        "providers?days=0",
        "messages/daily?days=999",
    ] {
        let r = app
            .get(&format!("/v1/tenants/acme/analytics/{bad}"), &t.owner_token)
            .await;
        assert_eq!(r.status, 422, "{bad}: {}", r.text);
    }
}

/// Issue 12, item 7: `Accept` is read as RFC 9110 says — `q=0` refuses a type (it was
/// taken as a request for CSV), media types are compared without regard to case (upper
/// case got JSON), and CSV is chosen only when preferred to JSON.
#[tokio::test]
async fn analytics_negotiate_csv_honouring_q_and_case() {
    let app = spawn_app().await;
    let t = seed_tenant(&app, "acme").await;
    for (accept, csv) in [
        ("text/csv;q=0", false),
        ("text/csv;q=0, application/json", false),
        ("application/json, text/csv;q=0.5", false),
        ("TEXT/CSV", true),
        ("Text/Csv; charset=utf-8", true),
        ("application/json;q=0.1, text/csv", true),
        ("text/csv", true),
    ] {
        let r = app
            .http
            .get(format!("{}/v1/tenants/acme/analytics/providers", app.base))
            .bearer_auth(&t.owner_token)
            .header("accept", accept)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "Accept: {accept}");
        let content_type = r.headers()["content-type"].to_str().unwrap().to_owned();
        let body = r.text().await.unwrap();
        if csv {
            assert!(
                content_type.starts_with("text/csv"),
                "Accept: {accept}: {content_type}"
            );
            assert!(
                body.starts_with("provider,model,"),
                "Accept: {accept}: {body}"
            );
        } else {
            assert_eq!(content_type, "application/json", "Accept: {accept}");
            assert!(
                serde_json::from_str::<serde_json::Value>(&body)
                    .unwrap()
                    .is_array()
            );
        }
    }
}

/// A GET with `Accept: text/csv`.
async fn get_csv(app: &frontdesk_test::TestApp, path: &str, token: &str) -> Reply {
    Reply::of(
        app.http
            .get(format!("{}{path}", app.base))
            .bearer_auth(token)
            .header("accept", "text/csv"),
    )
    .await
}

/// Issue 13, item 7: a second assistant ("Bella", with a conversation of a new contact
/// "Sari") and a paid message each for her and for ARI; what the period, assistant and
/// provider select.
struct TwoAssistants {
    bella: Uuid,
    sari: Uuid,
    bella_conversation: Uuid,
    agent_conversation: Uuid,
}

async fn two_assistants(
    app: &frontdesk_test::TestApp,
    t: &frontdesk_test::fixtures::Seeded,
) -> TwoAssistants {
    let id = |r: &Reply| -> Uuid {
        assert_eq!(r.status, 201, "{}", r.text);
        r.body["id"].as_str().unwrap().parse().unwrap()
    };
    let bella = id(&app
        .post(
            "/v1/tenants/acme/assistants",
            &t.owner_token,
            json!({"name": "Bella", "channel": "web", "flow": "ari_sales"}),
        )
        .await);
    let sari = id(&app
        .post(
            "/v1/tenants/acme/contacts",
            &t.full_key,
            json!({"name": "Sari", "phone": "+628111234568"}),
        )
        .await);
    let bella_conversation = id(&app
        .post(
            "/v1/tenants/acme/conversations",
            &t.full_key,
            json!({"assistant_id": bella, "contact_id": sari}),
        )
        .await);
    let agent_conversation = id(&app
        .post(
            "/v1/tenants/acme/conversations",
            &t.agent_token,
            json!({"assistant_id": t.assistant, "title": "Agent's own"}),
        )
        .await);
    for (conversation, token, body) in [
        (
            bella_conversation,
            &t.full_key,
            json!({"role": "assistant", "content": "b", "provider": "anthropic", "model": "claude-3-5-haiku",
                "prompt_tokens": 100, "completion_tokens": 0, "cost_usd": "0.5"}),
        ),
        (
            t.conversation,
            &t.full_key,
            json!({"role": "assistant", "content": "a", "provider": "openai", "model": "gpt-4o",
                "prompt_tokens": 10, "completion_tokens": 0, "cost_usd": "0.25"}),
        ),
        (
            agent_conversation,
            &t.agent_token,
            json!({"role": "assistant", "content": "c", "provider": "openai", "model": "gpt-4o",
                "prompt_tokens": 1, "completion_tokens": 0, "cost_usd": "0.1"}),
        ),
    ] {
        let r = app
            .post(
                &format!("/v1/tenants/acme/conversations/{conversation}/messages"),
                token,
                body,
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    TwoAssistants {
        bella,
        sari,
        bella_conversation,
        agent_conversation,
    }
}

fn day_before(day: &str, n: i64) -> String {
    let d: chrono::NaiveDate = day.parse().unwrap();
    (d - chrono::Duration::days(n)).to_string()
}

#[tokio::test]
async fn usage_and_analytics_take_from_to_and_filter_by_assistant_and_provider() {
    let app = spawn_app().await;
    let t = seed_tenant(&app, "acme").await;
    let other = seed_tenant(&app, "other").await;
    let x = two_assistants(&app, &t).await;
    let get = |path: String| {
        let (app, token) = (&app, t.owner_token.clone());
        async move {
            let r = app.get(&format!("/v1/tenants/acme/{path}"), &token).await;
            assert_eq!(r.status, 200, "{path}: {}", r.text);
            r.body
        }
    };
    let today = get("usage/today".into()).await["period"]
        .as_str()
        .unwrap()
        .to_owned();

    // from = to = today is the last day.
    assert_eq!(
        get(format!("usage/daily?from={today}&to={today}")).await,
        get("usage/daily?days=1".into()).await
    );
    // Filters: one assistant, one provider (any case); another tenant's assistant finds nothing.
    let bella = get(format!("usage/today?assistant_id={}", x.bella)).await;
    assert_eq!(
        (
            bella["request_count"].clone(),
            bella["message_count"].clone()
        ),
        (json!(1), json!(1))
    );
    assert_eq!(decimal(&bella["cost_usd"]), "0.5".parse().unwrap());
    let anthropic = get("usage/today?provider=Anthropic".into()).await;
    assert_eq!(decimal(&anthropic["cost_usd"]), "0.5".parse().unwrap());
    assert_eq!(anthropic["prompt_tokens"], 100);
    let theirs = get(format!("usage/today?assistant_id={}", other.assistant)).await;
    assert_eq!(theirs["request_count"], 0, "{theirs}");
    assert_eq!(decimal(&theirs["cost_usd"]), Decimal::ZERO);
    let ari_openai = get(format!(
        "usage/today?assistant_id={}&provider=openai",
        t.assistant
    ))
    .await;
    assert_eq!(
        decimal(&ari_openai["cost_usd"]),
        "0.3505".parse().unwrap(),
        "the seeded 0.0004 and embedding 0.0001, and 0.25 and 0.1: {ari_openai}"
    );

    // Three days ending today, oldest first; the earlier two are empty.
    let three = get(format!(
        "usage/daily?from={}&to={today}&assistant_id={}",
        day_before(&today, 2),
        x.bella
    ))
    .await;
    let periods: Vec<&str> = three
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["period"].as_str().unwrap())
        .collect();
    assert_eq!(
        periods,
        [day_before(&today, 2), day_before(&today, 1), today.clone()]
    );
    assert_eq!(three[0]["request_count"], 0);
    assert_eq!(decimal(&three[2]["cost_usd"]), "0.5".parse().unwrap());
    // A period in the past: its days, all zeros.
    let past = get("usage/daily?from=2020-02-28&to=2020-03-01".into()).await;
    assert_eq!(
        past.as_array().unwrap().len(),
        3,
        "2020 was a leap year: {past}"
    );
    assert!(
        past.as_array()
            .unwrap()
            .iter()
            .all(|d| d["message_count"] == 0)
    );

    // Months: the months the days touch, counting only those days.
    let month = get(format!(
        "usage/monthly?from={today}&to={today}&provider=anthropic"
    ))
    .await;
    assert_eq!(month.as_array().unwrap().len(), 1, "{month}");
    assert_eq!(month[0]["period"], today[..7]);
    assert_eq!(decimal(&month[0]["cost_usd"]), "0.5".parse().unwrap());
    let (from, to) = (day_before(&today, 40), day_before(&today, 1));
    let before = get(format!("usage/monthly?from={from}&to={to}")).await;
    let last = before.as_array().unwrap().last().unwrap();
    assert_eq!(last["period"], to[..7]);
    assert_eq!(
        last["request_count"], 0,
        "today is after the period: {last}"
    );
    assert_eq!(before[0]["period"], from[..7]);

    // Analytics.
    let providers = get(format!(
        "analytics/providers?from={today}&to={today}&assistant_id={}",
        x.bella
    ))
    .await;
    let models: Vec<&str> = providers
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["model"].as_str().unwrap())
        .collect();
    assert_eq!(models, ["claude-3-5-haiku"]);
    assert!(
        get("analytics/providers?from=2020-01-01&to=2020-12-31".into())
            .await
            .as_array()
            .unwrap()
            .is_empty()
    );
    let per_day = get("analytics/messages/daily?days=2&provider=anthropic".into()).await;
    assert_eq!(per_day.as_array().unwrap().len(), 1, "{per_day}");
    assert_eq!(per_day[0]["message_count"], 1);
    let feedback = get(format!(
        "analytics/feedback?from={today}&to={today}&assistant_id={}",
        t.assistant
    ))
    .await;
    assert_eq!(
        feedback.as_array().unwrap().len(),
        1,
        "the seeded rating: {feedback}"
    );
    assert_eq!(
        get(format!("analytics/feedback?assistant_id={}", x.bella)).await,
        json!([])
    );
    assert_eq!(
        get(format!(
            "analytics/feedback?provider=anthropic&from={today}&to={today}"
        ))
        .await,
        json!([])
    );
    let entered = |funnel: Value| -> i64 {
        funnel
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["conversations"].as_i64().unwrap())
            .sum()
    };
    let all = entered(get("analytics/funnel?flow=ari_sales".into()).await);
    let bellas = entered(
        get(format!(
            "analytics/funnel?flow=ari_sales&assistant_id={}&from={today}&to={today}",
            x.bella
        ))
        .await,
    );
    assert_eq!(bellas, 1, "Bella's one conversation, in its first state");
    assert!(all > bellas, "{all}");
    assert_eq!(
        entered(
            get(format!(
                "analytics/funnel?flow=ari_sales&assistant_id={}",
                other.assistant
            ))
            .await
        ),
        0
    );
    assert_eq!(
        entered(get("analytics/funnel?flow=ari_sales&from=2020-01-01&to=2020-01-01".into()).await),
        0
    );

    // Bad periods and filters: 422 on the field, nothing else.
    for (query, fields) in [
        (
            "usage/daily?days=7&from=2026-01-01&to=2026-01-02",
            vec!["days"],
        ),
        ("usage/daily?from=2026-01-02&to=2026-01-01", vec!["from"]),
        ("usage/daily?from=2026-01-02", vec!["to"]),
        ("analytics/providers?to=2026-01-02", vec!["from"]),
        (
            "analytics/top?by=users&from=2025-01-01&to=2026-01-02",
            vec!["to"],
        ),
        ("usage/monthly?from=2023-01-01&to=2026-01-01", vec!["to"]),
        (
            "usage/monthly?months=2&from=2026-01-01&to=2026-01-01",
            vec!["months"],
        ),
        (
            "usage/daily?from=2026-13-01&to=2026-01-01T00:00:00Z",
            vec!["from", "to"],
        ),
        (
            "usage/today?provider=%20&assistant_id=ARI",
            vec!["assistant_id", "provider"],
        ),
        (
            "analytics/funnel?flow=ari_sales&assistant_id=1&days=0",
            vec!["assistant_id", "days"],
        ),
        (
            "analytics/feedback?by=colour&from=x&to=2026-01-01",
            vec!["by", "from"],
        ),
    ] {
        let r = app
            .get(&format!("/v1/tenants/acme/{query}"), &t.owner_token)
            .await;
        assert_eq!(r.status, 422, "{query}: {}", r.text);
        let mut got = r.error_fields();
        got.sort();
        assert_eq!(got, fields, "{query}: {}", r.text);
    }
    // Usage events: between two times (RFC 3339, both included), of one assistant or provider.
    let events = |query: String| {
        let (app, token) = (&app, t.owner_token.clone());
        async move {
            let r = app
                .get(&format!("/v1/tenants/acme/usage/events?{query}"), &token)
                .await;
            assert_eq!(r.status, 200, "{query}: {}", r.text);
            r.body["data"].as_array().unwrap().clone()
        }
    };
    let ari = events(format!("assistant_id={}", t.assistant)).await;
    assert_eq!(ari.len(), 1, "the seeded embedding: {ari:?}");
    let at = ari[0]["created_at"].as_str().unwrap().to_owned();
    assert_eq!(events("provider=OpenAI".into()).await, ari);
    assert_eq!(
        events(format!("from={at}&to={at}&provider=openai")).await,
        ari
    );
    assert_eq!(
        events(format!("assistant_id={}", other.assistant)).await,
        Vec::<Value>::new()
    );
    assert!(events("to=2020-01-01T00:00:00Z".into()).await.is_empty());
    assert_eq!(
        events("from=2020-01-01T00:00:00Z".into()).await.len(),
        3,
        "the seeded events, the one past the daily limit included (a fact is stored)"
    );
    for (query, fields) in [
        (
            "from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z",
            vec!["from"],
        ),
        (
            "from=2026-01-01&limit=0&provider=%20",
            vec!["from", "limit", "provider"],
        ),
    ] {
        let r = app
            .get(
                &format!("/v1/tenants/acme/usage/events?{query}"),
                &t.owner_token,
            )
            .await;
        assert_eq!(r.status, 422, "{query}: {}", r.text);
        let mut got = r.error_fields();
        got.sort();
        assert_eq!(got, fields, "{query}: {}", r.text);
    }

    // The funnel has no provider.
    assert_eq!(
        app.get(
            "/v1/tenants/acme/analytics/funnel?flow=ari_sales&provider=openai",
            &t.owner_token
        )
        .await
        .status,
        422
    );
}

#[tokio::test]
async fn top_ranks_contacts_and_conversations_and_names_every_row() {
    let app = spawn_app().await;
    let t = seed_tenant(&app, "acme").await;
    let other = seed_tenant(&app, "other").await;
    let x = two_assistants(&app, &t).await;
    let top = |query: String, token: String| {
        let app = &app;
        async move {
            let r = app
                .get(&format!("/v1/tenants/acme/analytics/top?{query}"), &token)
                .await;
            assert_eq!(r.status, 200, "{query}: {}", r.text);
            r.body.as_array().unwrap().clone()
        }
    };
    let owner = t.owner_token.clone();
    let row = |rows: &[Value], id: Uuid| -> Value {
        rows.iter()
            .find(|r| r["id"] == json!(id))
            .cloned()
            .unwrap_or_else(|| panic!("no {id} in {rows:?}"))
    };

    let assistants = top("by=assistants".into(), owner.clone()).await;
    assert_eq!(row(&assistants, x.bella)["name"], "Bella");
    assert_eq!(row(&assistants, t.assistant)["name"], "ARI");
    let users = top("by=users".into(), owner.clone()).await;
    assert_eq!(row(&users, t.agent)["name"], "agent@acme.test");
    assert_eq!(
        decimal(&row(&users, t.agent)["cost_usd"]),
        "0.1".parse().unwrap()
    );
    assert_eq!(row(&users, t.member)["name"], "member@acme.test");
    // A member sees their own row, with their own name.
    let mine = top("by=users".into(), t.member_token.clone()).await;
    assert_eq!(mine.len(), 1, "{mine:?}");
    assert_eq!(mine[0]["name"], "member@acme.test");

    // Contacts: Budi has the seeded message (0.0004, 19 tokens), the seeded embedding
    // event (0.0001, 5000 tokens) and ARI's 0.25 (10 tokens); Sari, Bella's 0.5.
    let contacts = top("by=contacts".into(), owner.clone()).await;
    let budi = row(&contacts, t.contact);
    assert_eq!(budi["name"], "Budi");
    assert_eq!(budi["request_count"], 3);
    assert_eq!(budi["total_tokens"], 5029);
    assert_eq!(decimal(&budi["cost_usd"]), "0.2505".parse().unwrap());
    assert_eq!(
        contacts[0]["id"],
        json!(x.sari),
        "most expensive first: {contacts:?}"
    );
    assert_eq!(contacts[0]["name"], "Sari");
    let nobody = contacts
        .iter()
        .find(|r| r["id"].is_null())
        .expect("conversations without a contact");
    assert_eq!(
        decimal(&nobody["cost_usd"]),
        "0.1".parse().unwrap(),
        "the agent's"
    );
    // Conversations: the title, or the contact's name.
    let conversations = top("by=conversations&limit=100".into(), owner.clone()).await;
    assert_eq!(row(&conversations, t.conversation)["name"], "Trip to Bali");
    assert_eq!(row(&conversations, x.bella_conversation)["name"], "Sari");
    assert_eq!(
        row(&conversations, x.agent_conversation)["name"],
        "Agent's own"
    );
    assert_eq!(
        decimal(&row(&conversations, t.conversation)["cost_usd"]),
        "0.2505".parse().unwrap()
    );
    assert_eq!(
        top("by=conversations&limit=1".into(), owner.clone())
            .await
            .len(),
        1
    );

    // Filters and periods apply to the raw rows as to the rollups.
    let bellas = top(
        format!("by=contacts&assistant_id={}", x.bella),
        owner.clone(),
    )
    .await;
    assert_eq!(bellas.len(), 1);
    assert_eq!(bellas[0]["id"], json!(x.sari));
    let openai = top("by=conversations&provider=OPENAI".into(), owner.clone()).await;
    assert!(
        openai
            .iter()
            .all(|r| r["id"] != json!(x.bella_conversation)),
        "{openai:?}"
    );
    assert_eq!(
        decimal(&row(&openai, t.conversation)["cost_usd"]),
        "0.2505".parse().unwrap()
    );
    assert!(
        top(
            format!("by=contacts&assistant_id={}", other.assistant),
            owner.clone()
        )
        .await
        .is_empty()
    );
    assert!(
        top(
            "by=conversations&from=2020-01-01&to=2020-12-31".into(),
            owner.clone()
        )
        .await
        .is_empty()
    );
    let today = app.get("/v1/tenants/acme/usage/today", &owner).await.body["period"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        top(
            format!("by=contacts&from={today}&to={today}"),
            owner.clone()
        )
        .await,
        contacts
    );

    // A member sees no contact, and only their own conversation.
    let theirs = top("by=contacts".into(), t.member_token.clone()).await;
    assert!(
        theirs
            .iter()
            .all(|r| r["id"].is_null() && r["name"].is_null()),
        "{theirs:?}"
    );
    let theirs = top("by=conversations".into(), t.member_token.clone()).await;
    assert!(
        theirs
            .iter()
            .all(|r| r["id"] == json!(t.member_conversation)),
        "{theirs:?}"
    );
    // B's owner sees nothing of A's.
    assert_eq!(
        app.get(
            "/v1/tenants/acme/analytics/top?by=contacts",
            &other.owner_token
        )
        .await
        .status,
        403
    );

    let csv = get_csv(&app, "/v1/tenants/acme/analytics/top?by=contacts", &owner).await;
    assert!(csv.content_type().starts_with("text/csv"));
    assert!(
        csv.text
            .starts_with("id,name,request_count,total_tokens,cost_usd\r\n"),
        "{}",
        csv.text
    );
    assert!(
        csv.text
            .contains(&format!("{},Budi,3,5029,0.2505\r\n", t.contact)),
        "{}",
        csv.text
    );
}

#[tokio::test]
async fn usage_routes_answer_csv_too() {
    let app = spawn_app().await;
    let t = seed_tenant(&app, "acme").await;
    const HEADER: &str = "period,request_count,message_count,user_messages,assistant_messages,prompt_tokens,completion_tokens,total_tokens,cost_usd,unpriced_count\r\n";
    let today = app
        .get("/v1/tenants/acme/usage/today", &t.owner_token)
        .await
        .body;
    let csv = get_csv(&app, "/v1/tenants/acme/usage/today", &t.owner_token).await;
    assert_eq!(csv.status, 200);
    assert!(
        csv.content_type().starts_with("text/csv"),
        "{}",
        csv.content_type()
    );
    let line = format!(
        "{},{},{},{},{},{},{},{},{},{}\r\n",
        today["period"].as_str().unwrap(),
        today["request_count"],
        today["message_count"],
        today["user_messages"],
        today["assistant_messages"],
        today["prompt_tokens"],
        today["completion_tokens"],
        today["total_tokens"],
        today["cost_usd"].as_str().unwrap(),
        today["unpriced_count"]
    );
    assert_eq!(csv.text, format!("{HEADER}{line}"));
    let daily = get_csv(&app, "/v1/tenants/acme/usage/daily?days=5", &t.owner_token).await;
    assert!(
        daily.text.starts_with(HEADER) && daily.text.ends_with(&line),
        "{}",
        daily.text
    );
    assert_eq!(daily.text.lines().count(), 6);
    let monthly = get_csv(
        &app,
        "/v1/tenants/acme/usage/monthly?months=2",
        &t.owner_token,
    )
    .await;
    assert!(monthly.text.starts_with(HEADER), "{}", monthly.text);
    assert_eq!(monthly.text.lines().count(), 3);
    // Without Accept: JSON, as before.
    let json_today = app
        .get("/v1/tenants/acme/usage/today", &t.owner_token)
        .await;
    assert_eq!(json_today.content_type(), "application/json");

    // Events: a page as CSV, the next page's cursor in Next-Cursor.
    let first = get_csv(
        &app,
        "/v1/tenants/acme/usage/events?limit=1",
        &t.owner_token,
    )
    .await;
    assert_eq!(first.status, 200);
    assert!(
        first
            .text
            .starts_with("id,user_id,assistant_id,conversation_id,provider,model,"),
        "{}",
        first.text
    );
    assert_eq!(first.text.lines().count(), 2, "{}", first.text);
    let cursor = first.headers["next-cursor"].to_str().unwrap().to_owned();
    let json_first = app
        .get("/v1/tenants/acme/usage/events?limit=1", &t.owner_token)
        .await;
    assert_eq!(json_first.body["next_cursor"], json!(cursor));
    let second = get_csv(
        &app,
        &format!("/v1/tenants/acme/usage/events?limit=1&cursor={cursor}"),
        &t.owner_token,
    )
    .await;
    assert_eq!(second.status, 200, "{}", second.text);
    assert_ne!(second.text, first.text);
    let all = get_csv(&app, "/v1/tenants/acme/usage/events", &t.owner_token).await;
    assert!(all.headers.get("next-cursor").is_none(), "the last page");
}
