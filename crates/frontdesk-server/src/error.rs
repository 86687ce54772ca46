//! The HTTP layer's one error type, rendered as RFC 9457 `application/problem+json`.

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use frontdesk_core::{CoreError, FieldError, LimitReached};
use serde::Serialize;
use utoipa::ToSchema;

// The problem document's schema, with the extension members features add (documented
// here, so the OpenAPI document names them); what is sent is a `ProblemDocument`, whose
// features' members travel in one map.
/// An RFC 9457 problem.
#[derive(Debug, ToSchema)]
#[expect(dead_code, reason = "the schema of the problem document; never built")]
pub struct Problem {
    /// A URI reference naming the kind of problem (see docs/API.md).
    #[schema(rename = "type")]
    kind: String,
    title: String,
    status: u16,
    detail: String,
    /// Present on validation problems (422): one entry per invalid field.
    errors: Option<Vec<FieldError>>,
    /// On a refused transition (409): the conversation's current state…
    current_state: Option<String>,
    /// …and the states its flow allows from there.
    allowed_transitions: Option<Vec<String>>,
    /// On the 409 of a contact that already has an open conversation with the assistant:
    /// that conversation.
    conversation_id: Option<uuid::Uuid>,
    /// On 429: the limit reached (rate_limit_per_minute, daily_token_limit,
    /// monthly_budget_usd), its value, what was used, and when its window ends.
    limit_name: Option<String>,
    limit: Option<String>,
    used: Option<String>,
    resets_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// A problem as sent: the standard members, then the members of the feature that
/// raised it (document those in `Problem`).
#[derive(Debug, Serialize)]
pub struct ProblemDocument {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
    #[serde(flatten)]
    pub extensions: Extensions,
}

/// A feature's members of a problem, sent in the order they were added.
#[derive(Debug, Default)]
pub struct Extensions(Vec<(&'static str, serde_json::Value)>);

impl Extensions {
    /// Add member `name`.
    pub fn with(mut self, name: &'static str, value: impl Serialize) -> Self {
        let value = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
        self.0.push((name, value));
        self
    }
}

impl Serialize for Extensions {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, value) in &self.0 {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("malformed request: {0}")]
    BadRequest(String),
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("not found")]
    NotFound,
    /// A path parameter that cannot name anything (not UTF-8, or holding a NUL): a 404
    /// whose detail names it.
    #[error("path parameter {name} {message}")]
    BadPathParam { name: String, message: String },
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("conflict: {message}")]
    Conflict {
        field: Option<String>,
        message: String,
    },
    /// A conflict naming the existing record (its id as member `member`).
    #[error("conflict: {message}")]
    Exists {
        field: Option<String>,
        message: String,
        member: &'static str,
        id: uuid::Uuid,
    },
    #[error("invalid input")]
    Validation(Vec<FieldError>),
    #[error("transition refused: {message}")]
    Transition {
        message: String,
        from: String,
        allowed: Vec<String>,
    },
    #[error("request body too large")]
    PayloadTooLarge,
    /// The body did not arrive within the body read timeout (`serve::ServeLimits`).
    #[error("request body not received within {0:?}")]
    BodyTimeout(std::time::Duration),
    /// A streamed body (`StreamedBody`) past its route's limit.
    #[error("request body over {limit} bytes")]
    UploadTooLarge { limit: usize },
    #[error("limit reached: {}", .0.name)]
    LimitReached(LimitReached),
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// The database refused the request context: caches are stale; the request is retried.
    #[error("request context refused")]
    ContextRefused,
    #[error("service unavailable: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

/// Marks a response whose request the database refused for a stale context; the retry
/// middleware clears the caches and runs the request once more.
#[derive(Debug, Clone, Copy)]
pub struct RefusedContext;

impl ApiError {
    pub fn invalid(field: &str, message: &str) -> Self {
        Self::Validation(vec![FieldError::new(field, message)])
    }

