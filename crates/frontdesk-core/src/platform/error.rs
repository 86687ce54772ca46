//! Domain errors, and the mapping of database errors to them: the refused context and
//! reached limits first, then the constraint name (each domain's table, matched by prefix:
//! Citus appends shard numbers to constraint names), then the SQLSTATE.

use frontdesk_pg::DbError;
use serde::Serialize;
use utoipa::ToSchema;

/// One invalid field of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// The field's name (a JSON path such as `branding.color` when nested).
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("not found")]
    NotFound,
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// A uniqueness or state conflict; `field` when one field is to blame.
    #[error("conflict: {message}")]
    Conflict {
        field: Option<String>,
        message: String,
    },
    /// A conflict with one existing record the client will want (e.g. the contact's open
    /// conversation): its id travels in the problem as member `member`.
    #[error("conflict: {message}")]
    Exists {
        field: Option<String>,
        message: String,
        member: &'static str,
        id: uuid::Uuid,
    },
    #[error("invalid input")]
    Invalid(Vec<FieldError>),
    /// A state change the conversation's flow does not allow.
    #[error("transition refused: {message}")]
    Transition {
        message: String,
        from: String,
        allowed: Vec<String>,
    },
    /// One of the tenant's limits refused something (SQLSTATE FD429): a reservation, a
    /// new conversation (`limits_on_new_conversations`), or a write under the tenant's
    /// `strict_limits`; nothing of it was stored.
    #[error("limit reached: {}", .0.name)]
    LimitReached(LimitReached),
    /// The database refused the request context (`app.assert_principal`).
    #[error("request context refused by the database")]
    ContextRefused,
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Db(DbError),
}

impl CoreError {
    pub fn invalid(field: &str, message: &str) -> Self {
        Self::Invalid(vec![FieldError::new(field, message)])
    }
}

/// Which limit a write hit, and its window.
#[derive(Debug, Clone, PartialEq)]
pub struct LimitReached {
    /// rate_limit_per_minute, daily_token_limit or monthly_budget_usd.
    pub name: String,
    /// The limit and what was used before this write, as decimal strings.
    pub limit: String,
    pub used: String,
    pub window_start: chrono::DateTime<chrono::Utc>,
    pub resets_at: chrono::DateTime<chrono::Utc>,
}

impl LimitReached {
    fn from_db(db: &tokio_postgres::error::DbError) -> Option<Self> {
        #[derive(serde::Deserialize)]
        struct Detail {
            limit: String,
            used: String,
            window_start: chrono::DateTime<chrono::Utc>,
            resets_at: chrono::DateTime<chrono::Utc>,
        }
        let detail: Detail = serde_json::from_str(db.detail()?).ok()?;
        // The limit's name is the error's constraint; an error re-raised by Citus from a
        // worker keeps the message and detail but not that field, so the message
        // (`limit <name> reached`) names it too.
        let name = db.constraint().map(str::to_owned).or_else(|| {
            db.message()
                .strip_prefix("limit ")?
                .strip_suffix(" reached")
                .map(str::to_owned)
        })?;
        Some(Self {
            name,
            limit: detail.limit,
            used: detail.used,
            window_start: detail.window_start,
            resets_at: detail.resets_at,
        })
    }
}

/// What a named constraint means to a client.
pub(crate) enum Meaning {
    /// A field error (422): the field and the rule it broke.
    Field(&'static str, &'static str),
    /// A conflict (409), naming the field when one is to blame.
    Conflict(Option<&'static str>, &'static str),
}

/// One domain's table: constraint names (chosen deliberately in the migrations) and what
/// each means to a client. A name matches by prefix: Citus appends shard numbers.
pub(crate) type Constraints = [(&'static str, Meaning)];

/// Every domain's constraint table, consulted in order: a new domain adds its own here.
const CONSTRAINTS: &[&Constraints] = &[
    crate::tenancy::CONSTRAINTS,
    crate::conversations::CONSTRAINTS,
    crate::usage::CONSTRAINTS,
    crate::events::CONSTRAINTS,
];

/// What `constraint` (as PostgreSQL names it) means, if a domain says.
fn meaning(constraint: &str) -> Option<&'static Meaning> {
    CONSTRAINTS
        .iter()
        .flat_map(|table| table.iter())
        .find(|(name, _)| constraint.starts_with(name))
        .map(|(_, meaning)| meaning)
}

impl From<DbError> for CoreError {
    fn from(error: DbError) -> Self {
        let Some(db) = error.db_error() else {
            return match error {
                DbError::Pool(e) => Self::Unavailable(e.to_string()),
                other => Self::Db(other),
            };
        };
        if error.is_refused_principal() {
            return Self::ContextRefused;
        }
        let code = db.code().code();
        if code == "FD429"
            && let Some(limit) = LimitReached::from_db(db)
        {
            return Self::LimitReached(limit);
        }
        if code == "42501" {
            // A policy's WITH CHECK or a missing grant: the context may not do this.
            return Self::Forbidden("this change is not allowed for your role".into());
        }
        if let Some(meaning) = db.constraint().and_then(meaning) {
            return match meaning {
                Meaning::Field(field, message) => {
                    Self::Invalid(vec![FieldError::new(*field, *message)])
                }
                Meaning::Conflict(field, message) => Self::Conflict {
                    field: field.map(str::to_owned),
                    message: (*message).to_owned(),
                },
            };
        }
        match code {
            "23505" | "23P01" => Self::Conflict {
                field: None,
                message: "conflicts with an existing record".into(),
            },
            "23503" => Self::NotFound,
            "23514" | "23502" | "22P02" | "22003" | "22023" | "22007" | "22008" | "22021"
            | "22P05" => Self::Invalid(vec![FieldError::new("body", db.message().to_owned())]),
            _ => Self::Db(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_constraint_name_is_a_prefix_of_another_so_the_tables_order_does_not_matter() {
        let names: Vec<&str> = CONSTRAINTS
            .iter()
            .flat_map(|table| table.iter().map(|(name, _)| *name))
            .collect();
        for (i, a) in names.iter().enumerate() {
            for (j, b) in names.iter().enumerate() {
                assert!(i == j || !b.starts_with(a), "{a} is a prefix of {b}");
            }
        }
    }

    #[test]
    fn a_shard_suffixed_constraint_name_finds_its_meaning() {
        assert!(matches!(
            meaning("contacts_phone_key_102042"),
            Some(Meaning::Conflict(Some("phone"), _))
        ));
        assert!(meaning("no_such_constraint").is_none());
    }
}
