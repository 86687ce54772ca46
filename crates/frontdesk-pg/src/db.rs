//! The database as the server sees it: one pool per login role, and the form the request
//! context takes on this database.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use deadpool_postgres::Pool;
use tokio_postgres::types::Type;

use crate::{ContextMode, Principal};

/// The request path's pools: `frontdesk_app` (bound by RLS) for every tenant request and
/// the authentication lookups, `frontdesk_operator` (bypasses RLS) for operator requests
/// and the background workers. Cheap to clone.
#[derive(Clone)]
pub struct Db(Arc<Inner>);

struct Inner {
    app: Pool,
    operator: Pool,
    context_mode: ContextMode,
    statement_mode: StatementMode,
    /// Through a pooler: each statement's parameter types, learned once.
    parameter_types: RwLock<HashMap<String, Arc<[Type]>>>,
}

/// How statements are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StatementMode {
    /// Named prepared statements, cached per connection: connections are direct.
    #[default]
    Named,
    /// Unnamed statements with their parameter types: connections go through a pooler in
    /// transaction mode (PgBouncer before 1.21 keeps no named statements across
    /// transactions).
    Unnamed,
}

impl Db {
    pub fn new(app: Pool, operator: Pool, context_mode: ContextMode) -> Self {
        Self::with_statements(app, operator, context_mode, StatementMode::Named)
    }

    pub fn with_statements(
        app: Pool,
        operator: Pool,
        context_mode: ContextMode,
        statement_mode: StatementMode,
    ) -> Self {
        Self(Arc::new(Inner {
            app,
            operator,
            context_mode,
            statement_mode,
            parameter_types: RwLock::default(),
        }))
    }

    pub fn statement_mode(&self) -> StatementMode {
        self.0.statement_mode
    }

    pub(crate) fn parameter_types(&self, sql: &str) -> Option<Arc<[Type]>> {
        self.0
            .parameter_types
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(sql)
            .cloned()
    }

    /// Learn `sql`'s parameter types by preparing it on `conn`, which must be inside a
    /// transaction: through a pooler, the Parse and its Close (sent when the statement is
    /// dropped, before anything else) then reach the same server connection.
    pub(crate) async fn learn_parameter_types(
        &self,
        conn: &tokio_postgres::Client,
        sql: &str,
    ) -> Result<Arc<[Type]>, tokio_postgres::Error> {
        let types: Arc<[Type]> = conn.prepare(sql).await?.params().into();
        self.0
            .parameter_types
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(sql.to_owned(), types.clone());
        Ok(types)
    }

    /// One statement outside any request transaction (the authentication lookups), on
    /// the `frontdesk_app` pool; at most one row.
    pub async fn lookup(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Option<tokio_postgres::Row>, crate::DbError> {
        let conn = Self::checkout(self.app(), "app").await?;
        if self.statement_mode() == StatementMode::Named {
            let statement = conn.prepare_cached(sql).await?;
            return Ok(conn.query_opt(&statement, params).await?);
        }
        let types = match self.parameter_types(sql) {
            Some(types) => types,
            None => {
                conn.batch_execute("begin").await?;
                let types = match self.learn_parameter_types(&conn, sql).await {
                    Ok(types) => types,
                    Err(error) => {
                        // Never hand the connection back inside a failed transaction.
                        if conn.batch_execute("rollback").await.is_err() {
                            let _ = deadpool_postgres::Object::take(conn);
                        }
                        return Err(error.into());
                    }
                };
                conn.batch_execute("commit").await?;
                types
            }
        };
        let typed = crate::tx::typed(params, &types);
        Ok(conn.query_typed(sql, &typed).await?.into_iter().next())
    }

    /// A connection of `pool` (`app` or `operator`, the metrics label). A checkout that
    /// finds no idle connection (it waits for one to come back or to be opened) counts in
    /// `db_pool_wait_seconds{pool}` with the time it waited.
    pub(crate) async fn checkout(
        pool: &Pool,
        label: &'static str,
    ) -> Result<deadpool_postgres::Object, deadpool_postgres::PoolError> {
        // Only a checkout that finds nothing idle reads the clock.
        let waits = (pool.status().available == 0).then(std::time::Instant::now);
        let got = pool.get().await;
        if let Some(start) = waits {
            metrics::histogram!("db_pool_wait_seconds", "pool" => label)
                .record(start.elapsed().as_secs_f64());
        }
        if got.is_err() {
            metrics::counter!("db_pool_checkout_failures_total", "pool" => label).increment(1);
        }
        got
    }

    /// A connection for `principal` (see `checkout`).
    pub(crate) async fn connection_for(
        &self,
        principal: &Principal,
    ) -> Result<deadpool_postgres::Object, deadpool_postgres::PoolError> {
        let label = match principal {
            Principal::Operator => "operator",
            Principal::User { .. } | Principal::Key { .. } | Principal::Callback { .. } => "app",
        };
        Self::checkout(self.pool_for(principal), label).await
    }

    /// A transaction as the operator with its request context, as the workers and
    /// operator requests run them (`/readyz`): the operator pool logs in, the context
    /// functions answer, a statement runs.
    pub async fn probe_operator(&self) -> Result<(), crate::DbError> {
        let context = crate::RequestContext {
            tenant: None,
            tenant_version: None,
            principal: Principal::Operator,
            read_only: true,
        };
        crate::Tx::run(self, &context, async |tx| {
            tx.last().query("select 1", &[]).await.map(drop)
        })
        .await
    }

    /// Connections as `frontdesk_app`.
    pub fn app(&self) -> &Pool {
        &self.0.app
    }

    /// Connections as `frontdesk_operator`.
    pub fn operator(&self) -> &Pool {
        &self.0.operator
    }

    pub fn context_mode(&self) -> ContextMode {
        self.0.context_mode
    }

    /// The pool of the login role `principal` acts as.
    pub fn pool_for(&self, principal: &Principal) -> &Pool {
        match principal {
            Principal::Operator => self.operator(),
            Principal::User { .. } | Principal::Key { .. } | Principal::Callback { .. } => {
                self.app()
            }
        }
    }
}
