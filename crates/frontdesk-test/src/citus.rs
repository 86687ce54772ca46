//! A Citus cluster for tests: a coordinator and two workers, three PostgreSQL 15 clusters
//! started with the same launcher as the embedded default, each also listening on its
//! own loopback port (Citus's nodes connect to each other over TCP as the current role;
//! `initdb --auth=trust` trusts loopback in these throwaway clusters).
//!
//! Where Citus is not installed, [`start`] prints [`SKIP`] and returns `None`, except
//! under CI (`CI` set), where a missing Citus fails the test.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use frontdesk_pg::{embedded::Cluster, roles};
use uuid::Uuid;

use crate::TestDb;

/// What a test says when it skips for want of Citus.
pub const SKIP: &str =
    "Citus is not installed here (no citus.so in PostgreSQL 15's library directory): skipping";

/// The PostgreSQL major version the Citus build is for.
const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// Settings of every node, server-wide (`-c` at start) rather than per database: every
/// test database gets them without a step of its own, and they are the same on all nodes
/// (the workers route queries too: Citus syncs its metadata to them).
const SETTINGS: &[(&str, &str)] = &[
    ("shared_preload_libraries", "citus"),
    // Triggers on distributed tables (the write paths are triggers).
    ("citus.enable_unsafe_triggers", "on"),
    // SET LOCAL of the request context reaches the workers' connections.
    ("citus.propagate_set_commands", "local"),
    // Four shards per distributed table instead of 32: the same code paths, less DDL.
    ("citus.shard_count", "4"),
];

/// PostgreSQL 15's bin directory when `citus.so` is in its `pg_config --pkglibdir`.
pub fn installed() -> Option<PathBuf> {
    let bin = Path::new(PG_BIN);
    let out = Command::new(bin.join("pg_config"))
        .arg("--pkglibdir")
        .output()
        .ok()?;
    let libdir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    (out.status.success() && libdir.join("citus.so").is_file()).then(|| bin.to_path_buf())
}

/// A running coordinator and two workers; stopped and deleted on drop.
pub struct Citus {
    pub coordinator: Cluster,
    pub workers: Vec<Cluster>,
    dir: PathBuf,
    /// One database set up at a time (roles are per node, created when missing).
    setup: tokio::sync::Mutex<()>,
}

