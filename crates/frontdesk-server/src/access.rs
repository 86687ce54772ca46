//! Who may call a route. Each route declares its access once, in `router.rs`; the route
//! table this builds is enforced by the extractors (`TenantScope`, `UserScope`) and read by the
//! isolation tests, so a new route is covered without a new test.

use serde::Serialize;

/// The access a route requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// A signed-in person, or the operator; no tenant in the path.
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
        }
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
    /// The query parameters it declares; any other is a 422.
    pub query: Vec<String>,
}
