//! Which PostgreSQL a command talks to: the embedded cluster (started and stopped here
//! unless something else already runs it) or the server in DATABASE_URL.

use std::process::Command;

use anyhow::{Context, bail};
use frontdesk_pg::{embedded::Cluster, roles};

use crate::Common;

pub enum Database {
    Embedded {
        cluster: Cluster,
        started_here: bool,
        logins: Logins,
    },
    External {
        admin: Box<tokio_postgres::Config>,
        url: String,
        logins: Logins,
    },
}

/// How the request path logs in: the login roles' passwords and, with
/// `FRONTDESK_POOL_URL`, the pooler (PgBouncer) its connections go through.
pub struct Logins {
    passwords: roles::Passwords,
    pooler: Option<tokio_postgres::Config>,
}

impl Logins {
    fn new(common: &Common, passwords: roles::Passwords) -> anyhow::Result<Self> {
        let pooler = common
            .pool_url
            .as_deref()
            .map(|url| {
                url.parse::<tokio_postgres::Config>()
                    .context("FRONTDESK_POOL_URL is not a PostgreSQL URL")
            })
            .transpose()?;
        Ok(Self { passwords, pooler })
    }
}

impl Database {
    /// Make the database usable: start the embedded cluster if needed, create roles and
    /// the database. `serving` only changes what is said about an already running cluster.
    pub async fn open(common: &Common, serving: bool) -> anyhow::Result<Self> {
        match &common.database_url {
            Some(url) => {
                let admin: tokio_postgres::Config = url
                    .parse()
                    .context("DATABASE_URL is not a PostgreSQL URL")?;
                let client = frontdesk_pg::pool::connect(&admin)
                    .await
                    .context("connecting to DATABASE_URL")?;
                let database = admin.get_dbname().unwrap_or("postgres").to_owned();
                let passwords = common.passwords();
                roles::ensure(&client, &database, &passwords).await?;
                Ok(Database::External {
                    admin: Box::new(admin),
                    url: url.clone(),
                    logins: Logins::new(common, passwords)?,
                })
            }
            None => {
                let cluster = Cluster::new(&common.data_dir)?;
                if cluster.init()? {
                    eprintln!(
                        "initialized a new embedded PostgreSQL cluster in {}",
                        cluster.pg_dir().display()
                    );
                }
                let started_here = if cluster.is_running() {
                    if !serving {
                        eprintln!(
                            "the embedded cluster in {} is already running (probably `frontdesk serve`): using it and leaving it running",
                            cluster.pg_dir().display()
                        );
                    } else {
                        eprintln!(
                            "the embedded cluster is already running: using it (it will be left running)"
                        );
                    }
                    false
                } else {
                    if !serving {
                        eprintln!(
                            "starting the embedded cluster in {} for this command",
                            cluster.pg_dir().display()
                        );
                    }
                    cluster.start()?;
                    true
                };
                let passwords = crate::secrets::embedded_passwords(&common.data_dir)?;
                let prepared = frontdesk_pg::setup::prepare_embedded(
                    &cluster,
                    frontdesk_pg::embedded::DATABASE,
                    &passwords,
                )
                .await;
                if let Err(error) = prepared {
                    if started_here {
                        let _ = cluster.stop();
                    }
                    return Err(error);
                }
                Ok(Database::Embedded {
                    cluster,
                    started_here,
                    logins: Logins::new(common, passwords)?,
                })
            }
        }
    }

    /// Stop the embedded cluster if this process started it.
    pub fn close(&self) -> anyhow::Result<()> {
        if let Database::Embedded {
            cluster,
            started_here: true,
            ..
        } = self
        {
            cluster.stop()?;
        }
        Ok(())
    }

    /// An administrative connection (roles, migrations).
    pub fn admin_config(&self) -> tokio_postgres::Config {
        match self {
            Database::Embedded { cluster, .. } => cluster.config(
                frontdesk_pg::embedded::SUPERUSER,
                frontdesk_pg::embedded::DATABASE,
            ),
            Database::External { admin, .. } => admin.as_ref().clone(),
        }
    }

    fn logins(&self) -> &Logins {
        match self {
            Database::Embedded { logins, .. } | Database::External { logins, .. } => logins,
        }
    }

