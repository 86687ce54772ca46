//! The request transaction: the only way request code reaches tenant data.
//!
//! A transaction runs on a pooled connection of the login role its principal needs
//! (`frontdesk_app` for people, keys and callbacks; `frontdesk_operator`, which bypasses
//! RLS, for the operator and the background workers) — never `SET ROLE`. Who the caller is
//! travels only in transaction-local settings, sent before the first statement in the
//! same round trip (pipelined) in one of two forms ([`ContextMode`]):
//!
//! ```sql
//! -- PostgreSQL: BEGIN, then one prepared statement
//! BEGIN [READ ONLY];
//! SELECT set_config('frontdesk.caller_kind', $1, true), set_config('frontdesk.tenant_id', $2, true),
//!        …, app.assert_principal();
//! -- Citus: BEGIN, then one statement per setting (Citus forwards SET LOCAL to the
//! -- workers with citus.propagate_set_commands = 'local'; set_config it does not)
//! BEGIN [READ ONLY];
//! SET LOCAL frontdesk.caller_kind = 'user';
//! SET LOCAL frontdesk.tenant_id = '<uuid>';
//! …
//! SELECT app.assert_principal();
//! ```
//!
//! (a provider's callback sets its tenant, the `callback` kind, `frontdesk.provider` and
//! `frontdesk.secret_fingerprint`, and calls `app.assert_callback()` instead). The values
//! are UUIDs and enum words already parsed in Rust, never free text; nothing is set at
//! session level, so connections can be shared between tenants and through PgBouncer.
//! A `Tx` dropped without `commit` is rolled back before its connection is reused.
//!
//! Request code does not begin or end transactions itself: `Tx::run` owns a
//! transaction's life (begin, the work, COMMIT), and the work — the domain's queries —
//! decides what is pipelined: a statement marked with `last()` carries the COMMIT in its
//! own round trip, so a one-statement read costs one round trip in all.

use std::fmt::Write as _;

use deadpool_postgres::Object;
use tokio_postgres::{
    Row, Statement,
    types::{ToSql, Type},
};

use crate::db::StatementMode;

/// How one statement is sent (see `Tx::statement`).
enum Prepared {
    Named(Statement),
    Unnamed(std::sync::Arc<[Type]>),
}

/// Parameters paired with their types, for an unnamed statement.
pub(crate) fn typed<'a>(
    params: &[&'a (dyn ToSql + Sync)],
    types: &[Type],
) -> Vec<(&'a (dyn ToSql + Sync), Type)> {
    params.iter().copied().zip(types.iter().cloned()).collect()
}
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
    /// The tenant's access version the server's lookup saw (`frontdesk.tenant_version`):
    /// `app.assert_principal` refuses the context once the tenant's slug or active flag
    /// changed since. `None` checks nothing (work that did not look the tenant up).
    pub tenant_version: Option<i64>,
    pub principal: Principal,
    pub read_only: bool,
}

/// How a transaction's context is sent (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ContextMode {
    /// One prepared `select set_config(…, true), …, app.assert_principal()`: the cheapest
    /// form on PostgreSQL.
    #[default]
    Prepared,
    /// One `SET LOCAL` statement per setting, then the check: what Citus forwards to the
    /// workers (`set_config` it does not).
    SetLocal,
}

impl ContextMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Prepared => "postgres",
            Self::SetLocal => "citus",
        }
    }

    /// `postgres` or `citus` (what `FRONTDESK_CONTEXT_MODE` takes).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "postgres" => Some(Self::Prepared),
            "citus" => Some(Self::SetLocal),
            _ => None,
        }
    }

    /// The form the database needs: `SetLocal` when the `citus` extension is installed.
    pub async fn detect(client: &tokio_postgres::Client) -> Result<Self, tokio_postgres::Error> {
        // The simple protocol: no named statement, which a pooler could leave behind.
        let rows = client
            .simple_query("select 1 from pg_catalog.pg_extension where extname = 'citus'")
            .await?;
        let citus = rows
            .iter()
            .any(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(_)));
        Ok(if citus {
            Self::SetLocal
        } else {
            Self::Prepared
        })
    }
}

