//! Assistants: a bot with its channel, model settings, persona and flow.

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
    platform::input::{Columns, Field, Invalid, Patch, Unknown, any, json_object, text_of},
    platform::page::{Page, Paged},
    platform::store::Record,
    tenancy::llm::{LlmSettings, LlmSettingsInput, LlmSettingsPatch},
};

crate::text_enum!(
    /// Where an assistant talks, and a conversation happens.
    pub enum Channel {
        Web = "web",
        Whatsapp = "whatsapp",
        Voice = "voice",
        Sms = "sms",
        Api = "api",
    }
);

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
    pub channel: Channel,
    /// Its own model settings (`llm_*`, `system_prompt`); null ones fall back to the
    /// tenant's (see `effective_llm`).
    #[serde(flatten)]
    pub llm: LlmSettings,
    /// The settings it runs with: its own where set, else the tenant's.
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

fn float(row: &Row, column: &str) -> Result<Option<f64>, CoreError> {
    Ok(row.col::<Option<Decimal>>(column)?.and_then(|d| d.to_f64()))
}

impl Assistant {
    fn from_row(row: &Row) -> Result<Self, CoreError> {
        Ok(Self {
            id: row.col("id")?,
            name: row.col("name")?,
            description: row.col("description")?,
            channel: row.col("channel")?,
            llm: LlmSettings::from_row(row)?,
            effective_llm: EffectiveLlm {
                provider: row.col("eff_provider")?,
                model: row.col("eff_model")?,
                temperature: float(row, "eff_temperature")?,
                max_tokens: row.col("eff_max_tokens")?,
                system_prompt: row.col("eff_system_prompt")?,
            },
            persona: row.col("persona")?,
            settings: row.col("settings")?,
            flow: row.col("flow_key")?,
            one_open_conversation_per_contact: row.col("one_open_conversation_per_contact")?,
            is_active: row.col("is_active")?,
            created_at: row.col("created_at")?,
            updated_at: row.col("updated_at")?,
        })
    }
}

/// The body of `POST …/assistants` (`name` required) and `PATCH …/assistants/{id}`
/// (absent = unchanged, null = cleared).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(example = json!({"name": "ARI", "channel": "whatsapp", "flow": "ari_sales", "llm_model": "gpt-4o-mini", "one_open_conversation_per_contact": true}))]
pub struct AssistantInput {
    #[serde(default)]
    #[schema(value_type = String, required = false)]
    pub name: Field<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub description: Field<String>,
    /// web (default), whatsapp, voice, sms or api.
    #[serde(default)]
    #[schema(value_type = Channel, required = false)]
    pub channel: Field<String>,
    #[serde(flatten)]
    pub llm: LlmSettingsInput,
    #[serde(default)]
    #[schema(value_type = Object, required = false)]
    pub persona: Field<Value>,
    #[serde(default)]
    #[schema(value_type = Object, required = false)]
    pub settings: Field<Value>,
    /// A flow key (default `assistant`). Existing conversations keep the flow they began in.
    #[serde(default)]
    #[schema(value_type = String, required = false)]
    pub flow: Field<String>,
    #[serde(default)]
    #[schema(value_type = bool, required = false)]
    pub one_open_conversation_per_contact: Field<bool>,
    #[serde(default)]
    #[schema(value_type = bool, required = false)]
    pub is_active: Field<bool>,
    #[serde(flatten)]
    #[schema(ignore)]
    pub unknown: Unknown,
}

/// Checked changes to an assistant (absent = unchanged, null = cleared); serialized, the
/// columns they set.
#[derive(Debug, Default, Serialize)]
pub struct AssistantChanges {
    #[serde(skip_serializing_if = "Patch::is_absent")]
    pub name: Patch<String>,
    #[serde(skip_serializing_if = "Patch::is_absent")]
    pub description: Patch<String>,
    #[serde(skip_serializing_if = "Patch::is_absent")]
    pub channel: Patch<Channel>,
    #[serde(flatten)]
    pub llm: LlmSettingsPatch,
    #[serde(skip_serializing_if = "Patch::is_absent")]
    pub persona: Patch<Map<String, Value>>,
    #[serde(skip_serializing_if = "Patch::is_absent")]
    pub settings: Patch<Map<String, Value>>,
    #[serde(rename = "flow_key", skip_serializing_if = "Patch::is_absent")]
    pub flow: Patch<String>,
    #[serde(skip_serializing_if = "Patch::is_absent")]
    pub one_open_conversation_per_contact: Patch<bool>,
    #[serde(skip_serializing_if = "Patch::is_absent")]
    pub is_active: Patch<bool>,
}

impl Columns for AssistantChanges {}

impl TryFrom<AssistantInput> for AssistantChanges {
    type Error = Invalid;

    fn try_from(w: AssistantInput) -> Result<Self, Invalid> {
        let mut e = Invalid::new(w.unknown);
        let changes = Self {
            name: e.patch_not_null("name", w.name, text_of(200)),
            description: e.patch("description", w.description, text_of(2000)),
            channel: e.patch_not_null("channel", w.channel, |s| Channel::parse(&s)),
            llm: LlmSettingsPatch::parse(w.llm, &mut e),
            persona: e.patch_not_null("persona", w.persona, json_object),
            settings: e.patch_not_null("settings", w.settings, json_object),
            flow: e.patch_not_null("flow", w.flow, text_of(63)),
            one_open_conversation_per_contact: e.patch_not_null(
                "one_open_conversation_per_contact",
                w.one_open_conversation_per_contact,
                any,
            ),
            is_active: e.patch_not_null("is_active", w.is_active, any),
        };
        e.finish(changes)
    }
}

/// A checked new assistant: its settings, with a `name`.
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct NewAssistant(AssistantChanges);

impl Columns for NewAssistant {}

impl TryFrom<AssistantInput> for NewAssistant {
    type Error = Invalid;

    fn try_from(w: AssistantInput) -> Result<Self, Invalid> {
        let missing = w.name.is_absent();
        let mut e = match AssistantChanges::try_from(w) {
            Ok(changes) if !missing => return Ok(Self(changes)),
            Ok(_) => Invalid::default(),
            Err(e) => e,
        };
        if missing {
            e.push("name", "is required");
        }
        Err(e)
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
        rows.iter()
            .map(Assistant::from_row)
            .collect::<Result<_, _>>()?,
        page.limit,
        |a: &Assistant| a.id,
    ))
}

impl Record for Assistant {
    const TABLE: &'static str = "assistants";

    fn select_one() -> String {
        format!("{SELECT} where a.tenant_id = $1 and a.id = $2")
    }

    fn from_row(row: &Row) -> Result<Self, CoreError> {
        Assistant::from_row(row)
    }
}
