//! The migration runner: embedded `NNNN_name.up.sql` / `.down.sql` files, applied in
//! order as `frontdesk_owner`, each recorded with the SHA-256 of its up script.
//!
//! - An applied migration whose file changed is refused (its checksum no longer matches).
//! - A session advisory lock makes concurrent runs (two servers starting) wait in turn.
//! - A migration whose first line is `-- no-transaction` runs outside a transaction (for
//!   `CREATE INDEX CONCURRENTLY`); it is recorded `dirty` first and cleared after, so a
//!   failure halfway is reported instead of being retried blindly.
//! - On a database with the `citus` extension, scripts are sent one statement at a time
//!   and `up` ends by distributing the tables the migrations created (see [`crate::citus`]).

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};
use tokio_postgres::Client;

use crate::{citus, roles, statements};

/// One migration, embedded at build time.
#[derive(Debug)]
pub struct Migration {
    pub version: u32,
    pub name: &'static str,
    pub up: &'static str,
    pub down: &'static str,
}

include!(concat!(env!("OUT_DIR"), "/migrations.rs"));

impl Migration {
    pub fn checksum(&self) -> Vec<u8> {
        Sha256::digest(self.up.as_bytes()).to_vec()
    }

    fn no_transaction(sql: &str) -> bool {
        sql.lines()
            .next()
            .is_some_and(|l| l.trim() == "-- no-transaction")
    }
}

/// Arbitrary but fixed: the key of the advisory lock held while migrating.
const LOCK_KEY: i64 = 0x0066_726f_6e74_646b; // "frontdk"

const BOOKKEEPING: &str = "
    create schema if not exists frontdesk_meta;
    create table if not exists frontdesk_meta.schema_migrations (
        version    bigint primary key,
        name       text not null,
        checksum   bytea not null,
        dirty      boolean not null default false,
        applied_at timestamptz not null default now()
    );
    grant usage on schema frontdesk_meta to frontdesk_app, frontdesk_operator;
    grant select on frontdesk_meta.schema_migrations to frontdesk_app, frontdesk_operator;";

/// A migration's state in the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Pending,
    Applied {
        applied_at: String,
    },
    /// Applied, but the embedded file has changed since.
    Edited,
    /// A `-- no-transaction` migration that failed halfway.
    Dirty,
    /// In the database, but unknown to this binary (the database is newer).
    Unknown,
}

#[derive(Debug, Clone)]
pub struct Status {
    pub version: u32,
    pub name: String,
    pub state: State,
}

struct Applied {
    name: String,
    checksum: Vec<u8>,
    dirty: bool,
    applied_at: String,
}

/// Runs migrations on one admin connection.
pub struct Migrator<'a> {
    client: &'a Client,
    migrations: &'a [Migration],
}

impl<'a> Migrator<'a> {
    pub fn new(client: &'a Client) -> Self {
        Self {
            client,
            migrations: MIGRATIONS,
        }
    }

    /// Use a different list (tests).
    pub fn with_migrations(client: &'a Client, migrations: &'a [Migration]) -> Self {
        Self { client, migrations }
    }

    /// Become the owner and take the lock; create the bookkeeping table.
    async fn prepare(&self) -> anyhow::Result<()> {
        self.client
            .batch_execute(&format!("set role {}", roles::OWNER))
            .await
            .context("switching to frontdesk_owner (does the connecting role belong to it?)")?;
        // Poll rather than block in pg_advisory_lock: a session waiting inside a statement
        // holds a snapshot, which a `CREATE INDEX CONCURRENTLY` of the lock holder would
        // wait for — a deadlock between two migrating servers.
        let started = std::time::Instant::now();
        loop {
            let locked: bool = self
                .client
                .query_one("select pg_try_advisory_lock($1)", &[&LOCK_KEY])
                .await
                .context("taking the migration lock")?
                .get(0);
            if locked {
                break;
            }
            if started.elapsed() > std::time::Duration::from_secs(600) {
                bail!("another process has been migrating this database for 10 minutes; giving up");
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        // One statement at a time (Citus propagates the schema and its grants).
        for statement in statements::split(BOOKKEEPING) {
            self.client
                .batch_execute(statement)
                .await
                .context("creating frontdesk_meta")?;
        }
        Ok(())
    }

    async fn finish(&self) -> anyhow::Result<()> {
        self.client
            .execute("select pg_advisory_unlock($1)", &[&LOCK_KEY])
            .await?;
        self.client.batch_execute("reset role").await?;
        Ok(())
    }

    async fn applied(&self) -> anyhow::Result<BTreeMap<u32, Applied>> {
        let rows = self
            .client
            .query(
                "select version, name, checksum, dirty, to_char(applied_at at time zone 'UTC', \
                 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') from frontdesk_meta.schema_migrations",
                &[],
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let version: i64 = r.get(0);
                (
                    version as u32,
                    Applied {
                        name: r.get(1),
                        checksum: r.get(2),
                        dirty: r.get(3),
                        applied_at: r.get(4),
                    },
                )
            })
            .collect())
    }

