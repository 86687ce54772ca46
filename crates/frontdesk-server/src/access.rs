//! Who may call a route. Each route declares its access once, in `router.rs`; the route
//! table this builds is enforced by the extractors (`TenantScope`, `UserScope`) and read by the
//! isolation tests, so a new route is covered without a new test.

use serde::Serialize;

/// The access a route requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// A signed-in person, or the operator; no tenant context (the path names no tenant,
    /// or one the caller need not belong to, as when accepting an invitation).
    User,
    /// Any member of the tenant, any of its keys, the operator. Runs read-only.
    TenantRead,
    /// Any member (RLS narrows what each role may write), `full` keys, the operator.
    TenantWrite,
    /// Owners and admins of the tenant, the operator. Never keys.
    TenantAdmin,
    /// Owners of the tenant, the operator.
    TenantOwner,
    /// The operator only.
    Operator,
    /// A provider's signed callback (`/v1/hooks/{provider}/{tenant}`): no bearer token;
    /// it passes only with a signature made with the tenant's stored secret for that
    /// provider, and runs as the callback caller kind, which may only record it.
    Callback,
}

impl Access {
    pub fn is_tenant(self) -> bool {
        matches!(
            self,
            Self::TenantRead | Self::TenantWrite | Self::TenantAdmin | Self::TenantOwner
        )
    }

    pub fn describe(self) -> &'static str {
        match self {
            Self::User => "a signed-in user (JWT) or the operator",
            Self::TenantRead => "any member of the tenant, any of its API keys, or the operator",
            Self::TenantWrite => {
                "any member of the tenant (what each may change is narrowed by role), a `full` API key, or the operator"
            }
            Self::TenantAdmin => "an owner or admin of the tenant, or the operator",
            Self::TenantOwner => "an owner of the tenant, or the operator",
            Self::Operator => "the operator",
            Self::Callback => {
                "a provider, signing with the tenant's secret for that provider (no bearer token)"
            }
        }
    }
}

/// How a route takes its request body, which decides whether it can be retried.
///
/// When the database refuses a request's context (a cached key, tenant or role went
/// stale), the request is run once more with fresh lookups. Running it again needs its
/// body again, so a retried route's body is buffered first (up to `BODY_LIMIT`, 413
/// beyond). A route that reads a large body as it arrives (`StreamedBody`) opts out: its
/// body is never buffered by the router, and a refused context answers 403 (the caches
/// are cleared all the same, so the client's own retry passes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyMode {
    /// Buffered up to `BODY_LIMIT`; a refused context is retried once. The default.
    #[default]
    Buffered,
    /// Read by the handler as it arrives; never buffered, never retried.
    Streamed,
}

impl BodyMode {
    /// Whether a request whose context the database refused is run once more.
    pub fn retries(self) -> bool {
        self == Self::Buffered
    }
}

/// One route of the API as registered.
#[derive(Debug, Clone, Serialize)]
pub struct RouteSpec {
    pub method: String,
    /// The path as in the OpenAPI document, e.g. `/v1/tenants/{tenant}/members/{user_id}`.
    pub path: String,
    pub access: Access,
    /// Set only with a reason, reviewed like any code: the route is left out of the
    /// generated isolation tests.
    pub isolation_exempt: Option<&'static str>,
    /// How it takes its body: buffered (retried on a refused context) or streamed.
    pub body: BodyMode,
    /// The query parameters it declares; any other is a 422.
    pub query: Vec<String>,
}
