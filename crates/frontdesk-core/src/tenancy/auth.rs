//! The lookups of the authentication step, before any request transaction: each one
//! statement on a pooled connection, calling a `SECURITY DEFINER` function that reads
//! only what authentication needs (key hashes, memberships, the user's profile).

use frontdesk_pg::RowExt;
use frontdesk_pg::{Db, DbError};
use tokio_postgres::{Row, types::ToSql};
use uuid::Uuid;

use crate::{KeyScope, MemberRole};

async fn lookup(
    db: &Db,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Option<Row>, DbError> {
    db.lookup(sql, params).await
}

/// An API key that is not revoked, found by the SHA-256 of its secret.
#[derive(Debug, Clone, Copy)]
pub struct KeyFound {
    pub tenant: Uuid,
    pub id: Uuid,
    pub scope: KeyScope,
}

/// The key whose secret hashes to `hash`, if it exists and is not revoked.
pub async fn authenticate_key(db: &Db, hash: &[u8]) -> Result<Option<KeyFound>, DbError> {
    let row = lookup(
        db,
        "select tenant_id, key_id, scopes from app.authenticate_key($1)",
        &[&hash],
    )
    .await?;
    row.map(|r| {
        let scopes: Vec<String> = r.col(2)?;
        let scope = if scopes.iter().any(|s| s == "full") {
            KeyScope::Full
        } else {
            KeyScope::Read
        };
        Ok(KeyFound {
            tenant: r.col(0)?,
            id: r.col(1)?,
            scope,
        })
    })
    .transpose()
}

/// Create or refresh a user's row from their token's claims.
pub async fn touch_user(
    db: &Db,
    id: Uuid,
    email: Option<&str>,
    name: Option<&str>,
) -> Result<(), DbError> {
    lookup(
        db,
        "select app.touch_user($1, $2, $3)",
        &[&id, &email, &name],
    )
    .await?;
    Ok(())
}

/// A tenant reference resolved for a caller.
#[derive(Debug, Clone, Copy)]
pub struct Resolved {
    pub tenant: Uuid,
    /// The user's role, when the caller is a member.
    pub role: Option<MemberRole>,
    pub is_active: bool,
}

/// Resolve `{tenant}` (id or slug) and `user`'s role in it.
pub async fn resolve_tenant(
    db: &Db,
    reference: &str,
    user: Option<Uuid>,
) -> Result<Option<Resolved>, DbError> {
    let row = lookup(
        db,
        "select tenant_id, member_role, is_active from app.resolve_tenant($1, $2)",
        &[&reference, &user],
    )
    .await?;
    row.map(|r| {
        Ok(Resolved {
            tenant: r.col(0)?,
            role: r.col::<Option<&str>>(1)?.and_then(MemberRole::parse),
            is_active: r.col(2)?,
        })
    })
    .transpose()
}
