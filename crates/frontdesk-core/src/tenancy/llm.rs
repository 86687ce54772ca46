//! The model settings a tenant sets as defaults and an assistant may override: one
//! definition of the fields, flattened into both (so their JSON names are the columns').

use frontdesk_pg::RowExt;
use rust_decimal::{Decimal, prelude::ToPrimitive};
use serde::{Deserialize, Serialize};
use tokio_postgres::Row;
use utoipa::ToSchema;

use crate::CoreError;
use crate::platform::{
    input::{Field, Invalid, Patch, text_of},
    values::{PositiveI32, Temperature},
};

/// The LLM settings as stored (null = not set).
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct LlmSettings {
    pub llm_provider: Option<String>,
    pub llm_model: Option<String>,
    pub llm_temperature: Option<f64>,
    pub llm_max_tokens: Option<i32>,
    pub system_prompt: Option<String>,
}

impl LlmSettings {
    /// The columns of the same names.
    pub fn from_row(row: &Row) -> Result<Self, CoreError> {
        Ok(Self {
            llm_provider: row.col("llm_provider")?,
            llm_model: row.col("llm_model")?,
            llm_temperature: row
                .col::<Option<Decimal>>("llm_temperature")?
                .and_then(|d| d.to_f64()),
            llm_max_tokens: row.col("llm_max_tokens")?,
            system_prompt: row.col("system_prompt")?,
        })
    }
}

/// The LLM settings of a tenant or assistant body, as sent (absent = unchanged, null =
/// cleared). Flattened into the wire types of both.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct LlmSettingsInput {
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub llm_provider: Field<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub llm_model: Field<String>,
    /// 0–2.
    #[serde(default)]
    #[schema(value_type = Option<f64>)]
    pub llm_temperature: Field<f64>,
    #[serde(default)]
    #[schema(value_type = Option<i32>)]
    pub llm_max_tokens: Field<i64>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub system_prompt: Field<String>,
}

/// Checked changes to the LLM settings; serialized as the columns they set.
#[derive(Debug, Default, Serialize)]
pub struct LlmSettingsPatch {
    #[serde(skip_serializing_if = "Patch::is_absent")]
    pub llm_provider: Patch<String>,
    #[serde(skip_serializing_if = "Patch::is_absent")]
    pub llm_model: Patch<String>,
    #[serde(skip_serializing_if = "Patch::is_absent")]
    pub llm_temperature: Patch<Temperature>,
    #[serde(skip_serializing_if = "Patch::is_absent")]
    pub llm_max_tokens: Patch<PositiveI32>,
    #[serde(skip_serializing_if = "Patch::is_absent")]
    pub system_prompt: Patch<String>,
}

impl LlmSettingsPatch {
    /// Check the settings of a body, noting each invalid one in `errors`.
    pub fn parse(wire: LlmSettingsInput, errors: &mut Invalid) -> Self {
        Self {
            llm_provider: errors.patch("llm_provider", wire.llm_provider, text_of(100)),
            llm_model: errors.patch("llm_model", wire.llm_model, text_of(200)),
            llm_temperature: errors.patch(
                "llm_temperature",
                wire.llm_temperature,
                Temperature::parse,
            ),
            llm_max_tokens: errors.patch("llm_max_tokens", wire.llm_max_tokens, PositiveI32::parse),
            system_prompt: errors.patch("system_prompt", wire.system_prompt, |s: String| {
                if s.chars().count() > 100_000 {
                    Err("must be at most 100000 characters".to_owned())
                } else {
                    Ok(s)
                }
            }),
        }
    }
}
