//! Tenants: one business, workspace or brand.

use chrono::{DateTime, Utc};
use frontdesk_pg::RowExt;
use rust_decimal::{Decimal, prelude::ToPrimitive};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio_postgres::Row;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    CoreError, Tx,
    platform::input::{Field, Invalid, Patch, Unknown, any, json_object, text_of},
    platform::page::{Page, Paged},
    platform::phone::Country,
    platform::values::{
        BudgetUsd, E164, Email, HttpUrl, Locale, PositiveI32, TenantSlug, TimeZone,
    },
    tenancy::llm::{LlmSettings, LlmSettingsInput, LlmSettingsPatch},
    usage::limits::{LimitName, WarningShare},
};

/// A tenant as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Tenant {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    pub kind: TenantKind,
    /// IANA time zone: the tenant's days are counted in it.
    pub timezone: String,
    pub locale: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub address: Option<String>,
    pub website: Option<String>,
    pub logo_url: Option<String>,
    #[serde(flatten)]
    pub llm: LlmSettings,
    pub rate_limit_per_minute: Option<i32>,
    pub daily_token_limit: Option<i64>,
    /// USD, as a decimal string.
    #[schema(value_type = Option<String>, example = "250.00")]
    pub monthly_budget_usd: Option<Decimal>,
    /// true: a message or usage event past a limit is refused (429) and stores nothing.
    /// false (the default): it is stored and flagged (`over_limit`).
    pub strict_limits: bool,
    /// The share (0.01–1) of the daily token limit or the monthly budget at which
    /// `usage.limit_warning` is sent, once per window; null: no warnings. Default 0.8.
    pub limit_warning_share: Option<f64>,
    /// The limits that refuse a new conversation (429) while nothing of them is left.
    pub limits_on_new_conversations: Vec<LimitName>,
    #[schema(value_type = Object)]
    pub features: Value,
    #[schema(value_type = Object)]
    pub branding: Value,
    pub is_active: bool,
    /// The text search configuration messages are searched with (e.g. english,
    /// indonesian; simple = no stemming).
    pub search_language: String,
    /// ISO 3166-1 alpha-2: the country of phone numbers typed without a country code
    /// (null: such numbers are refused).
    pub default_country: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The caller's role in this tenant (in lists of the caller's tenants).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

const COLUMNS: &str = "id, slug, name, kind, timezone, locale, email, phone, address, website, logo_url, \
    llm_provider, llm_model, llm_temperature, llm_max_tokens, system_prompt, rate_limit_per_minute, \
    daily_token_limit, monthly_budget_usd, strict_limits, limit_warning_share, limits_on_new_conversations, \
    features, branding, is_active, search_language, default_country, created_at, updated_at";

/// What an update may set: every column but the id (on Citus the distribution column,
/// which an UPDATE may not name even to keep it) and the timestamps.
const SETTABLE: &str = "slug, name, kind, timezone, locale, email, phone, address, website, logo_url, \
    llm_provider, llm_model, llm_temperature, llm_max_tokens, system_prompt, rate_limit_per_minute, \
    daily_token_limit, monthly_budget_usd, strict_limits, limit_warning_share, limits_on_new_conversations, \
    features, branding, is_active, search_language, default_country";

impl Tenant {
    fn from_row(row: &Row) -> Result<Self, CoreError> {
        Ok(Self {
            id: row.col("id")?,
            slug: row.col("slug")?,
            name: row.col("name")?,
            kind: row.col("kind")?,
            timezone: row.col("timezone")?,
            locale: row.col("locale")?,
            email: row.col("email")?,
            phone: row.col("phone")?,
            address: row.col("address")?,
            website: row.col("website")?,
            logo_url: row.col("logo_url")?,
            llm: LlmSettings::from_row(row)?,
            rate_limit_per_minute: row.col("rate_limit_per_minute")?,
            daily_token_limit: row.col("daily_token_limit")?,
            monthly_budget_usd: row.col("monthly_budget_usd")?,
            strict_limits: row.col("strict_limits")?,
            limit_warning_share: row
                .col::<Option<Decimal>>("limit_warning_share")?
                .and_then(|d| d.to_f64()),
            limits_on_new_conversations: row.col("limits_on_new_conversations")?,
            features: row.col("features")?,
            branding: row.col("branding")?,
            is_active: row.col("is_active")?,
            search_language: row.col("search_language")?,
            default_country: row.col("default_country")?,
            created_at: row.col("created_at")?,
            updated_at: row.col("updated_at")?,
            role: None,
        })
    }
}

crate::text_enum!(
    /// What kind of business a tenant is.
    pub enum TenantKind {
        Restaurant = "restaurant",
        Retail = "retail",
        Service = "service",
        Other = "other",
    }
);