/// The prepared form for people, keys and the operator: the seven settings, then the
/// check, evaluated left to right in one statement.
const PRINCIPAL_CONTEXT: &str = "select set_config('frontdesk.caller_kind', $1, true), \
     set_config('frontdesk.tenant_id', $2, true), set_config('frontdesk.user_id', $3, true), \
     set_config('frontdesk.member_role', $4, true), set_config('frontdesk.key_id', $5, true), \
     set_config('frontdesk.key_scope', $6, true), set_config('frontdesk.tenant_version', $7, true), \
     app.assert_principal()";

/// The prepared form for a provider's callback.
const CALLBACK_CONTEXT: &str = "select set_config('frontdesk.caller_kind', $1, true), \
     set_config('frontdesk.tenant_id', $2, true), set_config('frontdesk.provider', $3, true), \
     set_config('frontdesk.secret_fingerprint', $4, true), app.assert_callback()";

impl RequestContext {
    /// `frontdesk.caller_kind`: what the policies and `app.assert_principal` read.
    pub fn caller_kind(&self) -> &'static str {
        match self.principal {
            Principal::User { .. } => "user",
            Principal::Key { .. } => "key",
            Principal::Operator => "operator",
            Principal::Callback { .. } => "callback",
        }
    }

    fn is_callback(&self) -> bool {
        matches!(self.principal, Principal::Callback { .. })
    }

    fn begin_sql(&self) -> &'static str {
        if self.read_only {
            "begin read only"
        } else {
            "begin"
        }
    }

    /// The settings in the prepared statement's parameter order; absent values are empty
    /// (which the `app.current_*()` functions read as null). Every value is a `Uuid`, a
    /// fixed word or hex digits.
    pub fn settings(&self) -> Vec<(&'static str, String)> {
        let tenant = self.tenant.map(|t| t.to_string()).unwrap_or_default();
        let kind = self.caller_kind().to_owned();
        match self.principal {
            Principal::Callback {
                provider,
                secret_fingerprint,
            } => {
                debug_assert!(provider.bytes().all(|b| b.is_ascii_lowercase()));
                let mut hex = String::with_capacity(16);
                for byte in secret_fingerprint {
                    let _ = write!(hex, "{byte:02x}");
                }
                vec![
                    ("frontdesk.caller_kind", kind),
                    ("frontdesk.tenant_id", tenant),
                    ("frontdesk.provider", provider.to_owned()),
                    ("frontdesk.secret_fingerprint", hex),
                ]
            }
            principal => {
                let (user, role, key, scope) = match principal {
                    Principal::User { id, role } => (
                        id.to_string(),
                        role.map(|r| r.as_str()).unwrap_or_default(),
                        String::new(),
                        "",
                    ),
                    Principal::Key { id, scope } => {
                        (String::new(), "", id.to_string(), scope.as_str())
                    }
                    _ => (String::new(), "", String::new(), ""),
                };
                vec![
                    ("frontdesk.caller_kind", kind),
                    ("frontdesk.tenant_id", tenant),
                    ("frontdesk.user_id", user),
                    ("frontdesk.member_role", role.to_owned()),
                    ("frontdesk.key_id", key),
                    ("frontdesk.key_scope", scope.to_owned()),
                    (
                        "frontdesk.tenant_version",
                        self.tenant_version
                            .map(|v| v.to_string())
                            .unwrap_or_default(),
                    ),
                ]
            }
        }
    }

    /// The statements of the `SetLocal` form, in order, each sent on its own: BEGIN, one
    /// `SET LOCAL` per setting that has a value, and the check.
    pub fn set_local_statements(&self) -> Vec<String> {
        let mut statements = vec![self.begin_sql().to_owned()];
        for (name, value) in self.settings() {
            if !value.is_empty() {
                statements.push(format!("set local {name} = '{value}'"));
            }
        }
        statements.push(self.check_sql().to_owned());
        statements
    }

    fn check_sql(&self) -> &'static str {
        if self.is_callback() {
            "select app.assert_callback()"
        } else {
            "select app.assert_principal()"
        }
    }

    fn prepared_sql(&self) -> &'static str {
        if self.is_callback() {
            CALLBACK_CONTEXT
        } else {
            PRINCIPAL_CONTEXT
        }
    }
}

