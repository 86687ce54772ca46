//! Connection pools of the request path: one per login role (see `Db`); a connection
//! never changes role.

use std::{future::Future, pin::Pin};

use deadpool_postgres::{Connect, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio::task::JoinHandle;
use tokio_postgres::{AsyncMessage, NoTls};

/// A pool of `size` connections with `config`. Connections are checked lazily.
pub fn build(config: tokio_postgres::Config, size: usize) -> anyhow::Result<Pool> {
    let manager = Manager::from_connect(
        config,
        QuietNotices,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Ok(Pool::builder(manager)
        .max_size(size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(std::time::Duration::from_secs(10)))
        .create_timeout(Some(std::time::Duration::from_secs(10)))
        .build()?)
}

/// Connects like deadpool's default, but drives the connection so that PostgreSQL's
/// notices and warnings (NOTICE from `create … if not exists`, WARNING from a stray
/// ROLLBACK) go to tracing at debug level, target `frontdesk_pg::notice`, instead of
/// the driver's `info` lines in the server's log.
struct QuietNotices;

type Connected = (tokio_postgres::Client, JoinHandle<()>);

impl Connect for QuietNotices {
    fn connect(
        &self,
        config: &tokio_postgres::Config,
    ) -> Pin<Box<dyn Future<Output = Result<Connected, tokio_postgres::Error>> + Send + '_>> {
        let config = config.clone();
        Box::pin(async move {
            let (client, connection) = config.connect(NoTls).await?;
            Ok((client, tokio::spawn(drive(connection))))
        })
    }
}

/// Run a connection to its end, logging its notices at debug level.
async fn drive<S, T>(mut connection: tokio_postgres::Connection<S, T>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            Some(Ok(AsyncMessage::Notice(notice))) => tracing::debug!(
                target: "frontdesk_pg::notice",
                severity = notice.severity(),
                code = notice.code().code(),
                "{}",
                notice.message()
            ),
            Some(Ok(_)) => {}
            Some(Err(error)) => {
                tracing::debug!(%error, "database connection closed");
                return;
            }
            None => return,
        }
    }
}

/// One connection outside the pool (migrations, role setup, CLI), its driver spawned;
/// notices go to tracing at debug level like the pools'.
pub async fn connect(
    config: &tokio_postgres::Config,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(drive(connection));
    Ok(client)
}
