//! The request transaction: the only way request code reaches tenant data.
//!
//! `Tx::begin` takes a pooled connection and prepares the preamble
//!
//! ```sql
//! BEGIN [READ ONLY];
//! SET LOCAL ROLE frontdesk_user;                -- or frontdesk_service / frontdesk_operator
//! SET LOCAL frontdesk.tenant_id = '<uuid>';
//! SET LOCAL frontdesk.user_id = '<uuid>';       -- or frontdesk.key_id + frontdesk.key_scope
//! SET LOCAL frontdesk.member_role = '<role>';
//! SELECT app.assert_principal();
//! ```
//!
//! (a provider's callback sets its tenant, `frontdesk.caller_kind`, `frontdesk.provider`
//! and `frontdesk.secret_fingerprint`, and calls `app.assert_callback()` instead)
//!
//! which is sent in the same round trip as the first statement (pipelined). The values are
//! UUIDs and enum words already parsed in Rust, never free text; nothing is set at session
//! level, so connections can be shared between tenants and through PgBouncer.
//! A `Tx` dropped without `commit` is rolled back before its connection is reused.
//!
//! Request code does not begin or end transactions itself: `Tx::run` owns a
//! transaction's life (begin, the work, COMMIT), and the work — the domain's queries —
//! decides what is pipelined: a statement marked with `last()` carries the COMMIT in its
//! own round trip, so a one-statement read costs one round trip in all.

use std::fmt::Write as _;

use deadpool_postgres::{Object, Pool};
use tokio_postgres::{Row, Statement, ToStatement, types::ToSql};
use uuid::Uuid;

/// A member's role in a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MemberRole {
    Member,
    Agent,
    Admin,
    Owner,
}

impl MemberRole {
    pub const ALL: [MemberRole; 4] = [Self::Owner, Self::Admin, Self::Agent, Self::Member];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Admin => "admin",
            Self::Agent => "agent",
            Self::Member => "member",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// What an API key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyScope {
    Full,
    Read,
}

impl KeyScope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Read => "read",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "full" => Some(Self::Full),
            "read" => Some(Self::Read),
            _ => None,
        }
    }
}

/// Who a request acts as, in database terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Principal {
    /// A person; `role` is their membership role in the request's tenant, if it has one.
    User { id: Uuid, role: Option<MemberRole> },
    /// An API key of the request's tenant.
    Key { id: Uuid, scope: KeyScope },
    /// The operator: bypasses RLS; never used for a tenant's own request.
    Operator,
    /// A provider's signed callback to the request's tenant, verified with the secret
    /// whose fingerprint this is. `provider` is a fixed word from code (`"test"`, later
    /// `"midtrans"`, …), never the path's text.
    Callback {
        provider: &'static str,
        secret_fingerprint: [u8; 8],
    },
}

/// Everything the preamble sets.
#[derive(Debug, Clone, Copy)]
pub struct RequestContext {
    pub tenant: Option<Uuid>,
    pub principal: Principal,
    pub read_only: bool,
}

impl RequestContext {
    /// The preamble's SQL. Every interpolated value is a `Uuid` or a fixed enum word.
    pub fn preamble(&self) -> String {
        let mut sql = String::with_capacity(256);
        sql.push_str(if self.read_only {
            "begin read only;"
        } else {
            "begin;"
        });
        let role = match self.principal {
            Principal::User { .. } => crate::roles::USER,
            Principal::Key { .. } => crate::roles::SERVICE,
            Principal::Operator => crate::roles::OPERATOR,
            Principal::Callback { .. } => crate::roles::CALLBACK,
        };
        let _ = write!(sql, "set local role {role};");
        if let Some(tenant) = self.tenant {
            let _ = write!(sql, "set local frontdesk.tenant_id = '{tenant}';");
        }
        match self.principal {
            Principal::User { id, role } => {
                let _ = write!(sql, "set local frontdesk.user_id = '{id}';");
                if let Some(role) = role {
                    let _ = write!(
                        sql,
                        "set local frontdesk.member_role = '{}';",
                        role.as_str()
                    );
                }
            }
            Principal::Key { id, scope } => {
                let _ = write!(
                    sql,
                    "set local frontdesk.key_id = '{id}';set local frontdesk.key_scope = '{}';",
                    scope.as_str()
                );
            }
            Principal::Operator => {}
            Principal::Callback {
                provider,
                secret_fingerprint,
            } => {
                debug_assert!(provider.bytes().all(|b| b.is_ascii_lowercase()));
                let _ = write!(
                    sql,
                    "set local frontdesk.caller_kind = 'callback';set local frontdesk.provider = '{provider}';\
                     set local frontdesk.secret_fingerprint = '"
                );
                for byte in secret_fingerprint {
                    let _ = write!(sql, "{byte:02x}");
                }
                sql.push_str("';");
            }
        }
        // A callback's context has a check of its own (migration 0006): 0001's
        // `assert_principal` refuses the callback role.
        sql.push_str(if matches!(self.principal, Principal::Callback { .. }) {
            "select app.assert_callback();"
        } else {
            "select app.assert_principal();"
        });
        sql
    }
}

