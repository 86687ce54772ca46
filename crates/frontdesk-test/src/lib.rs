//! Test harness: one PostgreSQL cluster per test binary (started with the same launcher
//! as `frontdesk serve`), migrations applied once into a template database, a fresh
//! database per test (`CREATE DATABASE … TEMPLATE`), and the app on port 0, talked to
//! over real HTTP.

pub mod citus;
pub mod fixtures;
pub mod journey;
pub mod pgbouncer;
pub mod receiver;
pub mod wait;

use std::{
    sync::{
        OnceLock,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use frontdesk_pg::{embedded::Cluster, roles};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use uuid::Uuid;

pub use reqwest;
pub use serde_json::json;

const TEMPLATE: &str = "frontdesk_template";
pub const JWT_SECRET: &str = "test-secret-test-secret-test-secret-0123456789";
pub const OPERATOR_TOKEN: &str = "test-operator-token-0123456789abcdef";

/// The cluster of this test binary.
pub struct TestCluster {
    pub cluster: Cluster,
}

static CLUSTER: OnceLock<TestCluster> = OnceLock::new();

/// Start (once) this binary's cluster with a migrated template database.
pub fn cluster() -> &'static TestCluster {
    CLUSTER.get_or_init(|| {
        // Set up on a thread of its own: tests call this from inside their runtime.
        std::thread::spawn(|| {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(
                    std::env::var("FRONTDESK_TEST_LOG").unwrap_or_else(|_| "warn".into()),
                )
                .with_test_writer()
                .try_init();
            let dir = std::env::temp_dir().join(format!(
                "fd-test-{}-{}",
                std::process::id(),
                Uuid::new_v4().simple()
            ));
            let cluster = Cluster::new(&dir).expect("PostgreSQL binaries").throwaway();
            cluster.init().expect("initdb");
            cluster
                .give_data_dir_to_cluster_user()
                .expect("chown data dir");
            cluster.reap_after_exit(std::process::id()).expect("reaper");
            cluster.start().expect("start cluster");
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                frontdesk_pg::setup::prepare_embedded(&cluster, TEMPLATE, &Default::default())
                    .await
                    .expect("roles and template");
                frontdesk_pg::setup::migrate(
                    &cluster.config(frontdesk_pg::embedded::SUPERUSER, TEMPLATE),
                )
                .await
                .expect("migrate template");
            });
            TestCluster { cluster }
        })
        .join()
        .expect("cluster setup")
    })
}

impl TestCluster {
    /// A new database: a copy of the migrated template, or an empty one owned by
    /// frontdesk_owner.
    pub async fn database(&self, migrated: bool) -> TestDb {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "test_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let admin = frontdesk_pg::pool::connect(
            &self
                .cluster
                .config(frontdesk_pg::embedded::SUPERUSER, "postgres"),
        )
        .await
        .expect("connect to cluster");
        let template = if migrated { TEMPLATE } else { "template0" };
        admin
            .batch_execute(&format!(
                "create database {name} owner {} template {template}",
                roles::OWNER
            ))
            .await
            .expect("create test database");
        admin
            .batch_execute(&roles::database_grants_sql(&name))
            .await
            .expect("grants");
        TestDb {
            name,
            cluster: self.cluster.clone(),
        }
    }
}

/// One test's database.
#[derive(Clone)]
pub struct TestDb {
    pub name: String,
    pub cluster: Cluster,
}

impl TestDb {
    pub fn admin_config(&self) -> tokio_postgres::Config {
        self.cluster
            .config(frontdesk_pg::embedded::SUPERUSER, &self.name)
    }

    pub fn config_as(&self, user: &str) -> tokio_postgres::Config {
        self.cluster.config(user, &self.name)
    }

    /// A superuser connection (bypasses RLS: for checking what is really stored).
    pub async fn admin(&self) -> tokio_postgres::Client {
        frontdesk_pg::pool::connect(&self.admin_config())
            .await
            .expect("admin connection")
    }

    /// A connection as `frontdesk_app`, the request path's login.
    pub async fn app_login(&self) -> tokio_postgres::Client {
        frontdesk_pg::pool::connect(&self.config_as(roles::APP))
            .await
            .expect("frontdesk_app connection")
    }

    /// The request path's pools, with the context form of `context_mode()`.
    pub fn db(&self, size: usize) -> frontdesk_pg::Db {
        let pool = |role| frontdesk_pg::pool::build(self.config_as(role), size).expect("pool");
        frontdesk_pg::Db::new(pool(roles::APP), pool(roles::OPERATOR), context_mode())
    }
}

