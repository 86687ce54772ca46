//! The binary as a builder runs it: `serve` with the embedded cluster, SIGTERM, a second
//! start on the same data, and the CLI tools while the server is stopped or running.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::Duration,
};

use frontdesk_test::wait::{wait_blocking, wait_until};

const BIN: &str = env!("CARGO_BIN_EXE_frontdesk");

struct DataDir(PathBuf);

impl Drop for DataDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn data_dir() -> DataDir {
    DataDir(std::env::temp_dir().join(format!(
        "fd-cli-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    )))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn frontdesk(dir: &Path, args: &[&str]) -> Output {
    run(Command::new(BIN)
        .env("FRONTDESK_DATA_DIR", dir)
        .env("FRONTDESK_LOG", "warn")
        .args(args))
}

/// An HTTP client whose requests fail the test instead of hanging it.
fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// How long a CLI command, or a server's start or stop, may take.
const PROCESS_WAIT: Duration = Duration::from_secs(120);

/// A child process killed if the test gives up on it.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Run `command` to its end and collect its output, like `Command::output`, but fail
/// (killing it) if it does not end within PROCESS_WAIT.
fn run(command: &mut Command) -> Output {
    let what = format!("{command:?} to finish");
    let mut child = Running(
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stdout = read_all(child.0.stdout.take().unwrap());
    let stderr = read_all(child.0.stderr.take().unwrap());
    let status = wait_blocking(&what, PROCESS_WAIT, || {
        child
            .0
            .try_wait()
            .unwrap()
            .ok_or_else(|| "running".to_owned())
    });
    // The command's output ends with it, unless something it started keeps the pipe.
    let collect = |rx: std::sync::mpsc::Receiver<Vec<u8>>| {
        rx.recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("{what}: its output did not end"))
    };
    Output {
        status,
        stdout: collect(stdout),
        stderr: collect(stderr),
    }
}

/// Everything `pipe` gives until it closes, read on a thread of its own.
fn read_all(mut pipe: impl std::io::Read + Send + 'static) -> std::sync::mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        let _ = tx.send(bytes);
    });
    rx
}

fn serve(dir: &Path, port: u16) -> Child {
    serve_with(dir, port, &[])
}

fn serve_with(dir: &Path, port: u16, env: &[(&str, &str)]) -> Child {
    Command::new(BIN)
        .envs(env.iter().copied())
        .env("FRONTDESK_DATA_DIR", dir)
        .env("FRONTDESK_LISTEN", format!("127.0.0.1:{port}"))
        .env("FRONTDESK_LOG", "warn")
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

async fn wait_ready(port: u16, child: &mut Child) {
    wait_until(
        format!("serve to answer /readyz on port {port}"),
        PROCESS_WAIT,
        || {
            if let Some(status) = child.try_wait().unwrap() {
                let err = child
                    .stderr
                    .take()
                    .and_then(|e| read_all(e).recv_timeout(Duration::from_secs(10)).ok())
                    .unwrap_or_default();
                panic!(
                    "serve exited with {status}: {}",
                    String::from_utf8_lossy(&err)
                );
            }
            async move {
                match reqwest::get(format!("http://127.0.0.1:{port}/readyz")).await {
                    Ok(r) if r.status() == 200 => Ok(()),
                    Ok(r) => Err(format!("/readyz answered {}", r.status())),
                    Err(e) => Err(e.to_string()),
                }
            }
        },
    )
    .await
}

fn terminate(child: &mut Child) {
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let status = wait_blocking(
        format!("process {} to stop after SIGTERM", child.id()),
        Duration::from_secs(30),
        || {
            child
                .try_wait()
                .unwrap()
                .ok_or_else(|| "running".to_owned())
        },
    );
    assert!(status.success(), "serve exited with {status}");
}

/// Processes whose command line mentions the data directory (PostgreSQL's are started
/// with `-D <dir>/pg`).
fn processes_of(dir: &Path) -> Vec<String> {
    scan_processes(dir)
        .into_iter()
        .map(|(_, cmdline)| cmdline)
        .collect()
}

/// (pid, command line) of the processes whose command line mentions `dir`.
fn scan_processes(dir: &Path) -> Vec<(String, String)> {
    let needle = dir.to_string_lossy().to_string();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if !entry
            .file_name()
            .to_string_lossy()
            .bytes()
            .all(|b| b.is_ascii_digit())
        {
            continue;
        }
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(&needle) && !cmdline.contains("fd-cli-reaper") {
                found.push((entry.file_name().to_string_lossy().into_owned(), cmdline));
            }
        }
    }
    found
}

