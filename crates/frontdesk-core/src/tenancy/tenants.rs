//! Tenants: one business, workspace or brand.

use chrono::{DateTime, Utc};
use rust_decimal::{Decimal, prelude::ToPrimitive};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio_postgres::Row;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    CoreError, FieldError, Tx,
    platform::input::{Checked, Patch, is_e164, is_email, is_http_url, object, text},
    platform::page::{Page, Paged},
};

/// A tenant as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Tenant {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    /// restaurant, retail, service or other.
    pub kind: String,
    /// IANA time zone: the tenant's days are counted in it.
    pub timezone: String,
    pub locale: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub address: Option<String>,
    pub website: Option<String>,
    pub logo_url: Option<String>,
    pub llm_provider: Option<String>,
    pub llm_model: Option<String>,
    pub llm_temperature: Option<f64>,
    pub llm_max_tokens: Option<i32>,
    pub system_prompt: Option<String>,
    pub rate_limit_per_minute: Option<i32>,
    pub daily_token_limit: Option<i64>,
    /// USD, as a decimal string.
    #[schema(value_type = Option<String>, example = "250.00")]
    pub monthly_budget_usd: Option<Decimal>,
    #[schema(value_type = Object)]
    pub features: Value,
    #[schema(value_type = Object)]
    pub branding: Value,
    pub is_active: bool,
    /// The text search configuration messages are searched with (e.g. english,
    /// indonesian; simple = no stemming).
    pub search_language: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The caller's role in this tenant (in lists of the caller's tenants).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

const COLUMNS: &str = "id, slug, name, kind, timezone, locale, email, phone, address, website, logo_url, \
    llm_provider, llm_model, llm_temperature, llm_max_tokens, system_prompt, rate_limit_per_minute, \
    daily_token_limit, monthly_budget_usd, features, branding, is_active, search_language, created_at, updated_at";

impl Tenant {
    fn from_row(row: &Row) -> Self {
        Self {
            id: row.get("id"),
            slug: row.get("slug"),
            name: row.get("name"),
            kind: row.get("kind"),
            timezone: row.get("timezone"),
            locale: row.get("locale"),
            email: row.get("email"),
            phone: row.get("phone"),
            address: row.get("address"),
            website: row.get("website"),
            logo_url: row.get("logo_url"),
            llm_provider: row.get("llm_provider"),
            llm_model: row.get("llm_model"),
            llm_temperature: row
                .get::<_, Option<Decimal>>("llm_temperature")
                .and_then(|d| d.to_f64()),
            llm_max_tokens: row.get("llm_max_tokens"),
            system_prompt: row.get("system_prompt"),
            rate_limit_per_minute: row.get("rate_limit_per_minute"),
            daily_token_limit: row.get("daily_token_limit"),
            monthly_budget_usd: row.get("monthly_budget_usd"),
            features: row.get("features"),
            branding: row.get("branding"),
            is_active: row.get("is_active"),
            search_language: row.get("search_language"),
            created_at: row.get("created_at"),
            updated_at: row.get("updated_at"),
            role: None,
        }
    }
}

/// The body of `POST /v1/tenants` and `PATCH /v1/tenants/{tenant}`: every field optional
/// in a patch (absent = unchanged, null = cleared); `slug` and `name` required on create.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"slug": "acme", "name": "Acme", "kind": "retail", "timezone": "Asia/Jakarta"}))]
pub struct TenantInput {
    /// 3–63 lower-case letters, digits and hyphens; unique.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub slug: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub name: Patch<String>,
    /// restaurant, retail, service or other (default other).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub kind: Patch<String>,
    /// IANA time zone name (default UTC).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub timezone: Patch<String>,
    /// Language tag (default en).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub locale: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub email: Patch<String>,
    /// E.164.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub phone: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub address: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub website: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub logo_url: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub llm_provider: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub llm_model: Patch<String>,
    /// 0–2.
    #[serde(default)]
    #[schema(value_type = Option<f64>)]
    pub llm_temperature: Patch<f64>,
    #[serde(default)]
    #[schema(value_type = Option<i32>)]
    pub llm_max_tokens: Patch<i64>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub system_prompt: Patch<String>,
    /// Message and usage writes per minute; null = unlimited.
    #[serde(default)]
    #[schema(value_type = Option<i32>)]
    pub rate_limit_per_minute: Patch<i64>,
    /// Tokens per day in the tenant's time zone; null = unlimited.
    #[serde(default)]
    #[schema(value_type = Option<i64>)]
    pub daily_token_limit: Patch<i64>,
    /// USD per calendar month, as a decimal string; null = unlimited.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub monthly_budget_usd: Patch<Decimal>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub features: Patch<Value>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub branding: Patch<Value>,
    #[serde(default)]
    #[schema(value_type = Option<bool>)]
    pub is_active: Patch<bool>,
    /// A PostgreSQL text search configuration for messages: english, indonesian, simple
    /// (the default: no stemming), …
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub search_language: Patch<String>,
}

/// The rule of slugs, as a field error says it.
pub const SLUG_RULE: &str = "must be 3 to 63 lower-case letters, digits and hyphens, starting and ending with a letter or digit";

/// A slug: 3–63 of `[a-z0-9-]`, not starting or ending with a hyphen.
pub fn is_slug(s: &str) -> bool {
    let b = s.as_bytes();
    (3..=63).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
        && s.parse::<Uuid>().is_err()
}

