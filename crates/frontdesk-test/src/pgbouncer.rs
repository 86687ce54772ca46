//! A PgBouncer in transaction mode in front of a test database (Debian's `pgbouncer`),
//! listening on a loopback port, with SCRAM logins for the roles it is given.

use std::{
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use crate::TestDb;

const BINARY: &str = "/usr/sbin/pgbouncer";

/// Whether PgBouncer is installed here.
pub fn installed() -> bool {
    Path::new(BINARY).is_file()
}

pub struct PgBouncer {
    pub port: u16,
    child: Child,
    dir: PathBuf,
}

impl PgBouncer {
    /// Start one in front of `db`: `logins` are (role, password) pairs it accepts and
    /// passes on; at most `server_connections` server connections per role.
    pub fn start(db: &TestDb, logins: &[(&str, &str)], server_connections: u32) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "frontdesk-pgbouncer-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).expect("pgbouncer dir");
        let port = free_port();
        let users: String = logins
            .iter()
            .map(|(user, password)| format!("\"{user}\" \"{password}\"\n"))
            .collect();
        std::fs::write(dir.join("users.txt"), users).expect("auth file");
        let config = format!(
            "[databases]\n{name} = host={socket} dbname={name}\n\n\
             [pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n\
             auth_type = scram-sha-256\nauth_file = {dir}/users.txt\npool_mode = transaction\n\
             default_pool_size = {server_connections}\nmax_client_conn = 500\n\
             ignore_startup_parameters = extra_float_digits\n\
             logfile = {dir}/pgbouncer.log\nadmin_users =\n",
            name = db.name,
            socket = db.cluster.socket_dir().display(),
            dir = dir.display(),
        );
        std::fs::write(dir.join("pgbouncer.ini"), config).expect("pgbouncer.ini");
        let mut command = Command::new(BINARY);
        command
            .arg(dir.join("pgbouncer.ini"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some((uid, gid)) = db.cluster.os_user() {
            // PgBouncer refuses to run as root: run it as the cluster's user.
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).expect("chown");
            for file in ["users.txt", "pgbouncer.ini"] {
                std::os::unix::fs::chown(dir.join(file), Some(uid), Some(gid)).expect("chown");
            }
            command.uid(uid).gid(gid);
        }
        let child = command.spawn().expect("starting pgbouncer");
        let bouncer = Self { port, child, dir };
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "pgbouncer did not listen on {port}: {}",
                std::fs::read_to_string(bouncer.dir.join("pgbouncer.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        bouncer
    }

    /// How `role` logs in through this PgBouncer.
    pub fn config(&self, db: &TestDb, role: &str, password: &str) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config
            .host("127.0.0.1")
            .port(self.port)
            .user(role)
            .password(password)
            .dbname(&db.name)
            .application_name("frontdesk");
        config
    }

    /// PgBouncer's log (for a failing test's message).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("pgbouncer.log")).unwrap_or_default()
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
