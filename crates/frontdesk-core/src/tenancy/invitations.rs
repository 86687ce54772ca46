//! Invitations: joining a tenant by email. An owner or admin invites an email with a role;
//! the invitation's token is shown once (only its SHA-256 is stored, like an API key's
//! secret), and the signed-in user whose token carries that email accepts it within 7
//! days, once, which makes them a member with that role (`app.accept_invitation`).

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use frontdesk_pg::RowExt;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio_postgres::Row;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    CoreError, MemberRole, Tx,
    platform::input::{Field, Invalid, Unknown},
    platform::page::{Page, Paged},
    platform::values::Email,
};

/// Every invitation token starts with this (never `fd_`: it is not an API key).
pub const TOKEN_PREFIX: &str = "fdi_";

/// An invitation as listed: never its token.
#[derive(Debug, Serialize, ToSchema)]
pub struct Invitation {
    pub id: Uuid,
    /// Accepted by the signed-in user whose token carries this email (any case).
    pub email: String,
    /// The role the invitee gets: owner, admin, agent or member.
    #[schema(pattern = "^(owner|admin|agent|member)$")]
    pub role: String,
    /// pending, accepted, revoked or expired.
    #[schema(pattern = "^(pending|accepted|revoked|expired)$")]
    pub status: String,
    /// Where the invitee accepts it: `POST` with `{"token"}`, signed in. A path on this
    /// API (relative to its base URL).
    pub link: String,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    /// 7 days after `created_at`.
    pub expires_at: DateTime<Utc>,
    pub accepted_at: Option<DateTime<Utc>>,
    pub accepted_by: Option<Uuid>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// An invitation just created: the only time its token is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedInvitation {
    #[serde(flatten)]
    pub invitation: Invitation,
    /// The secret the invitee presents to accept (`fdi_…`). Shown only now: send it to
    /// them with the link.
    pub token: String,
}

/// The path where invitation `id` of `tenant` is accepted.
pub fn accept_path(tenant: Uuid, id: Uuid) -> String {
    format!("/v1/tenants/{tenant}/invitations/{id}/accept")
}

impl Invitation {
    /// From a row of `COLUMNS` and `status` (a new invitation is pending).
    fn from_row(row: &Row, status: Option<&str>) -> Result<Self, CoreError> {
        let tenant: Uuid = row.col("tenant_id")?;
        let id: Uuid = row.col("id")?;
        Ok(Self {
            id,
            email: row.col("email")?,
            role: row.col("role")?,
            status: match status {
                Some(status) => status.to_owned(),
                None => row.col("status")?,
            },
            link: accept_path(tenant, id),
            created_by: row.col("created_by")?,
            created_at: row.col("created_at")?,
            expires_at: row.col("expires_at")?,
            accepted_at: row.col("accepted_at")?,
            accepted_by: row.col("accepted_by")?,
            revoked_at: row.col("revoked_at")?,
        })
    }
}

/// `POST …/invitations`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(example = json!({"email": "sam@example.com", "role": "agent"}))]
pub struct NewInvitation {
    /// The invitee's email: the one their identity provider puts in their token.
    #[serde(default)]
    #[schema(value_type = String, required = true, max_length = 320)]
    pub email: Field<String>,
    /// owner, admin, agent or member. Only an owner invites an owner.
    #[serde(default)]
    #[schema(value_type = String, required = true, pattern = "^(owner|admin|agent|member)$")]
    pub role: Field<String>,
    #[serde(flatten)]
    #[schema(ignore)]
    pub unknown: Unknown,
}

/// A checked new invitation.
#[derive(Debug)]
pub struct Invite {
    pub email: Email,
    pub role: MemberRole,
}

impl TryFrom<NewInvitation> for Invite {
    type Error = Invalid;

