//! Every route of the API, in one place, each with the access it requires.

use std::sync::Arc;

use axum::{
    Extension,
    extract::Request,
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use frontdesk_core::FieldError;
use utoipa::{
    Modify, OpenApi,
    openapi::{
        RefOr,
        extensions::ExtensionsBuilder,
        path::ParameterIn,
        security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
    },
};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    access::{Access, BodyMode, RouteSpec},
    error::{ApiError, Problem},
    routes::{
        conversations::{assistants, contacts, conversations, feedback, flows, messages, search},
        events::{events, webhooks},
        providers::{callbacks, secrets},
        tenancy::{api_keys, invitations, me, members, tenants},
        usage::{analytics, limits, prices, usage},
    },
    state::AppState,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Frontdesk",
        description = "The multi-tenant system of record for AI assistants that do business. \
                       Conventions (auth, errors, pagination, idempotency) are in docs/API.md."
    ),
    // FeedbackByModel: the rows of /analytics/feedback?by=model.
    components(schemas(Problem, frontdesk_core::FieldError, frontdesk_core::usage::analytics::FeedbackByModel)),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A user JWT, a tenant API key (fd_…), or the operator token",
                    ))
                    .build(),
            ),
        );
    }
}

/// The API's routes and the table describing them.
pub struct Api {
    router: OpenApiRouter<AppState>,
    table: Vec<RouteSpec>,
}

impl Api {
    /// Register one handler with the access it requires.
    fn route(
        self,
        access: Access,
        handler: utoipa_axum::router::UtoipaMethodRouter<AppState>,
    ) -> Self {
        self.register(access, None, BodyMode::Buffered, handler)
    }

    /// Register a handler that reads its body as it arrives (`StreamedBody`): the router
    /// neither buffers its body nor retries it when the database refuses its context.
    fn route_streamed(
        self,
        access: Access,
        handler: utoipa_axum::router::UtoipaMethodRouter<AppState>,
    ) -> Self {
        self.register(access, None, BodyMode::Streamed, handler)
    }

    /// Register a handler left out of the generated isolation tests, saying why.
    #[expect(dead_code, reason = "the reviewed opt-out; no route needs it yet")]
    fn route_isolation_exempt(
        self,
        access: Access,
        reason: &'static str,
        handler: utoipa_axum::router::UtoipaMethodRouter<AppState>,
    ) -> Self {
        self.register(access, Some(reason), BodyMode::Buffered, handler)
    }

    fn register(
        mut self,
        access: Access,
        exempt: Option<&'static str>,
        body: BodyMode,
        (schemas, mut paths, method_router): utoipa_axum::router::UtoipaMethodRouter<AppState>,
    ) -> Self {
        let mut query = Vec::new();
        for (path, item) in paths.paths.iter_mut() {
            let operations = [
                ("GET", &mut item.get),
                ("POST", &mut item.post),
                ("PUT", &mut item.put),
                ("PATCH", &mut item.patch),
                ("DELETE", &mut item.delete),
            ];
            for (method, operation) in operations {
                let Some(operation) = operation else { continue };
                let declared: Vec<String> = operation
                    .parameters
                    .iter()
                    .flatten()
                    .filter_map(|p| match p {
                        RefOr::T(p) if matches!(p.parameter_in, ParameterIn::Query) => {
                            Some(p.name.clone())
                        }
                        _ => None,
                    })
                    .collect();
                query.extend(declared.iter().cloned());
                self.table.push(RouteSpec {
                    method: method.to_owned(),
                    path: path.clone(),
                    access,
                    isolation_exempt: exempt,
                    body,
                    query: declared,
                });
                operation
                    .extensions
                    .get_or_insert_with(Default::default)
                    .merge(
                        ExtensionsBuilder::new()
                            .add("x-access", access.describe())
                            .build(),
                    );
            }
        }
        let known = KnownQuery(query.into());
        let method_router = method_router
            .layer::<_, std::convert::Infallible>(middleware::from_fn(crate::extract::cursor_scope))
            .layer(Extension(access))
            .layer(middleware::from_fn(move |request, next| {
                known.clone().refuse_unknown(request, next)
            }));
        let method_router = if body.retries() {
            method_router.layer(middleware::from_fn(crate::retry_refused_context))
        } else {
            method_router
        };
        self.router = self.router.routes((schemas, paths, method_router));
        self
    }

