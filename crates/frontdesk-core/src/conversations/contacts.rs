//! Contacts: the business's end customers. Seen and written by staff and API keys only.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio_postgres::Row;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::{
    CoreError, Tx,
    platform::input::{Checked, Patch, is_e164, is_email, object, text, within},
    platform::page::{Page, PageQuery, Paged},
    platform::store::Record,
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
    /// hot, warm or cold.
    pub lead_temperature: Option<String>,
    #[schema(value_type = Object)]
    pub attributes: Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, name, phone, email, channel_ids, lead_score, lead_temperature, attributes, created_at, updated_at";

impl Contact {
    fn from_row(row: &Row) -> Self {
        Self {
            id: row.get("id"),
            name: row.get("name"),
            phone: row.get("phone"),
            email: row.get("email"),
            channel_ids: row.get("channel_ids"),
            lead_score: row.get("lead_score"),
            lead_temperature: row.get("lead_temperature"),
            attributes: row.get("attributes"),
            created_at: row.get("created_at"),
            updated_at: row.get("updated_at"),
        }
    }
}

/// The body of `POST …/contacts` and `PATCH …/contacts/{id}`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Budi", "phone": "+628111234567", "lead_temperature": "warm"}))]
pub struct ContactInput {
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub name: Patch<String>,
    /// E.164, e.g. +628111234567.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub phone: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub email: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub channel_ids: Patch<Value>,
    /// 0–100.
    #[serde(default)]
    #[schema(value_type = Option<i16>)]
    pub lead_score: Patch<i64>,
    /// hot, warm or cold.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub lead_temperature: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub attributes: Patch<Value>,
}

impl ContactInput {
    pub fn check(&self) -> Result<Map<String, Value>, CoreError> {
        let mut c = Checked::new();
        c.field("name", &self.name, true, text(200));
        c.field("phone", &self.phone, true, |s| {
            (!is_e164(s)).then(|| "must be an E.164 number such as +628111234567".into())
        });
        c.field("email", &self.email, true, |s| {
            (!is_email(s)).then(|| "must be an email address".into())
        });
        c.field("channel_ids", &self.channel_ids, false, |v| {
            object(v).or_else(|| {
                v.as_object()
                    .is_some_and(|m| m.values().any(|id| !id.is_string()))
                    .then(|| "must map channel names to id strings".into())
            })
        });
        c.field("lead_score", &self.lead_score, true, within(0..=100));
        c.field("lead_temperature", &self.lead_temperature, true, |s| {
            (!["hot", "warm", "cold"].contains(&s.as_str()))
                .then(|| "must be one of hot, warm, cold".into())
        });
        c.field("attributes", &self.attributes, false, object);
        c.finish()
    }
}

/// `GET …/contacts`: paging and an optional search.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ContactQuery {
    /// Matches names containing it (case-insensitive) or phone numbers starting with it.
    pub q: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

impl ContactQuery {
    pub fn page(&self) -> Result<Page<Uuid>, CoreError> {
        PageQuery {
            limit: self.limit,
            cursor: self.cursor.clone(),
        }
        .parse()
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
        rows.iter().map(Contact::from_row).collect(),
        page.limit,
        |c: &Contact| c.id,
    ))
}

impl Record for Contact {
    const TABLE: &'static str = "contacts";

    async fn get(tx: &mut Tx, tenant: Uuid, id: Uuid) -> Result<Self, CoreError> {
        let row = tx
            .last()
            .query_opt(
                &format!("select {COLUMNS} from app.contacts where tenant_id = $1 and id = $2"),
                &[&tenant, &id],
            )
            .await?
            .ok_or(CoreError::NotFound)?;
        Ok(Self::from_row(&row))
    }
}
