//! Extractors: the caller, the tenant scope (the only way a handler reaches tenant data),
//! and JSON bodies, paths and queries whose rejections are problems with field errors.
//!
//! A scope runs the handler's work in a request transaction carrying its context:
//! `read` (read-only), `write`, and `create` (with idempotency, in `idempotency.rs`).
//! The work is a closure that gets the transaction; the scope begins it and ends it
//! (`frontdesk_pg::Tx::run`), and the domain's queries decide what is pipelined.

use axum::{
    extract::{FromRequest, FromRequestParts, MatchedPath, Request},
    http::{header, request::Parts},
};
use frontdesk_core::{
    FieldError, KeyScope, MemberRole, Principal, RequestContext, Tx, tenancy::api_keys,
};
use frontdesk_pg::DbError;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::{
    access::Access,
    auth::Caller,
    error::{ApiError, ApiResult},
    state::AppState,
};

/// The bearer token of `Authorization: Bearer <token>`, if the request sends one.
fn bearer_token(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(caller.clone());
        }
        let token = bearer_token(parts)
            .ok_or_else(|| ApiError::Unauthorized("send Authorization: Bearer <token>".into()))?;
        let caller = state.auth.authenticate(token).await?;
        parts.extensions.insert(caller.clone());
        Ok(caller)
    }
}

/// Bind the request's page cursors to its listing: the route template and the path's
/// parameters other than `{tenant}` (the tenant joins as its id, once resolved, in
/// `TenantScope`; a user's own lists join their id in `UserScope`). A cursor is refused
/// (422) anywhere but in the listing that returned it.
pub(crate) async fn cursor_scope(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let mut listing = String::new();
    if let Some(template) = request.extensions().get::<MatchedPath>() {
        listing.push_str(template.as_str());
        for (name, segment) in template
            .as_str()
            .split('/')
            .zip(request.uri().path().split('/'))
        {
            if name.starts_with('{') && name != "{tenant}" {
                listing.push('\0');
                listing.push_str(segment);
            }
        }
    }
    frontdesk_core::platform::page::in_cursor_scope(listing, next.run(request)).await
}

/// The access the matched route declared (set by the router on every route).
fn route_access(parts: &Parts) -> ApiResult<Access> {
    parts
        .extensions
        .get::<Access>()
        .copied()
        .ok_or_else(|| ApiError::Internal("route registered without an access level".into()))
}

/// Run `work` in a request transaction for `context`, read-only or not. A context the
/// database refuses comes back as `ApiError::ContextRefused`, after the cached lookups it
/// was built from are evicted here; a route with a buffered body is then run once more
/// (`retry_refused_context`), a streamed one answers 403.
pub(crate) async fn run<T, E>(
    state: &AppState,
    context: &RequestContext,
    read_only: bool,
    work: impl AsyncFnOnce(&mut Tx) -> Result<T, E>,
) -> ApiResult<T>
where
    E: From<DbError>,
    ApiError: From<E>,
{
    let context = RequestContext {
        read_only,
        ..*context
    };
    let result = Tx::run(&state.db, &context, work)
        .await
        .map_err(ApiError::from);
    if let Err(ApiError::ContextRefused) = &result {
        state.auth.clear_caches();
    }
    result
}

/// A tenant-scoped request: the caller is allowed the route's access in `{tenant}`;
/// `read`, `write` and `create` run work in a transaction carrying that context.
pub struct TenantScope {
    pub tenant: Uuid,
    pub caller: Caller,
    context: RequestContext,
    state: AppState,
}

impl TenantScope {
    /// Run `work` in a read-only request transaction.
    pub async fn read<T, E>(&self, work: impl AsyncFnOnce(&mut Tx) -> Result<T, E>) -> ApiResult<T>
    where
        E: From<DbError>,
        ApiError: From<E>,
    {
        run(&self.state, &self.context, true, work).await
    }