    pub fn table(&self) -> &[RouteSpec] {
        &self.table
    }

    pub fn into_parts(
        self,
    ) -> (
        axum::Router<AppState>,
        utoipa::openapi::OpenApi,
        Vec<RouteSpec>,
    ) {
        let (router, openapi) = self.router.split_for_parts();
        (router, openapi, self.table)
    }
}

/// The OpenAPI document as served. Field sets shared by several resources are flattened
/// structs (`#[serde(flatten)]`: `LlmSettings` in `Tenant` and `Assistant`,
/// `LlmSettingsInput` in their bodies), which utoipa renders as an `allOf` of the parts.
/// On the wire they are one object, so the document says so: each `allOf` of such parts
/// becomes one object schema (properties and required fields joined), and the parts are
/// not components of their own. Request bodies allow no additional properties.
pub fn document(openapi: &utoipa::openapi::OpenApi) -> serde_json::Value {
    use serde_json::Value;
    /// The components that are shared field sets rather than resources.
    const PARTS: &[&str] = &["LlmSettings", "LlmSettingsInput"];
    fn merge(
        value: &mut Value,
        schemas: &serde_json::Map<String, Value>,
        parts_used: &mut Vec<String>,
    ) {
        match value {
            Value::Array(items) => items
                .iter_mut()
                .for_each(|item| merge(item, schemas, parts_used)),
            Value::Object(map) => {
                map.values_mut()
                    .for_each(|child| merge(child, schemas, parts_used));
                let Some(Value::Array(items)) = map.get("allOf") else {
                    return;
                };
                let mut parts = Vec::new();
                for item in items {
                    let (part, reference) = match item.get("$ref").and_then(Value::as_str) {
                        Some(r) => {
                            let name = r.trim_start_matches("#/components/schemas/");
                            if !PARTS.contains(&name) {
                                return;
                            }
                            (schemas.get(name), Some(name.to_owned()))
                        }
                        None => (Some(item), None),
                    };
                    match part {
                        Some(Value::Object(part)) if part.get("type") == Some(&"object".into()) => {
                            parts.push((part.clone(), reference));
                        }
                        _ => return,
                    }
                }
                let mut merged = map.clone();
                merged.remove("allOf");
                let (mut properties, mut required) = (serde_json::Map::new(), Vec::new());
                for (part, reference) in parts {
                    if let Some(Value::Object(p)) = part.get("properties") {
                        properties.extend(p.clone());
                    }
                    if let Some(Value::Array(r)) = part.get("required") {
                        required.extend(r.iter().cloned());
                    }
                    match reference {
                        Some(name) => parts_used.push(name),
                        None => {
                            for key in ["description", "example"] {
                                if let Some(v) = part.get(key) {
                                    merged.entry(key).or_insert_with(|| v.clone());
                                }
                            }
                        }
                    }
                }
                merged.insert("type".into(), "object".into());
                merged.insert("properties".into(), Value::Object(properties));
                if !required.is_empty() {
                    merged.insert("required".into(), Value::Array(required));
                }
                *map = merged;
            }
            _ => {}
        }
    }
    let mut doc = serde_json::to_value(openapi).expect("the OpenAPI document is JSON");
    let schemas = doc["components"]["schemas"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let mut parts_used = Vec::new();
    merge(&mut doc, &schemas, &mut parts_used);
    // Every body is an object that refuses fields it does not name (wire types gather
    // unknown fields into `Unknown` rather than let serde refuse them).
    let mut bodies: Vec<String> = Vec::new();
    for item in doc["paths"]
        .as_object()
        .into_iter()
        .flat_map(|p| p.values())
    {
        for operation in item.as_object().into_iter().flat_map(|o| o.values()) {
            if let Some(r) = operation
                .pointer("/requestBody/content/application~1json/schema/$ref")
                .and_then(Value::as_str)
            {
                bodies.push(r.trim_start_matches("#/components/schemas/").to_owned());
            }
        }
    }
    for name in bodies {
        if let Some(Value::Object(schema)) = doc["components"]["schemas"].get_mut(&name)
            && schema.get("type") == Some(&"object".into())
        {
            schema.insert("additionalProperties".into(), false.into());
        }
    }
    declare_operations(&mut doc);
    // Rules an attribute cannot carry: those of an array's items.
    for (pointer, rule, value) in [
        (
            "/NewApiKey/properties/scopes/items",
            "enum",
            serde_json::json!(["full", "read"]),
        ),
        (
            "/ApiKey/properties/scopes/items",
            "enum",
            serde_json::json!(["full", "read"]),
        ),
        (
            "/NewFlow/properties/states/items",
            "pattern",
            "^[a-z][a-z0-9_]{0,62}$".into(),
        ),
    ] {
        if let Some(items) = doc["components"]["schemas"].pointer_mut(pointer) {
            items[rule] = value;
        }
    }
    let text = doc.to_string();
    if let Some(Value::Object(components)) = doc["components"].get_mut("schemas") {
        for name in parts_used {
            if !text.contains(&format!("\"#/components/schemas/{name}\"")) {
                components.remove(&name);
            }
        }
    }
    doc
}

/// The problems every operation can answer, derived from what it takes (docs/API.md,
/// "Errors"), each as `application/problem+json` with the `Problem` schema:
/// - 400 (a malformed request: a header, the path or the body cannot be read) and 422 (an
///   unknown or invalid query parameter is refused on every route) — every operation;
/// - 401 — every operation (a missing or bad token; on callbacks a bad signature);
/// - 403 — every operation called with a bearer token (the role, the key's scope, a
///   deactivated tenant, or a tenant's collection the caller has no access to);
/// - 404 — every operation with a path parameter (an unknown or foreign tenant or id);
/// - 409 — every write (POST, PUT, PATCH, DELETE) but signed callbacks: a write can meet
///   a conflicting state (a unique value taken, the last owner, a resource in use, an
///   `Idempotency-Key` in flight);
/// - 408, 413, 415 — every operation with a request body (408: it did not arrive within
///   the body read timeout);
/// - 414, 431 — every operation (a URI or a header section over the edge's limits).
///
/// 429 (limits) is declared by the operations that count against a limit, and other
/// statuses (409 on a refused transition…) by their operations. Besides, every response
/// gets a description, parameters (which cannot be null) lose `null` from their types, and
/// operation ids become `{tag}_{handler}`, unique in the document.
fn declare_operations(doc: &mut serde_json::Value) {
    use serde_json::{Value, json};
    let problem = || json!({"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}});
    let callback = Access::Callback.describe();
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for item in paths.values_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (method, operation) in item.iter_mut() {
            let writes = method != "get";
            let Some(operation) = operation.as_object_mut() else {
                continue;
            };
            let parameters: Vec<Value> = operation
                .get("parameters")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let has_path = parameters.iter().any(|p| p["in"] == "path");
            let idempotent = parameters.iter().any(|p| p["name"] == "Idempotency-Key");
            let has_body = operation.contains_key("requestBody");
            let signed = operation.get("x-access").and_then(Value::as_str) == Some(callback);
            let mut statuses = vec![400, 401, 414, 422, 431];
            if !signed {
                statuses.push(403);
            }
            if has_path {
                statuses.push(404);
            }
            if idempotent || (writes && !signed) {
                statuses.push(409);
            }
            if has_body {
                statuses.extend([408, 413, 415]);
            }
            let responses = operation
                .entry("responses")
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .expect("responses is an object");
            for status in statuses {
                responses
                    .entry(status.to_string())
                    .or_insert_with(|| json!({}));
            }
            for (status, response) in responses.iter_mut() {
                let Some(response) = response.as_object_mut() else {
                    continue;
                };
                let code: u16 = status.parse().unwrap_or(0);
                if code >= 400 {
                    response.insert("content".into(), problem());
                }
                let described = response
                    .get("description")
                    .and_then(Value::as_str)
                    .is_some_and(|d| !d.is_empty());
                if !described {
                    response.insert("description".into(), describe(code).into());
                }
            }
            if let Some(Value::Array(parameters)) = operation.get_mut("parameters") {
                for parameter in parameters {
                    if let Some(Value::Array(types)) = parameter.pointer_mut("/schema/type") {
                        types.retain(|t| t != "null");
                        if types.len() == 1 {
                            let only = types[0].clone();
                            parameter["schema"]["type"] = only;
                        }
                    }
                }
            }
            let tag = operation
                .get("tags")
                .and_then(|t| t.get(0))
                .and_then(Value::as_str)
                .unwrap_or("api")
                .replace('-', "_");
            if let Some(Value::String(id)) = operation.get_mut("operationId") {
                *id = format!("{tag}_{id}");
            }
        }
    }
}

/// The description of a response that has none: what the status means in this API.
fn describe(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No content",
        400 => "Malformed request: a header, the path or the JSON body cannot be read",
        401 => "No valid credentials (a missing, expired or unknown token or key)",
        403 => {
            "The caller may not do this (role, key scope, deactivated tenant, or a tenant's collection it has no access to)"
        }
        404 => "No such tenant or resource, or it is not the caller's to see",
        405 => "The path does not take this method",
        408 => "The request body did not arrive within the body read timeout",
        409 => {
            "Conflict with the current state (or a concurrent request with the same Idempotency-Key)"
        }
        413 => "The request body is over the size limit",
        414 => "The request URI is over 8 KiB",
        415 => "The body is not sent as application/json",
        422 => "Invalid input: `errors` names every invalid field or query parameter",
        429 => "A limit of the tenant would be passed; nothing was stored",
        431 => "The request's header section is over 32 KiB",
        _ => "See docs/API.md",
    }
}

/// The query parameters a route declares in the OpenAPI document. Any other is refused
/// with one 422 naming every unknown parameter, before the handler runs (so also on routes
/// that take no query at all); so is a declared one whose value holds a NUL character
/// (`%00`), which PostgreSQL cannot store.
#[derive(Clone)]
struct KnownQuery(Arc<[String]>);

impl KnownQuery {
    async fn refuse_unknown(self, request: Request, next: Next) -> Response {
        let query = request.uri().query().unwrap_or_default();
        let mut unknown: Vec<FieldError> = Vec::new();
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            if unknown.iter().any(|e| e.field == name) {
                continue;
            }
            if !self.0.iter().any(|known| *known == name) {
                unknown.push(FieldError::new(name.as_ref(), "unknown query parameter"));
            } else if value.contains('\0') {
                unknown.push(FieldError::new(
                    name.as_ref(),
                    "must not contain the NUL character (%00)",
                ));
            }
        }
        if unknown.is_empty() {
            next.run(request).await
        } else {
            ApiError::Validation(unknown).into_response()
        }
    }
}

