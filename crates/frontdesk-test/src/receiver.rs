//! A webhook receiver on loopback for the tests: it records every request (headers and
//! body) and answers with the status the test sets, optionally after a delay, and counts
//! how many requests were in flight at once, per path.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU16, AtomicU64, Ordering},
    },
    time::Duration,
};

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode, Uri},
    response::IntoResponse,
};

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// What the receiver answered.
    pub status: u16,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

#[derive(Default)]
struct Shared {
    received: Mutex<Vec<Received>>,
    status: AtomicU16,
    /// Answer `status` with this `Retry-After` (seconds), when set.
    retry_after: AtomicU64,
    delay_ms: AtomicU64,
    in_flight: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    by_path: HashMap<String, usize>,
    max_by_path: HashMap<String, usize>,
}

#[derive(Clone)]
pub struct Receiver {
    /// `http://127.0.0.1:<port>`; endpoints are paths under it.
    pub base: String,
    shared: Arc<Shared>,
}

async fn receive(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let path = uri.path().to_owned();
    {
        let mut c = shared.in_flight.lock().unwrap();
        let n = c.by_path.entry(path.clone()).or_default();
        *n += 1;
        let n = *n;
        let max = c.max_by_path.entry(path.clone()).or_default();
        *max = (*max).max(n);
    }
    let delay = shared.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let status = shared.status.load(Ordering::SeqCst);
    let retry_after = shared.retry_after.load(Ordering::SeqCst);
    shared.received.lock().unwrap().push(Received {
        path: path.clone(),
        headers,
        body,
        status,
    });
    {
        let mut c = shared.in_flight.lock().unwrap();
        *c.by_path.get_mut(&path).unwrap() -= 1;
    }
    let mut response_headers = HeaderMap::new();
    if retry_after > 0 {
        response_headers.insert("retry-after", retry_after.to_string().parse().unwrap());
    }
    (
        StatusCode::from_u16(status).unwrap(),
        response_headers,
        format!("answered {status}"),
    )
}

impl Receiver {
    /// A receiver answering 200.
    pub async fn start() -> Self {
        let shared = Arc::new(Shared::default());
        shared.status.store(200, Ordering::SeqCst);
        let app = axum::Router::new()
            .fallback(receive)
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.expect("receiver");
        });
        Self {
            base: format!("http://{addr}"),
            shared,
        }
    }

    /// Answer with `status` from now on.
    pub fn answer(&self, status: u16) {
        self.shared.status.store(status, Ordering::SeqCst);
    }

    /// Send `Retry-After: seconds` with every answer (0: none).
    pub fn retry_after(&self, seconds: u64) {
        self.shared.retry_after.store(seconds, Ordering::SeqCst);
    }

    /// Take this long over each request.
    pub fn delay(&self, delay: Duration) {
        self.shared
            .delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    /// The requests to `path` answered 2xx.
    pub fn accepted(&self, path: &str) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.path == path && (200..300).contains(&r.status))
            .collect()
    }

    /// Wait until `path` has accepted `n` requests (panics after `timeout`).
    pub async fn wait_for(&self, path: &str, n: usize, timeout: Duration) -> Vec<Received> {
        crate::wait::wait_until(
            format!("{n} requests accepted on {path}"),
            timeout,
            move || async move {
                let got = self.accepted(path);
                if got.len() >= n {
                    Ok(got)
                } else {
                    Err(format!(
                        "{} accepted ({} requests in all)",
                        got.len(),
                        self.received().len()
                    ))
                }
            },
        )
        .await
    }

    /// The most requests to `path` that were in flight at once.
    pub fn max_in_flight(&self, path: &str) -> usize {
        self.shared
            .in_flight
            .lock()
            .unwrap()
            .max_by_path
            .get(path)
            .copied()
            .unwrap_or(0)
    }
}
