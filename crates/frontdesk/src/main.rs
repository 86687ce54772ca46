//! `frontdesk`: the one binary. `serve` runs the API (and the webhook delivery worker);
//! `worker` runs only the delivery worker; `migrate`, `db` and `token` are the tools
//! around them. Without `DATABASE_URL` everything uses the embedded cluster in
//! `FRONTDESK_DATA_DIR`, starting and stopping it as needed.

mod database;
mod secrets;

use std::{path::PathBuf, process::ExitCode, time::Duration};

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use frontdesk_pg::migrate::{Migrator, State};

use crate::database::Database;

#[derive(Parser)]
#[command(
    name = "frontdesk",
    version,
    about = "The system of record for AI assistants that do business"
)]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: Command,
}

/// Settings every command shares.
#[derive(Args, Clone)]
pub struct Common {
    /// External PostgreSQL (an administrative role); unset = the embedded cluster.
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<String>,
    /// Embedded cluster, generated secrets.
    #[arg(
        long,
        env = "FRONTDESK_DATA_DIR",
        default_value = "./frontdesk-data",
        global = true
    )]
    pub data_dir: PathBuf,
    /// Password of frontdesk_app (every tenant request) on an external server.
    #[arg(
        long,
        env = "FRONTDESK_APP_PASSWORD",
        global = true,
        hide_env_values = true
    )]
    pub app_password: Option<String>,
    /// Password of frontdesk_operator (operator requests, workers) on an external server.
    #[arg(
        long,
        env = "FRONTDESK_OPERATOR_PASSWORD",
        global = true,
        hide_env_values = true
    )]
    pub operator_password: Option<String>,
    /// Password of frontdesk_owner (it may log in to migrate) on an external server.
    #[arg(
        long,
        env = "FRONTDESK_OWNER_PASSWORD",
        global = true,
        hide_env_values = true
    )]
    pub owner_password: Option<String>,
    /// A connection pooler in transaction mode (PgBouncer) for the request and worker
    /// pools: host, port and database; the roles and passwords are those of the direct
    /// connection. DATABASE_URL stays the direct, administrative connection.
    #[arg(
        long,
        env = "FRONTDESK_POOL_URL",
        global = true,
        hide_env_values = true
    )]
    pub pool_url: Option<String>,
    /// How the request context is sent: postgres (one prepared statement) or citus
    /// (SET LOCAL statements); unset = citus when the citus extension is installed.
    #[arg(long, env = "FRONTDESK_CONTEXT_MODE", global = true,
          value_parser = ["postgres", "citus"])]
    pub context_mode: Option<String>,
    /// HS256 secret for user JWTs; unset = generated once into the data dir.
    #[arg(
        long,
        env = "FRONTDESK_JWT_SECRET",
        global = true,
        hide_env_values = true
    )]
    pub jwt_secret: Option<String>,
    /// Threads of the async runtime that serves requests; unset = half the CPUs (at least
    /// one) with the embedded database, which shares the machine, else every CPU.
    #[arg(long, env = "FRONTDESK_WORKER_THREADS", global = true,
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub worker_threads: Option<u16>,
}

impl Common {
    /// The runtime's worker threads (`FRONTDESK_WORKER_THREADS`). With the embedded
    /// database, PostgreSQL runs on the same CPUs: one runtime thread per two CPUs leaves
    /// it room and wakes fewer threads per request (docs/BENCHMARKS.md, issue 11: about
    /// 30 µs less CPU per GET and 10 % more requests per second on two CPUs).
    pub fn worker_threads(&self) -> usize {
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        match self.worker_threads {
            Some(n) => usize::from(n),
            None if self.database_url.is_none() => (cpus / 2).max(1),
            None => cpus,
        }
    }

    /// The login roles' passwords given in the environment (an external server).
    pub fn passwords(&self) -> frontdesk_pg::roles::Passwords {
        frontdesk_pg::roles::Passwords {
            owner: self.owner_password.clone(),
            app: self.app_password.clone(),
            operator: self.operator_password.clone(),
        }
    }

