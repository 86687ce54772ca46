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