/// The body of `POST /v1/tenants` and `PATCH /v1/tenants/{tenant}`: every field optional
/// in a patch (absent = unchanged, null = cleared); `slug` and `name` required on create.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(example = json!({"slug": "acme", "name": "Acme", "kind": "retail", "timezone": "Asia/Jakarta"}))]
pub struct TenantInput {
    /// 3–63 lower-case letters, digits and hyphens; unique.
    #[serde(default)]
    #[schema(value_type = String, required = false, pattern = "^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")]
    pub slug: Field<String>,
    #[serde(default)]
    #[schema(value_type = String, required = false)]
    pub name: Field<String>,
    /// restaurant, retail, service or other (default other).
    #[serde(default)]
    #[schema(value_type = TenantKind, required = false)]
    pub kind: Field<String>,
    /// IANA time zone name (default UTC).
    #[serde(default)]
    #[schema(value_type = String, required = false)]
    pub timezone: Field<String>,
    /// Language tag (default en).
    #[serde(default)]
    #[schema(value_type = String, required = false)]
    pub locale: Field<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub email: Field<String>,
    /// E.164.
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = "^\\+[1-9][0-9]{6,14}$")]
    pub phone: Field<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub address: Field<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub website: Field<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub logo_url: Field<String>,
    #[serde(flatten)]
    pub llm: LlmSettingsInput,
    /// Message and usage writes per minute; null = unlimited.
    #[serde(default)]
    #[schema(value_type = Option<i32>)]
    pub rate_limit_per_minute: Field<i64>,
    /// Tokens per day in the tenant's time zone; null = unlimited.
    #[serde(default)]
    #[schema(value_type = Option<i64>)]
    pub daily_token_limit: Field<i64>,
    /// USD per calendar month, as a decimal string; null = unlimited.
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = r"^[0-9]+(\.[0-9]+)?$")]
    pub monthly_budget_usd: Field<crate::platform::input::DecimalText>,
    /// true: a message or usage event past a limit is refused (429) and stores nothing.
    /// Default false: it is stored and flagged.
    #[serde(default)]
    #[schema(value_type = bool, required = false)]
    pub strict_limits: Field<bool>,
    /// 0.01–1 (at most two decimals): the share of the daily token limit or the monthly
    /// budget at which `usage.limit_warning` is sent; null: none. Default 0.8.
    #[serde(default)]
    #[schema(value_type = Option<f64>, minimum = 0.01, maximum = 1)]
    pub limit_warning_share: Field<f64>,
    /// The limits that refuse a new conversation while nothing of them is left (default
    /// none).
    #[serde(default)]
    #[schema(value_type = Vec<LimitName>, required = false)]
    pub limits_on_new_conversations: Field<Vec<String>>,
    #[serde(default)]
    #[schema(value_type = Object, required = false)]
    pub features: Field<Value>,
    #[serde(default)]
    #[schema(value_type = Object, required = false)]
    pub branding: Field<Value>,
    #[serde(default)]
    #[schema(value_type = bool, required = false)]
    pub is_active: Field<bool>,
    /// A PostgreSQL text search configuration for messages: english, indonesian, simple
    /// (the default: no stemming), …
    #[serde(default)]
    #[schema(value_type = String, required = false)]
    pub search_language: Field<String>,
    /// ISO 3166-1 alpha-2 (e.g. ID): phone numbers typed without a country code
    /// (`0812-3456-7890`) are read in this country; null = such numbers are refused.
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = "^[A-Z]{2}$")]
    pub default_country: Field<String>,
    #[serde(flatten)]
    #[schema(ignore)]
    pub unknown: Unknown,
}

