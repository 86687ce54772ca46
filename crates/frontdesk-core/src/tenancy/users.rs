//! Users: people, keyed by their identity provider's `sub`.
//!
//! A user's id is their JWT's `sub` when that is a UUID; any other `sub` (Auth0's
//! `auth0|65f1c2`, Google's `google-oauth2|1093…`, Keycloak's user names) maps to the
//! UUIDv5 of the `sub`'s UTF-8 bytes in `SUB_NAMESPACE` (docs/API.md, "Users and their
//! ids"). Authentication and `POST …/members` use the same mapping, `user_id_for_sub`.

use chrono::{DateTime, Utc};
use frontdesk_pg::RowExt;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{CoreError, Tx};

/// The namespace of the ids of users whose `sub` is not a UUID:
/// `6a1f0e37-52d4-4c4b-9a2e-7d1bf0c38e55`.
pub const SUB_NAMESPACE: Uuid = Uuid::from_u128(0x6a1f_0e37_52d4_4c4b_9a2e_7d1b_f0c3_8e55);

/// The user id for an identity provider's `sub`: the `sub` itself when it parses as a UUID
/// (hyphenated, simple, braced or URN form, as the `uuid` crate reads them), otherwise
/// the UUIDv5 of its bytes in `SUB_NAMESPACE`, stable across sign-ins.
pub fn user_id_for_sub(sub: &str) -> Uuid {
    sub.parse()
        .unwrap_or_else(|_| Uuid::new_v5(&SUB_NAMESPACE, sub.as_bytes()))
}

/// The signed-in user.
#[derive(Debug, Serialize, ToSchema)]
pub struct User {
    pub id: Uuid,
    pub email: Option<String>,
    pub name: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_active_at: DateTime<Utc>,
}

/// The current user's own row (RLS shows each user only themselves).
pub async fn me(tx: &mut Tx, id: Uuid) -> Result<User, CoreError> {
    let row = tx
        .query_opt(
            "select id, email, name, created_at, last_active_at from app.users where id = $1",
            &[&id],
        )
        .await?
        .ok_or(CoreError::NotFound)?;
    Ok(User {
        id: row.col("id")?,
        email: row.col("email")?,
        name: row.col("name")?,
        created_at: row.col("created_at")?,
        last_active_at: row.col("last_active_at")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_uuid_sub_is_the_user_id_and_any_other_sub_maps_into_the_namespace() {
        let id = Uuid::now_v7();
        assert_eq!(user_id_for_sub(&id.to_string()), id);
        let auth0 = user_id_for_sub("auth0|65f1c2");
        assert_eq!(auth0, Uuid::new_v5(&SUB_NAMESPACE, b"auth0|65f1c2"));
        assert_eq!(auth0.get_version_num(), 5);
        assert_eq!(user_id_for_sub("auth0|65f1c2"), auth0, "stable");
        assert_ne!(user_id_for_sub("auth0|65f1c3"), auth0);
        // The documented value, so a client can compute ids itself.
        assert_eq!(
            SUB_NAMESPACE.to_string(),
            "6a1f0e37-52d4-4c4b-9a2e-7d1bf0c38e55"
        );
    }
}
