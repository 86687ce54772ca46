//! One journey through the real API, reusable in every setting (one server; several
//! servers on one database; through PgBouncer; on a Citus cluster): two tenants, 200
//! parallel messages to one conversation with exact counters, rollups, limits and events,
//! history, search, analytics and feedback, a limit refusing with 429 (and a fact past it stored and flagged), webhooks delivered
//! to a loopback receiver and verified, and cross-tenant attempts that change nothing.
//!
//! `run(&[&one, &two])` spreads its requests over the servers it is given (all on one
//! database) and asserts exactly; it returns a [`Report`] of what it did.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    fmt,
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use base64::Engine;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{
    Post, Reply, TestApp,
    fixtures::{Seeded, seed_tenant},
    post_all,
    receiver::{Received, Receiver},
    tenant_snapshot,
    wait::wait_until,
};

/// How many messages the journey sends in parallel to one conversation.
pub const MESSAGES: usize = 200;

/// How long the journey waits for the 200 webhooks.
const WEBHOOK_WAIT: Duration = Duration::from_secs(120);

/// What a journey did.
#[derive(Debug, Clone)]
pub struct Report {
    pub tenant_a: Uuid,
    pub tenant_b: Uuid,
    /// A's conversation that got the parallel messages.
    pub conversation: Uuid,
    pub messages: usize,
    /// `message.created` events of that conversation in A's event log.
    pub events: usize,
    /// Webhooks the receiver accepted, each with a verified signature.
    pub webhooks: usize,
    /// Cross-tenant requests made, every one refused.
    pub cross_tenant_attempts: usize,
    /// Requests the journey sent to each server, in the order given (the fixtures' not
    /// counted: A's are seeded through the first server, B's through the last).
    pub requests_per_server: Vec<usize>,
    /// Each step and how long it took (for the report only: nothing is asserted on time).
    pub steps: Vec<(&'static str, Duration)>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "journey: {} messages, {} events, {} webhooks, {} cross-tenant attempts refused; requests per server {:?}",
            self.messages,
            self.events,
            self.webhooks,
            self.cross_tenant_attempts,
            self.requests_per_server
        )?;
        for (step, took) in &self.steps {
            writeln!(f, "  {step}: {took:?}")?;
        }
        Ok(())
    }
}

/// The servers of one database, taken in turn.
struct Servers<'a> {
    apps: &'a [&'a TestApp],
    next: AtomicUsize,
    counts: Vec<AtomicUsize>,
}

impl<'a> Servers<'a> {
    fn new(apps: &'a [&'a TestApp]) -> Self {
        assert!(!apps.is_empty(), "a journey needs at least one server");
        Self {
            apps,
            next: AtomicUsize::new(0),
            counts: apps.iter().map(|_| AtomicUsize::new(0)).collect(),
        }
    }

    /// The next server in turn.
    fn next(&self) -> &'a TestApp {
        let i = self.next.fetch_add(1, Ordering::SeqCst) % self.apps.len();
        self.counts[i].fetch_add(1, Ordering::SeqCst);
        self.apps[i]
    }

    /// Count `n` requests sent to server `i` outside `next` (fixtures, batches).
    fn count(&self, i: usize, n: usize) {
        self.counts[i].fetch_add(n, Ordering::SeqCst);
    }

    async fn get(&self, path: &str, token: &str) -> Reply {
        let reply = self.next().get(path, token).await;
        assert_eq!(reply.status, 200, "GET {path}: {}", reply.text);
        reply
    }

    async fn call(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> Reply {
        self.next()
            .call(method, path, Some(token), body.as_ref())
            .await
    }
}

/// A decimal string of the API.
fn decimal(v: &Value) -> Decimal {
    v.as_str()
        .unwrap_or_else(|| panic!("not a decimal string: {v}"))
        .parse()
        .unwrap_or_else(|e| panic!("not a decimal: {v}: {e}"))
}

fn uuid(v: &Value) -> Uuid {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a uuid: {v}"))
}

/// Percent-encoding for a query value (cursors, search words).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// What message `i` of the 200 is. Even: a user message of model `jm-given` with its cost
/// given; odd: an assistant message of `jm-1`, costed from A's own price (2 USD in, 4 USD
/// out per million tokens). Every tenth mentions snorkeling, the others paperwork.
struct Sent {
    role: &'static str,
    model: &'static str,
    prompt: i64,
    completion: i64,
    /// USD millionths.
    cost_micros: i64,
    content: String,
}

fn sent(i: usize) -> Sent {
    let n = i as i64;
    let word = if i.is_multiple_of(10) {
        "snorkeling"
    } else {
        "paperwork"
    };
    let content = format!("journey note {i} about {word}");
    if i.is_multiple_of(2) {
        Sent {
            role: "user",
            model: "jm-given",
            prompt: 100 + n,
            completion: 0,
            cost_micros: n + 1,
            content,
        }
    } else {
        Sent {
            role: "assistant",
            model: "jm-1",
            prompt: 100 + n,
            completion: 3 * n,
            cost_micros: 2 * (100 + n) + 4 * (3 * n),
            content,
        }
    }
}

fn micros(m: i64) -> Decimal {
    Decimal::new(m, 6)
}