    fn states(&self, applied: &BTreeMap<u32, Applied>) -> Vec<Status> {
        let mut out: Vec<Status> = self
            .migrations
            .iter()
            .map(|m| {
                let state = match applied.get(&m.version) {
                    None => State::Pending,
                    Some(a) if a.dirty => State::Dirty,
                    Some(a) if a.checksum != m.checksum() => State::Edited,
                    Some(a) => State::Applied {
                        applied_at: a.applied_at.clone(),
                    },
                };
                Status {
                    version: m.version,
                    name: m.name.to_owned(),
                    state,
                }
            })
            .collect();
        for (version, a) in applied {
            if !self.migrations.iter().any(|m| m.version == *version) {
                out.push(Status {
                    version: *version,
                    name: a.name.clone(),
                    state: State::Unknown,
                });
            }
        }
        out.sort_by_key(|s| s.version);
        out
    }

    /// Every migration and its state, without changing anything.
    pub async fn status(&self) -> anyhow::Result<Vec<Status>> {
        let exists: bool = self
            .client
            .query_one(
                "select to_regclass('frontdesk_meta.schema_migrations') is not null",
                &[],
            )
            .await?
            .get(0);
        let applied = if exists {
            self.applied().await?
        } else {
            BTreeMap::new()
        };
        Ok(self.states(&applied))
    }

    /// Refuse to go on when the database and the embedded files disagree.
    fn check(states: &[Status]) -> anyhow::Result<()> {
        for s in states {
            match s.state {
                State::Edited => bail!(
                    "migration {:04}_{} was changed after it was applied (checksum mismatch); \
                     restore the original file and add a new migration instead",
                    s.version,
                    s.name
                ),
                State::Dirty => bail!(
                    "migration {:04}_{} ran outside a transaction and did not finish; repair the \
                     schema by hand, then delete its row from frontdesk_meta.schema_migrations",
                    s.version,
                    s.name
                ),
                State::Unknown => bail!(
                    "the database has migration {:04}_{}, which this binary does not know: it is \
                     newer than this binary",
                    s.version,
                    s.name
                ),
                _ => {}
            }
        }
        Ok(())
    }

    /// Apply every pending migration; returns the versions applied.
    pub async fn up(&self) -> anyhow::Result<Vec<u32>> {
        self.prepare().await?;
        let result = self.up_locked().await;
        self.finish().await?;
        result
    }

    async fn up_locked(&self) -> anyhow::Result<Vec<u32>> {
        let states = self.states(&self.applied().await?);
        Self::check(&states)?;
        let citus = citus::is_citus(self.client).await?;
        let mut done = Vec::new();
        for m in self.migrations {
            if !states
                .iter()
                .any(|s| s.version == m.version && s.state == State::Pending)
            {
                continue;
            }
            let record = format!(
                "insert into frontdesk_meta.schema_migrations (version, name, checksum) \
                 values ({}, '{}', '\\x{}') on conflict (version) do update set dirty = false",
                m.version,
                m.name,
                hex::encode(m.checksum())
            );
            self.run(m, m.up, &record, citus)
                .await
                .with_context(|| format!("applying migration {:04}_{}", m.version, m.name))?;
            tracing::info!(version = m.version, name = m.name, "migration applied");
            done.push(m.version);
        }
        if citus {
            // After all of them: landed migrations are distributable only together (a
            // later one makes an earlier one's keys fit Citus). Also when none was
            // pending, to finish a distribution that failed last time.
            self.in_transaction(|| async {
                for setting in citus::TRANSACTION_SETTINGS {
                    self.client.batch_execute(setting).await?;
                }
                self.distribute().await
            })
            .await?;
        }
        Ok(done)
    }

    /// Revert applied migrations above `to` (default: only the newest); returns the
    /// versions reverted, newest first.
    pub async fn down(&self, to: Option<u32>) -> anyhow::Result<Vec<u32>> {
        self.prepare().await?;
        let result = self.down_locked(to).await;
        self.finish().await?;
        result
    }

