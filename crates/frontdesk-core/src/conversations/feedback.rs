//! Feedback: one rating (+1/−1, optional comment) per person, or per API key, per message.

use chrono::{DateTime, Utc};
use frontdesk_pg::RowExt;
use serde::{Deserialize, Serialize};
use tokio_postgres::Row;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    CoreError, Tx,
    platform::input::{Field, Invalid, Unknown},
    platform::values,
};

#[derive(Debug, Serialize, ToSchema)]
pub struct Feedback {
    pub id: Uuid,
    pub message_id: Uuid,
    /// The person who rated (null when an API key did).
    pub user_id: Option<Uuid>,
    /// The key that rated (a bot relaying its user's rating).
    pub key_id: Option<Uuid>,
    /// 1 or -1.
    pub rating: i16,
    pub comment: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, message_id, user_id, key_id, rating, comment, created_at, updated_at";

impl Feedback {
    fn from_row(row: &Row) -> Result<Self, CoreError> {
        Ok(Self {
            id: row.col("id")?,
            message_id: row.col("message_id")?,
            user_id: row.col("user_id")?,
            key_id: row.col("key_id")?,
            rating: row.col("rating")?,
            comment: row.col("comment")?,
            created_at: row.col("created_at")?,
            updated_at: row.col("updated_at")?,
        })
    }
}

/// `PUT …/messages/{id}/feedback`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(example = json!({"rating": 1, "comment": "exactly what I needed"}))]
pub struct Rating {
    /// 1 (up) or -1 (down).
    #[serde(default)]
    #[schema(value_type = i64, required = true, minimum = -1, maximum = 1)]
    pub rating: Field<i64>,
    /// At most 5000 characters.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub comment: Field<String>,
    #[serde(flatten)]
    #[schema(ignore)]
    pub unknown: Unknown,
}

/// A checked rating of a message.
#[derive(Debug)]
pub struct NewRating {
    pub rating: values::Rating,
    pub comment: Option<String>,
}

impl TryFrom<Rating> for NewRating {
    type Error = Invalid;

    fn try_from(w: Rating) -> Result<Self, Invalid> {
        let mut e = Invalid::new(w.unknown);
        let rating = e.required("rating", w.rating, values::Rating::parse);
        let comment = e.optional("comment", w.comment, |c: String| {
            if c.chars().count() > 5000 {
                Err("must be at most 5000 characters".to_owned())
            } else {
                Ok(c)
            }
        });
        match rating {
            Some(rating) => e.finish(Self { rating, comment }),
            None => Err(e),
        }
    }
}

/// Who rates: a person or a key.
#[derive(Debug, Clone, Copy)]
pub enum Rater {
    User(Uuid),
    Key(Uuid),
}

impl Rater {
    fn ids(self) -> (Option<Uuid>, Option<Uuid>) {
        match self {
            Self::User(u) => (Some(u), None),
            Self::Key(k) => (None, Some(k)),
        }
    }
}

/// Set the rater's rating of a message; `true` when it was new. NotFound when the message
/// is not one the caller may see.
pub async fn put(
    tx: &mut Tx,
    tenant: Uuid,
    message: Uuid,
    rater: Rater,
    rating: &NewRating,
) -> Result<(Feedback, bool), CoreError> {
    let (user, key) = rater.ids();
    let row = tx
        .query_opt(
            &format!(
                "insert into app.feedback (tenant_id, id, message_id, user_id, key_id, rating, comment)
                 select m.tenant_id, $3, m.id, $4, $5, $6, $7 from app.messages m
                 where m.tenant_id = $1 and m.id = $2
                 on conflict on constraint feedback_one_per_rater
                 do update set rating = excluded.rating, comment = excluded.comment
                 returning {COLUMNS}, (xmax = 0) as inserted"
            ),
            &[
                &tenant,
                &message,
                &Uuid::now_v7(),
                &user,
                &key,
                &rating.rating.get(),
                &rating.comment,
            ],
        )
        .await?
        .ok_or(CoreError::NotFound)?;
    Ok((Feedback::from_row(&row)?, row.col("inserted")?))
}

/// The caller's own rating of a message, or every rating when `all` (staff).
pub async fn list(
    tx: &mut Tx,
    tenant: Uuid,
    message: Uuid,
    rater: Option<Rater>,
    all: bool,
) -> Result<Vec<Feedback>, CoreError> {
    let (user, key) = rater.map_or((None, None), Rater::ids);
    tx.last();
    let rows = tx
        .query(
            "select m.id as message, f.* from app.messages m
             left join app.feedback f on f.tenant_id = m.tenant_id and f.message_id = m.id
                  and ($3 or (f.user_id is not distinct from $4 and f.key_id is not distinct from $5))
             where m.tenant_id = $1 and m.id = $2 order by f.id",
            &[&tenant, &message, &all, &user, &key],
        )
        .await?;
    if rows.is_empty() {
        return Err(CoreError::NotFound);
    }
    rows.iter()
        .filter(|r| !matches!(r.col::<Option<Uuid>>("id"), Ok(None)))
        .map(Feedback::from_row)
        .collect::<Result<_, _>>()
}

/// Remove the rater's rating of a message.
pub async fn delete(
    tx: &mut Tx,
    tenant: Uuid,
    message: Uuid,
    rater: Rater,
) -> Result<(), CoreError> {
    let (user, key) = rater.ids();
    let n = tx
        .execute(
            "delete from app.feedback where tenant_id = $1 and message_id = $2
               and user_id is not distinct from $3 and key_id is not distinct from $4",
            &[&tenant, &message, &user, &key],
        )
        .await?;
    if n == 0 {
        Err(CoreError::NotFound)
    } else {
        Ok(())
    }
}

/// A message's ratings in sum. A member sees only what they may see (their own).
#[derive(Debug, Serialize, ToSchema)]
pub struct Summary {
    pub message_id: Uuid,
    pub up: i64,
    pub down: i64,
    pub count: i64,
}

pub async fn summary(tx: &mut Tx, tenant: Uuid, message: Uuid) -> Result<Summary, CoreError> {
    tx.last();
    let row = tx
        .query_opt(
            "select m.id, count(f.id) filter (where f.rating = 1) as up,
                    count(f.id) filter (where f.rating = -1) as down, count(f.id) as n
             from app.messages m
             left join app.feedback f on f.tenant_id = m.tenant_id and f.message_id = m.id
             where m.tenant_id = $1 and m.id = $2 group by m.id",
            &[&tenant, &message],
        )
        .await?
        .ok_or(CoreError::NotFound)?;
    Ok(Summary {
        message_id: row.col("id")?,
        up: row.col("up")?,
        down: row.col("down")?,
        count: row.col("n")?,
    })
}