    /// Run `work` in a request transaction that may write.
    pub async fn write<T, E>(&self, work: impl AsyncFnOnce(&mut Tx) -> Result<T, E>) -> ApiResult<T>
    where
        E: From<DbError>,
        ApiError: From<E>,
    {
        run(&self.state, &self.context, false, work).await
    }

    /// The signed-in user's id, if the caller is a person.
    pub fn user_id(&self) -> Option<Uuid> {
        self.caller.user_id()
    }

    pub fn role(&self) -> Option<MemberRole> {
        match self.context.principal {
            Principal::User { role, .. } => role,
            _ => None,
        }
    }

    /// Who asks, for the rules on conversations: members see only their own.
    pub fn viewer(&self) -> frontdesk_core::conversations::conversations::Viewer {
        frontdesk_core::conversations::conversations::Viewer {
            user: self.user_id(),
            staff: match self.context.principal {
                Principal::User { role, .. } => role.is_some_and(|r| r >= MemberRole::Agent),
                Principal::Key { .. } | Principal::Operator => true,
                Principal::Callback { .. } => false,
            },
        }
    }

    /// Who gives feedback: a person or a key; the operator gives none.
    pub fn rater(&self) -> Option<frontdesk_core::conversations::feedback::Rater> {
        use frontdesk_core::conversations::feedback::Rater;
        match self.context.principal {
            Principal::User { id, .. } => Some(Rater::User(id)),
            Principal::Key { id, .. } => Some(Rater::Key(id)),
            Principal::Operator | Principal::Callback { .. } => None,
        }
    }

    pub fn options(&self) -> &crate::AppOptions {
        &self.state.options
    }
}

/// Whether a tenant path names one item (`…/{tenant}`, `…/{id}`, `…/{id}/messages`)
/// rather than a collection of the tenant: outsiders get 404 for items and 403 for
/// collections.
fn names_an_item(parts: &Parts) -> bool {
    parts.extensions.get::<MatchedPath>().is_some_and(|p| {
        let path = p.as_str();
        path.ends_with('}')
            || path
                .split('/')
                .any(|segment| segment.starts_with('{') && segment != "{tenant}")
    })
}

fn outsider(parts: &Parts) -> ApiError {
    if names_an_item(parts) {
        ApiError::NotFound
    } else {
        ApiError::Forbidden("you have no access to this tenant".into())
    }
}

impl FromRequestParts<AppState> for TenantScope {
    type Rejection = ApiError;

    /// Decide on the cached lookups; a refusal (401, 403, 404) is decided once more on
    /// fresh ones before it is answered, so every server answers a change of a tenant,
    /// key or membership at the caller's next request. An allowed request is checked by
    /// the database instead (`app.assert_principal`), which refuses a stale context.
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        match Self::decide(parts, state).await {
            Err(
                refused @ (ApiError::Unauthorized(_) | ApiError::Forbidden(_) | ApiError::NotFound),
            ) => {
                let token = bearer_token(parts).map(str::to_owned);
                let key = token.as_deref().is_some_and(api_keys::looks_like_key);
                if matches!(refused, ApiError::Unauthorized(_)) && !key {
                    // A token that does not verify: nothing cached to blame.
                    return Err(refused);
                }
                let Ok(reference) = Self::reference(parts, state).await else {
                    return Err(refused);
                };
                let user = parts.extensions.get::<Caller>().and_then(Caller::user_id);
                state.auth.forget(token.as_deref(), &reference, user);
                parts.extensions.remove::<Caller>();
                Self::decide(parts, state).await
            }
            decided => decided,
        }
    }
}

impl TenantScope {
    /// The `{tenant}` path parameter as sent.
    async fn reference(parts: &mut Parts, _state: &AppState) -> ApiResult<String> {
        // Not UTF-8 or holding NUL once decoded: a 404 naming the parameter.
        checked_path_params(parts)
            .await?
            .into_iter()
            .find(|(name, _)| name == "tenant")
            .map(|(_, value)| value)
            .ok_or_else(|| ApiError::Internal("tenant route without {tenant}".into()))
    }