    fn try_from(w: NewInvitation) -> Result<Self, Invalid> {
        let mut e = Invalid::new(w.unknown);
        let email = e.required("email", w.email, |s: String| {
            let email = Email::parse(s)?;
            if email.as_str().len() > 320 {
                Err("must be at most 320 characters".to_owned())
            } else {
                Ok(email)
            }
        });
        let role = e.required("role", w.role, |r: String| {
            MemberRole::parse(&r).ok_or_else(|| "must be one of owner, admin, agent, member".into())
        });
        match (email, role) {
            (Some(email), Some(role)) => e.finish(Self { email, role }),
            _ => Err(e),
        }
    }
}

/// `POST …/invitations/{id}/accept`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(example = json!({"token": "fdi_3q2-7wJk9x0tYb5mVn4cL8aPzR1sUe6dHf0gKi2oQjM"}))]
pub struct AcceptInvitation {
    /// The invitation's token, as its creator received it.
    #[serde(default)]
    #[schema(value_type = String, required = true)]
    pub token: Field<String>,
    #[serde(flatten)]
    #[schema(ignore)]
    pub unknown: Unknown,
}

/// A presented token, checked for its form (a token of another form matches nothing).
#[derive(Debug)]
pub struct PresentedToken(String);

impl TryFrom<AcceptInvitation> for PresentedToken {
    type Error = Invalid;

    fn try_from(w: AcceptInvitation) -> Result<Self, Invalid> {
        let mut e = Invalid::new(w.unknown);
        let token = e.required("token", w.token, |t: String| {
            if t.starts_with(TOKEN_PREFIX) && t.len() <= 100 {
                Ok(t)
            } else {
                Err(format!("must be an invitation token ({TOKEN_PREFIX}…)"))
            }
        });
        match token {
            Some(token) => e.finish(Self(token)),
            None => Err(e),
        }
    }
}