/// Start a Citus cluster, or — where Citus is not installed — print [`SKIP`] and return
/// `None`. Under CI (`CI` set) a missing Citus panics instead: CI installs it.
pub fn start() -> Option<Citus> {
    let Some(bin) = installed() else {
        if std::env::var_os("CI").is_some() {
            panic!(
                "Citus is not installed, and CI must run the Citus tests: install Citus 13 for PostgreSQL 15 (.ci/run does)"
            );
        }
        // Straight to stderr: the test runner captures eprintln! of passing tests.
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), "{SKIP}");
        return None;
    };
    let dir = std::env::temp_dir().join(format!(
        "fd-citus-{}-{}",
        std::process::id(),
        Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).expect("Citus test directory");
    reap_dir_after_exit(&dir);
    let names = ["coordinator", "worker1", "worker2"];
    // initdb and start the three at once (each takes about a second).
    let nodes: Vec<Cluster> = std::thread::scope(|scope| {
        let handles: Vec<_> = names
            .iter()
            .map(|name| {
                let (dir, bin) = (dir.join(name), bin.clone());
                scope.spawn(move || start_node(&dir, &bin))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("starting a Citus node"))
            .collect()
    });
    let mut nodes = nodes.into_iter();
    let coordinator = nodes.next().unwrap();
    Some(Citus {
        coordinator,
        workers: nodes.collect(),
        dir,
        setup: tokio::sync::Mutex::new(()),
    })
}

/// Delete `dir` once this process has exited and the nodes' own reapers have stopped
/// them (each removes its node's files, not the directory holding the three).
#[expect(
    clippy::zombie_processes,
    reason = "the reaper outlives this process by design: it waits for it to exit"
)]
fn reap_dir_after_exit(dir: &Path) {
    let script = r#"while [ -d "/proc/$1" ]; do sleep 0.2; done
i=0
while ls "$2"/*/pg/postmaster.pid >/dev/null 2>&1 && [ $i -lt 300 ]; do sleep 0.2; i=$((i+1)); done
rm -rf "$2""#;
    Command::new("/bin/sh")
        .args(["-c", script, "reaper"])
        .arg(std::process::id().to_string())
        .arg(dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("starting the Citus directory reaper");
}

/// One node on a free loopback port (a port taken between the probe and the start is
/// retried with another).
fn start_node(dir: &Path, bin: &Path) -> Cluster {
    let mut last_error = None;
    for _ in 0..5 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut cluster = Cluster::new(dir)
            .expect("PostgreSQL binaries")
            .with_bin_dir(bin)
            .throwaway()
            .with_tcp_port(port);
        for (name, value) in SETTINGS {
            cluster = cluster.with_setting(name, value);
        }
        cluster.init().expect("initdb");
        cluster
            .give_data_dir_to_cluster_user()
            .expect("chown data dir");
        match cluster.start() {
            Ok(()) => {
                // Should this process die without dropping the handle.
                cluster.reap_after_exit(std::process::id()).expect("reaper");
                return cluster;
            }
            Err(error) => last_error = Some(error),
        }
    }
    panic!("a Citus node did not start: {:#}", last_error.unwrap());
}

impl Citus {
    /// Connection settings for `user` on `database` at the coordinator (its socket).
    pub fn config(&self, user: &str, database: &str) -> tokio_postgres::Config {
        self.coordinator.config(user, database)
    }

    /// Every node, the coordinator first.
    pub fn nodes(&self) -> impl Iterator<Item = &Cluster> {
        std::iter::once(&self.coordinator).chain(&self.workers)
    }

    /// A new empty database `name` owned by frontdesk_owner, with the Citus extension on
    /// every node and the workers added on the coordinator, and Frontdesk's roles on every
    /// node; the handle connects to the coordinator.
    pub async fn database(&self, name: &str) -> TestDb {
        let _one_at_a_time = self.setup.lock().await;
        for node in self.nodes() {
            let admin = frontdesk_pg::pool::connect(
                &node.config(frontdesk_pg::embedded::SUPERUSER, "postgres"),
            )
            .await
            .expect("connect to a Citus node");
            // Roles are per node (Citus does not propagate roles from a database without
            // it). Citus opens its connections to the workers as the current role, so the
            // roles that run statements log in (trust on loopback stands in for passwords).
            admin
                .batch_execute(&roles::roles_sql(&roles::Passwords::default()))
                .await
                .expect("roles");
            admin
                .batch_execute(&format!(
                    "create database {name} owner {} template template0",
                    roles::OWNER
                ))
                .await
                .expect("create database");
            admin
                .batch_execute(&roles::database_grants_sql(name))
                .await
                .expect("grants");
            let db =
                frontdesk_pg::pool::connect(&node.config(frontdesk_pg::embedded::SUPERUSER, name))
                    .await
                    .expect("connect to the new database");
            db.batch_execute("create extension citus")
                .await
                .expect("create extension citus");
        }
        let coordinator = frontdesk_pg::pool::connect(
            &self
                .coordinator
                .config(frontdesk_pg::embedded::SUPERUSER, name),
        )
        .await
        .expect("connect to the coordinator");
        let port = |c: &Cluster| i32::from(c.tcp_port().expect("a TCP port"));
        coordinator
            .execute(
                "select citus_set_coordinator_host('127.0.0.1', $1)",
                &[&port(&self.coordinator)],
            )
            .await
            .expect("citus_set_coordinator_host");
        for worker in &self.workers {
            coordinator
                .execute("select citus_add_node('127.0.0.1', $1)", &[&port(worker)])
                .await
                .expect("citus_add_node");
        }
        // The roles existed before this database had Citus, so Citus does not count them
        // among its distributed objects here; the first object a role owns would then
        // make Citus create the role on the workers as that (non-superuser) role, which
        // fails ("must be superuser to alter superuser roles"). Giving a throwaway
        // function to each role, as the superuser, has Citus record them now.
        let names: Vec<String> = coordinator
            .query(
                "select rolname::text from pg_roles where rolname like 'frontdesk\\_%' order by 1",
                &[],
            )
            .await
            .expect("roles")
            .iter()
            .map(|r| r.get(0))
            .collect();
        coordinator
            .batch_execute(
                "create function public.fd_role_probe() returns int language sql as 'select 1'",
            )
            .await
            .expect("probe function");
        for role in names {
            coordinator
                .batch_execute(&format!(
                    "alter function public.fd_role_probe() owner to {role}"
                ))
                .await
                .expect("give the probe function to a role");
        }
        coordinator
            .batch_execute("drop function public.fd_role_probe()")
            .await
            .expect("drop the probe function");
        TestDb {
            name: name.to_owned(),
            cluster: self.coordinator.clone(),
        }
    }
}

impl Citus {
    /// The errors in each node's server log (`ERROR`/`FATAL` lines and the statement
    /// after each), to show beside a failure: what the workers refused.
    pub fn log_errors(&self) -> String {
        let mut out = String::new();
        for (name, node) in ["coordinator", "worker1", "worker2"]
            .iter()
            .zip(self.nodes())
        {
            let log = std::fs::read_to_string(node.socket_dir().join("postgresql.log"))
                .unwrap_or_default();
            let mut keep = false;
            for line in log.lines() {
                if ["ERROR:", "FATAL:", "PANIC:", "terminated by signal"]
                    .iter()
                    .any(|m| line.contains(m))
                {
                    keep = true;
                } else if !(line.contains("STATEMENT:")
                    || line.contains("CONTEXT:")
                    || line.starts_with('\t'))
                {
                    keep = false;
                }
                if keep {
                    out.push_str(&format!("{name}: {line}\n"));
                }
            }
        }
        out
    }
}

impl Drop for Citus {
    fn drop(&mut self) {
        for node in self.nodes() {
            let _ = node
                .command("pg_ctl")
                .args(["stop", "-m", "immediate", "-w", "-D"])
                .arg(node.pg_dir())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