    pub fn context_mode(&self) -> Option<frontdesk_pg::ContextMode> {
        self.context_mode
            .as_deref()
            .and_then(frontdesk_pg::ContextMode::parse)
    }
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API (and, without DATABASE_URL, run the embedded database).
    Serve(ServeArgs),
    /// Deliver webhooks only (any number of workers and servers may run on one database).
    Worker(WebhookArgs),
    /// Apply, revert, list or check migrations.
    Migrate {
        #[command(subcommand)]
        action: MigrateAction,
    },
    /// PostgreSQL's own tools on Frontdesk's database.
    Db {
        #[command(subcommand)]
        action: DbAction,
    },
    /// Mint a development user JWT signed with the HS256 secret.
    Token {
        /// The JWT's `sub`, as an identity provider issues it: a UUID (the user id
        /// itself) or any other id such as `auth0|65f1c2`, which the server maps to a user id.
        #[arg(long, value_parser = parse_sub)]
        sub: String,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        name: Option<String>,
        /// Lifetime: e.g. 90s, 30m, 1h, 7d.
        #[arg(long, default_value = "1h")]
        ttl: String,
    },
}

#[derive(Args)]
struct ServeArgs {
    /// HTTP address to listen on.
    #[arg(long, env = "FRONTDESK_LISTEN", default_value = "127.0.0.1:8080")]
    listen: String,
    /// Operator bearer token; unset = generated once into the data dir.
    #[arg(long, env = "FRONTDESK_OPERATOR_TOKEN", hide_env_values = true)]
    operator_token: Option<String>,
    /// RS256/ES256 keys of an identity provider.
    #[arg(long, env = "FRONTDESK_JWKS_URL")]
    jwks_url: Option<String>,
    #[arg(long, env = "FRONTDESK_JWT_ISSUER")]
    jwt_issuer: Option<String>,
    #[arg(long, env = "FRONTDESK_JWT_AUDIENCE")]
    jwt_audience: Option<String>,
    /// Database connections of the request path.
    #[arg(long, env = "FRONTDESK_POOL_SIZE", default_value_t = 16)]
    pool_size: usize,
    /// The largest message content accepted, in bytes (at most 1048576).
    #[arg(long, env = "FRONTDESK_MAX_MESSAGE_BYTES", default_value_t = 102_400,
          value_parser = clap::value_parser!(u32).range(1..=1_048_576))]
    max_message_bytes: u32,
    /// The largest body a streamed route (a document upload) accepts, in bytes; larger is a 413.
    #[arg(long, env = "FRONTDESK_MAX_UPLOAD_BYTES",
          default_value_t = frontdesk_server::state::DEFAULT_MAX_UPLOAD_BYTES as u64,
          value_parser = clap::value_parser!(u64).range(1..=(1 << 40)))]
    max_upload_bytes: u64,
    /// How long a client may take to send a request's head (request line and headers);
    /// also how long an idle kept-alive connection stays open (ms, s, m, h).
    #[arg(long, env = "FRONTDESK_HEADER_READ_TIMEOUT", default_value = "30s",
          value_parser = positive_duration)]
    header_read_timeout: Duration,
    /// How long a request's body may take to arrive in full, from the end of its head;
    /// later is a 408 (ms, s, m, h).
    #[arg(long, env = "FRONTDESK_BODY_READ_TIMEOUT", default_value = "60s",
          value_parser = positive_duration)]
    body_read_timeout: Duration,
    /// Connections served at once; further ones wait until one closes.
    #[arg(long, env = "FRONTDESK_MAX_CONNECTIONS", default_value_t = 1024,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_connections: u32,
    /// Run the webhook delivery worker in this process.
    #[arg(long, env = "FRONTDESK_WEBHOOK_WORKER", default_value_t = true, action = clap::ArgAction::Set)]
    webhook_worker: bool,
    /// /readyz fails when the in-process webhook worker has not completed a pass for this
    /// long (or has stopped); must be longer than FRONTDESK_WEBHOOK_TIMEOUT.
    #[arg(long, env = "FRONTDESK_WEBHOOK_WORKER_STALE_AFTER", default_value = "2m",
          value_parser = frontdesk_server::webhooks::worker::parse_duration)]
    webhook_worker_stale_after: Duration,
    #[command(flatten)]
    webhooks: WebhookArgs,
}

