//! Assistants: a bot with its channel, model settings, persona and flow.

use chrono::{DateTime, Utc};
use rust_decimal::{Decimal, prelude::ToPrimitive};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio_postgres::Row;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    CoreError, Tx,
    platform::input::{Checked, Patch, object, text},
    platform::page::{Page, Paged},
    platform::store::Record,
};

pub const CHANNELS: [&str; 5] = ["web", "whatsapp", "voice", "sms", "api"];
pub const CHANNEL_RULE: &str = "must be one of web, whatsapp, voice, sms, api";

/// The model settings an assistant runs with: its own, else the tenant's.
#[derive(Debug, Serialize, ToSchema)]
pub struct EffectiveLlm {
    pub provider: Option<String>,
    pub model: Option<String>,
    pub temperature: Option<f64>,
    pub max_tokens: Option<i32>,
    pub system_prompt: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Assistant {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    /// web, whatsapp, voice, sms or api.
    pub channel: String,
    /// Null fields fall back to the tenant's settings (see `effective_llm`).
    pub llm_provider: Option<String>,
    pub llm_model: Option<String>,
    pub llm_temperature: Option<f64>,
    pub llm_max_tokens: Option<i32>,
    pub system_prompt: Option<String>,
    pub effective_llm: EffectiveLlm,
    #[schema(value_type = Object)]
    pub persona: Value,
    #[schema(value_type = Object)]
    pub settings: Value,
    /// The key of the flow its conversations follow.
    pub flow: String,
    /// A contact has at most one open conversation with this assistant (ARI's rule).
    pub one_open_conversation_per_contact: bool,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn float(row: &Row, column: &str) -> Option<f64> {
    row.get::<_, Option<Decimal>>(column)
        .and_then(|d| d.to_f64())
}

impl Assistant {
    fn from_row(row: &Row) -> Self {
        Self {
            id: row.get("id"),
            name: row.get("name"),
            description: row.get("description"),
            channel: row.get("channel"),
            llm_provider: row.get("llm_provider"),
            llm_model: row.get("llm_model"),
            llm_temperature: float(row, "llm_temperature"),
            llm_max_tokens: row.get("llm_max_tokens"),
            system_prompt: row.get("system_prompt"),
            effective_llm: EffectiveLlm {
                provider: row.get("eff_provider"),
                model: row.get("eff_model"),
                temperature: float(row, "eff_temperature"),
                max_tokens: row.get("eff_max_tokens"),
                system_prompt: row.get("eff_system_prompt"),
            },
            persona: row.get("persona"),
            settings: row.get("settings"),
            flow: row.get("flow_key"),
            one_open_conversation_per_contact: row.get("one_open_conversation_per_contact"),
            is_active: row.get("is_active"),
            created_at: row.get("created_at"),
            updated_at: row.get("updated_at"),
        }
    }
}

/// The body of `POST …/assistants` (`name` required) and `PATCH …/assistants/{id}`
/// (absent = unchanged, null = cleared).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "ARI", "channel": "whatsapp", "flow": "ari_sales", "llm_model": "gpt-4o-mini", "one_open_conversation_per_contact": true}))]
pub struct AssistantInput {
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub name: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub description: Patch<String>,
    /// web (default), whatsapp, voice, sms or api.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub channel: Patch<String>,
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
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub persona: Patch<Value>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub settings: Patch<Value>,
    /// A flow key (default `assistant`). Existing conversations keep the flow they began in.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub flow: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<bool>)]
    pub one_open_conversation_per_contact: Patch<bool>,
    #[serde(default)]
    #[schema(value_type = Option<bool>)]
    pub is_active: Patch<bool>,
}

impl AssistantInput {
    /// Check every field; the columns to store, as a JSON object.
    pub fn check(&self, creating: bool) -> Result<Map<String, Value>, CoreError> {
        let mut c = Checked::new();
        if creating {
            c.require("name", &self.name);
        }
        c.field("name", &self.name, false, text(200));
        c.field("description", &self.description, true, text(2000));
        c.field("channel", &self.channel, false, |s| {
            (!CHANNELS.contains(&s.as_str())).then(|| CHANNEL_RULE.into())
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
        c.field("persona", &self.persona, false, object);
        c.field("settings", &self.settings, false, object);
        c.field("flow_key", &self.flow, false, text(63));
        if let Some(e) = c.errors.iter_mut().find(|e| e.field == "flow_key") {
            e.field = "flow".into();
        }
        c.field(
            "one_open_conversation_per_contact",
            &self.one_open_conversation_per_contact,
            false,
            |_| None,
        );
        c.field("is_active", &self.is_active, false, |_| None);
        c.finish()
    }
}

const SELECT: &str = "select a.id, a.name, a.description, a.channel, a.llm_provider, a.llm_model,
        a.llm_temperature, a.llm_max_tokens, a.system_prompt, a.persona, a.settings, a.flow_key,
        a.one_open_conversation_per_contact, a.is_active, a.created_at, a.updated_at,
        coalesce(a.llm_provider, t.llm_provider) as eff_provider,
        coalesce(a.llm_model, t.llm_model) as eff_model,
        coalesce(a.llm_temperature, t.llm_temperature) as eff_temperature,
        coalesce(a.llm_max_tokens, t.llm_max_tokens) as eff_max_tokens,
        coalesce(a.system_prompt, t.system_prompt) as eff_system_prompt
    from app.assistants a join app.tenants t on t.id = a.tenant_id";

pub async fn list(
    tx: &mut Tx,
    tenant: Uuid,
    page: &Page<Uuid>,
) -> Result<Paged<Assistant>, CoreError> {
    let rows = tx
        .last()
        .query(
            &format!(
                "{SELECT} where a.tenant_id = $1 and ($2::uuid is null or a.id < $2) order by a.id desc limit $3"
            ),
            &[&tenant, &page.after, &(page.limit + 1)],
        )
        .await?;
    Ok(Paged::from_rows(
        rows.iter().map(Assistant::from_row).collect(),
        page.limit,
        |a: &Assistant| a.id,
    ))
}

impl Record for Assistant {
    const TABLE: &'static str = "assistants";

    async fn get(tx: &mut Tx, tenant: Uuid, id: Uuid) -> Result<Self, CoreError> {
        let row = tx
            .last()
            .query_opt(
                &format!("{SELECT} where a.tenant_id = $1 and a.id = $2"),
                &[&tenant, &id],
            )
            .await?
            .ok_or(CoreError::NotFound)?;
        Ok(Self::from_row(&row))
    }
}