/// A running app on its own fresh database.
pub struct TestApp {
    pub base: String,
    pub db: TestDb,
    pub http: reqwest::Client,
}

/// Settings a test may change before the app starts.
#[derive(Default)]
pub struct AppOptions {
    pub jwks_url: Option<String>,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    /// Refuse webhook endpoints on loopback and private addresses, as in production
    /// (tests allow them by default, for their loopback receivers).
    pub webhook_refuse_private: bool,
    /// Timeouts and the connection limit the server is run with (`frontdesk serve`'s
    /// defaults unless a test shortens them).
    pub limits: frontdesk_server::ServeLimits,
    /// A delivery worker for `/readyz` to watch, as `frontdesk serve` runs one.
    pub worker: Option<frontdesk_server::WorkerHealth>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(AppOptions::default()).await
}

pub async fn spawn_app_with(options: AppOptions) -> TestApp {
    let db = cluster().database(true).await;
    start_app(db, options).await
}

/// A second server on the database of another app (several servers, one database).
pub async fn spawn_app_on(db: &TestDb) -> TestApp {
    start_app(db.clone(), AppOptions::default()).await
}

/// A second server on another app's database, with its own settings.
pub async fn spawn_app_on_with(db: &TestDb, options: AppOptions) -> TestApp {
    start_app(db.clone(), options).await
}

/// The context form the test servers use: `FRONTDESK_CONTEXT_MODE` (`postgres` or
/// `citus`), else the prepared form. `make test` runs the suite once more with `citus`
/// (separate `SET LOCAL`s) on plain PostgreSQL, so both forms are tested on every run.
pub fn context_mode() -> frontdesk_pg::ContextMode {
    std::env::var("FRONTDESK_CONTEXT_MODE")
        .ok()
        .and_then(|m| frontdesk_pg::ContextMode::parse(&m))
        .unwrap_or_default()
}

async fn start_app(db: TestDb, options: AppOptions) -> TestApp {
    let pool = db.db(8);
    start_app_on_pools(db, pool, options).await
}

