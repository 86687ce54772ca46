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
    platform::phone::{self, Country, PhoneText},
    platform::store::Record,
    platform::values::{E164, Email},
    tenancy::tenants,
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
    /// A phone number: E.164 (+6281234567890), or as people type it (`0812-3456-7890`,
    /// `+62 812-3456-7890`) when the tenant has a default_country; stored in E.164.
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 40)]
    pub phone: Field<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub email: Field<String>,
    /// The contact's id on each channel (`whatsapp`, `telegram`, `messenger`,
    /// `instagram`, `email`, …): unique per tenant and channel. WhatsApp ids are phone
    /// numbers, stored as the international digits without `+`.
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

/// Checked changes to a contact (absent = unchanged, null = cleared). A new contact is
/// the same with defaults for what is absent. Phone numbers and WhatsApp ids may need the
/// tenant's default country: [`ContactChanges::columns`] normalizes them into the columns
/// to set.
#[derive(Debug, Default)]
pub struct ContactChanges {
    pub name: Patch<String>,
    pub phone: Patch<PhoneText>,
    pub email: Patch<Email>,
    /// channel → id as sent (each id a string, each channel name checked).
    pub channel_ids: Patch<Map<String, Value>>,
    pub lead_score: Patch<i16>,
    pub lead_temperature: Patch<LeadTemperature>,
    pub attributes: Patch<Map<String, Value>>,
}

/// The columns a [`ContactChanges`] sets, normalized.
#[derive(Debug, Default, Serialize)]
struct ContactColumns {
    #[serde(skip_serializing_if = "Patch::is_absent")]
    name: Patch<String>,
    #[serde(skip_serializing_if = "Patch::is_absent")]
    phone: Patch<E164>,
    #[serde(skip_serializing_if = "Patch::is_absent")]
    email: Patch<Email>,
    #[serde(skip_serializing_if = "Patch::is_absent")]
    channel_ids: Patch<Map<String, Value>>,
    #[serde(skip_serializing_if = "Patch::is_absent")]
    lead_score: Patch<i16>,
    #[serde(skip_serializing_if = "Patch::is_absent")]
    lead_temperature: Patch<LeadTemperature>,
    #[serde(skip_serializing_if = "Patch::is_absent")]
    attributes: Patch<Map<String, Value>>,
}

impl Columns for ContactColumns {}

/// At most this many channels per contact.
const MAX_CHANNELS: usize = 20;

fn channel_ids(v: Value) -> Result<Map<String, Value>, String> {
    let ids = json_object(v)?;
    if ids.len() > MAX_CHANNELS {
        return Err(format!("must name at most {MAX_CHANNELS} channels"));
    }
    for (channel, id) in &ids {
        phone::channel_name(channel)?;
        if !id.is_string() {
            return Err("must map channel names to id strings".to_owned());
        }
    }
    Ok(ids)
}

impl TryFrom<ContactInput> for ContactChanges {
    type Error = Invalid;