    /// Whether the caller may take the route in `{tenant}`, on the lookups as cached.
    async fn decide(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        let access = route_access(parts)?;
        let caller = Caller::from_request_parts(parts, state).await?;
        let reference = Self::reference(parts, state).await?;
        // A reference PostgreSQL cannot even hold names no tenant.
        if reference.contains('\0') {
            return Err(outsider(parts));
        }
        let resolved = state
            .auth
            .resolve(&reference, caller.user_id())
            .await?
            .ok_or_else(|| outsider(parts))?;
        tracing::Span::current().record("tenant.id", tracing::field::display(resolved.tenant));
        frontdesk_core::platform::page::bind_cursor_scope(&resolved.tenant.to_string());
        let denied = |why: &str| Err(ApiError::Forbidden(why.to_owned()));
        let principal = match &caller {
            Caller::Operator => Principal::Operator,
            Caller::User { id, .. } => {
                let Some(role) = resolved.role else {
                    return Err(outsider(parts));
                };
                let allowed = match access {
                    Access::TenantRead | Access::TenantWrite => true,
                    Access::TenantAdmin => role >= MemberRole::Admin,
                    Access::TenantOwner => role == MemberRole::Owner,
                    Access::User | Access::Operator | Access::Callback => false,
                };
                if !allowed {
                    return denied(&format!("this needs {}", access.describe()));
                }
                Principal::User {
                    id: *id,
                    role: Some(role),
                }
            }
            Caller::Key { tenant, id, scope } => {
                if *tenant != resolved.tenant {
                    return Err(outsider(parts));
                }
                match access {
                    Access::TenantRead => {}
                    Access::TenantWrite if *scope == KeyScope::Full => {}
                    Access::TenantWrite => return denied("this API key is read-only"),
                    _ => {
                        return denied(&format!(
                            "API keys cannot do this: it needs {}",
                            access.describe()
                        ));
                    }
                }
                Principal::Key {
                    id: *id,
                    scope: *scope,
                }
            }
        };
        if !resolved.is_active && !matches!(principal, Principal::Operator | Principal::User { .. })
        {
            return denied("this tenant is deactivated");
        }
        let context = RequestContext {
            tenant: Some(resolved.tenant),
            tenant_version: Some(resolved.version),
            principal,
            // Set per transaction by `read` / `write`.
            read_only: true,
        };
        Ok(Self {
            tenant: resolved.tenant,
            caller,
            context,
            state: state.clone(),
        })
    }
}

/// A request of a person (or the operator) that names no tenant.
pub struct UserScope {
    pub caller: Caller,
    context: RequestContext,
    state: AppState,
}

impl UserScope {
    /// Run `work` in a read-only transaction of this caller.
    pub async fn read<T, E>(&self, work: impl AsyncFnOnce(&mut Tx) -> Result<T, E>) -> ApiResult<T>
    where
        E: From<DbError>,
        ApiError: From<E>,
    {
        run(&self.state, &self.context, true, work).await
    }

    /// Run `work` in a transaction of this caller that may write.
    pub async fn write<T, E>(&self, work: impl AsyncFnOnce(&mut Tx) -> Result<T, E>) -> ApiResult<T>
    where
        E: From<DbError>,
        ApiError: From<E>,
    {
        run(&self.state, &self.context, false, work).await
    }

    pub fn user_id(&self) -> Option<Uuid> {
        self.caller.user_id()
    }

