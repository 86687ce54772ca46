//! The delivery worker: claims due deliveries (at most one in flight per endpoint, across
//! every worker process), sends them signed, and records each attempt with what comes
//! next (the queries are `frontdesk_core::events::delivery`): delivered, retried on the
//! schedule with jitter (or later, when the endpoint says `Retry-After`), failed when the
//! schedule is spent, the endpoint disabled on a 410 or after failing for too long.

use std::{future::Future, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use frontdesk_core::events::delivery;
use frontdesk_pg::Db;
use rand::Rng;
use uuid::Uuid;

use super::{outbound, signature};

/// How the worker delivers.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// The waits before the 2nd, 3rd, … attempt; after the last, a delivery has failed.
    pub retry_schedule: Vec<Duration>,
    /// How long one attempt may take.
    pub timeout: Duration,
    /// An endpoint whose every attempt failed for this long is disabled.
    pub disable_after: Duration,
    /// Let webhooks reach loopback and private addresses (development, tests).
    pub allow_private: bool,
    /// Deliveries claimed at once (each to a different endpoint).
    pub batch: i32,
    /// The pause when nothing was due.
    pub idle_poll: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            retry_schedule: parse_schedule(DEFAULT_SCHEDULE).expect("the default schedule parses"),
            timeout: Duration::from_secs(15),
            disable_after: Duration::from_secs(5 * 24 * 3600),
            allow_private: false,
            batch: 32,
            idle_poll: Duration::from_millis(250),
        }
    }
}

/// `FRONTDESK_WEBHOOK_RETRY_SCHEDULE`'s default.
pub const DEFAULT_SCHEDULE: &str = "5s,5m,30m,2h,5h,10h,10h";

/// A duration such as `500ms`, `5s`, `5m`, `2h` or `3d`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{s:?} has no unit (ms, s, m, h, d)"))?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{s:?} does not start with a number"))?;
    let ms = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(format!("{s:?}: the unit must be ms, s, m, h or d")),
    };
    Ok(Duration::from_millis(n.saturating_mul(ms)))
}

/// A comma-separated list of durations (`5s,5m,30m`); empty: no retries.
pub fn parse_schedule(s: &str) -> Result<Vec<Duration>, String> {
    if s.trim().is_empty() {
        return Ok(Vec::new());
    }
    s.split(',').map(parse_duration).collect()
}

/// The longest `Retry-After` honoured (a later one is cut to this).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// How much of an answer's body is kept.
const EXCERPT_BYTES: usize = 1000;

/// One claimed delivery: what to send, or why it cannot be sent.
struct Claimed {
    tenant: Uuid,
    delivery: Uuid,
    attempt: i32,
    message: Result<Ready, String>,
}

/// A delivery's request, built.
struct Ready {
    url: String,
    keys: Vec<Vec<u8>>,
    event_id: Uuid,
    body: Vec<u8>,
}

/// What one attempt came to.
struct Outcome {
    started: DateTime<Utc>,
    duration_ms: i32,
    status: Option<i32>,
    excerpt: Option<String>,
    error: Option<String>,
    retry_after: Option<Duration>,
}

pub struct Worker {
    db: Db,
    http: reqwest::Client,
    config: Arc<WorkerConfig>,
    id: Uuid,
    heartbeat: Heartbeat,
}

/// What a worker tells `/readyz`: when it last completed a pass, and whether its loop has
/// ended. Shared by clones; `Worker::heartbeat` hands it out.
#[derive(Debug, Clone)]
pub struct Heartbeat(Arc<Beats>);

#[derive(Debug)]
struct Beats {
    /// When the heartbeat was made: the reference for "no pass yet".
    since: std::time::Instant,
    /// Milliseconds after `since` of the last completed pass; `u64::MAX` before the first.
    last_pass_ms: std::sync::atomic::AtomicU64,
    ended: std::sync::atomic::AtomicBool,
    /// Passes that failed in a row since the last completed one.
    failures: std::sync::atomic::AtomicU32,
}

/// After this many failed passes in a row (about a second apart) the worker is reported
/// to `/readyz`: the database answers, but with errors.
pub const FAILED_PASSES_NOT_READY: u32 = 3;

