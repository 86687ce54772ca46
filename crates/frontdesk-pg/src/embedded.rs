//! The embedded default: a private PostgreSQL cluster inside the data directory.
//!
//! The cluster lives in `<data>/pg`, listens only on a Unix socket in `<data>/run` (no TCP
//! port, so it never clashes with anything), and trusts local connections: only the
//! cluster's OS user (and root) can reach that 0700 socket directory. PostgreSQL refuses
//! to run as root, so when we are root its programs run as the `postgres` user.

use std::{
    os::unix::{fs::PermissionsExt, process::CommandExt},
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context, bail};

/// The database the server uses inside the embedded cluster.
pub const DATABASE: &str = "frontdesk";
/// The bootstrap superuser of the embedded cluster.
pub const SUPERUSER: &str = "postgres";

/// A private cluster in a data directory. Cheap to construct; nothing runs until `start`.
#[derive(Debug, Clone)]
pub struct Cluster {
    bin_dir: PathBuf,
    data_dir: PathBuf,
    /// Set when we are root: PostgreSQL's programs then run as this (uid, gid).
    run_as: Option<(u32, u32)>,
    /// That user's home directory: its `HOME` (libpq in the server — Citus's connections
    /// between nodes — looks for client certificates there, and cannot read root's).
    run_as_home: Option<PathBuf>,
    /// Extra `-c name=value` settings for the server (the test harness turns off fsync).
    settings: Vec<(String, String)>,
    /// Skip initdb's fsync (throwaway test clusters).
    initdb_no_sync: bool,
    /// Also listen on 127.0.0.1 at this port (a Citus node: the others reach it over TCP).
    tcp_port: Option<u16>,
}

impl Cluster {
    /// Locate PostgreSQL's binaries and describe the cluster in `data_dir` (made absolute).
    pub fn new(data_dir: &Path) -> anyhow::Result<Self> {
        let data_dir = std::path::absolute(data_dir)
            .with_context(|| format!("data directory {}", data_dir.display()))?;
        let bin_dir = find_bin_dir()?;
        let mut run_as_home = None;
        let run_as = if nix::unistd::geteuid().is_root() {
            let user = nix::unistd::User::from_name("postgres")
                .context("looking up the postgres user")?
                .context(
                    "running as root, but there is no `postgres` user to run PostgreSQL as \
                     (PostgreSQL refuses to run as root). Install Debian's `postgresql` package, \
                     which creates it, or run frontdesk as an ordinary user.",
                )?;
            run_as_home = Some(user.dir.clone());
            Some((user.uid.as_raw(), user.gid.as_raw()))
        } else {
            None
        };
        let socket = data_dir.join("run").join(".s.PGSQL.5432");
        if socket.as_os_str().len() > 100 {
            bail!(
                "the data directory path is too long for a Unix socket ({} bytes, at most about 80): \
                 choose a shorter FRONTDESK_DATA_DIR",
                data_dir.as_os_str().len()
            );
        }
        Ok(Self {
            bin_dir,
            data_dir,
            run_as,
            run_as_home,
            settings: Vec::new(),
            initdb_no_sync: false,
            tcp_port: None,
        })
    }

    /// Use the server programs in `bin_dir` (e.g. one PostgreSQL major version's, where
    /// an extension is installed) instead of the ones found by default.
    pub fn with_bin_dir(mut self, bin_dir: &Path) -> Self {
        self.bin_dir = bin_dir.to_path_buf();
        self
    }

    /// Listen on 127.0.0.1 at `port` as well as on the socket, which is then named after
    /// that port. `initdb --auth=trust` trusts loopback TCP like the socket: only for
    /// clusters whose machine is trusted (the Citus nodes of the test harness).
    pub fn with_tcp_port(mut self, port: u16) -> Self {
        self.tcp_port = Some(port);
        self
    }

    /// The TCP port, when the cluster listens on one.
    pub fn tcp_port(&self) -> Option<u16> {
        self.tcp_port
    }

    /// Add a server setting passed as `-c name=value` at start.
    pub fn with_setting(mut self, name: &str, value: &str) -> Self {
        self.settings.push((name.to_owned(), value.to_owned()));
        self
    }

    /// A throwaway cluster: no fsync anywhere (tests).
    pub fn throwaway(mut self) -> Self {
        self.initdb_no_sync = true;
        self.with_setting("fsync", "off")
            .with_setting("synchronous_commit", "off")
            .with_setting("full_page_writes", "off")
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The cluster's own directory (`PGDATA`).
    pub fn pg_dir(&self) -> PathBuf {
        self.data_dir.join("pg")
    }

    /// The directory holding the Unix socket: the `host` to connect to.
    pub fn socket_dir(&self) -> PathBuf {
        self.data_dir.join("run")
    }

    pub fn bin(&self, program: &str) -> PathBuf {
        self.bin_dir.join(program)
    }

    /// Connection settings for `user` on `database` over the socket.
    pub fn config(&self, user: &str, database: &str) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config
            .host_path(self.socket_dir())
            .user(user)
            .dbname(database)
            .application_name("frontdesk");
        if let Some(port) = self.tcp_port {
            config.port(port);
        }
        config
    }