#[tokio::test]
async fn serve_stops_its_cluster_on_sigterm_keeps_data_and_tools_work_while_stopped() {
    let dir = data_dir();
    let port = free_port();
    let mut server = serve(&dir.0, port);
    wait_ready(port, &mut server).await;

    let token = frontdesk(
        &dir.0,
        &[
            "token",
            "--sub",
            "0190f5e2-7c3a-7d2e-9b1a-3c4d5e6f7a8b",
            "--ttl",
            "10m",
        ],
    );
    assert!(token.status.success());
    let token = String::from_utf8(token.stdout).unwrap().trim().to_owned();
    let http = http_client();
    let created = http
        .post(format!("http://127.0.0.1:{port}/v1/tenants"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"slug": "kept", "name": "Kept"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);

    // While the server runs, the tools use its cluster and say so.
    let status = frontdesk(&dir.0, &["migrate", "status"]);
    assert!(status.status.success());
    assert!(
        String::from_utf8_lossy(&status.stderr).contains("already running"),
        "{status:?}"
    );

    terminate(&mut server);
    assert_eq!(
        processes_of(&dir.0),
        Vec::<String>::new(),
        "PostgreSQL processes left after SIGTERM"
    );
    assert!(!dir.0.join("pg/postmaster.pid").exists());

    // Stopped: the tools start and stop the cluster themselves.
    let status = frontdesk(&dir.0, &["migrate", "status"]);
    assert!(status.status.success(), "{status:?}");
    assert!(String::from_utf8_lossy(&status.stdout).contains("0001_foundation"));
    assert!(String::from_utf8_lossy(&status.stdout).contains("applied"));
    assert!(String::from_utf8_lossy(&status.stderr).contains("starting the embedded cluster"));
    let verify = frontdesk(&dir.0, &["migrate", "verify"]);
    assert!(verify.status.success(), "{verify:?}");
    assert!(String::from_utf8_lossy(&verify.stdout).contains("ok"));
    let dump = dir.0.join("backup.dump");
    let dumped = frontdesk(&dir.0, &["db", "dump", "--output", dump.to_str().unwrap()]);
    assert!(dumped.status.success(), "{dumped:?}");
    assert!(std::fs::read(&dump).unwrap().starts_with(b"PGDMP"));
    let restored = frontdesk(&dir.0, &["db", "restore", dump.to_str().unwrap()]);
    assert!(restored.status.success(), "{restored:?}");
    assert_eq!(
        processes_of(&dir.0),
        Vec::<String>::new(),
        "the tools left PostgreSQL running"
    );

    // A second start keeps the data.
    let mut server = serve(&dir.0, port);
    wait_ready(port, &mut server).await;
    let kept = http
        .get(format!("http://127.0.0.1:{port}/v1/tenants/kept"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(kept.status(), 200);
    terminate(&mut server);
    assert_eq!(processes_of(&dir.0), Vec::<String>::new());
}

#[test]
fn token_refuses_a_bad_ttl_and_sub() {
    let dir = data_dir();
    for sub in ["", "two\nlines"] {
        assert!(
            !frontdesk(&dir.0, &["token", "--sub", sub]).status.success(),
            "{sub:?}"
        );
    }
    assert!(
        !frontdesk(
            &dir.0,
            &[
                "token",
                "--sub",
                "0190f5e2-7c3a-7d2e-9b1a-3c4d5e6f7a8b",
                "--ttl",
                "1y"
            ]
        )
        .status
        .success()
    );
}

/// A URL for `database` on the harness's cluster, as `user`.
fn url_for(db: &frontdesk_test::TestDb, user: &str) -> String {
    let socket = db
        .cluster
        .socket_dir()
        .to_string_lossy()
        .replace('/', "%2F");
    format!("postgresql://{user}@{socket}/{}", db.name)
}

#[tokio::test]
async fn serve_with_database_url_migrates_and_serves_through_the_login_roles() {
    let db = frontdesk_test::cluster().database(false).await;
    let dir = data_dir();
    let port = free_port();
    let url = url_for(&db, "postgres");
    let mut server = serve_with(&dir.0, port, &[("DATABASE_URL", &url)]);
    wait_ready(port, &mut server).await;
    let admin = db.admin().await;
    let applied: i64 = admin
        .query_one("select count(*) from frontdesk_meta.schema_migrations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(applied as usize, frontdesk_pg::migrate::MIGRATIONS.len());
    let logins: i64 = admin
        .query_one(
            "select count(distinct usename) from pg_stat_activity where datname = $1
               and usename in ('frontdesk_app', 'frontdesk_operator')",
            &[&db.name],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        logins, 2,
        "the request path and the workers do not log in as frontdesk_app and frontdesk_operator"
    );
    terminate(&mut server);
    // No embedded cluster was made for an external database.
    assert!(!dir.0.join("pg").exists());
}

#[tokio::test]
async fn db_roles_prints_the_login_roles_sql_and_applies_it_with_apply() {
    let db = frontdesk_test::cluster().database(false).await;
    let dir = data_dir();
    let printed = run(Command::new(BIN)
        .env("DATABASE_URL", url_for(&db, "postgres"))
        .env("FRONTDESK_DATA_DIR", &dir.0)
        .env("FRONTDESK_APP_PASSWORD", "s3cret'app")
        .args(["db", "roles"]));
    assert!(printed.status.success(), "{printed:?}");
    let sql = String::from_utf8_lossy(&printed.stdout);
    for expected in [
        "create role frontdesk_owner login;",
        "create role frontdesk_app login;",
        "create role frontdesk_operator login bypassrls;",
        "alter role frontdesk_app login nobypassrls password 's3cret''app';",
        &format!(
            "grant connect on database \"{}\" to frontdesk_app, frontdesk_operator;",
            db.name
        ),
    ] {
        assert!(sql.contains(expected), "{expected:?} missing from:\n{sql}");
    }
    assert!(!sql.to_lowercase().contains("set role"), "{sql}");
    // --apply runs it on DATABASE_URL (the roles exist here already: it is idempotent).
    let applied = run(Command::new(BIN)
        .env("DATABASE_URL", url_for(&db, "postgres"))
        .env("FRONTDESK_DATA_DIR", &dir.0)
        .args(["db", "roles", "--apply"]));
    assert!(applied.status.success(), "{applied:?}");
    let can_login: bool = db
        .admin()
        .await
        .query_one(
            "select bool_and(rolcanlogin) from pg_roles where rolname in ('frontdesk_owner', 'frontdesk_app', 'frontdesk_operator')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(can_login);
    // Without an external database there is nothing to print.
    let embedded = run(Command::new(BIN)
        .env_remove("DATABASE_URL")
        .env("FRONTDESK_DATA_DIR", &dir.0)
        .args(["db", "roles"]));
    assert!(!embedded.status.success());
}

#[tokio::test]
async fn a_database_url_role_that_cannot_create_roles_gets_the_sql_to_run() {
    let db = frontdesk_test::cluster().database(false).await;
    let admin = db.admin().await;
    let role = format!("limited_{}", uuid::Uuid::new_v4().simple());
    admin
        .batch_execute(&format!("create role {role} login"))
        .await
        .unwrap();
    let dir = data_dir();
    let out = run(Command::new(BIN)
        .env("DATABASE_URL", url_for(&db, &role))
        .env("FRONTDESK_DATA_DIR", &dir.0)
        .args(["migrate", "up"]));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Ask an administrator"), "{stderr}");
    assert!(
        stderr.contains(&format!("grant frontdesk_owner to \"{role}\"")),
        "{stderr}"
    );
    assert!(
        stderr.contains("create role frontdesk_app login;"),
        "{stderr}"
    );
}

/// POST JSON with a bearer token; the answer's JSON (panics on a status other than `want`).
async fn post_json(
    http: &reqwest::Client,
    url: String,
    token: &str,
    body: serde_json::Value,
    want: u16,
) -> serde_json::Value {
    let r = http
        .post(&url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    assert_eq!(status, want, "{url}: {text}");
    serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
}

#[tokio::test]
async fn events_committed_before_a_crash_are_delivered_after_the_restart() {
    use frontdesk_test::receiver::Receiver;
    let receiver = Receiver::start().await;
    let dir = data_dir();
    let port = free_port();
    // No delivery worker: every event stays queued when the crash comes.
    let quiet = [
        ("FRONTDESK_WEBHOOK_WORKER", "false"),
        ("FRONTDESK_WEBHOOK_ALLOW_PRIVATE", "true"),
    ];
    let mut server = serve_with(&dir.0, port, &quiet);
    wait_ready(port, &mut server).await;
    let token = frontdesk(
        &dir.0,
        &[
            "token",
            "--sub",
            "0190f5e2-7c3a-7d2e-9b1a-3c4d5e6f7a8b",
            "--ttl",
            "10m",
        ],
    );
    let token = String::from_utf8(token.stdout).unwrap().trim().to_owned();
    let http = http_client();
    let base = format!("http://127.0.0.1:{port}/v1/tenants");
    post_json(
        &http,
        base.clone(),
        &token,
        serde_json::json!({"slug": "crash", "name": "Crash"}),
        201,
    )
    .await;
    let t = format!("{base}/crash");
    post_json(
        &http,
        format!("{t}/webhook-endpoints"),
        &token,
        serde_json::json!({"url": format!("{}/after-crash", receiver.base), "event_types": ["message.created"]}),
        201,
    )
    .await;
    let assistant = post_json(
        &http,
        format!("{t}/assistants"),
        &token,
        serde_json::json!({"name": "A"}),
        201,
    )
    .await;
    let conversation = post_json(
        &http,
        format!("{t}/conversations"),
        &token,
        serde_json::json!({"assistant_id": assistant["id"]}),
        201,
    )
    .await;
    let mut ids = Vec::new();
    for i in 0..25 {
        let m = post_json(
            &http,
            format!(
                "{t}/conversations/{}/messages",
                conversation["id"].as_str().unwrap()
            ),
            &token,
            serde_json::json!({"role": "user", "content": format!("before the crash {i}")}),
            201,
        )
        .await;
        ids.push(m["id"].as_str().unwrap().to_owned());
    }

    // SIGKILL the server and every PostgreSQL process of its cluster.
    let mut pids: Vec<String> = scan_processes(&dir.0)
        .into_iter()
        .map(|(pid, _)| pid)
        .collect();
    pids.push(server.id().to_string());
    let killed = Command::new("kill")
        .arg("-KILL")
        .args(&pids)
        .status()
        .unwrap();
    assert!(killed.success());
    wait_blocking("the killed server to end", Duration::from_secs(30), || {
        server
            .try_wait()
            .unwrap()
            .ok_or_else(|| "running".to_owned())
    });
    wait_blocking(
        "the killed cluster's processes to end",
        Duration::from_secs(30),
        || match processes_of(&dir.0) {
            left if left.is_empty() => Ok(()),
            left => Err(format!("{left:?}")),
        },
    );
    assert!(
        receiver.received().is_empty(),
        "nothing was sent before the crash"
    );

    // Restarted with its worker: every committed event arrives.
    let mut server = serve_with(&dir.0, port, &[("FRONTDESK_WEBHOOK_ALLOW_PRIVATE", "true")]);
    wait_ready(port, &mut server).await;
    let got = receiver
        .wait_for("/after-crash", 25, Duration::from_secs(60))
        .await;
    let delivered: Vec<String> = got
        .iter()
        .map(|r| r.json()["data"]["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(delivered, ids);
    terminate(&mut server);
    assert_eq!(processes_of(&dir.0), Vec::<String>::new());
}

#[tokio::test]
async fn two_worker_processes_never_send_to_one_endpoint_at_once() {
    use frontdesk_test::{fixtures::seed_tenant, receiver::Receiver};
    let app = frontdesk_test::spawn_app().await;
    let t = seed_tenant(&app, "acme").await;
    let receiver = Receiver::start().await;
    // Slow answers give the two workers every chance to overlap.
    receiver.delay(Duration::from_millis(15));
    let paths = ["/one", "/two", "/three"];
    for path in paths {
        let r = app
            .post(
                "/v1/tenants/acme/webhook-endpoints",
                &t.owner_token,
                serde_json::json!({"url": format!("{}{path}", receiver.base), "event_types": ["message.created"]}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let posts = (0..40)
        .map(|i| {
            app.post_to(
                &format!("/v1/tenants/acme/conversations/{}/messages", t.conversation),
                &t.full_key,
                serde_json::json!({"role": "user", "content": format!("m{i}")}),
            )
        })
        .collect();
    for reply in frontdesk_test::post_all(&app.http, posts).await {
        assert_eq!(reply.status, 201, "{}", reply.text);
    }
    let dir = data_dir();
    let url = url_for(&app.db, "postgres");
    let workers: Vec<Child> = (0..2)
        .map(|_| {
            Command::new(BIN)
                .env("DATABASE_URL", &url)
                .env("FRONTDESK_DATA_DIR", &dir.0)
                .env("FRONTDESK_WEBHOOK_ALLOW_PRIVATE", "true")
                .env("FRONTDESK_LOG", "warn")
                .arg("worker")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for path in paths {
        receiver.wait_for(path, 40, Duration::from_secs(60)).await;
    }
    for mut worker in workers {
        terminate(&mut worker);
    }
    for path in paths {
        assert_eq!(
            receiver.max_in_flight(path),
            1,
            "{path}: two attempts at once"
        );
        let mut ids: Vec<String> = receiver
            .accepted(path)
            .iter()
            .map(|r| r.header("webhook-id").to_owned())
            .collect();
        assert_eq!(ids.len(), 40, "{path}: an event sent twice");
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 40, "{path}: an event sent twice");
    }
}

/// Lines a process wrote to a pipe so far, read on a thread of its own as they come.
#[derive(Clone, Default)]
struct Lines(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl Lines {
    fn collect(pipe: impl std::io::Read + Send + 'static) -> Self {
        let lines = Self::default();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in std::io::BufRead::lines(std::io::BufReader::new(pipe)) {
                let Ok(line) = line else { break };
                sink.0.lock().unwrap().push(line);
            }
        });
        lines
    }

    fn find(&self, pred: impl Fn(&str) -> bool) -> Option<String> {
        self.0.lock().unwrap().iter().find(|l| pred(l)).cloned()
    }

    fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

/// Serve with request logging on (`tower_http=debug` logs a line as each request ends)
/// in `format`; its stdout and stderr lines.
fn serve_logging(dir: &Path, port: u16, format: &str) -> (Child, Lines, Lines) {
    serve_logging_with(dir, port, format, &[])
}

fn serve_logging_with(
    dir: &Path,
    port: u16,
    format: &str,
    env: &[(&str, &str)],
) -> (Child, Lines, Lines) {
    let mut child = Command::new(BIN)
        .envs(env.iter().copied())
        .env("FRONTDESK_DATA_DIR", dir)
        .env("FRONTDESK_LISTEN", format!("127.0.0.1:{port}"))
        .env("FRONTDESK_LOG", "info,tower_http=debug")
        .env("FRONTDESK_LOG_FORMAT", format)
        .arg("serve")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = Lines::collect(child.stdout.take().unwrap());
    let stderr = Lines::collect(child.stderr.take().unwrap());
    (child, stdout, stderr)
}

#[tokio::test]
async fn every_log_line_of_a_tenant_request_names_the_request_and_the_tenant_in_both_formats() {
    let dir = data_dir();
    let port = free_port();
    let http = http_client();
    let mut tenant_id = String::new();
    for format in ["json", "text"] {
        let (mut server, stdout, stderr) = serve_logging(&dir.0, port, format);
        wait_ready(port, &mut server).await;
        let token = frontdesk(
            &dir.0,
            &[
                "token",
                "--sub",
                "0190f5e2-7c3a-7d2e-9b1a-3c4d5e6f7a8b",
                "--ttl",
                "10m",
            ],
        );
        let token = String::from_utf8(token.stdout).unwrap().trim().to_owned();
        if tenant_id.is_empty() {
            let created = post_json(
                &http,
                format!("http://127.0.0.1:{port}/v1/tenants"),
                &token,
                serde_json::json!({"slug": "logged", "name": "Logged"}),
                201,
            )
            .await;
            tenant_id = created["id"].as_str().unwrap().to_owned();
        }
        let request_id = format!("log-test-{format}");
        let r = http
            .get(format!("http://127.0.0.1:{port}/v1/tenants/logged/members"))
            .bearer_auth(&token)
            .header("x-request-id", &request_id)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-request-id"], request_id.as_str());
        // JSON is one object per line on stdout, with the request's span in it; text goes
        // to stderr, each line prefixed with its spans and their fields.
        let (lines, wanted) = match format {
            "json" => (&stdout, "the JSON line of the request's end"),
            _ => (&stderr, "the text line of the request's end"),
        };
        let line = wait_until(wanted, Duration::from_secs(30), || {
            let found =
                lines.find(|l| l.contains(&request_id) && l.contains("finished processing"));
            let seen = format!("{} lines, none of {request_id}", lines.count());
            async move { found.ok_or(seen) }
        })
        .await;
        if format == "json" {
            let line: serde_json::Value = serde_json::from_str(&line).unwrap();
            let span = &line["span"];
            assert_eq!(span["name"], "request", "{line}");
            assert_eq!(span["request.id"], request_id.as_str(), "{line}");
            assert_eq!(span["tenant.ref"], "logged", "{line}");
            assert_eq!(span["tenant.id"], tenant_id.as_str(), "{line}");
        } else {
            for field in [
                format!("request.id={request_id}"),
                "tenant.ref=logged".to_owned(),
                format!("tenant.id={tenant_id}"),
            ] {
                assert!(line.contains(&field), "no {field} in {line}");
            }
        }
        terminate(&mut server);
    }
}

const SUB: &str = "0190f5e2-7c3a-7d2e-9b1a-3c4d5e6f7a8b";

/// `frontdesk token` for SUB with `dir`: the token and what the command said on stderr.
fn token_for(dir: &Path) -> (String, String) {
    let out = frontdesk(dir, &["token", "--sub", SUB, "--ttl", "10m"]);
    assert!(out.status.success(), "{out:?}");
    (
        String::from_utf8(out.stdout).unwrap().trim().to_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// One sample of `/metrics`: the value of the series written exactly as `series`.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|l| {
        l.strip_prefix(series)
            .and_then(|rest| rest.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
    })
}

async fn send(request: reqwest::RequestBuilder) -> (u16, serde_json::Value) {
    let r = request.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    )
}

/// Issue 13, item 6: the token command says which secret it used and warns about a data
/// directory no server uses; the server's 401 for another secret says so; the log of a
/// server through a pipe has no colour codes and none of PostgreSQL's notices or warnings
/// (nor does PostgreSQL's own log: no stray ROLLBACK); `/metrics` describes every metric
/// and counts events, limit refusals and background passes.
#[tokio::test]
async fn tokens_name_their_secret_the_log_stays_quiet_and_metrics_say_what_happened() {
    let dir = data_dir();
    let elsewhere = data_dir();
    let port = free_port();
    let http = http_client();
    // Webhooks to a closed port, retried only after an hour: one stays in the backlog.
    let (mut server, _stdout, stderr) = serve_logging_with(
        &dir.0,
        port,
        "text",
        &[
            ("FRONTDESK_WEBHOOK_ALLOW_PRIVATE", "true"),
            ("FRONTDESK_WEBHOOK_RETRY_SCHEDULE", "1h"),
        ],
    );
    wait_ready(port, &mut server).await;
    let base = format!("http://127.0.0.1:{port}");

    let (token, said) = token_for(&dir.0);
    let secret_path = std::path::absolute(dir.0.join("jwt-secret")).unwrap();
    assert!(
        said.contains(&format!(
            "signed with the secret in {}",
            secret_path.display()
        )),
        "{said}"
    );
    assert!(!said.contains("warning"), "{said}");
    // Another data directory: a new secret no server uses, and the server says so.
    let (stranger, said) = token_for(&elsewhere.0);
    assert!(said.contains("a new one was generated"), "{said}");
    assert!(said.contains("holds no database cluster"), "{said}");
    let (status, problem) = send(
        http.get(format!("{base}/v1/tenants"))
            .bearer_auth(&stranger),
    )
    .await;
    assert_eq!(status, 401, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("signed with another secret than this server's"),
        "{problem}"
    );

    // Requests of every kind: created, conflicting, read, missing, refused by a limit.
    let tenant = serde_json::json!({"slug": "quiet", "name": "Quiet"});
    let (status, _) = send(
        http.post(format!("{base}/v1/tenants"))
            .bearer_auth(&token)
            .json(&tenant),
    )
    .await;
    assert_eq!(status, 201);
    let (status, _) = send(
        http.post(format!("{base}/v1/tenants"))
            .bearer_auth(&token)
            .json(&tenant),
    )
    .await;
    assert_eq!(status, 409);
    let (status, _) = send(
        http.get(format!("{base}/v1/tenants/quiet"))
            .bearer_auth(&token),
    )
    .await;
    assert_eq!(status, 200);
    let closed = free_port();
    let (status, _) = send(
        http.post(format!("{base}/v1/tenants/quiet/webhook-endpoints"))
            .bearer_auth(&token)
            .json(&serde_json::json!({
                "url": format!("http://127.0.0.1:{closed}/hook"),
                "event_types": ["conversation.created"]
            })),
    )
    .await;
    assert_eq!(status, 201);
    let (status, assistant) = send(
        http.post(format!("{base}/v1/tenants/quiet/assistants"))
            .bearer_auth(&token)
            .json(&serde_json::json!({"name": "A"})),
    )
    .await;
    assert_eq!(status, 201);
    let (status, _) = send(
        http.post(format!("{base}/v1/tenants/quiet/conversations"))
            .bearer_auth(&token)
            .json(&serde_json::json!({"assistant_id": assistant["id"]})),
    )
    .await;
    assert_eq!(status, 201);
    let (status, _) = send(
        http.get(format!("{base}/v1/tenants/nowhere"))
            .bearer_auth(&token),
    )
    .await;
    assert_eq!(status, 404);
    let missing = uuid::Uuid::now_v7();
    let (status, _) = send(
        http.put(format!(
            "{base}/v1/tenants/quiet/messages/{missing}/feedback"
        ))
        .bearer_auth(&token)
        .json(&serde_json::json!({"rating": 1})),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = send(
        http.patch(format!("{base}/v1/tenants/quiet"))
            .bearer_auth(&token)
            .json(&serde_json::json!({"daily_token_limit": 10})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, refused) = send(
        http.post(format!("{base}/v1/tenants/quiet/limits/check"))
            .bearer_auth(&token)
            .json(&serde_json::json!({"prompt_tokens": 100, "reserve": true})),
    )
    .await;
    assert_eq!(status, 429, "{refused}");
    assert_eq!(refused["limit_name"], "daily_token_limit");

    // Events are counted once settled (a few seconds): exactly the one conversation
    // created; its delivery failed once and waits for its retry.
    let metrics = wait_until(
        "/metrics to count the conversation.created event and its attempt",
        Duration::from_secs(60),
        || {
            let http = http.clone();
            let url = format!("{base}/metrics");
            async move {
                let text = http
                    .get(url)
                    .send()
                    .await
                    .map_err(|e| e.to_string())?
                    .text()
                    .await
                    .map_err(|e| e.to_string())?;
                let counted = sample(&text, "events_written_total{type=\"conversation.created\"}");
                let attempted = sample(&text, "webhook_delivery_attempts_total{outcome=\"retry\"}");
                match (counted, attempted) {
                    (Some(_), Some(_)) => Ok(text),
                    _ => Err(format!(
                        "not yet: {counted:?} events, {attempted:?} attempts"
                    )),
                }
            }
        },
    )
    .await;
    assert_eq!(
        sample(
            &metrics,
            "events_written_total{type=\"conversation.created\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            "webhook_delivery_attempts_total{outcome=\"retry\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            "limit_refusals_total{limit=\"daily_token_limit\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, "webhook_backlog_pending"),
        Some(1.0),
        "{metrics}"
    );
    assert!(
        sample(&metrics, "webhook_backlog_oldest_seconds").is_some_and(|age| age > 0.0),
        "{metrics}"
    );
    assert!(
        sample(
            &metrics,
            "background_job_runs_total{job=\"webhook_delivery\"}"
        )
        .is_some_and(|n| n >= 1.0),
        "{metrics}"
    );
    assert!(
        sample(&metrics, "db_pool_max_size{pool=\"operator\"}").is_some(),
        "{metrics}"
    );
    // Every metric has its HELP.
    let described: Vec<&str> = metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# HELP "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    let typed: Vec<&str> = metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    assert!(typed.len() >= 10, "{metrics}");
    for name in &typed {
        assert!(described.contains(name), "no # HELP for {name}:\n{metrics}");
    }

    terminate(&mut server);
    let log = stderr.all();
    assert!(log.iter().any(|l| l.contains("serving")), "{log:?}");
    for line in &log {
        assert!(
            !line.contains('\u{1b}'),
            "a colour code in the log: {line:?}"
        );
        assert!(
            !line.contains("WARNING") && !line.contains("NOTICE"),
            "PostgreSQL's message in the server log: {line}"
        );
    }
    let pg_log = std::fs::read_to_string(dir.0.join("run/postgresql.log")).unwrap();
    assert!(
        !pg_log.contains("there is no transaction in progress"),
        "a ROLLBACK or COMMIT outside a transaction:\n{pg_log}"
    );
}

/// Issue 13, item 6: `db restore` refuses while a server uses the database (`--force`
/// overrides); `migrate down` shows what it drops and needs `--yes` without a terminal;
/// `token` warns when no server runs with its data directory.
#[tokio::test]
async fn restore_and_migrate_down_refuse_without_a_say_so() {
    let dir = data_dir();
    let port = free_port();
    let mut server = serve(&dir.0, port);
    wait_ready(port, &mut server).await;

    let dump = dir.0.join("backup.dump");
    let dumped = frontdesk(&dir.0, &["db", "dump", "--output", dump.to_str().unwrap()]);
    assert!(dumped.status.success(), "{dumped:?}");
    let refused = frontdesk(&dir.0, &["db", "restore", dump.to_str().unwrap()]);
    assert!(!refused.status.success(), "{refused:?}");
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("a server is using the database"), "{said}");
    assert!(said.contains("--force"), "{said}");

    let status_before = frontdesk(&dir.0, &["migrate", "status"]);
    let down = frontdesk(&dir.0, &["migrate", "down"]);
    assert!(!down.status.success(), "{down:?}");
    let said = String::from_utf8_lossy(&down.stderr);
    let newest = frontdesk_pg::migrate::MIGRATIONS.last().unwrap();
    assert!(
        said.contains(&format!("{:04}_{}", newest.version, newest.name)),
        "{said}"
    );
    for drop in frontdesk_pg::migrate::drops(newest.down) {
        assert!(said.contains(&drop), "{drop:?} not shown:\n{said}");
    }
    assert!(said.contains("--yes"), "{said}");
    let status_after = frontdesk(&dir.0, &["migrate", "status"]);
    assert_eq!(
        String::from_utf8_lossy(&status_before.stdout),
        String::from_utf8_lossy(&status_after.stdout),
        "migrate down without --yes changed something"
    );

    let forced = frontdesk(
        &dir.0,
        &["db", "restore", "--force", dump.to_str().unwrap()],
    );
    assert!(forced.status.success(), "{forced:?}");

    terminate(&mut server);
    let (_, said) = token_for(&dir.0);
    assert!(said.contains("no server is running"), "{said}");

    // On a terminal (util-linux `script` gives it one) it asks; an answer other than
    // yes (here: the end of input) reverts nothing.
    if Path::new("/usr/bin/script").exists() {
        let asked = run(Command::new("/usr/bin/script")
            .env("FRONTDESK_DATA_DIR", &dir.0)
            .env("FRONTDESK_LOG", "warn")
            .args(["-qec", &format!("{BIN} migrate down"), "/dev/null"]));
        let said = String::from_utf8_lossy(&asked.stdout);
        assert!(said.contains("type yes to go on"), "{asked:?}");
        assert!(said.contains("nothing was reverted"), "{asked:?}");
        let status_now = frontdesk(&dir.0, &["migrate", "status"]);
        assert_eq!(
            String::from_utf8_lossy(&status_before.stdout),
            String::from_utf8_lossy(&status_now.stdout),
            "migrate down reverted without a yes"
        );
    }
    let down = frontdesk(&dir.0, &["migrate", "down", "--yes"]);
    assert!(down.status.success(), "{down:?}");
    assert!(
        String::from_utf8_lossy(&down.stdout).contains(&format!("{:04}", newest.version)),
        "{down:?}"
    );
}

/// `frontdesk token --sub` takes an identity provider's id as given; the server maps it to
/// the same user id as `POST …/members` does.
#[tokio::test]
async fn token_takes_an_identity_providers_sub_and_the_server_maps_it_to_its_user_id() {
    let app = frontdesk_test::spawn_app().await;
    let dir = data_dir();
    let minted = run(Command::new(BIN)
        .env("FRONTDESK_DATA_DIR", &dir.0)
        .env("FRONTDESK_LOG", "warn")
        .env("FRONTDESK_JWT_SECRET", frontdesk_test::JWT_SECRET)
        .args([
            "token",
            "--sub",
            "auth0|65f1c2",
            "--email",
            "sam@example.com",
        ]));
    assert!(minted.status.success(), "{minted:?}");
    let token = String::from_utf8(minted.stdout).unwrap().trim().to_owned();
    // The claim is the sub as given.
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["sub"], "auth0|65f1c2");
    let expected = frontdesk_core::tenancy::users::user_id_for_sub("auth0|65f1c2");
    assert_eq!(expected.get_version_num(), 5);
    let me = app.get("/v1/me", &token).await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.body["id"], expected.to_string());
    // An owner adds the same person by that sub: the token now works in the tenant.
    let owner = frontdesk_test::user_token(uuid::Uuid::now_v7(), None);
    assert_eq!(
        app.post(
            "/v1/tenants",
            &owner,
            serde_json::json!({"slug": "subs", "name": "Subs"})
        )
        .await
        .status,
        201
    );
    let added = app
        .post(
            "/v1/tenants/subs/members",
            &owner,
            serde_json::json!({"user_id": "auth0|65f1c2", "role": "agent"}),
        )
        .await;
    assert_eq!(added.status, 201, "{}", added.text);
    assert_eq!(added.body["user_id"], expected.to_string());
    let tenant = app.get("/v1/tenants/subs", &token).await;
    assert_eq!(tenant.status, 200, "{}", tenant.text);
    assert_eq!(tenant.body["role"], "agent");
}