/// The whole API.
pub fn api() -> Api {
    use Access::*;
    Api {
        router: OpenApiRouter::with_openapi(ApiDoc::openapi()),
        table: Vec::new(),
    }
    .route(User, routes!(me::get))
    .route(User, routes!(tenants::create))
    .route(User, routes!(tenants::list))
    .route(TenantRead, routes!(tenants::get))
    .route(TenantAdmin, routes!(tenants::update))
    .route(TenantOwner, routes!(tenants::delete))
    .route(TenantAdmin, routes!(members::list))
    .route(TenantAdmin, routes!(members::add))
    .route(TenantAdmin, routes!(members::get))
    .route(TenantAdmin, routes!(members::update))
    .route(TenantAdmin, routes!(members::remove))
    .route(TenantAdmin, routes!(invitations::list))
    .route(TenantAdmin, routes!(invitations::create))
    .route(TenantAdmin, routes!(invitations::revoke))
    // The invitee is not a member yet: a signed-in user, outside the tenant's context.
    .route(User, routes!(invitations::accept))
    .route(TenantAdmin, routes!(api_keys::list))
    .route(TenantAdmin, routes!(api_keys::create))
    .route(TenantAdmin, routes!(api_keys::get))
    .route(TenantAdmin, routes!(api_keys::revoke))
    .route(TenantRead, routes!(flows::list))
    .route(TenantAdmin, routes!(flows::create))
    .route(TenantRead, routes!(flows::get))
    .route(TenantRead, routes!(assistants::list))
    .route(TenantAdmin, routes!(assistants::create))
    .route(TenantRead, routes!(assistants::get))
    .route(TenantAdmin, routes!(assistants::update))
    .route(TenantAdmin, routes!(assistants::delete))
    .route(TenantRead, routes!(contacts::list))
    .route(TenantWrite, routes!(contacts::create))
    .route(TenantRead, routes!(contacts::lookup))
    .route(TenantWrite, routes!(contacts::upsert_by_channel))
    .route(TenantRead, routes!(contacts::get))
    .route(TenantWrite, routes!(contacts::update))
    .route(TenantWrite, routes!(contacts::delete))
    .route(TenantRead, routes!(conversations::list))
    .route(TenantWrite, routes!(conversations::create))
    .route(TenantRead, routes!(conversations::get))
    .route(TenantWrite, routes!(conversations::update))
    .route(TenantAdmin, routes!(conversations::delete))
    .route(TenantWrite, routes!(conversations::transition))
    .route(TenantRead, routes!(conversations::history))
    .route(TenantWrite, routes!(conversations::handoff))
    .route(TenantWrite, routes!(conversations::archive))
    .route(TenantWrite, routes!(conversations::unarchive))
    .route(TenantRead, routes!(conversations::cost))
    .route(TenantRead, routes!(conversations::stats))
    .route(TenantRead, routes!(messages::list))
    .route(TenantWrite, routes!(messages::create))
    .route(TenantRead, routes!(messages::get))
    .route(TenantAdmin, routes!(messages::redact))
    .route(TenantWrite, routes!(feedback::put))
    .route(TenantRead, routes!(feedback::list))
    .route(TenantWrite, routes!(feedback::delete))
    .route(TenantRead, routes!(feedback::summary))
    .route(TenantRead, routes!(search::search))
    .route(TenantRead, routes!(events::list))
    .route(User, routes!(prices::catalog))
    .route(Operator, routes!(prices::add_to_catalog))
    .route(TenantRead, routes!(prices::list))
    .route(TenantAdmin, routes!(prices::add))
    .route(TenantAdmin, routes!(prices::recost))
    .route(TenantWrite, routes!(usage::record))
    .route(TenantRead, routes!(usage::events))
    .route(TenantRead, routes!(usage::daily))
    .route(TenantRead, routes!(usage::today))
    .route(TenantRead, routes!(usage::monthly))
    .route(TenantRead, routes!(usage::unpriced))
    .route(TenantRead, routes!(limits::list))
    .route(TenantWrite, routes!(limits::check))
    .route(TenantRead, routes!(limits::reservations))
    .route(TenantRead, routes!(limits::reservation))
    .route(TenantWrite, routes!(limits::cancel))
    .route(TenantRead, routes!(analytics::providers))
    .route(TenantRead, routes!(analytics::daily_messages))
    .route(TenantRead, routes!(analytics::top))
    .route(TenantRead, routes!(analytics::funnel))
    .route(TenantRead, routes!(analytics::feedback))
    .route(TenantAdmin, routes!(webhooks::list))
    .route(TenantAdmin, routes!(webhooks::create))
    .route(TenantAdmin, routes!(webhooks::get))
    .route(TenantAdmin, routes!(webhooks::update))
    .route(TenantAdmin, routes!(webhooks::delete))
    .route(TenantAdmin, routes!(webhooks::enable))
    .route(TenantAdmin, routes!(webhooks::rotate))
    .route(TenantAdmin, routes!(webhooks::test))
    .route(TenantAdmin, routes!(webhooks::deliveries))
    .route(TenantAdmin, routes!(webhooks::delivery))
    .route(TenantAdmin, routes!(webhooks::retry))
    .route(TenantAdmin, routes!(secrets::list))
    .route(TenantAdmin, routes!(secrets::put))
    .route(TenantAdmin, routes!(secrets::delete))
    .route(TenantRead, routes!(callbacks::list))
    // Signed by the provider, verified over the exact bytes: streamed, not retried.
    .route_streamed(Callback, routes!(callbacks::receive))
}

/// The route table, for tests and tools.
pub fn route_table() -> Vec<RouteSpec> {
    api().table
}