    /// The id of the tenant a path's `{tenant}` (id or slug) names, for a route whose
    /// caller need not belong to it (accepting an invitation); 404 when it names none.
    /// The request's context stays without a tenant.
    pub async fn tenant_id(&self, reference: &str) -> ApiResult<Uuid> {
        if reference.contains('\0') {
            return Err(ApiError::NotFound);
        }
        self.state
            .auth
            .resolve(reference, self.user_id())
            .await?
            .map(|found| found.tenant)
            .ok_or(ApiError::NotFound)
    }
}

impl FromRequestParts<AppState> for UserScope {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        let access = route_access(parts)?;
        let caller = Caller::from_request_parts(parts, state).await?;
        let principal = match (&caller, access) {
            (Caller::Operator, _) => Principal::Operator,
            (Caller::User { id, .. }, Access::User) => Principal::User {
                id: *id,
                role: None,
            },
            (Caller::Key { .. }, _) => {
                return Err(ApiError::Forbidden(
                    "API keys act within their tenant's paths only".into(),
                ));
            }
            _ => {
                return Err(ApiError::Forbidden(format!(
                    "this needs {}",
                    access.describe()
                )));
            }
        };
        frontdesk_core::platform::page::bind_cursor_scope(
            &caller
                .user_id()
                .map_or_else(|| "operator".to_owned(), |u| u.to_string()),
        );
        let context = RequestContext {
            tenant: None,
            tenant_version: None,
            principal,
            // Set per transaction by `read` / `write`.
            read_only: true,
        };
        Ok(Self {
            caller,
            context,
            state: state.clone(),
        })
    }
}

/// A JSON body read into its wire type: 415 without a JSON content type, 400 for
/// malformed JSON, 422 on `body` for anything but a JSON object. Field errors (unknown,
/// missing, wrong type, broken rule) come from the wire type's `TryFrom`, all at once.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> ApiResult<Self> {
        let json_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| {
                let v = v.trim().to_ascii_lowercase();
                v == "application/json" || (v.starts_with("application/") && v.ends_with("+json"))
            })
            .unwrap_or(false);
        if !json_type {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| {
                let otherwise = if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge
                } else {
                    ApiError::BadRequest("could not read the request body".into())
                };
                ApiError::body_unread(&e, otherwise)
            })?;
        parse_json(&bytes).map(Json)
    }
}

/// Parse a JSON body into its wire type `T`. Every body is a JSON object (anything else
/// is a 422 on `body`). Wire types read every field as a `Field` and gather unknown
/// fields, so reading them fails only on malformed JSON (400); their `TryFrom` into the
/// domain's input names every invalid field at once.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    let value = json_value(bytes)?;
    // PostgreSQL stores no NUL character in text or jsonb. JSON can only carry one as the
    // escape `\u0000`, so only a body containing that needs the closer look.
    if bytes.windows(6).any(|w| w.eq_ignore_ascii_case(b"\\u0000"))
        && let Some(field) = nul_field(&value, "")
    {
        return Err(ApiError::invalid(
            &field,
            "must not contain the NUL character (\\u0000)",
        ));
    }
    if !value.is_object() {
        return Err(ApiError::invalid("body", "must be a JSON object"));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        // Only a type whose fields are not all `Field`s gets here: its first error.
        let path = e.path().to_string();
        let field = if path == "." { "body".to_owned() } else { path };
        ApiError::invalid(&field, &e.into_inner().to_string())
    })
}

/// A JSON text as a value, refusing numbers that would not read back as sent once stored
/// (`json_numbers`): a 422 naming the field. Malformed JSON is a 400.
pub fn json_value(bytes: &[u8]) -> ApiResult<serde_json::Value> {
    let unstorable = || {
        crate::json_numbers::unstorable_number(bytes)
            .map(|(field, why)| ApiError::invalid(&field, why))
    };
    let value: serde_json::Value = match serde_json::from_slice(bytes) {
        Ok(value) => value,
        Err(e) if crate::json_numbers::is_out_of_range(&e) => {
            return Err(unstorable()
                .unwrap_or_else(|| ApiError::BadRequest(format!("malformed JSON: {e}"))));
        }
        Err(e) => return Err(ApiError::BadRequest(format!("malformed JSON: {e}"))),
    };
    // Only a float (or an integer too large for 64 bits, which serde_json makes a float)
    // can be a number that does not survive: bodies of plain integers need no second look.
    if crate::json_numbers::has_float(&value)
        && let Some(refused) = unstorable()
    {
        return Err(refused);
    }
    Ok(value)
}