/// Totals of a set of sent messages.
#[derive(Default, Debug, PartialEq)]
struct Totals {
    messages: i64,
    user: i64,
    assistant: i64,
    prompt: i64,
    completion: i64,
    cost_micros: i64,
}

impl Totals {
    fn of(ids: impl Iterator<Item = usize>) -> Self {
        let mut t = Totals::default();
        for i in ids {
            let s = sent(i);
            t.messages += 1;
            if s.role == "user" {
                t.user += 1;
            } else {
                t.assistant += 1;
            }
            t.prompt += s.prompt;
            t.completion += s.completion;
            t.cost_micros += s.cost_micros;
        }
        t
    }

    fn tokens(&self) -> i64 {
        self.prompt + self.completion
    }

    fn cost(&self) -> Decimal {
        micros(self.cost_micros)
    }
}

/// The Standard Webhooks signature `v1,<base64 HMAC-SHA256>` of a delivery, computed
/// here (not with the server's code) from the endpoint's `whsec_` secret.
fn standard_webhooks_signature(secret: &str, id: &str, timestamp: &str, body: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = b64
        .decode(secret.strip_prefix("whsec_").expect("a whsec_ secret"))
        .expect("a base64 secret");
    let mut message = format!("{id}.{timestamp}.").into_bytes();
    message.extend_from_slice(body);
    // HMAC (RFC 2104) over SHA-256, block size 64.
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(&key));
    } else {
        block[..key.len()].copy_from_slice(&key);
    }
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(&message)
        .finalize();
    let outer = Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize();
    format!("v1,{}", b64.encode(outer))
}

fn verified(r: &Received, secret: &str) -> bool {
    let expected = standard_webhooks_signature(
        secret,
        r.header("webhook-id"),
        r.header("webhook-timestamp"),
        &r.body,
    );
    r.header("webhook-signature")
        .split(' ')
        .any(|s| s == expected)
}

/// Assert `reply` is a refusal problem (403 or 404) that shows nothing of A.
fn assert_refused(reply: &Reply, what: &str) {
    let status = reply.status.as_u16();
    assert!(
        status == 403 || status == 404,
        "{what}: expected 403 or 404, got {status}: {}",
        reply.text
    );
    assert!(
        reply.content_type().starts_with("application/problem+json"),
        "{what}: not a problem: {} {}",
        reply.content_type(),
        reply.text
    );
    let kind = if status == 403 {
        "/problems/forbidden"
    } else {
        "/problems/not-found"
    };
    assert_eq!(reply.body["type"], kind, "{what}: {}", reply.text);
    assert_eq!(reply.body["status"], status, "{what}: {}", reply.text);
    for secret in ["journey note", "Budi", "whsec_", "628111234567"] {
        assert!(
            !reply.text.contains(secret),
            "{what}: the refusal shows A's data: {}",
            reply.text
        );
    }
}

/// All pages of a paged list (`{"data", "next_cursor"}`), `query` without the cursor.
async fn all_pages(servers: &Servers<'_>, path: &str, query: &str, token: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            None => format!("{path}?{query}"),
            Some(c) => format!("{path}?{query}&cursor={}", encode(c)),
        };
        let page = servers.get(&url, token).await;
        items.extend(page.body["data"].as_array().expect("data").iter().cloned());
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
        assert!(items.len() <= 100_000, "{path}: pages without end");
    }
    items
}

/// The daily token limit's `(limit, used, reserved, remaining)`, as the API shows them.
async fn daily_limit(servers: &Servers<'_>, t: &Seeded) -> (Option<i64>, i64, i64, Option<i64>) {
    let limits = servers
        .get(&format!("{}/limits", t.base()), &t.owner_token)
        .await;
    let d = limits
        .body
        .as_array()
        .expect("limits")
        .iter()
        .find(|l| l["name"] == "daily_token_limit")
        .expect("daily_token_limit")
        .clone();
    let n = |v: &Value| v.as_str().map(|s| s.parse::<i64>().expect("an integer"));
    (
        n(&d["limit"]),
        n(&d["used"]).expect("used"),
        n(&d["reserved"]).expect("reserved"),
        n(&d["remaining"]),
    )
}

/// The journey with tenants `journey-a` and `journey-b`.
pub async fn run(apps: &[&TestApp]) -> Report {
    run_named(apps, "journey").await
}