    /// The migrations `down(to)` would revert, newest first, without reverting anything
    /// (`frontdesk migrate down` shows them before it asks).
    pub async fn down_plan(&self, to: Option<u32>) -> anyhow::Result<Vec<&'a Migration>> {
        let states = self.states(&self.applied().await?);
        Self::check(&states)?;
        let applied: Vec<u32> = states
            .iter()
            .filter(|s| matches!(s.state, State::Applied { .. }))
            .map(|s| s.version)
            .collect();
        let target = match to {
            Some(v) => v,
            None => applied.iter().rev().nth(1).copied().unwrap_or(0),
        };
        Ok(self
            .migrations
            .iter()
            .rev()
            .filter(|m| m.version > target && applied.contains(&m.version))
            .collect())
    }

    async fn down_locked(&self, to: Option<u32>) -> anyhow::Result<Vec<u32>> {
        let plan = self.down_plan(to).await?;
        let citus = citus::is_citus(self.client).await?;
        let mut done = Vec::new();
        for m in plan {
            let record = format!(
                "delete from frontdesk_meta.schema_migrations where version = {}",
                m.version
            );
            self.run(m, m.down, &record, citus)
                .await
                .with_context(|| format!("reverting migration {:04}_{}", m.version, m.name))?;
            tracing::info!(version = m.version, name = m.name, "migration reverted");
            done.push(m.version);
        }
        Ok(done)
    }

    /// Run one script and its bookkeeping statement atomically, or — for a
    /// `-- no-transaction` script — with a dirty marker set before and cleared after.
    /// On Citus, statement by statement (`up` distributes the new tables after the last
    /// migration).
    async fn run(&self, m: &Migration, sql: &str, record: &str, citus: bool) -> anyhow::Result<()> {
        if Migration::no_transaction(sql) {
            self.client
                .execute(
                    "insert into frontdesk_meta.schema_migrations (version, name, checksum, dirty) \
                     values ($1, $2, $3, true) on conflict (version) do update set dirty = true",
                    &[&i64::from(m.version), &m.name, &m.checksum()],
                )
                .await?;
            // One statement per round trip: several in one simple query would form an
            // implicit transaction, which CREATE INDEX CONCURRENTLY refuses.
            for (n, statement) in statements::split(sql).into_iter().enumerate() {
                self.client
                    .batch_execute(statement)
                    .await
                    .with_context(|| failed_statement(n, statement))?;
            }
            self.client.batch_execute(record).await?;
        } else if citus {
            self.in_transaction(|| async {
                for setting in citus::TRANSACTION_SETTINGS {
                    self.client.batch_execute(setting).await?;
                }
                for (n, statement) in statements::split(sql).into_iter().enumerate() {
                    let local = citus::creates_local_table(statement);
                    if local {
                        self.client
                            .batch_execute("set local citus.enable_ddl_propagation = off")
                            .await?;
                    }
                    self.client
                        .batch_execute(statement)
                        .await
                        .with_context(|| failed_statement(n, statement))?;
                    if local {
                        self.client
                            .batch_execute("set local citus.enable_ddl_propagation = on")
                            .await?;
                    }
                }
                self.client.batch_execute(record).await?;
                Ok(())
            })
            .await?;
        } else if let Err(error) = self
            .client
            .batch_execute(&format!("begin;\n{sql}\n;{record};\ncommit;"))
            .await
        {
            // The failed statement left the transaction aborted: end it before going on.
            let _ = self.client.batch_execute("rollback").await;
            return Err(error.into());
        }
        Ok(())
    }

    /// `work` between BEGIN and COMMIT, rolled back when it fails.
    async fn in_transaction<F, Fut>(&self, work: F) -> anyhow::Result<()>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<()>>,
    {
        self.client.batch_execute("begin").await?;
        match work().await {
            Ok(()) => {
                self.client.batch_execute("commit").await?;
                Ok(())
            }
            Err(error) => {
                let _ = self.client.batch_execute("rollback").await;
                Err(error)
            }
        }
    }

    /// Distribute what the migration created, and say what that was.
    async fn distribute(&self) -> anyhow::Result<()> {
        let done = citus::distribute(self.client)
            .await
            .context("distributing the new tables on Citus")?;
        if !done.is_empty() {
            tracing::info!(
                reference = ?done.reference,
                distributed = ?done.distributed,
                functions = done.functions.len(),
                "citus: tables distributed"
            );
        }
        Ok(())
    }
}

/// Which statement of a script failed: its number and its beginning.
fn failed_statement(n: usize, statement: &str) -> String {
    let head: String = statement.chars().take(160).collect();
    format!("statement {} of the script: {head}", n + 1)
}

/// The `drop …` statements of a down script, each as its first line (what reverting the
/// migration removes).
pub fn drops(script: &str) -> Vec<String> {
    script
        .lines()
        .map(str::trim)
        .filter(|l| {
            l.get(..5)
                .is_some_and(|head| head.eq_ignore_ascii_case("drop "))
        })
        .map(|l| l.trim_end_matches(';').to_owned())
        .collect()
}

/// The newest applied migration and whether one is dirty, on a pooled connection: what
/// a readiness check compares with the migrations this binary knows.
pub async fn applied(db: &crate::Db) -> Result<(i64, bool), crate::DbError> {
    use crate::RowExt;
    let row = db
        .lookup(
            "select coalesce(max(version), 0), bool_or(dirty) from frontdesk_meta.schema_migrations",
            &[],
        )
        .await?
        .ok_or(crate::DbError::RowCount(0))?;
    let (version, dirty): (i64, Option<bool>) = (row.col(0)?, row.col(1)?);
    Ok((version, dirty == Some(true)))
}