/// How webhooks are delivered (`serve` and `worker`).
#[derive(Args, Clone)]
struct WebhookArgs {
    /// Let webhook endpoints reach loopback and private addresses (development, tests).
    #[arg(long, env = "FRONTDESK_WEBHOOK_ALLOW_PRIVATE", default_value_t = false, action = clap::ArgAction::Set)]
    webhook_allow_private: bool,
    /// The waits before each retry, comma-separated (ms, s, m, h, d).
    #[arg(long, env = "FRONTDESK_WEBHOOK_RETRY_SCHEDULE",
          default_value = frontdesk_server::webhooks::worker::DEFAULT_SCHEDULE,
          value_parser = frontdesk_server::webhooks::worker::parse_schedule)]
    webhook_retry_schedule: std::vec::Vec<Duration>,
    /// Disable an endpoint whose every attempt failed for this long.
    #[arg(long, env = "FRONTDESK_WEBHOOK_DISABLE_AFTER", default_value = "5d",
          value_parser = frontdesk_server::webhooks::worker::parse_duration)]
    webhook_disable_after: Duration,
    /// How long one delivery attempt may take.
    #[arg(long, env = "FRONTDESK_WEBHOOK_TIMEOUT", default_value = "15s",
          value_parser = frontdesk_server::webhooks::worker::parse_duration)]
    webhook_timeout: Duration,
}

impl WebhookArgs {
    fn config(&self) -> frontdesk_server::WorkerConfig {
        frontdesk_server::WorkerConfig {
            retry_schedule: self.webhook_retry_schedule.clone(),
            timeout: self.webhook_timeout,
            disable_after: self.webhook_disable_after,
            allow_private: self.webhook_allow_private,
            ..Default::default()
        }
    }
}

#[derive(Subcommand)]
enum MigrateAction {
    /// Apply every pending migration.
    Up,
    /// Revert the newest migration, or every one above --to. Shows what it drops and asks
    /// for confirmation on a terminal; elsewhere --yes is required.
    Down {
        #[arg(long)]
        to: Option<u32>,
        /// Revert without asking (needed when stdin is not a terminal).
        #[arg(long)]
        yes: bool,
    },
    /// List migrations and their state.
    Status,
    /// Check the schema rules against the catalog (RLS, policies, keys, indexes).
    Verify,
}