    /// The problem for a request body that could not be read: a 408 when it did not
    /// arrive within the body read timeout, else `otherwise`.
    pub fn body_unread(error: &(dyn std::error::Error + 'static), otherwise: Self) -> Self {
        crate::serve::body_timeout(error).map_or(otherwise, |t| Self::BodyTimeout(t.0))
    }

    /// A path parameter that names nothing (404), and why.
    pub fn path_param(name: &str, message: &str) -> Self {
        Self::BadPathParam {
            name: name.to_owned(),
            message: message.to_owned(),
        }
    }

    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            Self::BadRequest(_) => (
                StatusCode::BAD_REQUEST,
                "malformed-request",
                "Malformed request",
            ),
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized"),
            Self::Forbidden(_) | Self::ContextRefused => {
                (StatusCode::FORBIDDEN, "forbidden", "Forbidden")
            }
            Self::NotFound | Self::BadPathParam { .. } => {
                (StatusCode::NOT_FOUND, "not-found", "Not found")
            }
            Self::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
            ),
            Self::Conflict { .. } | Self::Exists { .. } => {
                (StatusCode::CONFLICT, "conflict", "Conflict")
            }
            Self::Transition { .. } => (
                StatusCode::CONFLICT,
                "transition-not-allowed",
                "Transition not allowed",
            ),
            Self::Validation(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation",
                "Invalid request",
            ),
            Self::LimitReached(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                "limit-reached",
                "Limit reached",
            ),
            Self::PayloadTooLarge | Self::UploadTooLarge { .. } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Request body too large",
            ),
            Self::BodyTimeout(_) => (
                StatusCode::REQUEST_TIMEOUT,
                "request-timeout",
                "Request timeout",
            ),
            Self::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
            ),
            Self::Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Service unavailable",
            ),
            Self::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal server error",
            ),
        }
    }

    fn detail(&self) -> String {
        match self {
            Self::BadRequest(d) | Self::Unauthorized(d) | Self::Forbidden(d) => d.clone(),
            Self::NotFound => "no such resource, or it is not yours to see".into(),
            Self::BadPathParam { name, message } => {
                format!("the path parameter {name} {message}, so it names nothing")
            }
            Self::MethodNotAllowed => "this path does not take that method".into(),
            Self::Conflict { message, .. }
            | Self::Exists { message, .. }
            | Self::Transition { message, .. } => message.clone(),
            Self::Validation(errors) => {
                let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
                format!("invalid fields: {}", fields.join(", "))
            }
            Self::PayloadTooLarge => {
                format!("request bodies are limited to {} bytes", crate::BODY_LIMIT)
            }
            Self::UploadTooLarge { limit } => {
                format!("this route takes bodies of at most {limit} bytes")
            }
            Self::LimitReached(l) => format!(
                "this would pass the tenant's {} ({}; {} used); nothing was stored",
                l.name, l.limit, l.used
            ),
            Self::BodyTimeout(timeout) => format!(
                "the request body did not arrive in full within {} s; nothing was done",
                timeout.as_secs_f64()
            ),
            Self::UnsupportedMediaType => "send JSON with Content-Type: application/json".into(),
            Self::ContextRefused => "your access to this tenant changed; try again".into(),
            Self::Unavailable(_) => "the database is not available; try again shortly".into(),
            // Never leak internals: the error was logged with the request id.
            Self::Internal(_) => {
                "something went wrong on our side; the request id identifies it in our logs".into()
            }
        }
    }
}