/// Errors of the database layer, kept as they are so the HTTP layer can map SQLSTATEs.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// Displayed with its causes (why a new connection failed: a refused password, say).
    #[error("no database connection available: {}", error_chain(.0))]
    Pool(#[from] deadpool_postgres::PoolError),
    /// Displayed with its causes: the server's severity, message and SQLSTATE for an
    /// error PostgreSQL raised (the driver alone says only "db error").
    #[error("{}", error_chain(.0))]
    Postgres(#[from] tokio_postgres::Error),
    /// A statement after the transaction was committed (a bug in the caller).
    #[error("the transaction is already committed")]
    Finished,
    /// `query_one` of a statement that returned another number of rows than one.
    #[error("the statement returned {0} rows instead of one")]
    RowCount(usize),
    /// A column whose value does not decode into the Rust type it is read as
    /// (`row::RowExt::col`). Names the column, its table's oid (`select <oid>::regclass`)
    /// and the type, never the value.
    #[error("column `{column}`{} does not decode as {rust_type}: {reason}", table_of(*.table))]
    Decode {
        column: String,
        table: Option<u32>,
        rust_type: &'static str,
        reason: String,
    },
}

/// An error and its causes on one line, `: `-separated; a server error with its
/// SQLSTATE, its detail and hint after `;`.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        text.push_str(": ");
        match e.downcast_ref::<tokio_postgres::error::DbError>() {
            Some(db) => {
                text.push_str(&format!(
                    "{} {}: {}",
                    db.severity(),
                    db.code().code(),
                    db.message()
                ));
                if let Some(detail) = db.detail() {
                    text.push_str(&format!("; detail: {detail}"));
                }
                if let Some(hint) = db.hint() {
                    text.push_str(&format!("; hint: {hint}"));
                }
            }
            None => text.push_str(&e.to_string().replace('\n', "; ")),
        }
        cause = e.source();
    }
    text
}

fn table_of(table: Option<u32>) -> String {
    table.map_or_else(String::new, |oid| format!(" of table oid {oid}"))
}