    /// Whether this data directory holds an initialized cluster.
    pub fn is_initialized(&self) -> bool {
        self.pg_dir().join("PG_VERSION").exists()
    }

    /// Whether the process recorded in a PostgreSQL lock file (`postmaster.pid`, or the
    /// socket's `.s.PGSQL.<port>.lock`; the pid is the first line) is known to be gone: no
    /// such process, or a zombie nobody reaped (after a crash, a killed postmaster can
    /// linger as one, and `kill(pid, 0)` — what pg_ctl and PostgreSQL ask — still
    /// succeeds for it). False when there is no such file or no /proc to look in.
    fn lock_file_is_stale(path: &Path) -> bool {
        let Ok(file) = std::fs::read_to_string(path) else {
            return false;
        };
        let Some(pid) = file
            .lines()
            .next()
            .and_then(|l| l.trim().parse::<u32>().ok())
        else {
            return false;
        };
        if !Path::new("/proc/self/stat").exists() {
            return false;
        }
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            // The state follows the command name in parentheses.
            Ok(stat) => stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
            Err(_) => true,
        }
    }

    fn recorded_postmaster_is_gone(&self) -> bool {
        Self::lock_file_is_stale(&self.pg_dir().join("postmaster.pid"))
    }

    /// Whether a postmaster is running on this cluster (`pg_ctl status`, and not a
    /// crashed one's zombie).
    pub fn is_running(&self) -> bool {
        self.is_initialized()
            && !self.recorded_postmaster_is_gone()
            && self
                .command("pg_ctl")
                .arg("status")
                .arg("-D")
                .arg(self.pg_dir())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
    }

    /// Create the data directory and run `initdb` once. Returns whether it was created now.
    pub fn init(&self) -> anyhow::Result<bool> {
        std::fs::create_dir_all(&self.data_dir)
            .with_context(|| format!("creating {}", self.data_dir.display()))?;
        self.prepare_dirs()?;
        if self.is_initialized() {
            return Ok(false);
        }
        let output = self
            .command("initdb")
            .arg("-D")
            .arg(self.pg_dir())
            .args([
                "-U",
                SUPERUSER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-instructions",
            ])
            .args(self.initdb_no_sync.then_some("--no-sync"))
            .output()
            .context("running initdb")?;
        if !output.status.success() {
            bail!(
                "initdb failed:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(true)
    }

    /// Start the postmaster and wait until it accepts connections.
    pub fn start(&self) -> anyhow::Result<()> {
        // A crash leaves postmaster.pid behind; PostgreSQL refuses to start while its
        // process seems alive, which a zombie does. Only a pid file whose process is
        // verifiably gone is removed (then PostgreSQL recovers from its WAL as usual).
        if self.recorded_postmaster_is_gone() {
            eprintln!(
                "removing the postmaster.pid of a stopped PostgreSQL in {} (it did not shut down cleanly; it will recover)",
                self.pg_dir().display()
            );
            std::fs::remove_file(self.pg_dir().join("postmaster.pid"))
                .context("removing a stale postmaster.pid")?;
        }
        for entry in std::fs::read_dir(self.socket_dir())
            .into_iter()
            .flatten()
            .flatten()
        {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(".s.PGSQL.")
                && name.ends_with(".lock")
                && Self::lock_file_is_stale(&path)
            {
                std::fs::remove_file(&path).context("removing a stale socket lock file")?;
                let _ = std::fs::remove_file(path.with_extension(""));
            }
        }
        let mut options = match self.tcp_port {
            Some(port) => format!("-c listen_addresses='127.0.0.1' -c port={port}"),
            None => String::from("-c listen_addresses=''"),
        };
        options.push_str(" -c unix_socket_permissions=0700");
        options.push_str(&format!(
            " -c unix_socket_directories='{}'",
            self.socket_dir().display()
        ));
        for (name, value) in &self.settings {
            options.push_str(&format!(" -c {name}={value}"));
        }
        let log = self.socket_dir().join("postgresql.log");
        let output = self
            .command("pg_ctl")
            .arg("start")
            .arg("-w")
            .args(["-t", "60"])
            .arg("-D")
            .arg(self.pg_dir())
            .arg("-l")
            .arg(&log)
            .arg("-o")
            .arg(options)
            .stdout(Stdio::null())
            .output()
            .context("running pg_ctl start")?;
        if !output.status.success() {
            let tail = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = tail.lines().rev().take(15).collect();
            bail!(
                "PostgreSQL did not start: {}\n{}",
                String::from_utf8_lossy(&output.stderr).trim(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        Ok(())
    }

    /// Stop the postmaster (fast shutdown: running transactions are rolled back) and wait.
    pub fn stop(&self) -> anyhow::Result<()> {
        if !self.is_running() {
            return Ok(());
        }
        let output = self
            .command("pg_ctl")
            .arg("stop")
            .args(["-w", "-m", "fast", "-t", "60"])
            .arg("-D")
            .arg(self.pg_dir())
            .stdout(Stdio::null())
            .output()
            .context("running pg_ctl stop")?;
        if !output.status.success() {
            bail!(
                "pg_ctl stop failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(())
    }

    /// Stop the cluster and delete its data directory once process `pid` has exited (the
    /// test harness: Rust's test runner has no hook at the end of a test binary).
    pub fn reap_after_exit(&self, pid: u32) -> anyhow::Result<()> {
        let script = r#"while [ -d "/proc/$1" ]; do sleep 0.2; done
"$2/pg_ctl" stop -D "$3/pg" -m immediate -w >/dev/null 2>&1
rm -rf "$3""#;
        let mut command = Command::new("/bin/sh");
        command
            .args(["-c", script, "reaper"])
            .arg(pid.to_string())
            .arg(&self.bin_dir)
            .arg(&self.data_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some((uid, gid)) = self.run_as {
            command.uid(uid).gid(gid);
        }
        command.spawn().context("starting the cluster reaper")?;
        Ok(())
    }

    /// Give the whole data directory to the cluster's user (when root), so that user can
    /// also remove it.
    pub fn give_data_dir_to_cluster_user(&self) -> anyhow::Result<()> {
        if let Some((uid, gid)) = self.run_as {
            std::os::unix::fs::chown(&self.data_dir, Some(uid), Some(gid))?;
        }
        Ok(())
    }

    /// The OS user (uid, gid) the cluster runs as when started by root.
    pub fn os_user(&self) -> Option<(u32, u32)> {
        self.run_as
    }

    /// A command for one of PostgreSQL's programs, run as the cluster's OS user.
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new(self.bin(program));
        if let Some((uid, gid)) = self.run_as {
            // std drops root's supplementary groups when it changes the uid.
            command.uid(uid).gid(gid);
        }
        if let Some(home) = &self.run_as_home {
            command.env("HOME", home);
        }
        command
            .env("LC_ALL", "C")
            .env_remove("PGDATA")
            .current_dir(&self.data_dir);
        command
    }

    /// Make `pg/` and `run/` belong to the cluster's user, 0700; when root, check that the
    /// `postgres` user can reach them at all.
    fn prepare_dirs(&self) -> anyhow::Result<()> {
        for dir in [self.pg_dir(), self.socket_dir()] {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
            if let Some((uid, gid)) = self.run_as {
                std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
                    .with_context(|| format!("giving {} to the postgres user", dir.display()))?;
            }
        }
        if let Some((uid, gid)) = self.run_as {
            // Others need search (x) on the data dir itself so `postgres` can enter it.
            let mode = std::fs::metadata(&self.data_dir)?.permissions().mode();
            if mode & 0o001 == 0 {
                std::fs::set_permissions(
                    &self.data_dir,
                    std::fs::Permissions::from_mode(mode | 0o011),
                )?;
            }
            let reachable = Command::new("/bin/sh")
                .args(["-c", "cd \"$1\"", "sh"])
                .arg(self.pg_dir())
                .uid(uid)
                .gid(gid)
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !reachable {
                bail!(
                    "PostgreSQL runs as the `postgres` user when frontdesk runs as root, and that user \
                     cannot reach {}: one of its parent directories is not searchable by others \
                     (a home directory such as /root is usually 0700). Choose a data directory it can \
                     reach, e.g. FRONTDESK_DATA_DIR=/var/lib/frontdesk, or run frontdesk as an \
                     ordinary user.",
                    self.pg_dir().display()
                );
            }
        }
        Ok(())
    }
}

/// PostgreSQL's server binaries: `pg_config --bindir`, then the newest
/// `/usr/lib/postgresql/*/bin`, then whatever `initdb` is on `PATH`.
fn find_bin_dir() -> anyhow::Result<PathBuf> {
    let has_server = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if has_server(&dir) {
            return Ok(dir);
        }
    }
    if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
        let mut versions: Vec<(u32, PathBuf)> = entries
            .flatten()
            .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
            .filter(|(_, dir)| has_server(dir))
            .collect();
        versions.sort();
        if let Some((_, dir)) = versions.pop() {
            return Ok(dir);
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if has_server(&dir) {
                let real = dir.join("initdb").canonicalize()?;
                return Ok(real.parent().unwrap_or(&dir).to_path_buf());
            }
        }
    }
    bail!(
        "PostgreSQL's server programs (initdb, pg_ctl) were not found. Install them \
         (Debian: `apt-get install postgresql`) or set DATABASE_URL to use an existing server."
    )
}