/// Checked changes to a tenant: absent fields keep their values, null clears. Serialized
/// as the columns it sets.
#[derive(Debug, Default, Serialize)]
pub struct TenantChanges {
    #[serde(skip_serializing_if = "Patch::is_absent")]
    pub slug: Patch<TenantSlug>,
    #[serde(skip_serializing_if = "Patch::is_absent")]
    pub name: Patch<String>,
    #[serde(skip_serializing_if = "Patch::is_absent")]
    pub kind: Patch<TenantKind>,
    #[serde(skip_serializing_if = "Patch::is_absent")]
    pub timezone: Patch<TimeZone>,
    #[serde(skip_serializing_if = "Patch::is_absent")]
    pub locale: Patch<Locale>,
    #[serde(skip_serializing_if = "Patch::is_absent")]
    pub email: Patch<Email>,
    #[serde(skip_serializing_if = "Patch::is_absent")]
    pub phone: Patch<E164>,
    #[serde(skip_serializing_if = "Patch::is_absent")]
    pub address: Patch<String>,
    #[serde(skip_serializing_if = "Patch::is_absent")]
    pub website: Patch<HttpUrl>,
    #[serde(skip_serializing_if = "Patch::is_absent")]
    pub logo_url: Patch<HttpUrl>,
    #[serde(flatten)]
    pub llm: LlmSettingsPatch,
    #[serde(skip_serializing_if = "Patch::is_absent")]
    pub rate_limit_per_minute: Patch<PositiveI32>,
    #[serde(skip_serializing_if = "Patch::is_absent")]
    pub daily_token_limit: Patch<i64>,
    #[serde(skip_serializing_if = "Patch::is_absent")]
    pub monthly_budget_usd: Patch<BudgetUsd>,
    #[serde(skip_serializing_if = "Patch::is_absent")]
    pub strict_limits: Patch<bool>,
    #[serde(skip_serializing_if = "Patch::is_absent")]
    pub limit_warning_share: Patch<WarningShare>,
    #[serde(skip_serializing_if = "Patch::is_absent")]
    pub limits_on_new_conversations: Patch<Vec<LimitName>>,
    #[serde(skip_serializing_if = "Patch::is_absent")]
    pub features: Patch<Map<String, Value>>,
    #[serde(skip_serializing_if = "Patch::is_absent")]
    pub branding: Patch<Map<String, Value>>,
    #[serde(skip_serializing_if = "Patch::is_absent")]
    pub is_active: Patch<bool>,
    #[serde(skip_serializing_if = "Patch::is_absent")]
    pub search_language: Patch<String>,
    #[serde(skip_serializing_if = "Patch::is_absent")]
    pub default_country: Patch<Country>,
}

impl TryFrom<TenantInput> for TenantChanges {
    type Error = Invalid;

    fn try_from(w: TenantInput) -> Result<Self, Invalid> {
        let mut e = Invalid::new(w.unknown);
        let changes = Self {
            slug: e.patch_not_null("slug", w.slug, TenantSlug::parse),
            name: e.patch_not_null("name", w.name, text_of(200)),
            kind: e.patch_not_null("kind", w.kind, |s| TenantKind::parse(&s)),
            // The database checks the zone against its own list (tenants_timezone_check).
            timezone: e.patch_not_null("timezone", w.timezone, TimeZone::parse),
            locale: e.patch_not_null("locale", w.locale, Locale::parse),
            email: e.patch("email", w.email, Email::parse),
            phone: e.patch("phone", w.phone, E164::parse),
            address: e.patch("address", w.address, text_of(500)),
            website: e.patch("website", w.website, HttpUrl::parse),
            logo_url: e.patch("logo_url", w.logo_url, HttpUrl::parse),
            llm: LlmSettingsPatch::parse(w.llm, &mut e),
            rate_limit_per_minute: e.patch(
                "rate_limit_per_minute",
                w.rate_limit_per_minute,
                PositiveI32::parse,
            ),
            daily_token_limit: e.patch("daily_token_limit", w.daily_token_limit, |n| {
                if n < 1 {
                    Err("must be a positive integer".to_owned())
                } else {
                    Ok(n)
                }
            }),
            monthly_budget_usd: e.patch(
                "monthly_budget_usd",
                w.monthly_budget_usd.decimal(),
                BudgetUsd::parse,
            ),
            strict_limits: e.patch_not_null("strict_limits", w.strict_limits, any),
            limit_warning_share: e.patch(
                "limit_warning_share",
                w.limit_warning_share,
                WarningShare::parse,
            ),
            limits_on_new_conversations: e.patch_not_null(
                "limits_on_new_conversations",
                w.limits_on_new_conversations,
                LimitName::parse_set,
            ),
            features: e.patch_not_null("features", w.features, json_object),
            branding: e.patch_not_null("branding", w.branding, json_object),
            is_active: e.patch_not_null("is_active", w.is_active, any),
            search_language: e.patch_not_null("search_language", w.search_language, text_of(64)),
            default_country: e.patch("default_country", w.default_country, Country::parse),
        };
        e.finish(changes)
    }
}

/// A checked new tenant: its changes, with `slug` and `name` given.
#[derive(Debug)]
pub struct NewTenant(TenantChanges);

impl TryFrom<TenantInput> for NewTenant {
    type Error = Invalid;