/// Errors of the database layer, kept as they are so the HTTP layer can map SQLSTATEs.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("no database connection available: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error(transparent)]
    Postgres(#[from] tokio_postgres::Error),
    /// A statement after the transaction was committed (a bug in the caller).
    #[error("the transaction is already committed")]
    Finished,
}

impl DbError {
    /// The server's error, when PostgreSQL raised one.
    pub fn db_error(&self) -> Option<&tokio_postgres::error::DbError> {
        match self {
            Self::Postgres(e) => e.as_db_error(),
            Self::Pool(_) | Self::Finished => None,
        }
    }

    /// The SQLSTATE, when PostgreSQL raised an error.
    pub fn code(&self) -> Option<&str> {
        self.db_error().map(|e| e.code().code())
    }

    /// Whether the database refused the request context (`app.assert_principal` marks
    /// its refusals with the hint `frontdesk-context`).
    pub fn is_refused_principal(&self) -> bool {
        self.db_error()
            .is_some_and(|e| e.code().code() == "42501" && e.hint() == Some("frontdesk-context"))
    }
}

/// A request transaction with its RLS context.
pub struct Tx {
    conn: Option<Object>,
    /// The preamble, until it has been sent with the first statement.
    pending: Option<String>,
    /// Send COMMIT together with the next statement (see `last`).
    commit_with_next: bool,
    /// Inside `part`: more statements follow, so `last` is not honoured.
    in_part: bool,
    finished: bool,
}

impl Tx {
    /// Take a connection for `context`. The preamble goes out with the first statement.
    pub async fn begin(pool: &Pool, context: &RequestContext) -> Result<Self, DbError> {
        let conn = pool.get().await?;
        Ok(Self {
            conn: Some(conn),
            pending: Some(context.preamble()),
            commit_with_next: false,
            in_part: false,
            finished: false,
        })
    }

    fn conn(&self) -> &Object {
        self.conn.as_ref().expect("connection present until drop")
    }

    /// A prepared statement, cached per connection.
    pub async fn prepare(&self, sql: &str) -> Result<Statement, DbError> {
        Ok(self.conn().prepare_cached(sql).await?)
    }