impl ApiError {
    /// The members this kind of problem adds to the standard ones.
    fn extensions(&self) -> Extensions {
        match self {
            Self::Transition { from, allowed, .. } => Extensions::default()
                .with("current_state", from)
                .with("allowed_transitions", allowed),
            Self::Exists { member, id, .. } => Extensions::default().with(member, id),
            Self::LimitReached(l) => Extensions::default()
                .with("limit_name", &l.name)
                .with("limit", &l.limit)
                .with("used", &l.used)
                .with("resets_at", l.resets_at),
            _ => Extensions::default(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, kind, title) = self.parts();
        match &self {
            Self::Internal(message) => tracing::error!(error = %message, "request failed"),
            Self::Unavailable(message) => tracing::warn!(error = %message, "database unavailable"),
            Self::LimitReached(l) => {
                // The names are the database's limits: a fixed set, whatever a client sends.
                metrics::counter!("limit_refusals_total", "limit" => l.name.clone()).increment(1)
            }
            _ => {}
        }
        let errors = match &self {
            Self::Validation(errors) => Some(errors.clone()),
            Self::Conflict {
                field: Some(field),
                message,
            }
            | Self::Exists {
                field: Some(field),
                message,
                ..
            } => Some(vec![FieldError::new(field, message)]),
            _ => None,
        };
        let problem = ProblemDocument {
            kind: format!("/problems/{kind}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: self.detail(),
            errors,
            extensions: self.extensions(),
        };
        let mut response = (status, axum::Json(problem)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if matches!(self, Self::Unauthorized(_)) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Self::LimitReached(l) = &self {
            let seconds = (l.resets_at - chrono::Utc::now()).num_seconds().max(1);
            let headers = response.headers_mut();
            for (name, value) in [
                ("retry-after", seconds.to_string()),
                ("ratelimit-limit", l.limit.clone()),
                ("ratelimit-remaining", "0".to_owned()),
                ("ratelimit-reset", seconds.to_string()),
            ] {
                if let Ok(value) = HeaderValue::from_str(&value) {
                    headers.insert(name, value);
                }
            }
        }
        if matches!(self, Self::ContextRefused) {
            response.extensions_mut().insert(RefusedContext);
        }
        response
    }
}

impl From<frontdesk_core::platform::input::Invalid> for ApiError {
    fn from(invalid: frontdesk_core::platform::input::Invalid) -> Self {
        Self::Validation(invalid.0)
    }
}

impl From<CoreError> for ApiError {
    fn from(error: CoreError) -> Self {
        match error {
            CoreError::NotFound => Self::NotFound,
            CoreError::Forbidden(d) => Self::Forbidden(d),
            CoreError::Conflict { field, message } => Self::Conflict { field, message },
            CoreError::Exists {
                field,
                message,
                member,
                id,
            } => Self::Exists {
                field,
                message,
                member,
                id,
            },
            CoreError::Invalid(errors) => Self::Validation(errors),
            CoreError::LimitReached(l) => Self::LimitReached(l),
            CoreError::Transition {
                message,
                from,
                allowed,
            } => Self::Transition {
                message,
                from,
                allowed,
            },
            CoreError::ContextRefused => Self::ContextRefused,
            CoreError::Unavailable(d) => Self::Unavailable(d),
            CoreError::Db(e) => Self::Internal(format!("{e:?}")),
        }
    }
}

impl From<frontdesk_pg::DbError> for ApiError {
    fn from(error: frontdesk_pg::DbError) -> Self {
        CoreError::from(error).into()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_features_members_follow_the_standard_ones_in_the_order_given() {
        let error = ApiError::Transition {
            message: "no".into(),
            from: "greeting".into(),
            allowed: vec!["qualifying".into()],
        };
        let (status, kind, title) = error.parts();
        let document = ProblemDocument {
            kind: format!("/problems/{kind}"),
            title: title.into(),
            status: status.as_u16(),
            detail: error.detail(),
            errors: None,
            extensions: error.extensions(),
        };
        assert_eq!(
            serde_json::to_string(&document).unwrap(),
            r#"{"type":"/problems/transition-not-allowed","title":"Transition not allowed","status":409,"detail":"no","current_state":"greeting","allowed_transitions":["qualifying"]}"#
        );
    }
}
