//! The binary as a builder runs it: `serve` with the embedded cluster, SIGTERM, a second
//! start on the same data, and the CLI tools while the server is stopped or running.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

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
    Command::new(BIN)
        .env("FRONTDESK_DATA_DIR", dir)
        .env("FRONTDESK_LOG", "warn")
        .args(args)
        .output()
        .unwrap()
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
    let started = Instant::now();
    loop {
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/readyz")).await
            && r.status() == 200
        {
            return;
        }
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            panic!("serve exited with {status}: {err}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "serve did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn terminate(child: &mut Child) {
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "serve exited with {status}");
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "serve did not stop after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Processes whose command line mentions the data directory (PostgreSQL's are started
/// with `-D <dir>/pg`).
fn processes_of(dir: &Path) -> Vec<String> {
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
                found.push(cmdline);
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
    let http = reqwest::Client::new();
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
    assert!(
        !frontdesk(&dir.0, &["token", "--sub", "not-a-uuid"])
            .status
            .success()
    );
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
async fn serve_with_database_url_migrates_and_serves_through_the_authenticator() {
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
            "select count(*) from pg_stat_activity where datname = $1 and usename = 'frontdesk_authenticator'",
            &[&db.name],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        logins >= 1,
        "the request path does not log in as frontdesk_authenticator"
    );
    terminate(&mut server);
    // No embedded cluster was made for an external database.
    assert!(!dir.0.join("pg").exists());
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
    let out = Command::new(BIN)
        .env("DATABASE_URL", url_for(&db, &role))
        .env("FRONTDESK_DATA_DIR", &dir.0)
        .args(["migrate", "up"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Ask an administrator"), "{stderr}");
    assert!(
        stderr.contains(&format!("grant frontdesk_owner to \"{role}\"")),
        "{stderr}"
    );
    assert!(
        stderr.contains("create role frontdesk_authenticator login noinherit"),
        "{stderr}"
    );
}
