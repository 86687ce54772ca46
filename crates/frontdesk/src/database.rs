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
    },
    External {
        admin: Box<tokio_postgres::Config>,
        app: Box<tokio_postgres::Config>,
        url: String,
    },
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
                roles::ensure(&client, &database, common.authenticator_password.as_deref()).await?;
                let mut app = admin.clone();
                app.user(roles::AUTHENTICATOR)
                    .application_name("frontdesk")
                    .password(common.authenticator_password.as_deref().unwrap_or(""));
                Ok(Database::External {
                    admin: Box::new(admin),
                    app: Box::new(app),
                    url: url.clone(),
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
                let prepared = frontdesk_pg::setup::prepare_embedded(
                    &cluster,
                    frontdesk_pg::embedded::DATABASE,
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
                })
            }
        }
    }

    /// Stop the embedded cluster if this process started it.
    pub fn close(&self) -> anyhow::Result<()> {
        if let Database::Embedded {
            cluster,
            started_here: true,
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

    /// The request path's login: frontdesk_authenticator.
    pub fn app_config(&self) -> tokio_postgres::Config {
        match self {
            Database::Embedded { cluster, .. } => {
                cluster.config(roles::AUTHENTICATOR, frontdesk_pg::embedded::DATABASE)
            }
            Database::External { app, .. } => app.as_ref().clone(),
        }
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