    /// Run `sql` (prepared and cached), returning its rows; the first call carries the
    /// preamble in the same round trip.
    pub async fn query(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, DbError> {
        let statement = self.prepare(sql).await?;
        self.query_statement(&statement, params).await
    }

    /// Mark the next statement as the transaction's last: its COMMIT goes out in the same
    /// round trip, so a one-statement read costs one round trip in all. A query function
    /// calls it before its final statement when that statement completes its work;
    /// whoever composes such functions with more statements after them runs them in
    /// `part`, where the mark is ignored. After the marked statement the transaction is
    /// over: `commit` is a no-op, and another statement is an error. (Should the marked
    /// statement fail, PostgreSQL turns the COMMIT into a ROLLBACK.)
    pub fn last(&mut self) -> &mut Self {
        if !self.in_part {
            self.commit_with_next = true;
        }
        self
    }

    /// Run `work` as a part of a larger unit: more statements follow it, so a `last`
    /// mark inside it is ignored.
    pub async fn part<T, E>(
        &mut self,
        work: impl AsyncFnOnce(&mut Tx) -> Result<T, E>,
    ) -> Result<T, E> {
        let outer = std::mem::replace(&mut self.in_part, true);
        let result = work(self).await;
        self.in_part = outer;
        result
    }

    pub async fn query_statement<T>(
        &mut self,
        statement: &T,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, DbError>
    where
        T: ?Sized + ToStatement,
    {
        self.send(async |conn| conn.query(statement, params).await)
            .await
    }

    /// At most one row.
    pub async fn query_opt(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, DbError> {
        Ok(self.query(sql, params).await?.into_iter().next())
    }

    /// Exactly one row (a statement that always returns one, e.g. `insert … returning`).
    pub async fn query_one(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, DbError> {
        let statement = self.prepare(sql).await?;
        self.send(async |conn| conn.query_one(&statement, params).await)
            .await
    }

    /// Rows affected.
    pub async fn execute(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, DbError> {
        let statement = self.prepare(sql).await?;
        self.send(async |conn| conn.execute(&statement, params).await)
            .await
    }

    /// Send the statement `run` makes, after the preamble while it is pending and before
    /// the COMMIT when `last` asked for it, all in one round trip: the
    /// futures are polled in order, so the requests leave in that order.
    async fn send<R>(
        &mut self,
        run: impl AsyncFnOnce(&Object) -> Result<R, tokio_postgres::Error>,
    ) -> Result<R, DbError> {
        if self.finished {
            return Err(DbError::Finished);
        }
        let preamble = self.pending.take();
        let commit = std::mem::take(&mut self.commit_with_next);
        let conn = self.conn.as_ref().expect("connection present until drop");
        let (pre, out, committed) = futures_util::future::join3(
            async {
                match &preamble {
                    Some(sql) => conn.batch_execute(sql).await,
                    None => Ok(()),
                }
            },
            run(conn),
            async {
                if commit {
                    conn.batch_execute("commit").await
                } else {
                    Ok(())
                }
            },
        )
        .await;
        pre?;
        let out = out?;
        committed?;
        self.finished = commit;
        Ok(out)
    }

    /// Commit. A transaction that never ran a statement still runs its preamble, so the
    /// context is checked either way.
    pub async fn commit(mut self) -> Result<(), DbError> {
        if self.finished {
            return Ok(());
        }
        let sql = match self.pending.take() {
            Some(preamble) => preamble + "commit",
            None => "commit".to_owned(),
        };
        self.conn().batch_execute(&sql).await?;
        self.finished = true;
        Ok(())
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        if self.finished || self.pending.is_some() {
            // Nothing was sent, or the transaction is over: the connection is clean.
            return;
        }
        if let Some(conn) = self.conn.take() {
            // Roll back before the connection goes back to the pool; if that fails (or no
            // runtime is there to do it), the connection is closed instead of reused.
            match tokio::runtime::Handle::try_current() {
                Ok(handle) => {
                    handle.spawn(async move {
                        if conn.batch_execute("rollback").await.is_err() {
                            let _ = Object::take(conn);
                        }
                    });
                }
                Err(_) => {
                    let _ = Object::take(conn);
                }
            }
        }
    }
}

impl Tx {
    /// The one owner of a transaction's life: begin a transaction for `context`, run
    /// `work` in it, and commit when it returns `Ok` (unless its `last` statement already
    /// carried the COMMIT). On `Err` the transaction is rolled back.
    pub async fn run<T, E>(
        pool: &Pool,
        context: &RequestContext,
        work: impl AsyncFnOnce(&mut Tx) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<DbError>,
    {
        let mut tx = Tx::begin(pool, context).await?;
        let value = work(&mut tx).await?;
        tx.commit().await?;
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preamble_for_a_member_sets_tenant_user_and_role() {
        let tenant = Uuid::nil();
        let user = Uuid::max();
        let sql = RequestContext {
            tenant: Some(tenant),
            principal: Principal::User {
                id: user,
                role: Some(MemberRole::Agent),
            },
            read_only: true,
        }
        .preamble();
        assert_eq!(
            sql,
            format!(
                "begin read only;set local role frontdesk_user;\
                 set local frontdesk.tenant_id = '{tenant}';set local frontdesk.user_id = '{user}';\
                 set local frontdesk.member_role = 'agent';select app.assert_principal();"
            )
        );
    }

    #[test]
    fn preamble_for_a_key_sets_key_and_scope_and_no_user() {
        let sql = RequestContext {
            tenant: Some(Uuid::nil()),
            principal: Principal::Key {
                id: Uuid::max(),
                scope: KeyScope::Read,
            },
            read_only: false,
        }
        .preamble();
        assert!(sql.starts_with("begin;set local role frontdesk_service;"));
        assert!(sql.contains("frontdesk.key_scope = 'read'"));
        assert!(!sql.contains("user_id"));
    }

    #[test]
    fn preamble_for_a_callback_sets_its_kind_provider_and_secret_and_checks_them() {
        let tenant = Uuid::nil();
        let sql = RequestContext {
            tenant: Some(tenant),
            principal: Principal::Callback {
                provider: "test",
                secret_fingerprint: [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef],
            },
            read_only: false,
        }
        .preamble();
        assert_eq!(
            sql,
            format!(
                "begin;set local role frontdesk_callback;set local frontdesk.tenant_id = '{tenant}';\
                 set local frontdesk.caller_kind = 'callback';set local frontdesk.provider = 'test';\
                 set local frontdesk.secret_fingerprint = '0123456789abcdef';select app.assert_callback();"
            )
        );
    }
}