    fn try_from(w: ContactInput) -> Result<Self, Invalid> {
        let mut e = Invalid::new(w.unknown);
        let changes = Self {
            name: e.patch("name", w.name, text_of(200)),
            phone: e.patch("phone", w.phone, PhoneText::parse),
            email: e.patch("email", w.email, Email::parse),
            channel_ids: e.patch_not_null("channel_ids", w.channel_ids, channel_ids),
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

impl ContactChanges {
    /// Whether a number or id in it is written without a country code.
    pub fn needs_country(&self) -> bool {
        self.phone.value().is_some_and(|p| !p.is_e164())
            || self.channel_ids.value().is_some_and(|ids| {
                ids.iter().any(|(channel, id)| {
                    phone::channel_id_needs_country(channel, id.as_str().unwrap_or_default())
                })
            })
    }

    /// The columns to set: the phone number in E.164 and the channel ids as stored
    /// (`phone::channel_id`), read with the tenant's default `country`.
    pub fn columns(self, country: Option<Country>) -> Result<Map<String, Value>, Invalid> {
        let mut e = Invalid::default();
        let phone = match self.phone {
            Patch::Value(p) => match p.normalize(country) {
                Ok(n) => Patch::Value(n),
                Err(message) => {
                    e.push("phone", message);
                    Patch::Absent
                }
            },
            Patch::Null => Patch::Null,
            Patch::Absent => Patch::Absent,
        };
        let channel_ids = match self.channel_ids {
            Patch::Value(ids) => {
                let mut stored = Map::new();
                for (channel, id) in ids {
                    match phone::channel_id(&channel, id.as_str().unwrap_or_default(), country) {
                        Ok(id) => {
                            stored.insert(channel, Value::String(id));
                        }
                        Err(message) => e.push(format!("channel_ids.{channel}"), message),
                    }
                }
                Patch::Value(stored)
            }
            other => other,
        };
        let columns = ContactColumns {
            name: self.name,
            phone,
            email: self.email,
            channel_ids,
            lead_score: self.lead_score,
            lead_temperature: self.lead_temperature,
            attributes: self.attributes,
        };
        e.finish(columns.columns())
    }
}

/// The columns `changes` sets in `tenant`, reading the tenant's default country only when
/// a number needs it.
async fn columns_in(
    tx: &mut Tx,
    tenant: Uuid,
    changes: ContactChanges,
) -> Result<Map<String, Value>, CoreError> {
    let country = if changes.needs_country() {
        tenants::default_country(tx, tenant).await?
    } else {
        None
    };
    Ok(changes.columns(country)?)
}

/// `POST …/contacts`.
pub async fn create(
    tx: &mut Tx,
    tenant: Uuid,
    changes: ContactChanges,
) -> Result<Contact, CoreError> {
    let columns = columns_in(tx, tenant, changes).await?;
    Contact::create(tx, tenant, columns).await
}

/// `PATCH …/contacts/{id}`.
pub async fn update(
    tx: &mut Tx,
    tenant: Uuid,
    id: Uuid,
    changes: ContactChanges,
) -> Result<Contact, CoreError> {
    let columns = columns_in(tx, tenant, changes).await?;
    Contact::update(tx, tenant, id, columns).await
}

/// `GET …/contacts`: paging and an optional search.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ContactQuery {
    /// Matches names containing it (case-insensitive), phone numbers starting with it, or
    /// channel ids starting with it.
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
    // Channel ids by their start: as typed (case-insensitive), and WhatsApp's digits.
    let id_pattern = q.map(|q| format!("{}%", like_escape(&q.to_lowercase())));
    let digits_pattern = q.map(|q| {
        format!(
            "{}%",
            like_escape(&q.replace([' ', '-', '+', '(', ')'], ""))
        )
    });
    let rows = tx
        .last()
        .query(
            &format!(
                "select {COLUMNS} from app.contacts c
                 where c.tenant_id = $1 and ($2::uuid is null or c.id < $2)
                   and ($4::text is null or lower(c.name) like $4 or c.phone like $5
                        or exists (select 1 from app.contact_channels ch
                                    where ch.tenant_id = $1 and ch.contact_id = c.id
                                      and (lower(ch.external_id) like $6 or ch.external_id like $7)))
                 order by c.id desc limit $3"
            ),
            &[
                &tenant,
                &page.after,
                &(page.limit + 1),
                &name_pattern,
                &phone_pattern,
                &id_pattern,
                &digits_pattern,
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

/// `GET …/contacts/lookup`: one contact by its id on a channel, or by phone number.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LookupQuery {
    /// With `id`: the channel (`whatsapp`, `telegram`, `email`, …).
    #[serde(default)]
    #[param(value_type = Option<String>)]
    pub channel: Param<String>,
    /// With `channel`: the contact's id on it (WhatsApp ids as phone numbers in any form).
    #[serde(default)]
    #[param(value_type = Option<String>)]
    pub id: Param<String>,
    /// Instead of `channel` and `id`: a phone number in any form the contact's `phone`
    /// accepts.
    #[serde(default)]
    #[param(value_type = Option<String>)]
    pub phone: Param<String>,
}

/// What a lookup looks for, checked (the numbers not yet read in the tenant's country).
#[derive(Debug)]
pub enum LookupKey {
    Channel { channel: String, id: String },
    Phone(PhoneText),
}

impl LookupQuery {
    pub fn parse(&self) -> Result<LookupKey, Invalid> {
        let mut e = Invalid::default();
        let channel = e.param("channel", &self.channel, |c: String| {
            phone::channel_name(&c).map(|()| c)
        });
        let id = e.param("id", &self.id, any);
        let phone = e.param("phone", &self.phone, PhoneText::parse);
        let by_channel = !self.channel.is_absent() || !self.id.is_absent();
        if by_channel && !self.phone.is_absent() {
            e.push("phone", "give either phone, or channel and id");
        } else if !by_channel && self.phone.is_absent() {
            e.push("phone", "give phone, or channel and id");
        } else if by_channel && self.channel.is_absent() {
            e.push("channel", "is required with id");
        } else if by_channel && self.id.is_absent() {
            e.push("id", "is required with channel");
        }
        let key = match (channel, id, phone) {
            (Some(channel), Some(id), None) => Some(LookupKey::Channel { channel, id }),
            (None, None, Some(phone)) => Some(LookupKey::Phone(phone)),
            _ => None,
        };
        match key {
            Some(key) => e.finish(key),
            None => {
                if e.is_empty() {
                    e.push("phone", "give phone, or channel and id");
                }
                Err(e)
            }
        }
    }
}

/// The contact holding `id` on `channel`, if any.
async fn by_channel(
    tx: &mut Tx,
    tenant: Uuid,
    channel: &str,
    id: &str,
) -> Result<Option<Contact>, CoreError> {
    let row = tx
        .query_opt(
            &format!(
                "select {COLUMNS} from app.contact_channels ch
                 join app.contacts c on c.tenant_id = ch.tenant_id and c.id = ch.contact_id
                 where ch.tenant_id = $1 and ch.channel = $2 and ch.external_id = $3"
            ),
            &[&tenant, &channel, &id],
        )
        .await?;
    row.as_ref().map(Contact::from_row).transpose()
}

/// The id on `channel` as stored, read with the tenant's default country if it needs one;
/// a field error on `field` otherwise.
async fn stored_channel_id(
    tx: &mut Tx,
    tenant: Uuid,
    channel: &str,
    id: &str,
    field: &str,
) -> Result<String, CoreError> {
    let country = if phone::channel_id_needs_country(channel, id) {
        tenants::default_country(tx, tenant).await?
    } else {
        None
    };
    phone::channel_id(channel, id, country).map_err(|message| CoreError::invalid(field, &message))
}

/// `GET …/contacts/lookup`: the contact, or NotFound.
pub async fn lookup(tx: &mut Tx, tenant: Uuid, key: &LookupKey) -> Result<Contact, CoreError> {
    match key {
        LookupKey::Channel { channel, id } => {
            let id = stored_channel_id(tx, tenant, channel, id, "id").await?;
            tx.last();
            by_channel(tx, tenant, channel, &id)
                .await?
                .ok_or(CoreError::NotFound)
        }
        LookupKey::Phone(phone) => {
            let country = if phone.is_e164() {
                None
            } else {
                tenants::default_country(tx, tenant).await?
            };
            let phone = phone
                .normalize(country)
                .map_err(|message| CoreError::invalid("phone", &message))?;
            let row = tx
                .last()
                .query_opt(
                    &format!(
                        "select {COLUMNS} from app.contacts where tenant_id = $1 and phone = $2"
                    ),
                    &[&tenant, &phone.as_str()],
                )
                .await?
                .ok_or(CoreError::NotFound)?;
            Contact::from_row(&row)
        }
    }
}

/// `PUT …/contacts/by-channel/{channel}/{id}`: the contact holding `id` on `channel`
/// with `changes` applied, or a new contact with them and that id. True when it was
/// created.
///
/// Safe under parallel calls for the same id: the database lets one contact hold it
/// (contact_channels_external_id_key); a call that loses the race to create rolls its
/// insert back to a savepoint and updates the winner's contact instead.
pub async fn upsert_by_channel(
    tx: &mut Tx,
    tenant: Uuid,
    channel: &str,
    id: &str,
    mut changes: ContactChanges,
) -> Result<(Contact, bool), CoreError> {
    phone::channel_name(channel).map_err(|message| CoreError::invalid("channel", &message))?;
    let id = stored_channel_id(tx, tenant, channel, id, "id").await?;
    let country = if changes.needs_country() {
        tenants::default_country(tx, tenant).await?
    } else {
        None
    };
    // The body's channel_ids (if any) must agree with the path, which joins them.
    if let Patch::Value(ids) = &mut changes.channel_ids {
        if let Some(given) = ids.get(channel) {
            let same = phone::channel_id(channel, given.as_str().unwrap_or_default(), country)
                .is_ok_and(|given| given == id);
            if !same {
                return Err(CoreError::invalid(
                    &format!("channel_ids.{channel}"),
                    "differs from the id in the path",
                ));
            }
        }
        ids.insert(channel.to_owned(), Value::String(id.clone()));
    }
    let update = changes.columns(country)?;
    if let Some(existing) = by_channel(tx, tenant, channel, &id).await? {
        let contact = Contact::update(tx, tenant, existing.id, update).await?;
        return Ok((contact, false));
    }
    let mut create = update.clone();
    let ids = create
        .entry("channel_ids")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(ids) = ids {
        ids.insert(channel.to_owned(), Value::String(id.clone()));
    }
    tx.execute("savepoint contact_by_channel", &[]).await?;
    // (The insert fails before the read that may carry the COMMIT is sent.)
    match Contact::create(tx, tenant, create).await {
        Ok(contact) => Ok((contact, true)),
        Err(conflict @ CoreError::Conflict { .. }) => {
            // Another call created it meanwhile (it committed: the unique check waited
            // for it), or the body's phone or ids belong to another contact.
            tx.execute("rollback to savepoint contact_by_channel", &[])
                .await?;
            match by_channel(tx, tenant, channel, &id).await? {
                Some(existing) => {
                    let contact = Contact::update(tx, tenant, existing.id, update).await?;
                    Ok((contact, false))
                }
                None => Err(conflict),
            }
        }
        Err(other) => Err(other),
    }
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