impl TenantInput {
    /// Check every field; on success the fields to store, as a JSON object.
    pub fn check(&self, creating: bool) -> Result<Map<String, Value>, CoreError> {
        let mut c = Checked::new();
        if creating {
            for (name, absent) in [
                ("slug", self.slug.is_absent()),
                ("name", self.name.is_absent()),
            ] {
                if absent {
                    c.errors.push(FieldError::new(name, "is required"));
                }
            }
        }
        c.field("slug", &self.slug, false, |s| {
            (!is_slug(s)).then(|| SLUG_RULE.into())
        });
        c.field("name", &self.name, false, text(200));
        c.field("kind", &self.kind, false, |s| {
            (!["restaurant", "retail", "service", "other"].contains(&s.as_str()))
                .then(|| "must be one of restaurant, retail, service, other".into())
        });
        // The database checks the zone against its own list (tenants_timezone_check).
        c.field("timezone", &self.timezone, false, text(64));
        c.field("locale", &self.locale, false, |s| {
            let ok = s.split('-').enumerate().all(|(i, part)| {
                if i == 0 {
                    (2..=3).contains(&part.len()) && part.bytes().all(|b| b.is_ascii_lowercase())
                } else {
                    (2..=8).contains(&part.len()) && part.bytes().all(|b| b.is_ascii_alphanumeric())
                }
            });
            (!ok).then(|| "must be a language tag such as en or id-ID".into())
        });
        c.field("email", &self.email, true, |s| {
            (!is_email(s)).then(|| "must be an email address".into())
        });
        c.field("phone", &self.phone, true, |s| {
            (!is_e164(s)).then(|| "must be an E.164 number such as +628111234567".into())
        });
        c.field("address", &self.address, true, text(500));
        c.field("website", &self.website, true, |s| {
            (!is_http_url(s)).then(|| "must be an http(s) URL".into())
        });
        c.field("logo_url", &self.logo_url, true, |s| {
            (!is_http_url(s)).then(|| "must be an http(s) URL".into())
        });
        c.field("llm_provider", &self.llm_provider, true, text(100));
        c.field("llm_model", &self.llm_model, true, text(200));
        c.field("llm_temperature", &self.llm_temperature, true, |t| {
            (!(0.0..=2.0).contains(t)).then(|| "must be between 0 and 2".into())
        });
        c.field("llm_max_tokens", &self.llm_max_tokens, true, |n| {
            (!(1..=i64::from(i32::MAX)).contains(n)).then(|| "must be a positive integer".into())
        });
        c.field("system_prompt", &self.system_prompt, true, |s| {
            (s.chars().count() > 100_000).then(|| "must be at most 100000 characters".into())
        });
        c.field(
            "rate_limit_per_minute",
            &self.rate_limit_per_minute,
            true,
            |n| {
                (!(1..=i64::from(i32::MAX)).contains(n))
                    .then(|| "must be a positive integer".into())
            },
        );
        c.field("daily_token_limit", &self.daily_token_limit, true, |n| {
            (*n < 1).then(|| "must be a positive integer".into())
        });
        c.field("monthly_budget_usd", &self.monthly_budget_usd, true, |d| {
            if d.is_sign_negative() {
                Some("must not be negative".into())
            } else if *d >= Decimal::from(100_000_000) {
                Some("must be less than 100000000".into())
            } else {
                None
            }
        });
        c.field("features", &self.features, false, object);
        c.field("branding", &self.branding, false, object);
        c.field("is_active", &self.is_active, false, |_| None);
        c.field("search_language", &self.search_language, false, text(64));
        c.finish()
    }
}

/// Create a tenant; a signed-in user becomes its owner (the operator may name one).
pub async fn create(
    tx: &mut Tx,
    fields: Map<String, Value>,
    owner: Option<Uuid>,
) -> Result<Tenant, CoreError> {
    let id = Uuid::now_v7();
    let row = tx
        .query_one(
            &format!("select {COLUMNS} from app.create_tenant($1, $2, $3)"),
            &[&id, &Value::Object(fields), &owner],
        )
        .await?;
    Ok(Tenant::from_row(&row))
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
    Ok(Tenant::from_row(&row))
}

/// Apply a checked patch: fields absent from it keep their values.
pub async fn update(
    tx: &mut Tx,
    tenant: Uuid,
    fields: Map<String, Value>,
) -> Result<Tenant, CoreError> {
    if fields.is_empty() {
        return get(tx, tenant).await;
    }
    let row = tx
        .query_opt(
            &format!(
                "update app.tenants t set ({COLUMNS}) = (select {COLUMNS} from jsonb_populate_record(t, $2)) \
                 where t.id = $1 returning {COLUMNS}"
            ),
            &[&tenant, &Value::Object(fields)],
        )
        .await?
        .ok_or(CoreError::NotFound)?;
    Ok(Tenant::from_row(&row))
}

/// Delete a tenant and, by cascade, everything it owns.
pub async fn delete(tx: &mut Tx, tenant: Uuid) -> Result<(), CoreError> {
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
            "select (x.tenant).*, x.member_role from app.user_tenants($1, $2) x",
            &[&page.after, &(page.limit + 1)],
        )
        .await?;
    let tenants = rows
        .iter()
        .map(|r| Tenant {
            role: r.get("member_role"),
            ..Tenant::from_row(r)
        })
        .collect();
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
        rows.iter().map(Tenant::from_row).collect(),
        page.limit,
        |t: &Tenant| t.id,
    ))
}
