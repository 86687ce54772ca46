//! Domain errors, and the mapping of database errors to them: SQLSTATE first, then the
//! constraint name (matched by prefix: Citus appends shard numbers to constraint names).

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
    #[error("invalid input")]
    Invalid(Vec<FieldError>),
    /// A state change the conversation's flow does not allow.
    #[error("transition refused: {message}")]
    Transition {
        message: String,
        from: String,
        allowed: Vec<String>,
    },
    /// A write that would pass one of the tenant's limits (SQLSTATE FD429 from
    /// `app.charge_limits`); nothing of it was stored.
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
        Some(Self {
            name: db.constraint()?.to_owned(),
            limit: detail.limit,
            used: detail.used,
            window_start: detail.window_start,
            resets_at: detail.resets_at,
        })
    }
}

/// What a named constraint means to a client.
enum Meaning {
    Field(&'static str, &'static str),
    Conflict(Option<&'static str>, &'static str),
}

/// Constraint names → meaning. Names are chosen deliberately in the migrations.
const CONSTRAINTS: &[(&str, Meaning)] = &[
    (
        "tenants_slug_key",
        Meaning::Conflict(Some("slug"), "this slug is already taken"),
    ),
    ("tenants_slug_check", Meaning::Field("slug", SLUG_RULE)),
    (
        "tenants_name_check",
        Meaning::Field("name", "must be 1 to 200 characters, not blank"),
    ),
    (
        "tenants_kind_check",
        Meaning::Field("kind", "must be one of restaurant, retail, service, other"),
    ),
    (
        "tenants_timezone_check",
        Meaning::Field(
            "timezone",
            "must be an IANA time zone name, e.g. Asia/Jakarta",
        ),
    ),
    (
        "tenants_locale_check",
        Meaning::Field("locale", "must be a language tag such as en or id-ID"),
    ),
    (
        "tenants_email_check",
        Meaning::Field("email", "must be an email address"),
    ),
    (
        "tenants_phone_check",
        Meaning::Field("phone", "must be an E.164 number such as +628111234567"),
    ),
    (
        "tenants_website_check",
        Meaning::Field("website", "must be an http(s) URL"),
    ),
    (
        "tenants_logo_url_check",
        Meaning::Field("logo_url", "must be an http(s) URL"),
    ),
    (
        "tenants_llm_temperature_check",
        Meaning::Field("llm_temperature", "must be between 0 and 2"),
    ),
    (
        "tenants_llm_max_tokens_check",
        Meaning::Field("llm_max_tokens", "must be greater than 0"),
    ),
    (
        "tenants_rate_limit_per_minute_check",
        Meaning::Field("rate_limit_per_minute", "must be greater than 0"),
    ),
    (
        "tenants_daily_token_limit_check",
        Meaning::Field("daily_token_limit", "must be greater than 0"),
    ),
    (
        "tenants_monthly_budget_usd_check",
        Meaning::Field("monthly_budget_usd", "must not be negative"),
    ),
    (
        "tenants_features_check",
        Meaning::Field("features", "must be an object"),
    ),
    (
        "tenants_branding_check",
        Meaning::Field("branding", "must be an object"),
    ),
    (
        "memberships_pkey",
        Meaning::Conflict(Some("user_id"), "this user is already a member"),
    ),
    (
        "memberships_role_check",
        Meaning::Field("role", "must be one of owner, admin, agent, member"),
    ),
    (
        "memberships_last_owner",
        Meaning::Conflict(Some("role"), "a tenant must keep at least one owner"),
    ),
    (
        "memberships_user_id_fkey",
        Meaning::Field("user_id", "no such user: they must sign in once first"),
    ),
    (
        "api_keys_name_check",
        Meaning::Field("name", "must be 1 to 100 characters, not blank"),
    ),
    (
        "api_keys_scopes_check",
        Meaning::Field("scopes", "must be a non-empty subset of full, read"),
    ),
    (
        "tenants_search_language_check",
        Meaning::Field(
            "search_language",
            "must be a PostgreSQL text search configuration such as simple, english or indonesian",
        ),
    ),
    (
        "flows_pkey",
        Meaning::Conflict(Some("key"), "a flow with this key exists"),
    ),
    (
        "flows_valid",
        Meaning::Field(
            "states",
            "the flow's states and transitions do not fit together",
        ),
    ),
    (
        "assistants_flow_key_fkey",
        Meaning::Field("flow", "no such flow"),
    ),
    (
        "contacts_phone_key",
        Meaning::Conflict(Some("phone"), "another contact has this phone number"),
    ),
    (
        "conversations_assistant_id_fkey",
        Meaning::Field("assistant_id", "no such assistant in this tenant"),
    ),
    (
        "conversations_user_id_fkey",
        Meaning::Field("user_id", "must be a member of this tenant"),
    ),
    (
        "conversations_assistant_active",
        Meaning::Field("assistant_id", "this assistant is inactive"),
    ),
    (
        "conversations_contact_id_fkey",
        Meaning::Field("contact_id", "no such contact in this tenant"),
    ),
    (
        "conversations_assignee_id_fkey",
        Meaning::Field("assignee_id", "must be a member of this tenant"),
    ),
    (
        "conversations_one_open_per_contact",
        Meaning::Conflict(
            Some("contact_id"),
            "this contact already has an open conversation with this assistant",
        ),
    ),
    (
        "conversations_state_in_flow",
        Meaning::Conflict(
            Some("state"),
            "the state is not a state of the conversation's flow",
        ),
    ),
    (
        "conversations_transition",
        Meaning::Conflict(
            Some("to"),
            "the conversation's flow does not allow this transition",
        ),
    ),
    (
        "usage_events_user_id_fkey",
        Meaning::Field("user_id", "must be a member of this tenant"),
    ),
    (
        "usage_events_assistant_id_fkey",
        Meaning::Field("assistant_id", "no such assistant in this tenant"),
    ),
    (
        "usage_events_conversation_id_fkey",
        Meaning::Field("conversation_id", "no such conversation in this tenant"),
    ),
    (
        "limit_reservations_unknown",
        Meaning::Field("reservation_id", "no such reservation in this tenant"),
    ),
    (
        "limit_reservations_used",
        Meaning::Conflict(
            Some("reservation_id"),
            "this reservation was already settled or cancelled",
        ),
    ),
    (
        "webhook_endpoints_url_check",
        Meaning::Field(
            "url",
            "must be an http or https URL of at most 2000 characters",
        ),
    ),
    (
        "webhook_endpoints_description_check",
        Meaning::Field("description", "must be at most 500 characters"),
    ),
    (
        "webhook_endpoints_event_types_check",
        Meaning::Field(
            "event_types",
            "must be at most 50 event types (e.g. message.created) or families (e.g. conversation.*)",
        ),
    ),
    (
        "feedback_rating_check",
        Meaning::Field("rating", "must be 1 or -1"),
    ),
    (
        "feedback_comment_check",
        Meaning::Field("comment", "must be at most 5000 characters"),
    ),
];

pub const SLUG_RULE: &str = "must be 3 to 63 lower-case letters, digits and hyphens, starting and ending with a letter or digit";

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
        if let Some(constraint) = db.constraint()
            && let Some((_, meaning)) = CONSTRAINTS
                .iter()
                .find(|(name, _)| constraint.starts_with(name))
        {
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