impl Default for Heartbeat {
    fn default() -> Self {
        Self(Arc::new(Beats {
            since: std::time::Instant::now(),
            last_pass_ms: std::sync::atomic::AtomicU64::new(u64::MAX),
            ended: std::sync::atomic::AtomicBool::new(false),
            failures: std::sync::atomic::AtomicU32::new(0),
        }))
    }
}

impl Heartbeat {
    fn beat(&self) {
        let ms = self
            .0
            .since
            .elapsed()
            .as_millis()
            .min(u128::from(u64::MAX - 1)) as u64;
        self.0
            .last_pass_ms
            .store(ms, std::sync::atomic::Ordering::Relaxed);
        self.0
            .failures
            .store(0, std::sync::atomic::Ordering::Relaxed);
    }

    /// A pass failed (the error is logged where it happens).
    fn failed(&self) {
        self.0
            .failures
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// How long since the last completed pass (since the heartbeat was made, before the first).
    pub fn since_last_pass(&self) -> Duration {
        let ms = self
            .0
            .last_pass_ms
            .load(std::sync::atomic::Ordering::Relaxed);
        let last = if ms == u64::MAX {
            Duration::ZERO
        } else {
            Duration::from_millis(ms)
        };
        self.0.since.elapsed().saturating_sub(last)
    }

    /// Whether the worker's loop has ended (stopped, or its task died).
    pub fn ended(&self) -> bool {
        self.0.ended.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Why the worker is not healthy, if it is not: its loop ended, its last
    /// `FAILED_PASSES_NOT_READY` passes failed, or it has not completed a pass for longer
    /// than `stale_after`.
    pub fn problem(&self, stale_after: Duration) -> Option<String> {
        if self.ended() {
            return Some("the webhook delivery worker has stopped".to_owned());
        }
        let failures = self.0.failures.load(std::sync::atomic::Ordering::Relaxed);
        if failures >= FAILED_PASSES_NOT_READY {
            return Some(format!(
                "the webhook delivery worker's last {failures} passes failed (the server log says why)"
            ));
        }
        let quiet = self.since_last_pass();
        (quiet > stale_after).then(|| {
            format!(
                "the webhook delivery worker has not completed a pass for {}s (the bound is {}s)",
                quiet.as_secs(),
                stale_after.as_secs()
            )
        })
    }
}

/// Marks the heartbeat ended when the loop that holds it stops, however it stops.
struct EndOnDrop(Heartbeat);

impl Drop for EndOnDrop {
    fn drop(&mut self) {
        self.0
            .0
            .ended
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Worker {
    pub fn new(db: Db, config: WorkerConfig) -> anyhow::Result<Self> {
        let mut http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("Frontdesk-Webhooks/", env!("CARGO_PKG_VERSION")));
        if !config.allow_private {
            http = http.dns_resolver(Arc::new(outbound::GuardedResolver));
        }
        Ok(Self {
            db,
            http: http.build()?,
            config: Arc::new(config),
            id: Uuid::now_v7(),
            heartbeat: Heartbeat::default(),
        })
    }

    /// The worker's heartbeat, for `/readyz` (`AppOptions::worker`).
    pub fn heartbeat(&self) -> Heartbeat {
        self.heartbeat.clone()
    }

    /// Claim what is due, send it, record every attempt. How many were claimed.
    pub async fn run_once(&self) -> anyhow::Result<usize> {
        let claimed = self.claim().await?;
        let n = claimed.len();
        futures_util::future::join_all(claimed.into_iter().map(|c| async move {
            use futures_util::FutureExt;
            let started = Utc::now();
            let outcome = match &c.message {
                // A panic while sending fails this attempt only.
                Ok(ready) => std::panic::AssertUnwindSafe(self.send(ready))
                    .catch_unwind()
                    .await
                    .unwrap_or_else(|_| Outcome::unsent(started, "the attempt failed unexpectedly")),
                Err(why) => Outcome::unsent(started, why),
            };
            if let Err(error) = self.finish(&c, outcome).await {
                tracing::warn!(tenant.id = %c.tenant, delivery.id = %c.delivery, %error,
                               "recording a webhook attempt failed; it is attempted again when its lease runs out");
            }
        }))
        .await;
        Ok(n)
    }

    /// Deliver until `shutdown` completes (the attempts under way are finished first).
    /// Each completed pass beats the heartbeat; a pass that fails or panics is logged and
    /// the loop goes on after a pause (`/readyz` reports a worker whose passes keep failing).
    pub fn run_until(self, shutdown: impl Future<Output = ()>) -> impl Future<Output = ()> {
        use futures_util::FutureExt;
        // Made before the loop's first poll, so a task dropped unpolled still ends it.
        let end = EndOnDrop(self.heartbeat.clone());
        async move {
            let _end = end;
            tokio::pin!(shutdown);
            loop {
                let pass = std::panic::AssertUnwindSafe(self.run_once())
                    .catch_unwind()
                    .await;
                metrics::counter!("background_job_runs_total", "job" => "webhook_delivery")
                    .increment(1);
                let pause = match pass {
                    // More may be due at once (the next event of each endpoint just sent).
                    Ok(Ok(n)) if n > 0 => {
                        self.heartbeat.beat();
                        Duration::ZERO
                    }
                    Ok(Ok(_)) => {
                        self.heartbeat.beat();
                        self.config.idle_poll
                    }
                    Ok(Err(error)) => {
                        self.heartbeat.failed();
                        metrics::counter!("background_job_failures_total", "job" => "webhook_delivery").increment(1);
                        tracing::warn!(error = %format!("{error:#}"), "claiming webhook deliveries failed");
                        Duration::from_secs(1)
                    }
                    Err(_) => {
                        self.heartbeat.failed();
                        metrics::counter!("background_job_failures_total", "job" => "webhook_delivery").increment(1);
                        tracing::error!("a webhook delivery pass panicked; carrying on");
                        Duration::from_secs(1)
                    }
                };
                tokio::select! {
                    _ = &mut shutdown => break,
                    _ = tokio::time::sleep(pause) => {}
                }
            }
        }
    }

    /// Run in the background until the runtime stops.
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.run_until(std::future::pending()))
    }

    async fn claim(&self) -> anyhow::Result<Vec<Claimed>> {
        // The lease outlasts an attempt (and the recording after it) by a wide margin.
        let lease = self.config.timeout + Duration::from_secs(45);
        let due = delivery::claim(&self.db, self.id, self.config.batch, lease)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(due
            .into_iter()
            .map(|d| Claimed {
                tenant: d.tenant,
                delivery: d.delivery,
                attempt: d.attempt,
                message: d.message.and_then(build),
            })
            .collect())
    }

    async fn send(&self, c: &Ready) -> Outcome {
        let started = Utc::now();
        let clock = std::time::Instant::now();
        let result = self.post(c, started).await;
        let duration_ms = clock.elapsed().as_millis().min(i32::MAX as u128) as i32;
        match result {
            Ok((status, excerpt, retry_after)) => Outcome {
                started,
                duration_ms,
                status: Some(status),
                excerpt,
                error: None,
                retry_after,
            },
            Err(error) => Outcome {
                started,
                duration_ms,
                status: None,
                excerpt: None,
                error: Some(error),
                retry_after: None,
            },
        }
    }

    /// One POST: the status, the start of the body, and a `Retry-After`. Errors say what
    /// went wrong without the URL (it may carry a token of the receiver's).
    async fn post(
        &self,
        c: &Ready,
        started: DateTime<Utc>,
    ) -> Result<(i32, Option<String>, Option<Duration>), String> {
        let url = reqwest::Url::parse(&c.url)
            .map_err(|_| "the endpoint's URL does not parse".to_owned())?;
        if !self.config.allow_private && outbound::literal_is_forbidden(&url) {
            return Err("the endpoint's address is one webhooks may not reach".into());
        }
        let id = c.event_id.to_string();
        let timestamp = started.timestamp();
        let mut response = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string())
            .header(
                "webhook-signature",
                signature::header(&c.keys, &id, timestamp, &c.body),
            )
            .body(c.body.clone())
            .send()
            .await
            .map_err(describe)?;
        let status = response.status().as_u16() as i32;
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let mut excerpt = Vec::new();
        while excerpt.len() < EXCERPT_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => excerpt.extend_from_slice(&chunk),
                // The status is what counts; a body cut short is no failure.
                Ok(None) | Err(_) => break,
            }
        }
        excerpt.truncate(EXCERPT_BYTES);
        let text: String = String::from_utf8_lossy(&excerpt)
            .chars()
            .filter(|c| *c != '\0')
            .take(EXCERPT_BYTES)
            .collect();
        Ok((status, (!text.is_empty()).then_some(text), retry_after))
    }

    async fn finish(&self, c: &Claimed, o: Outcome) -> anyhow::Result<()> {
        let (kind, next) = match o.status {
            Some(200..=299) => ("delivered", None),
            Some(410) => ("gone", None),
            _ => match self.config.retry_schedule.get(c.attempt as usize - 1) {
                Some(wait) => {
                    let jittered = wait.mul_f64(rand::rng().random_range(0.9..1.1));
                    let wait = o
                        .retry_after
                        .map_or(jittered, |r| r.min(MAX_RETRY_AFTER).max(jittered));
                    (
                        "retry",
                        Some(
                            o.started
                                + chrono::Duration::from_std(wait)
                                    .unwrap_or(chrono::Duration::days(1)),
                        ),
                    )
                }
                None => ("failed", None),
            },
        };
        metrics::counter!("webhook_delivery_attempts_total", "outcome" => kind).increment(1);
        if kind != "delivered" {
            tracing::info!(tenant.id = %c.tenant, delivery.id = %c.delivery, attempt = c.attempt,
                           status = ?o.status, error = ?o.error, outcome = kind, "webhook attempt failed");
        }
        delivery::finish(
            &self.db,
            &delivery::Finished {
                tenant: c.tenant,
                delivery: c.delivery,
                worker: self.id,
                started: o.started,
                duration_ms: o.duration_ms,
                status: o.status,
                excerpt: o.excerpt.as_deref(),
                error: o.error.as_deref(),
                outcome: kind,
                next,
                disable_after: self.config.disable_after,
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(())
    }
}

/// The request of a due delivery: its signed body, or why it cannot be built.
fn build(d: delivery::DueMessage) -> Result<Ready, String> {
    // The envelope of Standard Webhooks (type, timestamp, data), with the tenant and the
    // event's sequence (its place in the tenant's commit order) beside them. Every time in
    // it is RFC 3339 UTC with microseconds and a `Z` (the database writes `data`'s so).
    let body = serde_json::json!({
        "type": d.event_type,
        "timestamp": d.event_created_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "tenant_id": d.tenant,
        "sequence": d.event_sequence,
        "data": d.event_data,
    });
    let body =
        serde_json::to_vec(&body).map_err(|e| format!("the event could not be written: {e}"))?;
    Ok(Ready {
        url: d.url,
        keys: d
            .secrets
            .iter()
            .filter_map(|s| signature::key_of(s))
            .collect(),
        event_id: d.event_id,
        body,
    })
}

impl Outcome {
    /// An attempt that sent nothing, failed for `why`.
    fn unsent(started: DateTime<Utc>, why: &str) -> Self {
        Self {
            started,
            duration_ms: 0,
            status: None,
            excerpt: None,
            error: Some(why.chars().take(300).collect()),
            retry_after: None,
        }
    }
}

/// `Retry-After`: seconds, or an HTTP date.
fn parse_retry_after(v: &str) -> Option<Duration> {
    if let Ok(seconds) = v.trim().parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = DateTime::parse_from_rfc2822(v.trim()).ok()?;
    (at.with_timezone(&Utc) - Utc::now()).to_std().ok()
}

/// A reqwest error in a few words, without the URL: its kind and innermost cause.
fn describe(e: reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_redirect() {
        "redirected"
    } else {
        "request failed"
    };
    let e = e.without_url();
    let mut cause: &dyn std::error::Error = &e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    format!("{kind}: {cause}").chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_and_durations_parse() {
        assert_eq!(
            parse_schedule(DEFAULT_SCHEDULE).unwrap(),
            [5, 300, 1800, 7200, 18000, 36000, 36000].map(Duration::from_secs)
        );
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(
            parse_duration("3d").unwrap(),
            Duration::from_secs(3 * 86400)
        );
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("5w").is_err());
        assert!(parse_schedule("5s,,5m").is_err());
        assert_eq!(parse_schedule("").unwrap(), Vec::<Duration>::new());
    }

    #[test]
    fn retry_after_is_seconds_or_a_date() {
        assert_eq!(parse_retry_after("120"), Some(Duration::from_secs(120)));
        let later = (Utc::now() + chrono::Duration::seconds(90)).to_rfc2822();
        let parsed = parse_retry_after(&later).unwrap();
        assert!(parsed > Duration::from_secs(80) && parsed <= Duration::from_secs(90));
        assert_eq!(parse_retry_after("soon"), None);
    }
}
