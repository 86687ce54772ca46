//! Tenancy: who the tenants are and who may act in them — tenants (profile, LLM
//! defaults, limits), users (as last seen in their tokens), memberships with their
//! roles, invitations to join, and the tenant's API keys; and the lookups that authenticate a request (`auth`).

pub mod api_keys;
pub mod auth;
pub mod invitations;
pub mod llm;
pub mod members;
pub mod tenants;
pub mod users;

use crate::platform::error::{Constraints, Meaning};
use crate::platform::values::TenantSlug;

/// What the constraints of tenants, memberships and API keys mean to a client (see
/// `platform::error`).
pub(crate) const CONSTRAINTS: &Constraints = &[
    (
        // The global slug lookup (0007): slugs are unique across tenants there.
        "tenant_slugs_pkey",
        Meaning::Conflict(Some("slug"), "this slug is already taken"),
    ),
    (
        "tenants_slug_check",
        Meaning::Field("slug", TenantSlug::RULE),
    ),
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
        "tenants_default_country_check",
        Meaning::Field(
            "default_country",
            "must be an ISO 3166-1 alpha-2 country code",
        ),
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
        "tenants_limit_warning_share_check",
        Meaning::Field("limit_warning_share", "must be from 0.01 to 1"),
    ),
    (
        "tenants_limits_on_new_conversations_check",
        Meaning::Field(
            "limits_on_new_conversations",
            "must name only rate_limit_per_minute, daily_token_limit or monthly_budget_usd",
        ),
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
        "invitations_email_check",
        Meaning::Field(
            "email",
            "must be an email address of at most 320 characters",
        ),
    ),
    (
        "invitations_role_check",
        Meaning::Field("role", "must be one of owner, admin, agent, member"),
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
];