/// The journey with tenants `{prefix}-a` and `{prefix}-b` (several journeys on one
/// database need different prefixes).
pub async fn run_named(apps: &[&TestApp], prefix: &str) -> Report {
    let servers = Servers::new(apps);
    let mut steps = Vec::new();
    let mut clock = Instant::now();
    let mut step = |name: &'static str| {
        steps.push((name, clock.elapsed()));
        clock = Instant::now();
    };
    let first = apps[0];
    let last = apps.len() - 1;

    // 1. Two tenants with their principals, one on the first server, one on the last.
    let a = seed_tenant(first, &format!("{prefix}-a")).await;
    let b = seed_tenant(apps[last], &format!("{prefix}-b")).await;
    let (base, bbase) = (a.base(), b.base());
    let admin = first.db.admin().await;
    step("two tenants seeded");

    // A's own price for jm-1, the conversation (owned by the agent, so that its owner's
    // rollups are exactly the journey's), endpoints for message.created in both tenants.
    let price = servers
        .call(
            "POST",
            &format!("{base}/prices"),
            &a.owner_token,
            Some(
                json!({"provider": "journey", "model": "jm-1", "input_usd_per_mtok": "2",
                        "output_usd_per_mtok": "4", "effective_from": "2025-01-01T00:00:00Z"}),
            ),
        )
        .await;
    assert_eq!(price.status, 201, "price: {}", price.text);
    let created = servers
        .call(
            "POST",
            &format!("{base}/conversations"),
            &a.owner_token,
            Some(json!({"assistant_id": a.assistant, "user_id": a.agent, "title": "The journey"})),
        )
        .await;
    assert_eq!(created.status, 201, "conversation: {}", created.text);
    let conversation = uuid(&created.body["id"]);
    assert_eq!(created.body["message_count"], 0);
    let receiver = Receiver::start().await;
    let endpoint = |t: &Seeded, path: &'static str| {
        let (servers, receiver) = (&servers, &receiver);
        let (url, token) = (
            format!("{}/webhook-endpoints", t.base()),
            t.owner_token.clone(),
        );
        async move {
            let r = servers
                .call(
                    "POST",
                    &url,
                    &token,
                    Some(json!({"url": format!("{}{path}", receiver.base),
                                "event_types": ["message.created"]})),
                )
                .await;
            assert_eq!(r.status, 201, "webhook endpoint: {}", r.text);
            (
                uuid(&r.body["id"]),
                r.body["secret"].as_str().expect("secret").to_owned(),
            )
        }
    };
    let (endpoint_a, secret_a) = endpoint(&a, "/journey-a").await;
    let (_, secret_b) = endpoint(&b, "/journey-b").await;
    assert_ne!(secret_a, secret_b);

    // A daily token limit with room for the 200 and exactly 1000 tokens more (the
    // fixture's reservation cancelled first, so nothing else holds any).
    let expected = Totals::of(0..MESSAGES);
    let active = servers
        .get(
            &format!("{base}/limits/reservations?status=active"),
            &a.owner_token,
        )
        .await;
    for r in active.body["data"].as_array().expect("reservations") {
        let gone = servers
            .call(
                "DELETE",
                &format!("{base}/limits/reservations/{}", r["id"].as_str().unwrap()),
                &a.owner_token,
                None,
            )
            .await;
        assert_eq!(gone.status, 204, "cancel a reservation: {}", gone.text);
    }
    let (_, used_before, reserved, _) = daily_limit(&servers, &a).await;
    assert_eq!(reserved, 0, "no reservation left");
    let limit = used_before + expected.tokens() + 1000;
    let set = servers
        .call(
            "PATCH",
            &base,
            &a.owner_token,
            Some(json!({"daily_token_limit": limit})),
        )
        .await;
    assert_eq!(set.status, 200, "set daily_token_limit: {}", set.text);
    assert_eq!(
        daily_limit(&servers, &a).await,
        (Some(limit), used_before, 0, Some(expected.tokens() + 1000))
    );
    let (today_path, owner) = (format!("{base}/usage/today"), a.owner_token.clone());
    let usage_before = servers.get(&today_path, &owner).await.body;
    step("price, conversation, endpoints, limit");

    // 2. 200 messages in parallel to A's conversation, spread over the servers.
    let messages_path = format!("{base}/conversations/{conversation}/messages");
    let posts: Vec<Post> = (0..MESSAGES)
        .map(|i| {
            let s = sent(i);
            let mut body = json!({"role": s.role, "content": s.content, "provider": "journey",
                                  "model": s.model, "prompt_tokens": s.prompt,
                                  "completion_tokens": s.completion});
            if s.model == "jm-given" {
                body["cost_usd"] = json!(micros(s.cost_micros).to_string());
            }
            let server = i % apps.len();
            servers.count(server, 1);
            apps[server].post_to(&messages_path, &a.full_key, body)
        })
        .collect();
    let replies = post_all(&first.http, posts).await;
    // Each message's id → which of the 200 it is.
    let mut ids: HashMap<Uuid, usize> = HashMap::new();
    for reply in &replies {
        assert_eq!(reply.status, 201, "a parallel message: {}", reply.text);
        let body = &reply.body;
        let content = body["content"].as_str().expect("content");
        let i: usize = content
            .split(' ')
            .nth(2)
            .and_then(|n| n.parse().ok())
            .expect("a journey message");
        let s = sent(i);
        assert_eq!(body["conversation_id"], json!(conversation));
        assert_eq!(body["role"], s.role);
        assert_eq!(body["total_tokens"], s.prompt + s.completion);
        assert_eq!(decimal(&body["cost_usd"]), micros(s.cost_micros), "{body}");
        let source = if s.model == "jm-given" {
            "provided"
        } else {
            "catalog"
        };
        assert_eq!(body["cost_source"], source, "{body}");
        assert!(
            ids.insert(uuid(&body["id"]), i).is_none(),
            "an id given twice"
        );
    }
    let by_index: BTreeMap<usize, Uuid> = ids.iter().map(|(id, i)| (*i, *id)).collect();
    assert_eq!(by_index.len(), MESSAGES, "each message created once");
    step("200 parallel messages");

    // Exact conversation counters, on every server.
    for app in apps {
        let c = app
            .get(
                &format!("{base}/conversations/{conversation}"),
                &a.owner_token,
            )
            .await;
        assert_eq!(c.status, 200, "{}", c.text);
        assert_eq!(c.body["message_count"], expected.messages, "{}", c.text);
        assert_eq!(c.body["total_tokens"], expected.tokens(), "{}", c.text);
        assert_eq!(decimal(&c.body["cost_usd"]), expected.cost(), "{}", c.text);
    }
    let cost = servers
        .get(
            &format!("{base}/conversations/{conversation}/cost"),
            &a.read_key,
        )
        .await
        .body;
    assert_eq!(cost["message_count"], expected.messages, "{cost}");
    assert_eq!(cost["prompt_tokens"], expected.prompt, "{cost}");
    assert_eq!(cost["completion_tokens"], expected.completion, "{cost}");
    assert_eq!(cost["total_tokens"], expected.tokens(), "{cost}");
    assert_eq!(decimal(&cost["cost_usd"]), expected.cost(), "{cost}");
    let stats = servers
        .get(
            &format!("{base}/conversations/{conversation}/stats"),
            &a.owner_token,
        )
        .await
        .body;
    let stats = stats.as_array().expect("stats");
    assert_eq!(stats.len(), 2, "{stats:?}");
    for (entry, role) in stats.iter().zip(["assistant", "user"]) {
        let want = Totals::of((0..MESSAGES).filter(|i| sent(*i).role == role));
        assert_eq!(entry["role"], role);
        assert_eq!(entry["message_count"], want.messages, "{entry}");
        assert_eq!(entry["prompt_tokens"], want.prompt, "{entry}");
        assert_eq!(entry["completion_tokens"], want.completion, "{entry}");
        assert_eq!(entry["total_tokens"], want.tokens(), "{entry}");
        assert_eq!(decimal(&entry["cost_usd"]), want.cost(), "{entry}");
    }

    // Exact usage rollups: today moved by exactly the 200.
    let usage_after = servers.get(&today_path, &owner).await.body;
    let moved = |field: &str| {
        usage_after[field].as_i64().expect(field) - usage_before[field].as_i64().expect(field)
    };
    assert_eq!(moved("message_count"), expected.messages, "{usage_after}");
    assert_eq!(moved("request_count"), expected.messages, "{usage_after}");
    assert_eq!(moved("user_messages"), expected.user, "{usage_after}");
    assert_eq!(moved("assistant_messages"), expected.assistant);
    assert_eq!(moved("prompt_tokens"), expected.prompt);
    assert_eq!(moved("completion_tokens"), expected.completion);
    assert_eq!(moved("total_tokens"), expected.tokens());
    assert_eq!(moved("unpriced_count"), 0);
    assert_eq!(
        decimal(&usage_after["cost_usd"]) - decimal(&usage_before["cost_usd"]),
        expected.cost()
    );
    let daily = servers
        .get(&format!("{base}/usage/daily?days=7"), &a.owner_token)
        .await
        .body;
    assert_eq!(daily.as_array().expect("daily").len(), 7);
    assert_eq!(daily[6], usage_after, "the last day is today");
    let monthly = servers
        .get(&format!("{base}/usage/monthly?months=1"), &a.owner_token)
        .await
        .body;
    assert!(
        monthly[0]["message_count"].as_i64().unwrap()
            >= usage_after["message_count"].as_i64().unwrap(),
        "this month counts at least today's messages: {monthly}"
    );
    // B's usage holds none of it: the same as after its seed.
    let b_today = servers
        .get(&format!("{bbase}/usage/today"), &b.owner_token)
        .await
        .body;
    assert_eq!(
        b_today["message_count"], usage_before["message_count"],
        "B's seed wrote as many messages as A's; A's 200 are not B's"
    );

    // Exact limit counter.
    assert_eq!(
        daily_limit(&servers, &a).await,
        (Some(limit), used_before + expected.tokens(), 0, Some(1000)),
        "the daily counter moved by exactly the 200's tokens"
    );

    // Exact events: one message.created per message, no duplicates, data as sent.
    let events = all_pages(
        &servers,
        &format!("{base}/events"),
        "type=message.created&limit=200",
        &a.read_key,
    )
    .await;
    let mut seen = BTreeSet::new();
    let mut event_ids = BTreeSet::new();
    for e in events
        .iter()
        .filter(|e| e["data"]["conversation_id"] == json!(conversation))
    {
        assert_eq!(e["type"], "message.created");
        let id = uuid(&e["subject_id"]);
        assert_eq!(e["data"]["id"], json!(id), "{e}");
        let i = *ids
            .get(&id)
            .unwrap_or_else(|| panic!("an event of no message: {e}"));
        assert!(seen.insert(id), "two message.created events for {id}");
        event_ids.insert(uuid(&e["id"]));
        let s = sent(i);
        assert_eq!(e["data"]["role"], s.role, "{e}");
        assert_eq!(e["data"]["total_tokens"], s.prompt + s.completion, "{e}");
        assert_eq!(
            decimal(&e["data"]["cost_usd"]),
            micros(s.cost_micros),
            "{e}"
        );
        assert_eq!(
            e["data"]["content_length"],
            s.content.chars().count(),
            "{e}"
        );
        assert_eq!(e["actor_key_id"], json!(a.full_key_id), "{e}");
        assert!(e["data"].get("content").is_none(), "content in an event");
    }
    assert_eq!(seen.len(), MESSAGES, "one message.created per message");
    assert_eq!(event_ids.len(), MESSAGES, "distinct event ids");
    let b_events = all_pages(
        &servers,
        &format!("{bbase}/events"),
        "type=message.created&limit=200",
        &b.owner_token,
    )
    .await;
    assert!(
        b_events
            .iter()
            .all(|e| !seen.contains(&uuid(&e["subject_id"]))),
        "A's message events in B's log"
    );
    step("counters, rollups, limits, events");

    // 3. History: the last 50 (newest first, by id), then every page, then ascending.
    let mut sorted: Vec<Uuid> = ids.keys().copied().collect();
    sorted.sort();
    let newest: Vec<Uuid> = sorted.iter().rev().copied().collect();
    let page = servers.get(&messages_path, &a.full_key).await.body;
    let first_page: Vec<Uuid> = page["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|m| uuid(&m["id"]))
        .collect();
    assert_eq!(
        first_page,
        newest[..50],
        "the last 50 messages, newest first"
    );
    assert!(page["next_cursor"].is_string(), "a cursor after 50 of 200");
    for m in page["data"].as_array().unwrap() {
        let i = ids[&uuid(&m["id"])];
        assert_eq!(m["content"], sent(i).content);
        assert_eq!(m["conversation_id"], json!(conversation));
    }
    let history: Vec<Uuid> = all_pages(&servers, &messages_path, "limit=50", &a.read_key)
        .await
        .iter()
        .map(|m| uuid(&m["id"]))
        .collect();
    assert_eq!(history, newest, "four pages of 50, newest first, each once");
    let ascending: Vec<Uuid> = all_pages(
        &servers,
        &messages_path,
        "order=asc&limit=64",
        &a.owner_token,
    )
    .await
    .iter()
    .map(|m| uuid(&m["id"]))
    .collect();
    assert_eq!(ascending, sorted, "oldest first, in pages of 64");
    let middle = servers
        .get(
            &format!(
                "{messages_path}?order=asc&after={}&before={}",
                sorted[9], sorted[20]
            ),
            &a.agent_token,
        )
        .await
        .body;
    let window: Vec<Uuid> = middle["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| uuid(&m["id"]))
        .collect();
    assert_eq!(window, sorted[10..20], "the window between two messages");
    let seventh = by_index[&7];
    let message = servers
        .get(&format!("{base}/messages/{seventh}"), &a.read_key)
        .await
        .body;
    assert_eq!(message["content"], sent(7).content, "{message}");
    assert_eq!(message["model"], "jm-1", "{message}");

    // Search: every tenth message mentions snorkeling; paged by 15; B finds none.
    let snorkeling: BTreeSet<Uuid> = (0..MESSAGES)
        .filter(|i| i.is_multiple_of(10))
        .map(|i| by_index[&i])
        .collect();
    let found = all_pages(
        &servers,
        &format!("{base}/search"),
        &format!("q=snorkeling&conversation_id={conversation}&limit=15"),
        &a.full_key,
    )
    .await;
    let found_ids: Vec<Uuid> = found.iter().map(|r| uuid(&r["message_id"])).collect();
    assert_eq!(
        found_ids.len(),
        snorkeling.len(),
        "each found once: {found:?}"
    );
    assert_eq!(
        found_ids.iter().copied().collect::<BTreeSet<_>>(),
        snorkeling
    );
    assert!(
        found.iter().all(|r| r["snippet"]
            .as_str()
            .unwrap()
            .contains("<mark>snorkeling</mark>")),
        "{found:?}"
    );
    let phrase = servers
        .get(
            &format!("{base}/search?q={}", encode("\"journey note 17\"")),
            &a.owner_token,
        )
        .await
        .body;
    let phrase: Vec<Uuid> = phrase["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| uuid(&r["message_id"]))
        .collect();
    assert_eq!(phrase, [by_index[&17]], "a phrase");
    let b_found = servers
        .get(&format!("{bbase}/search?q=snorkeling"), &b.owner_token)
        .await
        .body;
    assert_eq!(b_found["data"], json!([]), "B finds none of A's messages");
    step("history and search");

    // Feedback: the owner likes message 1, the agent dislikes it; read back per message
    // and in the feedback rollup (by model: jm-1 has exactly these two).
    let rated = by_index[&1];
    for (token, rating, status) in [
        (&a.owner_token, 1, 201),
        (&a.agent_token, 1, 201),
        (&a.agent_token, -1, 200),
    ] {
        let r = servers
            .call(
                "PUT",
                &format!("{base}/messages/{rated}/feedback"),
                token,
                Some(json!({"rating": rating, "comment": "journey"})),
            )
            .await;
        assert_eq!(r.status, status, "feedback: {}", r.text);
    }
    let summary = servers
        .get(
            &format!("{base}/messages/{rated}/feedback/summary"),
            &a.read_key,
        )
        .await
        .body;
    assert_eq!(
        summary,
        json!({"message_id": rated, "up": 1, "down": 1, "count": 2})
    );
    let ratings = servers
        .get(&format!("{base}/messages/{rated}/feedback"), &a.full_key)
        .await
        .body;
    assert_eq!(ratings.as_array().unwrap().len(), 2, "{ratings}");
    let by_model = servers
        .get(
            &format!("{base}/analytics/feedback?by=model&days=1"),
            &a.owner_token,
        )
        .await
        .body;
    let jm1 = by_model
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["model"] == "jm-1")
        .unwrap_or_else(|| panic!("no jm-1 in {by_model}"));
    assert_eq!(
        jm1,
        &json!({"provider": "journey", "model": "jm-1", "ratings": 2, "positive": 1,
                "negative": 1, "positive_rate": 0.5})
    );
    let by_assistant = servers
        .get(&format!("{base}/analytics/feedback?days=1"), &a.owner_token)
        .await
        .body;
    assert_eq!(
        by_assistant,
        json!([{"assistant_id": a.assistant, "ratings": 3, "positive": 2, "negative": 1,
                "positive_rate": 2.0 / 3.0}]),
        "the seeded rating and these two"
    );

    // Analytics: per model, per day and owner, top users: exactly the 200's figures.
    let providers = servers
        .get(
            &format!("{base}/analytics/providers?days=1"),
            &a.owner_token,
        )
        .await
        .body;
    for model in ["jm-1", "jm-given"] {
        let want = Totals::of((0..MESSAGES).filter(|i| sent(*i).model == model));
        let row = providers
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["provider"] == "journey" && p["model"] == model)
            .unwrap_or_else(|| panic!("no {model} in {providers}"));
        assert_eq!(row["request_count"], want.messages, "{row}");
        assert_eq!(row["prompt_tokens"], want.prompt, "{row}");
        assert_eq!(row["completion_tokens"], want.completion, "{row}");
        assert_eq!(row["total_tokens"], want.tokens(), "{row}");
        assert_eq!(decimal(&row["cost_usd"]), want.cost(), "{row}");
    }
    let per_day = servers
        .get(
            &format!("{base}/analytics/messages/daily?days=1"),
            &a.owner_token,
        )
        .await
        .body;
    let agent_rows: Vec<&Value> = per_day
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["user_id"] == json!(a.agent))
        .collect();
    assert_eq!(agent_rows.len(), 1, "{per_day}");
    let row = agent_rows[0];
    assert_eq!(row["message_count"], expected.messages, "{row}");
    assert_eq!(row["user_messages"], expected.user, "{row}");
    assert_eq!(row["assistant_messages"], expected.assistant, "{row}");
    assert_eq!(row["total_tokens"], expected.tokens(), "{row}");
    assert_eq!(decimal(&row["cost_usd"]), expected.cost(), "{row}");
    let top = servers
        .get(
            &format!("{base}/analytics/top?by=users&days=1&limit=100"),
            &a.owner_token,
        )
        .await
        .body;
    let agent = top
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["id"] == json!(a.agent))
        .unwrap_or_else(|| panic!("no agent in {top}"));
    assert_eq!(agent["request_count"], expected.messages, "{agent}");
    assert_eq!(agent["total_tokens"], expected.tokens(), "{agent}");
    assert_eq!(decimal(&agent["cost_usd"]), expected.cost(), "{agent}");
    // Top conversations read the period's messages themselves (no rollup holds them).
    let top = servers
        .get(
            &format!("{base}/analytics/top?by=conversations&days=1&limit=100"),
            &a.owner_token,
        )
        .await
        .body;
    let row = top
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == json!(conversation))
        .unwrap_or_else(|| panic!("no conversation in {top}"));
    assert_eq!(row["name"], "The journey", "{row}");
    assert_eq!(row["request_count"], expected.messages, "{row}");
    assert_eq!(row["total_tokens"], expected.tokens(), "{row}");
    assert_eq!(decimal(&row["cost_usd"]), expected.cost(), "{row}");
    step("feedback and analytics");

    // 4. The limit: 1000 tokens are left. Exactly 1000 fits; 1001 does not (asked: 200
    // with allowed false; reserved: 429, holding nothing). Usage of 1001 tokens that
    // already happened is stored all the same and flagged; from then on even a check of
    // one token is refused.
    let check = format!("{base}/limits/check");
    let fits = servers
        .call(
            "POST",
            &check,
            &a.full_key,
            Some(json!({"prompt_tokens": 1000})),
        )
        .await;
    assert_eq!(fits.status, 200, "{}", fits.text);
    assert_eq!(fits.body["allowed"], true, "{}", fits.text);
    let over = servers
        .call(
            "POST",
            &check,
            &a.full_key,
            Some(json!({"prompt_tokens": 600, "completion_tokens": 401})),
        )
        .await;
    assert_eq!(over.status, 200, "{}", over.text);
    assert_eq!(over.body["allowed"], false, "{}", over.text);
    assert_eq!(over.body["refused_by"], json!(["daily_token_limit"]));
    let used = used_before + expected.tokens();
    let assert_limit_reached = |refused: &Reply, used: i64| {
        assert_eq!(refused.status, 429, "{}", refused.text);
        assert!(
            refused
                .content_type()
                .starts_with("application/problem+json")
        );
        let p = &refused.body;
        assert_eq!(p["type"], "/problems/limit-reached", "{p}");
        assert_eq!(p["status"], 429, "{p}");
        assert_eq!(p["limit_name"], "daily_token_limit", "{p}");
        assert_eq!(p["limit"], limit.to_string(), "{p}");
        assert_eq!(p["used"], used.to_string(), "{p}");
        assert!(p["resets_at"].is_string(), "{p}");
        let header = |name: &str| {
            refused
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_else(|| panic!("no {name} header"))
                .to_owned()
        };
        assert!(header("retry-after").parse::<u64>().is_ok());
        assert_eq!(header("ratelimit-limit"), limit.to_string());
        assert_eq!(header("ratelimit-remaining"), "0");
        assert!(header("ratelimit-reset").parse::<u64>().is_ok());
    };
    let reserve = |tokens: i64| {
        servers.call(
            "POST",
            &check,
            &a.full_key,
            Some(json!({"prompt_tokens": tokens, "reserve": true})),
        )
    };
    assert_limit_reached(&reserve(1001).await, used);
    assert_eq!(
        daily_limit(&servers, &a).await,
        (Some(limit), used, 0, Some(1000)),
        "a refusal holds and charges nothing"
    );
    let recorded = servers
        .call(
            "POST",
            &format!("{base}/usage"),
            &a.full_key,
            Some(json!({"provider": "journey", "model": "jm-1", "prompt_tokens": 1001})),
        )
        .await;
    assert_eq!(
        recorded.status, 201,
        "a fact is never refused: {}",
        recorded.text
    );
    assert_eq!(recorded.body["over_limit"], true, "{}", recorded.text);
    assert_eq!(recorded.body["over_limits"], json!(["daily_token_limit"]));
    let used = used + 1001;
    assert_eq!(
        daily_limit(&servers, &a).await,
        (Some(limit), used, 0, Some(0)),
        "the usage is charged: the counter equals the facts"
    );
    assert_limit_reached(&reserve(1).await, used);
    let next = servers
        .call(
            "POST",
            &check,
            &a.full_key,
            Some(json!({"prompt_tokens": 1})),
        )
        .await;
    assert_eq!(next.body["allowed"], false, "{}", next.text);
    let c = servers
        .get(
            &format!("{base}/conversations/{conversation}"),
            &a.owner_token,
        )
        .await
        .body;
    assert_eq!(c["message_count"], expected.messages, "usage is no message");
    let reserved = servers
        .get(
            &format!("{base}/limits/reservations?status=active"),
            &a.owner_token,
        )
        .await
        .body;
    assert_eq!(reserved["data"], json!([]), "no reservation held");
    let exceeded = servers
        .get(
            &format!("{base}/events?type=usage.limit_exceeded"),
            &a.owner_token,
        )
        .await
        .body;
    let exceeded = exceeded["data"].as_array().expect("events");
    assert_eq!(exceeded.len(), 1, "{exceeded:?}");
    assert_eq!(exceeded[0]["data"]["limit_name"], "daily_token_limit");
    step("limit: 429 before spending, a fact stored and flagged");

    // 5. Webhooks: a worker delivers A's 200 message.created events to the loopback
    // receiver, each signed with A's endpoint secret; B's endpoint gets nothing.
    let worker = first.worker(Default::default());
    let (worker, receiver_ref) = (&worker, &receiver);
    let delivered = wait_until(
        format!("{MESSAGES} webhooks on /journey-a"),
        WEBHOOK_WAIT,
        move || async move {
            // Passes until nothing is due, then look.
            while worker.run_once().await.expect("a worker pass") > 0 {}
            let got = receiver_ref.accepted("/journey-a");
            if got.len() >= MESSAGES {
                Ok(got)
            } else {
                Err(format!("{} accepted", got.len()))
            }
        },
    )
    .await;
    assert_eq!(delivered.len(), MESSAGES, "no delivery twice");
    let mut webhook_ids = BTreeSet::new();
    let mut webhook_messages = BTreeSet::new();
    for r in &delivered {
        assert!(
            verified(r, &secret_a),
            "webhook {} does not verify with A's secret",
            r.header("webhook-id")
        );
        assert!(!verified(r, &secret_b), "verifies with B's secret");
        assert_eq!(r.header("content-type"), "application/json");
        let body = r.json();
        assert_eq!(body["type"], "message.created", "{body}");
        assert!(body["timestamp"].is_string(), "{body}");
        assert_eq!(body["data"]["conversation_id"], json!(conversation));
        webhook_ids.insert(uuid(&json!(r.header("webhook-id"))));
        webhook_messages.insert(uuid(&body["data"]["id"]));
    }
    assert_eq!(
        webhook_ids, event_ids,
        "webhook-id is the event's id, each once"
    );
    assert_eq!(webhook_messages, seen, "one webhook per message");
    assert!(
        receiver.received().iter().all(|r| r.path == "/journey-a"),
        "B's endpoint got A's events"
    );
    let deliveries = all_pages(
        &servers,
        &format!("{base}/webhook-endpoints/{endpoint_a}/deliveries"),
        "status=delivered&limit=200",
        &a.owner_token,
    )
    .await;
    assert_eq!(deliveries.len(), MESSAGES, "the delivery log");
    step("webhooks delivered and verified");

    // 6. Cross-tenant attempts: B's owner and B's full key, against A's items, through
    // A's slug and through B's own; every one refused, A unchanged.
    let before = tenant_snapshot(&admin, a.id).await;
    let m = by_index[&3];
    // Each: method, path under the tenant, body, and whether a key is refused the route
    // itself (tenant admin or owner access: 403 through B's own slug, before any lookup).
    let items: Vec<(&str, String, Option<Value>, bool)> = vec![
        ("GET", format!("conversations/{conversation}"), None, false),
        (
            "PATCH",
            format!("conversations/{conversation}"),
            Some(json!({"title": "stolen"})),
            false,
        ),
        (
            "DELETE",
            format!("conversations/{conversation}"),
            None,
            true,
        ),
        (
            "GET",
            format!("conversations/{conversation}/messages"),
            None,
            false,
        ),
        (
            "POST",
            format!("conversations/{conversation}/messages"),
            Some(json!({"role": "user", "content": "stolen", "prompt_tokens": 1})),
            false,
        ),
        (
            "GET",
            format!("conversations/{conversation}/cost"),
            None,
            false,
        ),
        (
            "POST",
            format!("conversations/{conversation}/transitions"),
            Some(json!({"to": "qualifying"})),
            false,
        ),
        ("GET", format!("messages/{m}"), None, false),
        (
            "PUT",
            format!("messages/{m}/feedback"),
            Some(json!({"rating": -1})),
            false,
        ),
        ("GET", format!("messages/{rated}/feedback"), None, false),
        ("POST", format!("messages/{m}/redact"), None, true),
        ("GET", format!("contacts/{}", a.contact), None, false),
        (
            "PATCH",
            format!("contacts/{}", a.contact),
            Some(json!({"name": "stolen"})),
            false,
        ),
        ("DELETE", format!("contacts/{}", a.contact), None, false),
        ("GET", format!("assistants/{}", a.assistant), None, false),
        (
            "PATCH",
            format!("assistants/{}", a.assistant),
            Some(json!({"name": "stolen"})),
            true,
        ),
        ("DELETE", format!("assistants/{}", a.assistant), None, true),
        ("GET", format!("webhook-endpoints/{endpoint_a}"), None, true),
        (
            "PATCH",
            format!("webhook-endpoints/{endpoint_a}"),
            Some(json!({"enabled": false})),
            true,
        ),
        (
            "POST",
            format!("webhook-endpoints/{endpoint_a}/rotate-secret"),
            Some(json!({})),
            true,
        ),
        (
            "DELETE",
            format!("webhook-endpoints/{endpoint_a}"),
            None,
            true,
        ),
        ("GET", format!("members/{}", a.owner), None, true),
        (
            "PATCH",
            format!("members/{}", a.agent),
            Some(json!({"role": "admin"})),
            true,
        ),
        ("DELETE", format!("members/{}", a.member), None, true),
    ];
    let mut attempts = 0;
    for (token, is_key) in [(&b.owner_token, false), (&b.full_key, true)] {
        let who = if is_key { "B's full key" } else { "B's owner" };
        for (method, item, body, keys_refused) in &items {
            for tenant in [&base, &bbase] {
                let path = format!("{tenant}/{item}");
                let reply = servers.call(method, &path, token, body.clone()).await;
                let what = format!("{who}: {method} {path}");
                assert_refused(&reply, &what);
                // A's slug: not B's tenant, and the path names an item: 404. B's slug:
                // the item is not B's (404), unless the route refuses keys (403).
                let expected = if tenant == &bbase && is_key && *keys_refused {
                    403
                } else {
                    404
                };
                assert_eq!(reply.status, expected, "{what}: {}", reply.text);
                attempts += 1;
            }
        }
        // A's collections, named by A's slug: 403.
        for collection in [
            "conversations",
            "contacts",
            "events",
            "search?q=snorkeling",
            "members",
        ] {
            let path = format!("{base}/{collection}");
            let reply = servers.call("GET", &path, token, None).await;
            let what = format!("{who}: GET {path}");
            assert_refused(&reply, &what);
            assert_eq!(reply.status, 403, "{what}: {}", reply.text);
            attempts += 1;
        }
    }
    let after = tenant_snapshot(&admin, a.id).await;
    assert!(
        before == after,
        "A's data changed under B's attempts:\n--- before\n{before}\n--- after\n{after}"
    );
    // And A still reads its own, unchanged.
    let c = servers
        .get(
            &format!("{base}/conversations/{conversation}"),
            &a.owner_token,
        )
        .await
        .body;
    assert_eq!(c["message_count"], expected.messages);
    assert_eq!(c["title"], "The journey");
    step("cross-tenant attempts refused, A unchanged");

    Report {
        tenant_a: a.id,
        tenant_b: b.id,
        conversation,
        messages: ids.len(),
        events: seen.len(),
        webhooks: delivered.len(),
        cross_tenant_attempts: attempts,
        requests_per_server: servers
            .counts
            .iter()
            .map(|c| c.load(Ordering::SeqCst))
            .collect(),
        steps,
    }
}