    fn try_from(w: TenantInput) -> Result<Self, Invalid> {
        let missing: Vec<&str> = [("slug", w.slug.is_absent()), ("name", w.name.is_absent())]
            .into_iter()
            .filter_map(|(name, absent)| absent.then_some(name))
            .collect();
        let mut e = match TenantChanges::try_from(w) {
            Ok(changes) if missing.is_empty() => return Ok(Self(changes)),
            Ok(_) => Invalid::default(),
            Err(e) => e,
        };
        for name in missing {
            e.push(name, "is required");
        }
        Err(e)
    }
}

fn columns(changes: &TenantChanges) -> Value {
    serde_json::to_value(changes).expect("tenant changes serialize to a JSON object")
}

/// Create a tenant; a signed-in user becomes its owner (the operator may name one).
pub async fn create(
    tx: &mut Tx,
    new: &NewTenant,
    owner: Option<Uuid>,
) -> Result<Tenant, CoreError> {
    let id = Uuid::now_v7();
    let row = tx
        .query_one(
            &format!("select {COLUMNS} from app.create_tenant($1, $2, $3)"),
            &[&id, &columns(&new.0), &owner],
        )
        .await?;
    Tenant::from_row(&row)
}

pub async fn get(tx: &mut Tx, tenant: Uuid) -> Result<Tenant, CoreError> {
    let row = tx
        .last()
        .query_opt(
            &format!("select {COLUMNS} from app.tenants where id = $1"),
            &[&tenant],
        )
        .await?
        .ok_or(CoreError::NotFound)?;
    Tenant::from_row(&row)
}

/// The tenant's default country: phone numbers typed without a country code are read in it.
pub async fn default_country(tx: &mut Tx, tenant: Uuid) -> Result<Option<Country>, CoreError> {
    let row = tx
        .query_opt(
            "select default_country from app.tenants where id = $1",
            &[&tenant],
        )
        .await?
        .ok_or(CoreError::NotFound)?;
    let code: Option<String> = row.col("default_country")?;
    Ok(code.and_then(|c| Country::parse(c).ok()))
}

/// Apply checked changes: fields absent from them keep their values.
pub async fn update(
    tx: &mut Tx,
    tenant: Uuid,
    changes: &TenantChanges,
) -> Result<Tenant, CoreError> {
    let fields = columns(changes);
    if fields.as_object().is_none_or(Map::is_empty) {
        return get(tx, tenant).await;
    }
    if let Some(slug) = changes.slug.value() {
        // The global slug lookup first (a taken slug is a 409 there), then the row.
        tx.execute("select app.claim_slug($1, $2)", &[&tenant, &slug.as_str()])
            .await?;
    }
    let row = tx
        .query_opt(
            &format!(
                "update app.tenants t set ({SETTABLE}) = (select {SETTABLE} from jsonb_populate_record(t, $2)) \
                 where t.id = $1 returning {COLUMNS}"
            ),
            &[&tenant, &fields],
        )
        .await?
        .ok_or(CoreError::NotFound)?;
    Tenant::from_row(&row)
}

/// Delete a tenant and, by cascade, everything it owns.
pub async fn delete(tx: &mut Tx, tenant: Uuid) -> Result<(), CoreError> {
    // Its slug and its keys' hashes in the global lookups go first.
    tx.execute("select app.forget_tenant_lookups($1)", &[&tenant])
        .await?;
    let n = tx
        .execute("delete from app.tenants where id = $1", &[&tenant])
        .await?;
    if n == 0 {
        Err(CoreError::NotFound)
    } else {
        Ok(())
    }
}

/// The signed-in user's tenants with their role, newest first.
pub async fn list_for_user(tx: &mut Tx, page: &Page<Uuid>) -> Result<Paged<Tenant>, CoreError> {
    let rows = tx
        .query(
            &format!("select {COLUMNS}, member_role from app.user_tenants($1, $2)"),
            &[&page.after, &(page.limit + 1)],
        )
        .await?;
    let tenants = rows
        .iter()
        .map(|r| {
            Ok(Tenant {
                role: r.col("member_role")?,
                ..Tenant::from_row(r)?
            })
        })
        .collect::<Result<_, CoreError>>()?;
    Ok(Paged::from_rows(tenants, page.limit, |t: &Tenant| t.id))
}

/// Every tenant (operator), newest first.
pub async fn list_all(tx: &mut Tx, page: &Page<Uuid>) -> Result<Paged<Tenant>, CoreError> {
    let rows = tx
        .query(
            &format!(
                "select {COLUMNS} from app.tenants where ($1::uuid is null or id < $1) order by id desc limit $2"
            ),
            &[&page.after, &(page.limit + 1)],
        )
        .await?;
    Ok(Paged::from_rows(
        rows.iter()
            .map(Tenant::from_row)
            .collect::<Result<_, _>>()?,
        page.limit,
        |t: &Tenant| t.id,
    ))
}