/// The path of the first string or key holding a NUL character (`body` for the root).
fn nul_field(value: &serde_json::Value, path: &str) -> Option<String> {
    let here = || {
        if path.is_empty() {
            "body".to_owned()
        } else {
            path.to_owned()
        }
    };
    let join = |name: &str| {
        if path.is_empty() {
            name.to_owned()
        } else {
            format!("{path}.{name}")
        }
    };
    match value {
        serde_json::Value::String(s) if s.contains('\0') => Some(here()),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| nul_field(v, &format!("{}[{i}]", here()))),
        serde_json::Value::Object(map) => map.iter().find_map(|(k, v)| {
            if k.contains('\0') {
                Some(here())
            } else {
                nul_field(v, &join(k))
            }
        }),
        _ => None,
    }
}

/// The path parameters as sent, percent-decoded. One that is not UTF-8 once decoded, or
/// that holds a NUL character (which PostgreSQL cannot store), names nothing: a 404 that
/// names the parameter, before anything reaches the database.
async fn checked_path_params(parts: &mut Parts) -> ApiResult<Vec<(String, String)>> {
    use axum::extract::{path::ErrorKind, rejection::PathRejection};
    let params =
        match axum::extract::Path::<Vec<(String, String)>>::from_request_parts(parts, &()).await {
            Ok(params) => params.0,
            Err(PathRejection::FailedToDeserializePathParams(e)) => {
                return Err(match e.kind() {
                    ErrorKind::InvalidUtf8InPathParam { key } => {
                        ApiError::path_param(key, "is not valid UTF-8 once percent-decoded")
                    }
                    _ => ApiError::NotFound,
                });
            }
            Err(_) => return Err(ApiError::Internal("route without path parameters".into())),
        };
    if let Some((name, _)) = params.iter().find(|(_, value)| value.contains('\0')) {
        return Err(ApiError::path_param(
            name,
            "contains the NUL character (%00)",
        ));
    }
    Ok(params)
}

/// Path parameters; a malformed id cannot name anything, so it is a 404 (which names the
/// parameter when it is not UTF-8 or holds a NUL character).
pub struct PathParams<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for PathParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> ApiResult<Self> {
        checked_path_params(parts).await?;
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| PathParams(p.0))
            .map_err(|_| ApiError::NotFound)
    }
}

/// Query parameters read into their wire type, whose fields are `Param`s (text parsed
/// with `FromStr`, never failing), so the type's `parse` names every bad parameter at
/// once. A parameter given twice is refused; unknown ones are refused before the handler
/// by the router (from the OpenAPI document).
pub struct QueryParams<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> ApiResult<Self> {
        let query = parts.uri.query().unwrap_or_default();
        let mut pairs: Vec<(String, String)> = Vec::new();
        let mut errors: Vec<FieldError> = Vec::new();
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            if pairs.iter().any(|(n, _)| *n == name) {
                if !errors.iter().any(|e| e.field == name) {
                    errors.push(FieldError::new(name.as_ref(), "is given more than once"));
                }
            } else {
                pairs.push((name.into_owned(), value.into_owned()));
            }
        }
        if !errors.is_empty() {
            return Err(ApiError::Validation(errors));
        }
        let de =
            serde::de::value::MapDeserializer::<_, serde::de::value::Error>::new(pairs.into_iter());
        T::deserialize(de)
            .map(QueryParams)
            .map_err(|e| ApiError::invalid("query", &e.to_string()))
    }
}
