//! Memberships: who belongs to a tenant, with which role.

use chrono::{DateTime, Utc};
use frontdesk_pg::RowExt;
use serde::{Deserialize, Serialize};
use tokio_postgres::Row;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    CoreError, MemberRole, Tx,
    platform::input::{Field, Invalid, Unknown},
    platform::page::{Page, Paged},
    platform::values::Email,
};

/// A member of a tenant with their profile.
#[derive(Debug, Serialize, ToSchema)]
pub struct Member {
    pub user_id: Uuid,
    /// owner, admin, agent or member.
    #[schema(pattern = "^(owner|admin|agent|member)$")]
    pub role: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_active_at: DateTime<Utc>,
}

impl Member {
    fn from_row(row: &Row) -> Result<Self, CoreError> {
        Ok(Self {
            user_id: row.col("user_id")?,
            role: row.col("role")?,
            email: row.col("email")?,
            name: row.col("name")?,
            created_at: row.col("created_at")?,
            updated_at: row.col("updated_at")?,
            last_active_at: row.col("last_active_at")?,
        })
    }
}

/// `POST …/members`: add a user (by their identity provider's `sub`) with a role. A user
/// who has not signed in yet is created with the given email and name.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(example = json!({"user_id": "0190f5e2-7c3a-7d2e-9b1a-3c4d5e6f7a8b", "role": "agent", "email": "sam@example.com"}))]
pub struct NewMember {
    /// The person's user id; not the nil UUID.
    #[serde(default)]
    #[schema(value_type = Uuid, required = true)]
    pub user_id: Field<Uuid>,
    /// owner, admin, agent or member.
    #[serde(default)]
    #[schema(value_type = String, required = true, pattern = "^(owner|admin|agent|member)$")]
    pub role: Field<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub email: Field<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub name: Field<String>,
    #[serde(flatten)]
    #[schema(ignore)]
    pub unknown: Unknown,
}

/// `PATCH …/members/{user_id}`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(example = json!({"role": "admin"}))]
pub struct MemberPatch {
    /// owner, admin, agent or member.
    #[serde(default)]
    #[schema(value_type = String, required = true, pattern = "^(owner|admin|agent|member)$")]
    pub role: Field<String>,
    #[serde(flatten)]
    #[schema(ignore)]
    pub unknown: Unknown,
}

fn parse_role(role: String) -> Result<MemberRole, String> {
    MemberRole::parse(&role).ok_or_else(|| "must be one of owner, admin, agent, member".into())
}

/// A checked new membership.
#[derive(Debug)]
pub struct NewMembership {
    pub user_id: Uuid,
    pub role: MemberRole,
    pub email: Option<Email>,
    pub name: Option<String>,
}

impl TryFrom<NewMember> for NewMembership {
    type Error = Invalid;

    fn try_from(w: NewMember) -> Result<Self, Invalid> {
        let mut e = Invalid::new(w.unknown);
        let user_id = e.required("user_id", w.user_id, |id: Uuid| {
            if id.is_nil() {
                Err("must not be the nil UUID".to_owned())
            } else {
                Ok(id)
            }
        });
        let role = e.required("role", w.role, parse_role);
        let email = e.optional("email", w.email, Email::parse);
        let name = e.optional("name", w.name, |s: String| {
            if s.trim().is_empty() || s.chars().count() > 200 {
                Err("must be 1 to 200 characters, not blank".to_owned())
            } else {
                Ok(s)
            }
        });
        match (user_id, role) {
            (Some(user_id), Some(role)) => e.finish(Self {
                user_id,
                role,
                email,
                name,
            }),
            _ => Err(e),
        }
    }
}

/// A checked change of a member's role.
#[derive(Debug)]
pub struct RoleChange {
    pub role: MemberRole,
}

impl TryFrom<MemberPatch> for RoleChange {
    type Error = Invalid;

    fn try_from(w: MemberPatch) -> Result<Self, Invalid> {
        let mut e = Invalid::new(w.unknown);
        match e.required("role", w.role, parse_role) {
            Some(role) => e.finish(Self { role }),
            None => Err(e),
        }
    }
}

const MEMBER_COLUMNS: &str = "user_id, role, email, name, created_at, updated_at, last_active_at";

pub async fn list(tx: &mut Tx, page: &Page<Uuid>) -> Result<Paged<Member>, CoreError> {
    let rows = tx
        .query(
            "select user_id, role, email, name, created_at, updated_at, last_active_at \
             from app.tenant_members($1, $2, null)",
            &[&page.after, &(page.limit + 1)],
        )
        .await?;
    Ok(Paged::from_rows(
        rows.iter()
            .map(Member::from_row)
            .collect::<Result<_, _>>()?,
        page.limit,
        |m: &Member| m.user_id,
    ))
}

pub async fn get(tx: &mut Tx, user: Uuid) -> Result<Member, CoreError> {
    let row = tx
        .query_opt(
            &format!("select {MEMBER_COLUMNS} from app.tenant_members(null, 1, $1)"),
            &[&user],
        )
        .await?
        .ok_or(CoreError::NotFound)?;
    Member::from_row(&row)
}

pub async fn add(tx: &mut Tx, tenant: Uuid, new: &NewMembership) -> Result<Member, CoreError> {
    // The profile first (a SECURITY DEFINER function), then the membership as the caller;
    // the member is composed from both, not read back through `app.tenant_members` (on
    // Citus a transaction may not read a tenant's shards as the owner after the request
    // role wrote them).
    let profile = tx
        .query_one(
            "select email, name, last_active_at from app.provision_user($1, $2, $3)",
            &[
                &new.user_id,
                &new.email.as_ref().map(Email::as_str),
                &new.name,
            ],
        )
        .await?;
    let membership = tx
        .query_one(
            "insert into app.memberships (tenant_id, user_id, role) values ($1, $2, $3) \
             returning role, created_at, updated_at",
            &[&tenant, &new.user_id, &new.role.as_str()],
        )
        .await?;
    Ok(Member {
        user_id: new.user_id,
        role: membership.col("role")?,
        email: profile.col("email")?,
        name: profile.col("name")?,
        created_at: membership.col("created_at")?,
        updated_at: membership.col("updated_at")?,
        last_active_at: profile.col("last_active_at")?,
    })
}

/// Change a member's role. Only owners change owners; the last owner stays (409).
pub async fn set_role(
    tx: &mut Tx,
    tenant: Uuid,
    user: Uuid,
    role: MemberRole,
) -> Result<Member, CoreError> {
    // Read before writing, and compose the answer from the update's own row (see `add`).
    let current = get(tx, user).await?;
    let updated = tx
        .query_opt(
            "update app.memberships set role = $3 where tenant_id = $1 and user_id = $2 \
             returning role, updated_at",
            &[&tenant, &user, &role.as_str()],
        )
        .await?;
    let Some(updated) = updated else {
        return Err(CoreError::Forbidden(format!(
            "only an owner can change an {}'s role",
            current.role
        )));
    };
    Ok(Member {
        role: updated.col("role")?,
        updated_at: updated.col("updated_at")?,
        ..current
    })
}

/// Remove a member. Only owners remove owners; the last owner stays (409).
pub async fn remove(tx: &mut Tx, tenant: Uuid, user: Uuid) -> Result<(), CoreError> {
    let current = get(tx, user).await?;
    let n = tx
        .execute(
            "delete from app.memberships where tenant_id = $1 and user_id = $2",
            &[&tenant, &user],
        )
        .await?;
    if n == 0 {
        return Err(CoreError::Forbidden(format!(
            "only an owner can remove an {}",
            current.role
        )));
    }
    Ok(())
}
