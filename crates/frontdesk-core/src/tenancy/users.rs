//! Users: people, keyed by their identity provider's `sub`.

use chrono::{DateTime, Utc};
use frontdesk_pg::RowExt;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{CoreError, Tx};

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
