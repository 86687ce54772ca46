//! Contacts: the business's end customers. Seen and written by staff and API keys only.

use chrono::{DateTime, Utc};
use frontdesk_pg::RowExt;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio_postgres::Row;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::{
    CoreError, Tx,
    platform::input::{Columns, Field, Invalid, Param, Patch, Unknown, any, json_object, text_of},
    platform::page::{DEFAULT_LIMIT, MAX_LIMIT, Page, Paged},
    platform::store::Record,
    platform::values::{E164, Email},
};

#[derive(Debug, Serialize, ToSchema)]
pub struct Contact {
    pub id: Uuid,
    pub name: Option<String>,
    /// E.164, unique per tenant.
    pub phone: Option<String>,
    pub email: Option<String>,
    /// The contact's id on each channel, e.g. `{"whatsapp": "628111234567"}`.
    #[schema(value_type = Object)]
    pub channel_ids: Value,
    /// 0–100.
    pub lead_score: Option<i16>,
    pub lead_temperature: Option<LeadTemperature>,
    #[schema(value_type = Object)]
    pub attributes: Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, name, phone, email, channel_ids, lead_score, lead_temperature, attributes, created_at, updated_at";

impl Contact {
    fn from_row(row: &Row) -> Result<Self, CoreError> {
        Ok(Self {
            id: row.col("id")?,
            name: row.col("name")?,
            phone: row.col("phone")?,
            email: row.col("email")?,
            channel_ids: row.col("channel_ids")?,
            lead_score: row.col("lead_score")?,
            lead_temperature: row.col("lead_temperature")?,
            attributes: row.col("attributes")?,
            created_at: row.col("created_at")?,
            updated_at: row.col("updated_at")?,
        })
    }
}

crate::text_enum!(
    /// How likely a contact is to buy.
    pub enum LeadTemperature {
        Hot = "hot",
        Warm = "warm",
        Cold = "cold",
    }
);

/// The body of `POST …/contacts` and `PATCH …/contacts/{id}`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(example = json!({"name": "Budi", "phone": "+628111234567", "lead_temperature": "warm"}))]
pub struct ContactInput {
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub name: Field<String>,
    /// E.164, e.g. +628111234567.
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = "^\\+[1-9][0-9]{6,14}$")]
    pub phone: Field<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub email: Field<String>,
    #[serde(default)]
    #[schema(value_type = Object, required = false)]
    pub channel_ids: Field<Value>,
    /// 0–100.
    #[serde(default)]
    #[schema(value_type = Option<i16>, minimum = 0, maximum = 100)]
    pub lead_score: Field<i64>,
    /// hot, warm or cold.
    #[serde(default)]
    #[schema(value_type = Option<LeadTemperature>)]
    pub lead_temperature: Field<String>,
    #[serde(default)]
    #[schema(value_type = Object, required = false)]
    pub attributes: Field<Value>,
    #[serde(flatten)]
    #[schema(ignore)]
    pub unknown: Unknown,
}

/// Checked changes to a contact (absent = unchanged, null = cleared); serialized, the
/// columns they set. A new contact is the same with defaults for what is absent.
#[derive(Debug, Default, Serialize)]
pub struct ContactChanges {
    #[serde(skip_serializing_if = "Patch::is_absent")]
    pub name: Patch<String>,
    #[serde(skip_serializing_if = "Patch::is_absent")]
    pub phone: Patch<E164>,
    #[serde(skip_serializing_if = "Patch::is_absent")]
    pub email: Patch<Email>,
    #[serde(skip_serializing_if = "Patch::is_absent")]
    pub channel_ids: Patch<Map<String, Value>>,
    #[serde(skip_serializing_if = "Patch::is_absent")]
    pub lead_score: Patch<i16>,
    #[serde(skip_serializing_if = "Patch::is_absent")]
    pub lead_temperature: Patch<LeadTemperature>,
    #[serde(skip_serializing_if = "Patch::is_absent")]
    pub attributes: Patch<Map<String, Value>>,
}

impl Columns for ContactChanges {}

impl TryFrom<ContactInput> for ContactChanges {
    type Error = Invalid;

    fn try_from(w: ContactInput) -> Result<Self, Invalid> {
        let mut e = Invalid::new(w.unknown);
        let changes = Self {
            name: e.patch("name", w.name, text_of(200)),
            phone: e.patch("phone", w.phone, E164::parse),
            email: e.patch("email", w.email, Email::parse),
            channel_ids: e.patch_not_null("channel_ids", w.channel_ids, |v| {
                let ids = json_object(v)?;
                if ids.values().any(|id| !id.is_string()) {
                    Err("must map channel names to id strings".to_owned())
                } else {
                    Ok(ids)
                }
            }),
            lead_score: e.patch("lead_score", w.lead_score, |n| {
                i16::try_from(n)
                    .ok()
                    .filter(|n| (0..=100).contains(n))
                    .ok_or_else(|| "must be between 0 and 100".to_owned())
            }),
            lead_temperature: e.patch("lead_temperature", w.lead_temperature, |s| {
                LeadTemperature::parse(&s)
            }),
            attributes: e.patch_not_null("attributes", w.attributes, json_object),
        };
        e.finish(changes)
    }
}

/// `GET …/contacts`: paging and an optional search.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ContactQuery {
    /// Matches names containing it (case-insensitive) or phone numbers starting with it.
    #[serde(default)]
    #[param(value_type = Option<String>)]
    pub q: Param<String>,
    #[serde(default)]
    #[param(value_type = Option<i64>, minimum = 1, maximum = 200)]
    pub limit: Param<i64>,
    #[serde(default)]
    #[param(value_type = Option<String>)]
    pub cursor: Param<String>,
}

impl ContactQuery {
    /// The search (if any) and the page, checked.
    pub fn parse(&self) -> Result<(Option<String>, Page<Uuid>), Invalid> {
        let mut e = Invalid::default();
        let q = e.param("q", &self.q, any);
        let page = Page::parse(&mut e, &self.limit, &self.cursor, DEFAULT_LIMIT, MAX_LIMIT);
        e.finish((q, page))
    }
}

/// A LIKE pattern matching `s` literally.
pub fn like_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

pub async fn list(
    tx: &mut Tx,
    tenant: Uuid,
    q: Option<&str>,
    page: &Page<Uuid>,
) -> Result<Paged<Contact>, CoreError> {
    let q = q.map(str::trim).filter(|q| !q.is_empty());
    let name_pattern = q.map(|q| format!("%{}%", like_escape(&q.to_lowercase())));
    let phone_pattern = q.map(|q| format!("{}%", like_escape(&q.replace([' ', '-'], ""))));
    let rows = tx
        .last()
        .query(
            &format!(
                "select {COLUMNS} from app.contacts
                 where tenant_id = $1 and ($2::uuid is null or id < $2)
                   and ($4::text is null or lower(name) like $4 or phone like $5)
                 order by id desc limit $3"
            ),
            &[
                &tenant,
                &page.after,
                &(page.limit + 1),
                &name_pattern,
                &phone_pattern,
            ],
        )
        .await?;
    Ok(Paged::from_rows(
        rows.iter()
            .map(Contact::from_row)
            .collect::<Result<_, _>>()?,
        page.limit,
        |c: &Contact| c.id,
    ))
}

impl Record for Contact {
    const TABLE: &'static str = "contacts";

    fn select_one() -> String {
        format!("select {COLUMNS} from app.contacts where tenant_id = $1 and id = $2")
    }

    fn from_row(row: &Row) -> Result<Self, CoreError> {
        Contact::from_row(row)
    }
}