impl DbError {
    /// The server's error, when PostgreSQL raised one.
    pub fn db_error(&self) -> Option<&tokio_postgres::error::DbError> {
        match self {
            Self::Postgres(e) => e.as_db_error(),
            Self::Pool(_) | Self::Finished | Self::RowCount(_) | Self::Decode { .. } => None,
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
    db: crate::Db,
    /// The context, until it has been sent with the first statement.
    pending: Option<RequestContext>,
    /// Send COMMIT together with the next statement (see `last`).
    commit_with_next: bool,
    /// Inside `part`: more statements follow, so `last` is not honoured.
    in_part: bool,
    finished: bool,
}

impl Tx {
    /// Take a connection of the login role `context` needs. The context goes out with the
    /// first statement.
    pub async fn begin(db: &crate::Db, context: &RequestContext) -> Result<Self, DbError> {
        let conn = db.connection_for(&context.principal).await?;
        Ok(Self {
            conn: Some(conn),
            db: db.clone(),
            pending: Some(*context),
            commit_with_next: false,
            in_part: false,
            finished: false,
        })
    }

    fn conn(&self) -> &Object {
        self.conn.as_ref().expect("connection present until drop")
    }

    /// Run `sql`, returning its rows; the first call carries the context in the same
    /// round trip.
    pub async fn query(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, DbError> {
        match self.statement(sql).await? {
            Prepared::Named(statement) => {
                self.send(async |conn| conn.query(&statement, params).await)
                    .await
            }
            Prepared::Unnamed(types) => {
                let typed = typed(params, &types);
                self.send(async |conn| conn.query_typed(sql, &typed).await)
                    .await
            }
        }
    }

    /// How `sql` is sent: a named statement prepared once per connection, or — through a
    /// pooler in transaction mode, where a connection's named statements may live on
    /// another server connection — the unnamed statement with its parameter types, which
    /// are learned once per process by preparing `sql` inside this transaction (so the
    /// Parse and its Close reach the same server connection).
    async fn statement(&mut self, sql: &str) -> Result<Prepared, DbError> {
        if self.db.statement_mode() == StatementMode::Named {
            return Ok(Prepared::Named(self.conn().prepare_cached(sql).await?));
        }
        if let Some(types) = self.db.parameter_types(sql) {
            return Ok(Prepared::Unnamed(types));
        }
        if self.finished {
            return Err(DbError::Finished);
        }
        if self.pending.is_some() {
            let commit = std::mem::take(&mut self.commit_with_next);
            self.send(async |_| Ok(())).await?;
            self.commit_with_next = commit;
        }
        let types = self.db.learn_parameter_types(self.conn(), sql).await?;
        Ok(Prepared::Unnamed(types))
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
        let mut rows = self.query(sql, params).await?;
        if rows.len() != 1 {
            return Err(DbError::RowCount(rows.len()));
        }
        Ok(rows.remove(0))
    }

    /// Rows affected.
    pub async fn execute(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, DbError> {
        match self.statement(sql).await? {
            Prepared::Named(statement) => {
                self.send(async |conn| conn.execute(&statement, params).await)
                    .await
            }
            Prepared::Unnamed(types) => {
                let typed = typed(params, &types);
                self.send(async |conn| {
                    let stream = conn.query_typed_raw(sql, typed).await?;
                    futures_util::pin_mut!(stream);
                    while futures_util::TryStreamExt::try_next(&mut stream)
                        .await?
                        .is_some()
                    {}
                    Ok(stream.rows_affected().unwrap_or(0))
                })
                .await
            }
        }
    }

    /// Send the statement `run` makes, after the context while it is pending and before
    /// the COMMIT when `last` asked for it, all in one round trip: the futures are polled
    /// in order, so the requests leave in that order.
    async fn send<R>(
        &mut self,
        run: impl AsyncFnOnce(&Object) -> Result<R, tokio_postgres::Error>,
    ) -> Result<R, DbError> {
        if self.finished {
            return Err(DbError::Finished);
        }
        let context = self.pending.take();
        let commit = std::mem::take(&mut self.commit_with_next);
        let mode = self.db.context_mode();
        let conn = self.conn.as_ref().expect("connection present until drop");
        // The prepared context statement, cached per connection (a round trip only on a
        // connection's first transaction).
        let named = self.db.statement_mode() == StatementMode::Named;
        let prepared = match (&context, mode) {
            (Some(context), ContextMode::Prepared) if named => {
                Some(conn.prepare_cached(context.prepared_sql()).await?)
            }
            _ => None,
        };
        let (pre, out, committed) = futures_util::future::join3(
            async {
                let Some(context) = &context else {
                    return Ok(());
                };
                match mode {
                    ContextMode::Prepared => {
                        // The same statement either way: named and cached per connection,
                        // or (through a pooler) unnamed with its parameters typed as text.
                        let settings = context.settings();
                        let values: Vec<(&(dyn ToSql + Sync), Type)> = settings
                            .iter()
                            .map(|(_, v)| (v as &(dyn ToSql + Sync), Type::TEXT))
                            .collect();
                        let set = async {
                            match &prepared {
                                Some(statement) => {
                                    let plain: Vec<_> = values.iter().map(|(v, _)| *v).collect();
                                    conn.query(statement, &plain).await
                                }
                                None => conn.query_typed(context.prepared_sql(), &values).await,
                            }
                        };
                        let (begun, set) = futures_util::future::join(
                            conn.batch_execute(context.begin_sql()),
                            set,
                        )
                        .await;
                        begun?;
                        set.map(drop)
                    }
                    ContextMode::SetLocal => {
                        let statements = context.set_local_statements();
                        futures_util::future::try_join_all(
                            statements.iter().map(|sql| conn.batch_execute(sql)),
                        )
                        .await
                        .map(drop)
                    }
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
        // A COMMIT that went out ends the transaction whatever came back: should the
        // context or the statement have failed, PostgreSQL turned it into a ROLLBACK. A
        // rollback sent after it would only draw "WARNING: there is no transaction in
        // progress".
        self.finished = commit;
        pre?;
        let out = out?;
        committed?;
        Ok(out)
    }

    /// Commit. A transaction that never ran a statement still sends its context, so the
    /// context is checked either way.
    pub async fn commit(mut self) -> Result<(), DbError> {
        if self.finished {
            return Ok(());
        }
        if self.pending.is_some() {
            self.commit_with_next = true;
            return self.send(async |_| Ok(())).await;
        }
        // Over once COMMIT is sent, even if it fails (a deferred constraint): PostgreSQL
        // has rolled back, and no ROLLBACK must follow.
        self.finished = true;
        self.conn().batch_execute("commit").await?;
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
        db: &crate::Db,
        context: &RequestContext,
        work: impl AsyncFnOnce(&mut Tx) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<DbError>,
    {
        let mut tx = Tx::begin(db, context).await?;
        let value = work(&mut tx).await?;
        tx.commit().await?;
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_sets_kind_tenant_user_and_role_and_no_key() {
        let tenant = Uuid::nil();
        let user = Uuid::max();
        let context = RequestContext {
            tenant: Some(tenant),
            tenant_version: Some(7),
            principal: Principal::User {
                id: user,
                role: Some(MemberRole::Agent),
            },
            read_only: true,
        };
        assert_eq!(
            context.set_local_statements(),
            vec![
                "begin read only".to_owned(),
                "set local frontdesk.caller_kind = 'user'".to_owned(),
                format!("set local frontdesk.tenant_id = '{tenant}'"),
                format!("set local frontdesk.user_id = '{user}'"),
                "set local frontdesk.member_role = 'agent'".to_owned(),
                "set local frontdesk.tenant_version = '7'".to_owned(),
                "select app.assert_principal()".to_owned(),
            ]
        );
        let settings = context.settings();
        assert_eq!(
            settings.len(),
            7,
            "the prepared form takes seven parameters"
        );
        assert_eq!(settings[4], ("frontdesk.key_id", String::new()));
    }

    #[test]
    fn a_key_sets_key_and_scope_and_no_user() {
        let context = RequestContext {
            tenant: Some(Uuid::nil()),
            tenant_version: None,
            principal: Principal::Key {
                id: Uuid::max(),
                scope: KeyScope::Read,
            },
            read_only: false,
        };
        let statements = context.set_local_statements();
        assert_eq!(statements[0], "begin");
        assert_eq!(statements[1], "set local frontdesk.caller_kind = 'key'");
        assert!(statements.contains(&"set local frontdesk.key_scope = 'read'".to_owned()));
        assert!(!statements.iter().any(|s| s.contains("user_id")));
    }

    #[test]
    fn a_callback_sets_its_kind_provider_and_secret_and_checks_them() {
        let tenant = Uuid::nil();
        let context = RequestContext {
            tenant: Some(tenant),
            tenant_version: None,
            principal: Principal::Callback {
                provider: "test",
                secret_fingerprint: [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef],
            },
            read_only: false,
        };
        assert_eq!(
            context.set_local_statements(),
            vec![
                "begin".to_owned(),
                "set local frontdesk.caller_kind = 'callback'".to_owned(),
                format!("set local frontdesk.tenant_id = '{tenant}'"),
                "set local frontdesk.provider = 'test'".to_owned(),
                "set local frontdesk.secret_fingerprint = '0123456789abcdef'".to_owned(),
                "select app.assert_callback()".to_owned(),
            ]
        );
        assert!(context.prepared_sql().ends_with("app.assert_callback()"));
    }

    #[test]
    fn no_statement_of_either_form_sets_a_role_or_holds_two_statements() {
        let context = RequestContext {
            tenant: None,
            tenant_version: None,
            principal: Principal::Operator,
            read_only: false,
        };
        for sql in context
            .set_local_statements()
            .iter()
            .map(String::as_str)
            .chain([PRINCIPAL_CONTEXT, CALLBACK_CONTEXT])
        {
            assert!(!sql.to_lowercase().contains("role "), "{sql}");
            assert!(!sql.contains(';'), "{sql}");
        }
    }
}
