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
    /// The tenant's access version when it was looked up: the request's transaction
    /// carries it, and the database refuses it once the slug or active flag changed.
    pub version: i64,
}

/// What a `{tenant}` path segment names: an id (a hyphenated UUID, in any case) or a slug.
/// A slug can never look like an id (`tenants_slug_check`), so the form decides, here, and
/// each form has its own query: nothing depends on the order the planner evaluates in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantRef<'a> {
    Id(Uuid),
    Slug(&'a str),
}

impl<'a> TenantRef<'a> {
    /// The reference's form, or `None` when it can name no tenant (neither an id nor a
    /// well-formed slug).
    pub fn parse(reference: &'a str) -> Option<Self> {
        let b = reference.as_bytes();
        let hyphenated = b.len() == 36
            && b.iter().enumerate().all(|(i, c)| match i {
                8 | 13 | 18 | 23 => *c == b'-',
                _ => c.is_ascii_hexdigit(),
            });
        if hyphenated {
            return Uuid::try_parse(reference).ok().map(Self::Id);
        }
        crate::platform::values::TenantSlug::parse(reference.to_owned())
            .ok()
            .map(|_| Self::Slug(reference))
    }
}

/// Resolve `{tenant}` (id or slug) and `user`'s role in it. A reference that can name no
/// tenant is `None` without a query.
pub async fn resolve_tenant(
    db: &Db,
    reference: &str,
    user: Option<Uuid>,
) -> Result<Option<Resolved>, DbError> {
    let row = match TenantRef::parse(reference) {
        None => return Ok(None),
        Some(TenantRef::Id(id)) => {
            lookup(
                db,
                "select tenant_id, member_role, is_active, access_version from app.tenant_by_id($1, $2)",
                &[&id, &user],
            )
            .await?
        }
        Some(TenantRef::Slug(slug)) => {
            lookup(
                db,
                "select tenant_id, member_role, is_active, access_version from app.tenant_by_slug($1, $2)",
                &[&slug, &user],
            )
            .await?
        }
    };
    row.map(|r| {
        Ok(Resolved {
            tenant: r.col(0)?,
            role: r.col::<Option<&str>>(1)?.and_then(MemberRole::parse),
            is_active: r.col(2)?,
            version: r.col(3)?,
        })
    })
    .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reference_is_an_id_only_in_the_hyphenated_form_and_a_slug_only_when_well_formed() {
        let id = Uuid::now_v7();
        assert_eq!(TenantRef::parse(&id.to_string()), Some(TenantRef::Id(id)));
        let upper = id.to_string().to_uppercase();
        assert_eq!(TenantRef::parse(&upper), Some(TenantRef::Id(id)));
        // Other forms of a UUID are neither: no slug may take them (TenantSlug).
        let simple = id.simple().to_string();
        assert_eq!(TenantRef::parse(&simple), None);
        assert_eq!(TenantRef::parse("acme"), Some(TenantRef::Slug("acme")));
        for nothing in [
            "",
            "a",
            "Acme",
            "-acme",
            "acme-",
            "ac me",
            "{",
            &format!("{{{id}}}"),
        ] {
            assert_eq!(TenantRef::parse(nothing), None, "{nothing}");
        }
    }
}
