//! Pricing: dated and versioned model names priced from the longest price-list name they
//! extend, cached and reasoning tokens, the models seen without a price, and the recost
//! of a window after a back-dated price, exact under parallel writes.

use frontdesk_test::{TestApp, fixtures::seed_tenant, post_all, spawn_app, spawn_app_on};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use uuid::Uuid;

fn decimal(v: &Value) -> Decimal {
    v.as_str()
        .unwrap_or_else(|| panic!("not a decimal string: {v}"))
        .parse()
        .unwrap()
}

fn dec(s: &str) -> Decimal {
    s.parse().unwrap()
}

#[tokio::test]
async fn dated_model_names_are_priced_from_the_longest_price_list_name_they_extend() {
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
    let message = |provider: &str, model: &str| {
        json!({"role": "assistant", "content": "a", "provider": provider, "model": model,
               "prompt_tokens": 1000, "completion_tokens": 500})
    };

    // claude-3-5-haiku: 0.80 in, 4.00 out per million tokens.
    let haiku = post(message("anthropic", "claude-3-5-haiku-20241022")).await;
    assert_eq!(decimal(&haiku["cost_usd"]), dec("0.0028"));
    assert_eq!(haiku["cost_source"], "catalog_prefix");
    assert_eq!(haiku["priced_model"], "claude-3-5-haiku");
    assert_eq!(
        haiku["model"], "claude-3-5-haiku-20241022",
        "the model is kept as sent"
    );
    // gpt-4o-mini-2024-07-18 is gpt-4o-mini (0.15/0.60), never gpt-4o.
    let mini = post(message("openai", "gpt-4o-mini-2024-07-18")).await;
    assert_eq!(decimal(&mini["cost_usd"]), dec("0.00045"));
    assert_eq!(mini["priced_model"], "gpt-4o-mini");
    // Versions: Gemini's -001, Bedrock-style -v2:0 after a date.
    let flash = post(message("google", "gemini-2.0-flash-001")).await;
    assert_eq!(flash["priced_model"], "gemini-2.0-flash");
    let sonnet = post(message("anthropic", "claude-3-5-sonnet-20241022-v2:0")).await;
    assert_eq!(sonnet["priced_model"], "claude-3-5-sonnet");
    assert_eq!(decimal(&sonnet["cost_usd"]), dec("0.0105"));
    // An exact name is `catalog`.
    let exact = post(message("openai", "gpt-4o")).await;
    assert_eq!(exact["cost_source"], "catalog");
    assert_eq!(exact["priced_model"], "gpt-4o");
    // Another model, not a date or version: unpriced.
    for model in [
        "claude-sonnet-4-5-20250929",
        "gpt-4o-mini-tts",
        "claude-3-5-haiku-latest",
    ] {
        let other = post(message("anthropic", model)).await;
        assert_eq!(other["cost_source"], "unpriced", "{model}");
        assert!(other["priced_model"].is_null());
        assert_eq!(decimal(&other["cost_usd"]), Decimal::ZERO);
    }
    // The provider is part of the name: an Anthropic model name under OpenAI is unpriced.
    let elsewhere = post(message("openai", "claude-3-5-haiku-20241022")).await;
    assert_eq!(elsewhere["cost_source"], "unpriced");

    // A tenant's price of the same length wins over the catalog's; a longer name wins
    // over a shorter one.
    for (model, input) in [("gpt-4o-mini", "1"), ("claude-3-5-haiku-2024", "2")] {
        let provider = if model.starts_with("gpt") {
            "openai"
        } else {
            "anthropic"
        };
        let price = app
            .post("/v1/tenants/acme/prices", &t.owner_token,
                  json!({"provider": provider, "model": model, "input_usd_per_mtok": input, "output_usd_per_mtok": "0"}))
            .await;
        assert_eq!(price.status, 201, "{}", price.text);
    }
    let own = post(message("openai", "gpt-4o-mini-2024-07-18")).await;
    assert_eq!(decimal(&own["cost_usd"]), dec("0.001"));
    assert_eq!(own["priced_model"], "gpt-4o-mini");
    // `claude-3-5-haiku-20241022` does not extend the tenant's `claude-3-5-haiku-2024` (a
    // segment starts with - or @), but `claude-3-5-haiku-2024-1022` extends both names:
    // the longer wins.
    let haiku_again = post(message("anthropic", "claude-3-5-haiku-20241022")).await;
    assert_eq!(haiku_again["priced_model"], "claude-3-5-haiku");
    let longer = post(message("anthropic", "claude-3-5-haiku-2024-1022")).await;
    assert_eq!(longer["priced_model"], "claude-3-5-haiku-2024");
    assert_eq!(decimal(&longer["cost_usd"]), dec("0.002"));

    // Cached tokens are a part of the prompt, at the cached-input price (gpt-4o: 2.50 in,
    // 1.25 cached, 10.00 out); reasoning tokens a part of the completion, at its price.
    let cached = post(json!({"role": "assistant", "content": "c", "provider": "openai",
                             "model": "gpt-4o-2024-08-06", "prompt_tokens": 1000, "cached_tokens": 400,
                             "completion_tokens": 100, "reasoning_tokens": 60}))
    .await;
    assert_eq!(decimal(&cached["cost_usd"]), dec("0.003"));
    assert_eq!(
        (
            cached["cached_tokens"].as_i64(),
            cached["reasoning_tokens"].as_i64()
        ),
        (Some(400), Some(60))
    );
    assert_eq!(
        cached["total_tokens"], 1100,
        "parts are not added to the totals"
    );
    // A model without a cached-input price prices cached tokens as input.
    let turbo = post(json!({"role": "assistant", "content": "c", "provider": "openai",
                            "model": "gpt-3.5-turbo-0125", "prompt_tokens": 1000, "cached_tokens": 1000}))
    .await;
    assert_eq!(decimal(&turbo["cost_usd"]), dec("0.0005"));
    let bad = app
        .post(
            &path,
            &t.full_key,
            json!({"role": "assistant", "content": "x", "prompt_tokens": 10, "cached_tokens": 11,
                     "reasoning_tokens": 1}),
        )
        .await;
    assert_eq!(bad.status, 422, "{}", bad.text);
    assert_eq!(bad.error_fields(), ["cached_tokens", "reasoning_tokens"]);

    // Usage events and limit checks price the same way.
    let event = app
        .post("/v1/tenants/acme/usage", &t.full_key,
              json!({"provider": "anthropic", "model": "claude-3-5-haiku-20241022", "prompt_tokens": 1000,
                     "cached_tokens": 1000}))
        .await;
    assert_eq!(event.status, 201, "{}", event.text);
    assert_eq!(event.body["cost_source"], "catalog_prefix");
    assert_eq!(event.body["priced_model"], "claude-3-5-haiku");
    assert_eq!(decimal(&event.body["cost_usd"]), dec("0.00008"));
    let bad_event = app
        .post("/v1/tenants/acme/usage", &t.full_key,
              json!({"provider": "openai", "model": "gpt-4o", "completion_tokens": 5, "cached_tokens": 1}))
        .await;
    assert_eq!(bad_event.status, 422);
    assert_eq!(bad_event.error_fields(), ["cached_tokens"]);
    let check = app
        .post(
            "/v1/tenants/acme/limits/check",
            &t.full_key,
            json!({"provider": "openai", "model": "gpt-4o-mini-2024-07-18", "prompt_tokens": 1000,
                     "reserve": true, "ttl_seconds": 60}),
        )
        .await;
    assert_eq!(check.status, 201, "{}", check.text);
    assert_eq!(check.body["cost_source"], "catalog_prefix");

    // The models seen without a price, with counts, from the rollups.
    let unpriced = app
        .get("/v1/tenants/acme/usage/unpriced", &t.agent_token)
        .await;
    assert_eq!(unpriced.status, 200, "{}", unpriced.text);
    let rows = unpriced.body.as_array().unwrap();
    let count = |provider: &str, model: &str| {
        rows.iter()
            .find(|r| r["provider"] == provider && r["model"] == model)
            .map(|r| r["unpriced_count"].as_i64().unwrap())
    };
    assert_eq!(count("anthropic", "claude-sonnet-4-5-20250929"), Some(1));
    assert_eq!(count("openai", "claude-3-5-haiku-20241022"), Some(1));
    assert_eq!(count("anthropic", "claude-3-5-haiku-20241022"), None);
    let today = app
        .get("/v1/tenants/acme/usage/today", &t.owner_token)
        .await;
    assert_eq!(
        rows.iter()
            .map(|r| r["unpriced_count"].as_i64().unwrap())
            .sum::<i64>(),
        today.body["unpriced_count"].as_i64().unwrap()
    );
    assert!(rows.iter().all(|r| r["first_day"] == r["last_day"]));

    // The same list as CSV, a line per model, in the same order.
    let csv = frontdesk_test::Reply::of(
        app.http
            .get(format!("{}/v1/tenants/acme/usage/unpriced", app.base))
            .bearer_auth(&t.agent_token)
            .header("accept", "text/csv"),
    )
    .await;
    assert_eq!(csv.status, 200, "{}", csv.text);
    let mut lines = csv.text.split("\r\n");
    assert_eq!(
        lines.next(),
        Some("provider,model,unpriced_count,first_day,last_day")
    );
    for row in rows {
        let line = format!(
            "{},{},{},{},{}",
            row["provider"].as_str().unwrap_or(""),
            row["model"].as_str().unwrap_or(""),
            row["unpriced_count"],
            row["first_day"].as_str().unwrap(),
            row["last_day"].as_str().unwrap()
        );
        assert_eq!(lines.next(), Some(line.as_str()));
    }
    assert_eq!(lines.collect::<Vec<_>>(), [""]);
}