    /// How `role` (frontdesk_app or frontdesk_operator) logs in: through the pooler when
    /// there is one, else directly; with its password.
    pub fn login_config(&self, role: &str) -> tokio_postgres::Config {
        let logins = self.logins();
        let mut config = logins.pooler.clone().unwrap_or_else(|| match self {
            Database::Embedded { cluster, .. } => {
                cluster.config(role, frontdesk_pg::embedded::DATABASE)
            }
            Database::External { admin, .. } => admin.as_ref().clone(),
        });
        config.user(role).application_name("frontdesk");
        let password = match role {
            roles::APP => logins.passwords.app.as_deref(),
            roles::OPERATOR => logins.passwords.operator.as_deref(),
            _ => None,
        };
        if let Some(password) = password {
            config.password(password);
        }
        config
    }

    /// The request path's pools (`pool_size` connections as frontdesk_app, a quarter of
    /// that, at least two, as frontdesk_operator) and the context form: `mode` when
    /// configured, else what the database needs (`citus` when the extension is installed).
    pub async fn request_db(
        &self,
        pool_size: usize,
        mode: Option<frontdesk_pg::ContextMode>,
    ) -> anyhow::Result<frontdesk_pg::Db> {
        let app = frontdesk_pg::pool::build(self.login_config(roles::APP), pool_size)?;
        let operator =
            frontdesk_pg::pool::build(self.login_config(roles::OPERATOR), (pool_size / 4).max(2))?;
        let mode = match mode {
            Some(mode) => mode,
            None => {
                let client = app.get().await.context("connecting as frontdesk_app")?;
                frontdesk_pg::ContextMode::detect(&client).await?
            }
        };
        // Through a pooler in transaction mode, no named statement outlives a transaction.
        let statements = if self.logins().pooler.is_some() {
            frontdesk_pg::StatementMode::Unnamed
        } else {
            frontdesk_pg::StatementMode::Named
        };
        Ok(frontdesk_pg::Db::with_statements(
            app, operator, mode, statements,
        ))
    }

    /// What says a server (`frontdesk serve` or `worker`) uses the database: the embedded
    /// cluster was already running when this command opened it, and sessions of the
    /// request path's logins (frontdesk_app, frontdesk_operator), which only servers and
    /// workers use. Empty when nothing does.
    pub async fn servers_using(&self) -> anyhow::Result<Vec<String>> {
        let mut found = Vec::new();
        if let Database::Embedded {
            cluster,
            started_here: false,
            ..
        } = self
        {
            found.push(format!(
                "the embedded cluster in {} was already running",
                cluster.pg_dir().display()
            ));
        }
        let client = frontdesk_pg::pool::connect(&self.admin_config())
            .await
            .context("connecting")?;
        let row = client
            .query_one(
                "select count(*), coalesce(string_agg(distinct usename::text, ', '), '')
                   from pg_stat_activity
                  where datname = current_database() and pid <> pg_backend_pid()
                    and usename in ($1, $2)",
                &[&roles::APP, &roles::OPERATOR],
            )
            .await
            .context("looking for the server's sessions in pg_stat_activity")?;
        let (sessions, logins): (i64, String) = (row.get(0), row.get(1));
        if sessions > 0 {
            found.push(format!("{sessions} session(s) of {logins}"));
        }
        Ok(found)
    }

    /// One of PostgreSQL's client programs, pointed at the database.
    pub fn tool(&self, program: &str) -> anyhow::Result<Command> {
        match self {
            Database::Embedded { cluster, .. } => {
                let mut c = Command::new(cluster.bin(program));
                c.arg("--host")
                    .arg(cluster.socket_dir())
                    .args(["--username", frontdesk_pg::embedded::SUPERUSER, "--dbname"])
                    .arg(frontdesk_pg::embedded::DATABASE);
                Ok(c)
            }
            Database::External { url, .. } => {
                let found = ["/usr/bin", "/usr/local/bin"]
                    .iter()
                    .map(|d| std::path::Path::new(d).join(program))
                    .find(|p| p.exists());
                let Some(path) = found else {
                    bail!("{program} was not found; install PostgreSQL's client tools")
                };
                let mut c = Command::new(path);
                c.arg("--dbname").arg(url);
                Ok(c)
            }
        }
    }
}