#[derive(Subcommand)]
enum DbAction {
    /// Open psql on the database.
    Psql {
        /// Extra arguments for psql (after --).
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Write a backup (pg_dump custom format) to a file, or to stdout.
    Dump {
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Restore a backup made by `db dump` (replaces what is there). Refused while a server
    /// or worker uses the database: stop them first.
    Restore {
        file: PathBuf,
        /// Restore even though a server or worker is using the database.
        #[arg(long)]
        force: bool,
    },
    /// Print the SQL that creates Frontdesk's roles on an external server (for an
    /// administrator to run once), or with --apply run it on DATABASE_URL. Passwords come
    /// from FRONTDESK_APP_PASSWORD, FRONTDESK_OPERATOR_PASSWORD and FRONTDESK_OWNER_PASSWORD.
    Roles {
        /// Run it on DATABASE_URL (an administrative role) instead of printing it.
        #[arg(long)]
        apply: bool,
    },
}

fn init_logging() {
    use tracing_subscriber::{EnvFilter, fmt};
    let filter =
        EnvFilter::try_from_env("FRONTDESK_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    if std::env::var("FRONTDESK_LOG_FORMAT").is_ok_and(|f| f == "json") {
        fmt()
            .json()
            .with_env_filter(filter)
            .with_current_span(true)
            .init();
    } else {
        // Colours only on a terminal: not in a file or a journal.
        fmt()
            .with_env_filter(filter)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_writer(std::io::stderr)
            .init();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.common.worker_threads())
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let common = cli.common;
    match cli.command {
        Command::Serve(args) => serve(&common, args).await.map(|()| ExitCode::SUCCESS),
        Command::Worker(args) => worker(&common, args).await.map(|()| ExitCode::SUCCESS),
        Command::Migrate { action } => {
            let db = Database::open(&common, false).await?;
            let result = migrate(&db, action).await;
            db.close()?;
            result
        }
        Command::Db {
            action: DbAction::Roles { apply },
        } => db_roles(&common, apply).await,
        Command::Db { action } => {
            let db = Database::open(&common, false).await?;
            let result = db_tool(&db, action).await;
            db.close()?;
            result
        }
        Command::Token {
            sub,
            email,
            name,
            ttl,
        } => {
            let ttl = parse_ttl(&ttl)?;
            let secret = token_secret(&common)?;
            println!(
                "{}",
                secrets::mint_token(&secret, &sub, email.as_deref(), name.as_deref(), ttl)?
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The secret `frontdesk token` signs with, after saying on stderr which it is and
/// whether a server uses it: a token minted with another data directory's secret than
/// the server's is refused ("signed with another secret than this server's").
fn token_secret(common: &Common) -> anyhow::Result<String> {
    let (secret, source) = secrets::jwt_secret_with_source(common)?;
    let (path, created) = match source {
        secrets::SecretSource::Environment => {
            eprintln!("signed with FRONTDESK_JWT_SECRET");
            return Ok(secret);
        }
        secrets::SecretSource::File { path, created } => (path, created),
    };
    eprintln!("signed with the secret in {}", path.display());
    let dir = path
        .parent()
        .unwrap_or(&common.data_dir)
        .display()
        .to_string();
    if created {
        eprintln!(
            "warning: {dir} had no secret: a new one was generated, which no running server uses yet"
        );
    }
    if common.database_url.is_some() {
        // The server's database is elsewhere: nothing here says whether one runs.
        return Ok(secret);
    }
    match frontdesk_pg::embedded::Cluster::new(&common.data_dir) {
        Ok(cluster) if !cluster.is_initialized() => eprintln!(
            "warning: {dir} holds no database cluster: no `frontdesk serve` has run with this \
             data directory; a server using another one refuses this token (set \
             FRONTDESK_DATA_DIR to the server's)"
        ),
        Ok(cluster) if !cluster.is_running() => eprintln!(
            "warning: no server is running with {dir} (its database cluster is stopped); a \
             server using another data directory refuses this token"
        ),
        Ok(_) => {}
        Err(error) => eprintln!("warning: cannot tell whether a server runs with {dir}: {error:#}"),
    }
    Ok(secret)
}

async fn serve(common: &Common, args: ServeArgs) -> anyhow::Result<()> {
    let db = Database::open(common, true).await?;
    let result = serve_with(common, args, &db).await;
    if let Err(error) = db.close() {
        tracing::error!(%error, "stopping the embedded cluster failed");
    }
    result
}

async fn serve_with(common: &Common, args: ServeArgs, db: &Database) -> anyhow::Result<()> {
    let applied = frontdesk_pg::setup::migrate(&db.admin_config()).await?;
    if !applied.is_empty() {
        tracing::info!(?applied, "migrations applied");
    }
    let jwt_secret = secrets::jwt_secret(common)?;
    let operator_token = match args.operator_token {
        Some(token) if token.len() >= 16 => token,
        Some(_) => bail!("FRONTDESK_OPERATOR_TOKEN must be at least 16 characters"),
        None => secrets::operator_token(&common.data_dir)?,
    };
    let pool = db.request_db(args.pool_size, common.context_mode()).await?;
    tracing::info!(
        context = pool.context_mode().as_str(),
        pooler = common.pool_url.is_some(),
        runtime_threads = common.worker_threads(),
        "request path ready"
    );
    frontdesk_core::platform::values::learn_time_zones(pool.app())
        .await
        .context("reading the database's time zone names")?;
    let auth = frontdesk_server::AuthConfig {
        jwt_secret: frontdesk_server::Secret(jwt_secret),
        jwks_url: args.jwks_url,
        issuer: args.jwt_issuer,
        audience: args.jwt_audience,
        operator_token: frontdesk_server::Secret(operator_token),
        leeway: Duration::from_secs(60),
        jwks_refetch_interval: Duration::from_secs(30),
    };
    frontdesk_server::housekeeping::spawn(pool.clone());
    // The delivery worker stops with the server: it finishes the attempts under way.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    if args.webhook_worker && args.webhook_worker_stale_after <= args.webhooks.webhook_timeout {
        bail!("FRONTDESK_WEBHOOK_WORKER_STALE_AFTER must be longer than FRONTDESK_WEBHOOK_TIMEOUT");
    }
    let mut worker_health = None;
    let worker = if args.webhook_worker {
        let worker = frontdesk_server::Worker::new(pool.clone(), args.webhooks.config())?;
        worker_health = Some(frontdesk_server::WorkerHealth {
            heartbeat: worker.heartbeat(),
            stale_after: args.webhook_worker_stale_after,
        });
        let mut stopped = stopped.clone();
        Some(tokio::spawn(worker.run_until(async move {
            let _ = stopped.changed().await;
        })))
    } else {
        None
    };
    let options = frontdesk_server::AppOptions {
        max_message_bytes: args.max_message_bytes as usize,
        webhook_allow_private: args.webhooks.webhook_allow_private,
        max_upload_bytes: usize::try_from(args.max_upload_bytes).unwrap_or(usize::MAX),
        worker: worker_health,
    };
    let app = frontdesk_server::app_with(pool.clone(), auth, options);
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    tracing::info!(address = %listener.local_addr()?, "serving; docs at /docs");
    let limits = frontdesk_server::ServeLimits {
        header_read_timeout: args.header_read_timeout,
        body_read_timeout: args.body_read_timeout,
        max_connections: args.max_connections as usize,
    };
    frontdesk_server::serve(listener, app, limits, shutdown_signal()).await?;
    let _ = stop.send(true);
    if let Some(worker) = worker {
        let _ = worker.await;
    }
    // Let go of the connections before the embedded cluster stops.
    pool.app().close();
    pool.operator().close();
    tracing::info!("shut down");
    Ok(())
}

async fn worker(common: &Common, args: WebhookArgs) -> anyhow::Result<()> {
    let db = Database::open(common, true).await?;
    let result = async {
        frontdesk_pg::setup::migrate(&db.admin_config()).await?;
        let pool = db.request_db(4, common.context_mode()).await?;
        tracing::info!("delivering webhooks");
        frontdesk_server::Worker::new(pool.clone(), args.config())?
            .run_until(shutdown_signal())
            .await;
        pool.app().close();
        pool.operator().close();
        tracing::info!("shut down");
        anyhow::Ok(())
    }
    .await;
    if let Err(error) = db.close() {
        tracing::error!(%error, "stopping the embedded cluster failed");
    }
    result
}

/// A duration above zero, written as the webhook settings are (e.g. 500ms, 30s, 2m).
/// A `sub` claim: 1 to 255 characters, no control character.
fn parse_sub(text: &str) -> Result<String, String> {
    if text.is_empty() || text.chars().count() > 255 || text.chars().any(char::is_control) {
        Err("must be 1 to 255 characters without control characters: a UUID or an identity provider's id such as auth0|65f1c2".into())
    } else {
        Ok(text.to_owned())
    }
}

fn positive_duration(text: &str) -> Result<Duration, String> {
    match frontdesk_server::webhooks::worker::parse_duration(text)? {
        d if d.is_zero() => Err("must be more than zero".into()),
        d => Ok(d),
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
    tracing::info!("stopping");
}

async fn migrate(db: &Database, action: MigrateAction) -> anyhow::Result<ExitCode> {
    let client = frontdesk_pg::pool::connect(&db.admin_config())
        .await
        .context("connecting")?;
    let migrator = Migrator::new(&client);
    match action {
        MigrateAction::Up => {
            let done = migrator.up().await?;
            println!("applied {} migration(s){}", done.len(), list(&done));
        }
        MigrateAction::Down { to, yes } => {
            let plan = migrator.down_plan(to).await?;
            if plan.is_empty() {
                println!("nothing to revert");
                return Ok(ExitCode::SUCCESS);
            }
            eprintln!("this reverts, newest first:");
            for m in &plan {
                eprintln!("  {:04}_{}", m.version, m.name);
                for drop in frontdesk_pg::migrate::drops(m.down) {
                    eprintln!("      {drop}");
                }
            }
            eprintln!("(data in what is dropped is lost; `frontdesk db dump` keeps a copy)");
            if !yes && !confirm("revert these migrations?")? {
                eprintln!("nothing was reverted");
                return Ok(ExitCode::FAILURE);
            }
            let done = migrator.down(to).await?;
            println!("reverted {} migration(s){}", done.len(), list(&done));
        }
        MigrateAction::Status => {
            for s in migrator.status().await? {
                let state = match s.state {
                    State::Pending => "pending".to_owned(),
                    State::Applied { applied_at } => format!("applied {applied_at}"),
                    State::Edited => "EDITED after being applied (checksum mismatch)".to_owned(),
                    State::Dirty => "DIRTY (failed halfway outside a transaction)".to_owned(),
                    State::Unknown => "applied, but unknown to this binary".to_owned(),
                };
                println!("{:04}_{:<30} {state}", s.version, s.name);
            }
        }
        MigrateAction::Verify => {
            let findings = frontdesk_pg::verify::verify(&client).await?;
            if findings.is_empty() {
                println!("ok: every schema rule holds");
            } else {
                for f in &findings {
                    println!("{f}");
                }
                eprintln!("{} finding(s)", findings.len());
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Ask on the terminal; without one, refuse (the command needs `--yes`).
fn confirm(question: &str) -> anyhow::Result<bool> {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        bail!("stdin is not a terminal: pass --yes to confirm");
    }
    eprint!("{question} type yes to go on: ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(answer.trim().eq_ignore_ascii_case("yes"))
}

fn list(versions: &[u32]) -> String {
    if versions.is_empty() {
        String::new()
    } else {
        format!(
            ": {}",
            versions
                .iter()
                .map(|v| format!("{v:04}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// `frontdesk db roles`: the roles' SQL for an administrator, or applied with `--apply`.
async fn db_roles(common: &Common, apply: bool) -> anyhow::Result<ExitCode> {
    let passwords = common.passwords();
    let Some(url) = &common.database_url else {
        bail!(
            "`frontdesk db roles` is for an external server (DATABASE_URL); the embedded cluster creates its roles itself"
        )
    };
    let admin: tokio_postgres::Config = url
        .parse()
        .context("DATABASE_URL is not a PostgreSQL URL")?;
    let database = admin.get_dbname().unwrap_or("postgres").to_owned();
    if !apply {
        print!(
            "-- Frontdesk's roles, for an administrator to run once on database {database:?}\n\
             -- (a superuser, or a role with CREATEROLE that may grant BYPASSRLS); then grant\n\
             -- frontdesk_owner to the role of DATABASE_URL (migrations run as the owner).\n{}",
            frontdesk_pg::roles::setup_sql(&database, &passwords)
        );
        return Ok(ExitCode::SUCCESS);
    }
    let client = frontdesk_pg::pool::connect(&admin)
        .await
        .context("connecting to DATABASE_URL")?;
    frontdesk_pg::roles::ensure(&client, &database, &passwords).await?;
    eprintln!(
        "roles frontdesk_owner, frontdesk_app and frontdesk_operator are ready on {database:?}"
    );
    Ok(ExitCode::SUCCESS)
}

async fn db_tool(db: &Database, action: DbAction) -> anyhow::Result<ExitCode> {
    let mut command = match &action {
        DbAction::Psql { args } => {
            let mut c = db.tool("psql")?;
            c.args(args);
            c
        }
        DbAction::Dump { output } => {
            let mut c = db.tool("pg_dump")?;
            c.arg("--format=custom");
            if let Some(path) = output {
                c.arg("--file").arg(path);
            }
            c
        }
        DbAction::Restore { file, force } => {
            if !file.is_file() {
                bail!("{} is not a file", file.display());
            }
            let users = db.servers_using().await?;
            if !users.is_empty() && !force {
                bail!(
                    "a server is using the database ({}): stop it before restoring, or pass \
                     --force to restore under it (its requests fail or see half a restore)",
                    users.join("; ")
                );
            }
            let mut c = db.tool("pg_restore")?;
            c.args([
                "--clean",
                "--if-exists",
                "--single-transaction",
                "--exit-on-error",
            ])
            .arg(file);
            c
        }
        DbAction::Roles { .. } => unreachable!("handled before the database is opened"),
    };
    let status = command.status().context("running the PostgreSQL tool")?;
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `90s`, `30m`, `1h`, `7d`.
fn parse_ttl(s: &str) -> anyhow::Result<Duration> {
    let (number, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = number
        .parse()
        .with_context(|| format!("--ttl {s:?}: expected e.g. 30m, 1h, 7d"))?;
    let seconds = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => bail!("--ttl {s:?}: the unit must be s, m, h or d"),
    };
    Ok(Duration::from_secs(seconds))
}