/// Facts whose stored cost is not what their price gives now, totals that differ from
/// their facts: each check is a count of mismatches, all of which must be 0. (The limit
/// state counts the month's cost only while the tenant has a budget.)
async fn mismatches(app: &TestApp, tenant: Uuid) -> Vec<(&'static str, i64)> {
    let admin = app.db.admin().await;
    let checks: [(&str, &str); 6] = [
        ("messages priced", "select count(*) from app.messages m
            cross join lateral app.tokens_cost(m.tenant_id, m.provider, m.model, m.created_at, m.prompt_tokens,
                                               m.completion_tokens, m.cached_tokens) c
          where m.tenant_id = $1 and m.cost_source <> 'provided'
            and (c.cost_usd <> m.cost_usd or c.cost_source <> m.cost_source
                 or c.priced_model is distinct from m.priced_model)"),
        ("usage events priced", "select count(*) from app.usage_events e
            cross join lateral app.tokens_cost(e.tenant_id, e.provider, e.model, e.created_at, e.prompt_tokens,
                                               e.completion_tokens, e.cached_tokens) c
          where e.tenant_id = $1 and e.cost_source <> 'provided' and e.unit is null
            and (c.cost_usd <> e.cost_usd or c.cost_source <> e.cost_source)"),
        ("conversation totals", "select count(*) from app.conversations c
          where c.tenant_id = $1 and c.cost_usd <> (select coalesce(sum(m.cost_usd), 0) from app.messages m
                                                    where m.tenant_id = c.tenant_id and m.conversation_id = c.id)"),
        ("rollup rows", "with facts as (
              select m.rollup_id, m.cost_usd, (m.cost_source = 'unpriced')::int as unpriced
                from app.messages m where m.tenant_id = $1
              union all
              select e.rollup_id, e.cost_usd, (e.cost_source = 'unpriced')::int
                from app.usage_events e where e.tenant_id = $1),
            sums as (select rollup_id, sum(coalesce(cost_usd, 0)) as cost_usd,
                            sum(coalesce(unpriced, 0)) as unpriced from facts group by rollup_id)
          select count(*) from app.usage_daily u full join sums s on s.rollup_id = u.id
           where (u.tenant_id = $1 or u.id is null)
             and (u.id is null or s.rollup_id is null or u.cost_usd <> s.cost_usd
                  or u.unpriced_count <> s.unpriced)"),
        ("rollup totals", "select ((select sum(cost_usd) from app.usage_daily where tenant_id = $1)
                   <> (select coalesce(sum(cost_usd), 0) from app.messages where tenant_id = $1)
                      + (select coalesce(sum(cost_usd), 0) from app.usage_events where tenant_id = $1))::int::bigint"),
        ("month cost in the limit state", "select count(*) from app.limit_state x
           join app.tenants t on t.id = x.tenant_id
          where x.tenant_id = $1 and t.monthly_budget_usd is not null
            and x.month_used <> (select coalesce(sum(u.cost_usd), 0) from app.usage_daily u
                                  where u.tenant_id = x.tenant_id
                                    and u.day >= (x.month_start at time zone t.timezone)::date
                                    and u.day < ((x.month_start at time zone t.timezone) + interval '1 month')::date)
                                + (select coalesce(sum(r.cost_usd), 0) from app.limit_reservations r
                                    where r.tenant_id = x.tenant_id and r.status = 'active'
                                      and r.month_window = x.month_start)"),
    ];
    let mut found = Vec::new();
    for (name, sql) in checks {
        let n: i64 = admin.query_one(sql, &[&tenant]).await.unwrap().get(0);
        found.push((name, n));
    }
    found
}

fn assert_consistent(found: &[(&str, i64)]) {
    assert!(found.iter().all(|(_, n)| *n == 0), "mismatches: {found:?}");
}

#[tokio::test]
async fn recost_after_a_back_dated_price_corrects_every_total_under_parallel_writes() {
    let app = spawn_app().await;
    let second = spawn_app_on(&app.db).await;
    let t = seed_tenant(&app, "acme").await;
    let other = seed_tenant(&app, "other").await;
    // A budget, so that the limit state counts the month's cost.
    let budget = app
        .patch(
            "/v1/tenants/acme",
            &t.owner_token,
            json!({"monthly_budget_usd": "100000"}),
        )
        .await;
    assert_eq!(budget.status, 200, "{}", budget.text);
    let started = app
        .db
        .admin()
        .await
        .query_one("select now() - interval '1 minute'", &[])
        .await
        .unwrap()
        .get::<_, chrono::DateTime<chrono::Utc>>(0);
    let mut conversations = Vec::new();
    for i in 0..4 {
        let c = app
            .post(
                "/v1/tenants/acme/conversations",
                &t.full_key,
                json!({"assistant_id": t.assistant, "title": format!("c{i}")}),
            )
            .await;
        assert_eq!(c.status, 201, "{}", c.text);
        conversations.push(c.body["id"].as_str().unwrap().to_owned());
    }
    let writes = |n: usize, tag: &str| -> Vec<frontdesk_test::Post> {
        (0..n)
            .map(|i| {
                let server = if i % 2 == 0 { &app } else { &second };
                let (provider, model) = [("anthropic", "claude-3-5-haiku-20241022"), ("acme-ai", "x-1"),
                                         ("openai", "gpt-4o"), ("anthropic", "claude-3-5-haiku")][i % 4];
                let mut body = json!({"provider": provider, "model": model, "prompt_tokens": 100 + i,
                                      "cached_tokens": i % 50, "completion_tokens": 3 * i % 101});
                if i % 7 == 0 {
                    body["cost_usd"] = json!("0.5");
                }
                if i % 5 == 4 {
                    server.post_to("/v1/tenants/acme/usage", &t.full_key, body)
                } else {
                    body["role"] = json!("assistant");
                    body["content"] = json!(format!("{tag}{i}"));
                    server.post_to(&format!("/v1/tenants/acme/conversations/{}/messages", conversations[i % 4]),
                                   &t.full_key, body)
                }
            })
            .collect()
    };
    for reply in post_all(&app.http, writes(400, "a")).await {
        assert_eq!(reply.status, 201, "{}", reply.text);
    }
    // The other tenant's facts of the same models, which no recost of acme may touch.
    let theirs = app
        .post(&format!("/v1/tenants/other/conversations/{}/messages", other.conversation), &other.full_key,
              json!({"role": "assistant", "content": "x", "provider": "acme-ai", "model": "x-1", "prompt_tokens": 1000}))
        .await;
    assert_eq!(theirs.status, 201);
    assert_consistent(&mismatches(&app, t.id).await);
    let before: Decimal = decimal(
        &app.get("/v1/tenants/acme/usage/today", &t.owner_token)
            .await
            .body["cost_usd"],
    );
    let unpriced_before = app
        .get("/v1/tenants/acme/usage/unpriced", &t.owner_token)
        .await
        .body;
    assert!(
        unpriced_before
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["model"] == "x-1")
    );

    // Back-dated prices: the dated haiku's name (from a minute before the first write),
    // and x-1, which had none.
    for (provider, model, input) in [
        ("anthropic", "claude-3-5-haiku", "3"),
        ("acme-ai", "x-1", "7"),
    ] {
        let price = app
            .post(
                "/v1/tenants/acme/prices",
                &t.owner_token,
                json!({"provider": provider, "model": model, "input_usd_per_mtok": input,
                         "output_usd_per_mtok": "11", "cached_input_usd_per_mtok": "0.5",
                         "effective_from": started}),
            )
            .await;
        assert_eq!(price.status, 201, "{}", price.text);
    }
    let stale = mismatches(&app, t.id).await;
    assert!(
        stale[0].1 > 0 && stale[1].1 > 0,
        "the facts are priced at the old prices: {stale:?}"
    );

    // Who may, and what a window is.
    let body = json!({"from": started});
    assert_eq!(
        app.post(
            "/v1/tenants/acme/prices/recost",
            &t.agent_token,
            body.clone()
        )
        .await
        .status,
        403
    );
    assert_eq!(
        app.post("/v1/tenants/acme/prices/recost", &t.full_key, body.clone())
            .await
            .status,
        403
    );
    for (bad, field) in [
        (json!({}), "from"),
        (json!({"from": started, "to": started}), "to"),
        (json!({"from": "2999-01-01T00:00:00Z"}), "from"),
        (json!({"from": started, "provider": "Acme AI"}), "provider"),
        (json!({"from": started, "colour": 1}), "colour"),
    ] {
        let r = app
            .post("/v1/tenants/acme/prices/recost", &t.owner_token, bad)
            .await;
        assert_eq!(r.status, 422, "{}", r.text);
        assert_eq!(r.error_fields(), [field]);
    }
    // A window with one model only touches that model's facts.
    let narrow = app
        .post(
            "/v1/tenants/acme/prices/recost",
            &t.owner_token,
            json!({"from": started, "provider": "acme-ai", "model": "x-1"}),
        )
        .await;
    assert_eq!(narrow.status, 200, "{}", narrow.text);
    assert!(narrow.body["messages"].as_i64().unwrap() > 0);

    // The recost of everything, twice at once, while writes go on through both servers.
    let recost = |server: &TestApp| {
        server.post_to(
            "/v1/tenants/acme/prices/recost",
            &t.owner_token,
            json!({"from": started}),
        )
    };
    let mut batch = vec![recost(&app), recost(&second)];
    batch.extend(writes(200, "b"));
    let replies = post_all(&app.http, batch).await;
    for reply in &replies {
        assert!(
            reply.status == 200 || reply.status == 201,
            "{} {}",
            reply.status,
            reply.text
        );
    }
    // (the replies come in the order they finished: the recosts' have `limit_state`)
    let recosts: Vec<&Value> = replies
        .iter()
        .map(|r| &r.body)
        .filter(|b| b.get("limit_state").is_some())
        .collect();
    let [first, again] = recosts[..] else {
        panic!("two recost replies, not {}", recosts.len());
    };
    assert_consistent(&mismatches(&app, t.id).await);
    // Between them, each stale fact changed once.
    let stale_left: i64 = stale[0].1 + stale[1].1
        - narrow.body["messages"].as_i64().unwrap()
        - narrow.body["usage_events"].as_i64().unwrap();
    let changed = |r: &Value| r["messages"].as_i64().unwrap() + r["usage_events"].as_i64().unwrap();
    assert_eq!(
        changed(first) + changed(again),
        stale_left,
        "{first} {again}"
    );
    assert_eq!(
        first["limit_state"].as_i64().unwrap() + again["limit_state"].as_i64().unwrap(),
        1,
        "the month's cost moved once: {first} {again}"
    );
    let after: Decimal = decimal(
        &app.get("/v1/tenants/acme/usage/today", &t.owner_token)
            .await
            .body["cost_usd"],
    );
    assert!(after > before);
    let unpriced_after = app
        .get("/v1/tenants/acme/usage/unpriced", &t.owner_token)
        .await
        .body;
    assert!(
        !unpriced_after
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["model"] == "x-1"),
        "x-1 is priced now: {unpriced_after}"
    );
    // Client-provided costs stayed.
    let provided: i64 = app
        .db
        .admin()
        .await
        .query_one(
            "select count(*) from app.messages where tenant_id = $1 and content ~ '^[ab][0-9]+$'
               and (cost_source = 'provided') <> (cost_usd = 0.5)",
            &[&t.id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(provided, 0);
    // Once more: nothing left to change.
    let idle = app
        .post(
            "/v1/tenants/acme/prices/recost",
            &t.owner_token,
            json!({"from": started}),
        )
        .await;
    assert_eq!(idle.status, 200);
    for table in [
        "messages",
        "usage_events",
        "conversations",
        "usage_daily",
        "limit_state",
    ] {
        assert_eq!(idle.body[table], 0, "{}", idle.body);
    }
    assert_eq!(decimal(&idle.body["cost_usd_change"]), Decimal::ZERO);
    // The operator may recost a tenant's window too (nothing is left to change here).
    let by_operator = app
        .post(
            "/v1/tenants/acme/prices/recost",
            frontdesk_test::OPERATOR_TOKEN,
            json!({"from": started}),
        )
        .await;
    assert_eq!(by_operator.status, 200, "{}", by_operator.text);
    assert_eq!(by_operator.body["messages"], 0);
    // The other tenant's fact is as it was.
    let theirs_now = app
        .get(
            &format!(
                "/v1/tenants/other/conversations/{}/messages?limit=1",
                other.conversation
            ),
            &other.full_key,
        )
        .await;
    assert_eq!(theirs_now.body["data"][0]["cost_source"], "unpriced");
}

#[tokio::test]
async fn the_append_only_facts_refuse_cost_changes_outside_the_recost() {
    let app = spawn_app().await;
    let t = seed_tenant(&app, "acme").await;
    // Not even the operator's login may change a stored cost by hand.
    let operator = app
        .db
        .config_as("frontdesk_operator")
        .connect(tokio_postgres::NoTls)
        .await;
    let (client, conn) = operator.unwrap();
    tokio::spawn(conn);
    for sql in [
        "update app.messages set cost_usd = 1 where tenant_id = $1",
        "update app.usage_events set cost_usd = 1 where tenant_id = $1",
    ] {
        let e = client.execute(sql, &[&t.id]).await.unwrap_err();
        let message = e
            .as_db_error()
            .map(|d| d.message().to_owned())
            .unwrap_or_default();
        assert!(message.contains("append-only"), "{e:?}");
    }
}

/// The usage events' append-only trigger lets the owner change their cost columns (the
/// recost) and null a reference to a member who leaves (app.memberships_release): the
/// member's deletion goes through, the event keeps its cost and its rollup row.
#[tokio::test]
async fn a_member_who_recorded_usage_can_leave_and_the_usage_stays() {
    let app = spawn_app().await;
    let t = seed_tenant(&app, "acme").await;
    let event = app
        .post(
            "/v1/tenants/acme/usage",
            &t.full_key,
            json!({"user_id": t.member, "provider": "openai", "model": "gpt-4o", "prompt_tokens": 1000}),
        )
        .await;
    assert_eq!(event.status, 201, "{}", event.text);
    let today = app
        .get("/v1/tenants/acme/usage/today", &t.owner_token)
        .await
        .body;
    let gone = app
        .delete(
            &format!("/v1/tenants/acme/members/{}", t.member),
            &t.owner_token,
        )
        .await;
    assert_eq!(gone.status, 204, "{}", gone.text);
    let id: Uuid = event.body["id"].as_str().unwrap().parse().unwrap();
    let row = app
        .db
        .admin()
        .await
        .query_one(
            "select user_id, cost_usd, rollup_id is not null from app.usage_events where tenant_id = $1 and id = $2",
            &[&t.id, &id],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, Option<Uuid>>(0), None);
    assert_eq!(row.get::<_, Decimal>(1).normalize(), dec("0.0025"));
    assert!(row.get::<_, bool>(2));
    assert_eq!(
        app.get("/v1/tenants/acme/usage/today", &t.owner_token)
            .await
            .body,
        today
    );
    assert_consistent(&mismatches(&app, t.id).await);
}
