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

/// `POST …/members`: add a person with a role, named by their identity provider's `sub`
/// (`user_id`) or, when `user_id` is left out, by the email they signed in with. A user
/// named by `sub` who has not signed in yet is created with the given email and name.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(example = json!({"user_id": "auth0|65f1c2", "role": "agent", "email": "sam@example.com"}))]
pub struct NewMember {
    /// The person's `sub` as their identity provider issues it: a UUID is the user id
    /// itself; any other text (`auth0|65f1c2`, `google-oauth2|1093…`) maps to the user id
    /// its tokens will carry (docs/API.md, "Users and their ids"). Not the nil UUID; 1 to
    /// 255 characters. Leave it out to name the person by `email` instead.
    #[serde(default)]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 255)]
    pub user_id: Field<String>,
    /// owner, admin, agent or member.
    #[serde(default)]
    #[schema(value_type = String, required = true, pattern = "^(owner|admin|agent|member)$")]
    pub role: Field<String>,
    /// With `user_id`: the profile of a user who has not signed in yet (an existing
    /// user's is kept). Without it: the person is the one user who signed in with this
    /// email (their own token's, compared case-insensitively); if nobody or several did,
    /// a 422 (invite them instead: `POST …/invitations`).
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

/// Who is added: a user id (from a `sub`), or the user who signed in with an email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Person {
    Id(Uuid),
    Email(Email),
}

/// A checked new membership.
#[derive(Debug)]
pub struct NewMembership {
    pub person: Person,
    pub role: MemberRole,
    /// The profile of a user created now (only with `Person::Id`).
    pub email: Option<Email>,
    pub name: Option<String>,
}

/// A `sub` as sent in `user_id`, mapped to its user id.
fn parse_sub(sub: String) -> Result<Uuid, String> {
    if sub.is_empty() || sub.chars().count() > 255 {
        return Err("must be 1 to 255 characters: the identity provider's sub".into());
    }
    let id = super::users::user_id_for_sub(&sub);
    if id.is_nil() {
        Err("must not be the nil UUID".into())
    } else {
        Ok(id)
    }
}

impl TryFrom<NewMember> for NewMembership {
    type Error = Invalid;

    fn try_from(w: NewMember) -> Result<Self, Invalid> {
        let mut e = Invalid::new(w.unknown);
        let by_email = w.user_id.is_absent();
        let user_id = if by_email {
            None
        } else {
            e.required("user_id", w.user_id, parse_sub)
        };
        let role = e.required("role", w.role, parse_role);
        let email = if by_email && w.email.is_absent() {
            e.push(
                "user_id",
                "is required: the identity provider's sub (or name the person by email)",
            );
            None
        } else if by_email {
            e.required("email", w.email, Email::parse)
        } else {
            e.optional("email", w.email, Email::parse)
        };
        let email = email.and_then(|email| {
            if email.as_str().len() > 320 {
                e.push("email", "must be at most 320 characters");
                None
            } else {
                Some(email)
            }
        });
        let name = e.optional("name", w.name, |s: String| {
            if s.trim().is_empty() || s.chars().count() > 200 {
                Err("must be 1 to 200 characters, not blank".to_owned())
            } else {
                Ok(s)
            }
        });
        let person = match (user_id, by_email) {
            (Some(id), _) => Person::Id(id),
            (None, true) => match email.clone() {
                Some(email) => Person::Email(email),
                None => return Err(e),
            },
            (None, false) => return Err(e),
        };
        match role {
            Some(role) => e.finish(Self {
                email: email.filter(|_| matches!(person, Person::Id(_))),
                name,
                person,
                role,
            }),
            None => Err(e),
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

/// The user who signed in with `email` (their own token's): exactly one, else a 422 on
/// `email` saying why.
async fn user_by_email(tx: &mut Tx, email: &Email) -> Result<Uuid, CoreError> {
    let row = tx
        .query_one(
            "select user_id, matches from app.user_by_email($1)",
            &[&email.as_str()],
        )
        .await?;
    let matches: i64 = row.col("matches")?;
    match (matches, row.col::<Option<Uuid>>("user_id")?) {
        (1, Some(id)) => Ok(id),
        (0, _) => Err(CoreError::invalid(
            "email",
            "nobody has signed in with this email yet: invite them (POST …/invitations) or give their user_id",
        )),
        _ => Err(CoreError::invalid(
            "email",
            "several users have signed in with this email: give the user_id of the one to add",
        )),
    }
}

/// The person a new membership is for, with their profile: found (by email) or
/// provisioned (by id, created with the given profile if they have not signed in yet).
#[derive(Debug)]
pub struct Provisioned {
    pub user_id: Uuid,
    email: Option<String>,
    name: Option<String>,
    last_active_at: DateTime<Utc>,
}

/// The first step of adding a member, in a transaction of its own: find or create the
/// user (SECURITY DEFINER functions writing the global `app.users`). On Citus a
/// membership's foreign key to that row is checked on the tenant's shard by another
/// connection than the one that wrote it, so the row must be committed before the
/// membership is inserted (`add`). What would refuse the membership for the caller's
/// role is refused here first, so a refused request creates no user (`adder`: the
/// caller's role; none for the operator).
pub async fn provision(
    tx: &mut Tx,
    new: &NewMembership,
    adder: Option<MemberRole>,
) -> Result<Provisioned, CoreError> {
    if new.role == MemberRole::Owner && adder.is_some_and(|r| r != MemberRole::Owner) {
        return Err(CoreError::Forbidden(
            "only an owner can add an owner".into(),
        ));
    }
    let user_id = match &new.person {
        Person::Id(id) => *id,
        Person::Email(email) => user_by_email(tx, email).await?,
    };
    let profile = tx
        .query_one(
            "select email, name, last_active_at from app.provision_user($1, $2, $3)",
            &[&user_id, &new.email.as_ref().map(Email::as_str), &new.name],
        )
        .await?;
    Ok(Provisioned {
        user_id,
        email: profile.col("email")?,
        name: profile.col("name")?,
        last_active_at: profile.col("last_active_at")?,
    })
}

/// Add the provisioned user as a member. The member is composed from the profile and the
/// new row, not read back through `app.tenant_members` (on Citus a transaction may not
/// read a tenant's shards as the owner after the request role wrote them).
pub async fn add(
    tx: &mut Tx,
    tenant: Uuid,
    user: &Provisioned,
    role: MemberRole,
) -> Result<Member, CoreError> {
    let membership = tx
        .query_one(
            "insert into app.memberships (tenant_id, user_id, role) values ($1, $2, $3) \
             returning role, created_at, updated_at",
            &[&tenant, &user.user_id, &role.as_str()],
        )
        .await?;
    Ok(Member {
        user_id: user.user_id,
        role: membership.col("role")?,
        email: user.email.clone(),
        name: user.name.clone(),
        created_at: membership.col("created_at")?,
        updated_at: membership.col("updated_at")?,
        last_active_at: user.last_active_at,
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