/// The membership an accepted invitation created.
#[derive(Debug, Serialize, ToSchema)]
pub struct Joined {
    pub tenant_id: Uuid,
    pub invitation_id: Uuid,
    pub user_id: Uuid,
    /// owner, admin, agent or member.
    #[schema(pattern = "^(owner|admin|agent|member)$")]
    pub role: String,
    /// When the membership was created.
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// SHA-256 of a token: what the database stores and compares.
fn hash_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

const COLUMNS: &str = "tenant_id, id, email, role, created_by, created_at, expires_at, \
     accepted_at, accepted_by, revoked_at";

/// `COLUMNS` and the status, for reads (Citus allows no clock in an INSERT's RETURNING).
const COLUMNS_AND_STATUS: &str = "tenant_id, id, email, role, created_by, created_at, expires_at, \
     accepted_at, accepted_by, revoked_at, \
     case when accepted_at is not null then 'accepted' when revoked_at is not null then 'revoked' \
          when expires_at <= now() then 'expired' else 'pending' end as status";

/// Create an invitation; its token is in the answer, and nowhere else.
pub async fn create(
    tx: &mut Tx,
    tenant: Uuid,
    invite: &Invite,
    created_by: Option<Uuid>,
) -> Result<CreatedInvitation, CoreError> {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    let id = Uuid::now_v7();
    let row = tx
        .query_one(
            &format!(
                "insert into app.invitations (tenant_id, id, email, role, token_hash, created_by) \
                 values ($1, $2, $3, $4, $5, $6) returning {COLUMNS}"
            ),
            &[
                &tenant,
                &id,
                &invite.email.as_str(),
                &invite.role.as_str(),
                &hash_token(&token),
                &created_by,
            ],
        )
        .await
        .map_err(|e| match CoreError::from(e) {
            // The insert policy: an admin inviting an owner.
            CoreError::Forbidden(_) if invite.role == MemberRole::Owner => {
                CoreError::Forbidden("only an owner can invite an owner".into())
            }
            other => other,
        })?;
    Ok(CreatedInvitation {
        invitation: Invitation::from_row(&row, Some("pending"))?,
        token,
    })
}

/// The tenant's invitations, newest first.
pub async fn list(
    tx: &mut Tx,
    tenant: Uuid,
    page: &Page<Uuid>,
) -> Result<Paged<Invitation>, CoreError> {
    let rows = tx
        .query(
            &format!(
                "select {COLUMNS_AND_STATUS} from app.invitations \
                 where tenant_id = $1 and ($2::uuid is null or id < $2) order by id desc limit $3"
            ),
            &[&tenant, &page.after, &(page.limit + 1)],
        )
        .await?;
    Ok(Paged::from_rows(
        rows.iter()
            .map(|row| Invitation::from_row(row, None))
            .collect::<Result<_, _>>()?,
        page.limit,
        |i: &Invitation| i.id,
    ))
}

/// Revoke a pending (or expired) invitation; revoking again is fine. An accepted one is a
/// 409 (remove the member instead); only an owner revokes an owner's invitation.
pub async fn revoke(tx: &mut Tx, tenant: Uuid, id: Uuid) -> Result<(), CoreError> {
    let row = tx
        .query_opt(
            "select role, accepted_at, revoked_at from app.invitations where tenant_id = $1 and id = $2",
            &[&tenant, &id],
        )
        .await?
        .ok_or(CoreError::NotFound)?;
    if row.col::<Option<DateTime<Utc>>>("accepted_at")?.is_some() {
        return Err(CoreError::Conflict {
            field: None,
            message: "this invitation was accepted: remove the member instead".into(),
        });
    }
    if row.col::<Option<DateTime<Utc>>>("revoked_at")?.is_some() {
        return Ok(());
    }
    let n = tx
        .execute(
            "update app.invitations set revoked_at = now() \
             where tenant_id = $1 and id = $2 and accepted_at is null and revoked_at is null",
            &[&tenant, &id],
        )
        .await?;
    if n == 0 {
        let role: String = row.col("role")?;
        if role == "owner" {
            return Err(CoreError::Forbidden(
                "only an owner can revoke an owner's invitation".into(),
            ));
        }
        // Accepted or revoked meanwhile: decided again on the row as it is now.
        return Err(CoreError::Conflict {
            field: None,
            message: "this invitation changed meanwhile: read it again".into(),
        });
    }
    Ok(())
}

/// Accept invitation `id` of `tenant` with `token`, as the request's signed-in user whose
/// token carries `email` (none when it has none, or the provider marked it unverified).
/// Outside any tenant's context: the user is not a member yet.
pub async fn accept(
    tx: &mut Tx,
    tenant: Uuid,
    id: Uuid,
    token: &PresentedToken,
    user: Uuid,
    email: Option<&str>,
) -> Result<Joined, CoreError> {
    let row = tx
        .query_one(
            "select outcome, role, created_at, updated_at, expires_at \
             from app.accept_invitation($1, $2, $3, $4)",
            &[&tenant, &id, &hash_token(&token.0), &email],
        )
        .await?;
    let outcome: String = row.col("outcome")?;
    let conflict = |message: String| CoreError::Conflict {
        field: None,
        message,
    };
    match outcome.as_str() {
        "accepted" => Ok(Joined {
            tenant_id: tenant,
            invitation_id: id,
            user_id: user,
            role: row.col("role")?,
            created_at: row.col("created_at")?,
            updated_at: row.col("updated_at")?,
        }),
        "not_found" => Err(CoreError::NotFound),
        "wrong_email" if email.is_none() => Err(CoreError::Forbidden(
            "your token carries no verified email: this invitation is for the person with its email".into(),
        )),
        "wrong_email" => Err(CoreError::Forbidden(
            "this invitation is for another email than your token's".into(),
        )),
        "used" => Err(conflict("this invitation was already accepted".into())),
        "revoked" => Err(conflict("this invitation was revoked".into())),
        "expired" => {
            let expired: DateTime<Utc> = row.col("expires_at")?;
            Err(conflict(format!(
                "this invitation expired at {}: ask for a new one",
                expired.to_rfc3339()
            )))
        }
        "already_member" => Err(CoreError::Conflict {
            field: None,
            message: "you are already a member of this tenant".into(),
        }),
        other => Err(CoreError::Db(frontdesk_pg::DbError::Decode {
            column: "outcome".into(),
            table: None,
            rust_type: "an outcome of app.accept_invitation",
            reason: format!("unknown outcome {other}"),
        })),
    }
}