/// A server on `db` whose request path uses `pool` (e.g. through a pooler).
pub async fn start_app_on_pools(
    db: TestDb,
    pool: frontdesk_pg::Db,
    options: AppOptions,
) -> TestApp {
    frontdesk_core::platform::values::learn_time_zones(pool.app())
        .await
        .expect("time zone names");
    let auth = frontdesk_server::AuthConfig {
        jwt_secret: frontdesk_server::Secret(JWT_SECRET.into()),
        jwks_url: options.jwks_url,
        issuer: options.issuer,
        audience: options.audience,
        operator_token: frontdesk_server::Secret(OPERATOR_TOKEN.into()),
        leeway: Duration::from_secs(5),
        jwks_refetch_interval: Duration::from_millis(500),
    };
    let app = frontdesk_server::app_with(
        pool,
        auth,
        frontdesk_server::AppOptions {
            webhook_allow_private: !options.webhook_refuse_private,
            worker: options.worker,
            ..Default::default()
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind port 0");
    let addr = listener.local_addr().unwrap();
    // The serving loop of `frontdesk serve`, with its timeouts and connection limit.
    tokio::spawn(frontdesk_server::serve(
        listener,
        app,
        options.limits,
        std::future::pending(),
    ));
    TestApp {
        base: format!("http://{addr}"),
        db,
        // A request that hangs fails its test instead of hanging it.
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("HTTP client"),
    }
}

impl TestApp {
    /// A webhook delivery worker on this app's database (loopback allowed), with `config`'s
    /// other settings; not started: call `run_once`, or `spawn` it.
    pub fn worker(&self, config: frontdesk_server::WorkerConfig) -> frontdesk_server::Worker {
        frontdesk_server::Worker::new(
            self.db.db(4),
            frontdesk_server::WorkerConfig {
                allow_private: true,
                ..config
            },
        )
        .expect("worker")
    }
}

/// A response: status, headers and the body as JSON (Null when empty or not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

/// One POST of a batch sent in parallel (`post_all`).
pub struct Post {
    pub url: String,
    pub token: String,
    pub body: Value,
    pub idempotency_key: Option<String>,
}

/// Send every POST at once; the replies, in the order they finished.
pub async fn post_all(http: &reqwest::Client, posts: Vec<Post>) -> Vec<Reply> {
    let mut tasks = tokio::task::JoinSet::new();
    for post in posts {
        let mut request = http.post(post.url).bearer_auth(post.token).json(&post.body);
        if let Some(key) = post.idempotency_key {
            request = request.header("idempotency-key", key);
        }
        tasks.spawn(Reply::of(request));
    }
    let what = format!("the replies to {} parallel requests", tasks.len());
    wait::within(what, Duration::from_secs(120), async {
        let mut replies = Vec::new();
        while let Some(reply) = tasks.join_next().await {
            replies.push(reply.expect("request task"));
        }
        replies
    })
    .await
}

impl Reply {
    /// Send `request` and read the whole response.
    pub async fn of(request: reqwest::RequestBuilder) -> Self {
        let response = request.send().await.expect("request sent");
        let (status, headers) = (response.status(), response.headers().clone());
        let text = response.text().await.unwrap_or_default();
        Self {
            status,
            headers,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
        }
    }

    /// The field names of a validation problem.
    pub fn error_fields(&self) -> Vec<String> {
        self.body["errors"]
            .as_array()
            .map(|e| {
                e.iter()
                    .filter_map(|x| x["field"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn content_type(&self) -> &str {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

impl TestApp {
    /// Send a request with an optional bearer token and JSON body.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Reply {
        let mut request = self.http.request(
            Method::from_bytes(method.as_bytes()).unwrap(),
            format!("{}{path}", self.base),
        );
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        Reply::of(request).await
    }

    /// Send a body as is, with the given content type (malformed and oversized bodies).
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        token: &str,
        content_type: &str,
        body: String,
    ) -> Reply {
        let request = self
            .http
            .request(
                Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{}{path}", self.base),
            )
            .bearer_auth(token)
            .header("content-type", content_type)
            .body(body);
        Reply::of(request).await
    }

    /// POST a body as is, with these headers and no bearer token (a provider's callback).
    pub async fn callback(&self, path: &str, headers: &[(String, String)], body: String) -> Reply {
        let mut request = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        Reply::of(request).await
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.call("GET", path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call("POST", path, Some(token), Some(&body)).await
    }

    /// A POST to `path` on this app, for `post_all`.
    pub fn post_to(&self, path: &str, token: &str, body: Value) -> Post {
        Post {
            url: format!("{}{path}", self.base),
            token: token.to_owned(),
            body,
            idempotency_key: None,
        }
    }

    /// POST with an `Idempotency-Key` header.
    pub async fn post_idempotent(&self, path: &str, token: &str, key: &str, body: Value) -> Reply {
        let request = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .header("idempotency-key", key)
            .json(&body);
        Reply::of(request).await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call("PATCH", path, Some(token), Some(&body)).await
    }

    pub async fn delete(&self, path: &str, token: &str) -> Reply {
        self.call("DELETE", path, Some(token), None).await
    }
}

/// A user JWT signed with the test secret.
pub fn user_token(sub: Uuid, email: Option<&str>) -> String {
    token_with(sub, email, 3600, JWT_SECRET)
}

/// A JWT with a chosen lifetime (negative: already expired) and secret.
pub fn token_with(sub: Uuid, email: Option<&str>, ttl_seconds: i64, secret: &str) -> String {
    let now = jsonwebtoken::get_current_timestamp() as i64;
    let mut claims = json!({"sub": sub.to_string(), "iat": now, "exp": now + ttl_seconds});
    if let Some(email) = email {
        claims["email"] = json!(email);
    }
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// Tables of schema `app` that hold `tenant_id` (the tenant tables), from the catalog.
pub async fn tenant_tables(client: &tokio_postgres::Client) -> Vec<String> {
    client
        .query(
            "select c.relname::text from pg_class c join pg_namespace n on n.oid = c.relnamespace
             join pg_attribute a on a.attrelid = c.oid and a.attname = 'tenant_id' and not a.attisdropped
             where n.nspname = 'app' and c.relkind in ('r', 'p') order by 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Everything stored for `tenant` (its row in app.tenants and its rows in every tenant
/// table), as one text to compare before and after; columns that only record use
/// (`last_used_at`, `last_active_at`) are left out.
pub async fn tenant_snapshot(client: &tokio_postgres::Client, tenant: Uuid) -> String {
    let mut out = String::new();
    let mut tables = tenant_tables(client).await;
    tables.push("tenants".into());
    for table in tables {
        let key = if table == "tenants" {
            "id"
        } else {
            "tenant_id"
        };
        let row = client
            .query_one(
                &format!(
                    "select count(*), coalesce(string_agg((to_jsonb(t) - 'last_used_at' - 'last_active_at')::text, '\n' order by t::text), '')
                     from app.{table} t where {key} = $1"
                ),
                &[&tenant],
            )
            .await
            .unwrap();
        let count: i64 = row.get(0);
        let text: String = row.get(1);
        out.push_str(&format!("== {table} ({count})\n{text}\n"));
    }
    out
}
