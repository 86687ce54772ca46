//! Webhook endpoints and their deliveries. The events themselves are written by the
//! database with each change (`app.emit_event`), and the fan-out trigger queues one
//! delivery per matching endpoint in the same transaction; the delivery workers in the
//! server send them. Owners and admins manage endpoints. A secret is shown once, when it
//! is made (on creation and on rotation).

use base64::{Engine, engine::general_purpose::STANDARD};
use chrono::{DateTime, Utc};
use frontdesk_pg::RowExt;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio_postgres::Row;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::{
    CoreError, Tx,
    platform::input::{Columns, Field, Invalid, Param, Patch, Unknown, any, int32_within},
    platform::page::{DEFAULT_LIMIT, MAX_LIMIT, Page, Paged},
    platform::store::Record,
};

/// A signing secret: `whsec_` and the base64 of 32 random bytes (Standard Webhooks).
pub fn new_secret() -> String {
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    format!("whsec_{}", STANDARD.encode(key))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Endpoint {
    pub id: Uuid,
    pub url: String,
    pub description: Option<String>,
    /// Exact types (`message.created`) or families (`conversation.*`); empty: every type.
    pub event_types: Vec<String>,
    pub enabled: bool,
    /// Why it is disabled: by a request, after a 410, or after failing for too long.
    pub disabled_reason: Option<String>,
    pub disabled_at: Option<DateTime<Utc>>,
    /// The first failed attempt since the last success.
    pub failing_since: Option<DateTime<Utc>>,
    /// Until when the secret before the last rotation still signs (both are sent).
    pub previous_secret_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const ENDPOINT_COLUMNS: &str = "id, url, description, event_types, enabled, disabled_reason, disabled_at, \
    failing_since, previous_secret_until, created_at, updated_at";

impl Endpoint {
    fn from_row(row: &Row) -> Result<Self, CoreError> {
        Ok(Self {
            id: row.col(0)?,
            url: row.col(1)?,
            description: row.col(2)?,
            event_types: row.col(3)?,
            enabled: row.col(4)?,
            disabled_reason: row.col(5)?,
            disabled_at: row.col(6)?,
            failing_since: row.col(7)?,
            previous_secret_until: row.col(8)?,
            created_at: row.col(9)?,
            updated_at: row.col(10)?,
        })
    }
}

/// An endpoint with its secret: the only answers that carry it (creation, rotation).
#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointWithSecret {
    #[serde(flatten)]
    pub endpoint: Endpoint,
    /// `whsec_…`: verify signatures with it. Shown once.
    pub secret: String,
}

/// `POST …/webhook-endpoints` and `PATCH …/webhook-endpoints/{id}`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(example = json!({"url": "https://bot.example.com/hooks/frontdesk",
                          "event_types": ["message.created", "conversation.*"],
                          "description": "the bot runtime"}))]
pub struct EndpointInput {
    /// http or https, at most 2000 characters; must not reach a loopback, private or
    /// link-local address (unless the server allows it).
    #[serde(default)]
    #[schema(value_type = String, required = false, max_length = 2000)]
    pub url: Field<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub description: Field<String>,
    /// Exact types or families (`conversation.*`), at most 50; empty or absent: every type.
    #[serde(default)]
    #[schema(value_type = Vec<String>, required = false, max_items = 50)]
    pub event_types: Field<Vec<String>>,
    #[serde(default)]
    #[schema(value_type = bool, required = false)]
    pub enabled: Field<bool>,
    #[serde(flatten)]
    #[schema(ignore)]
    pub unknown: Unknown,
}

/// Checked changes to an endpoint (absent = unchanged); serialized, the columns they set.
/// The URL's reachability is the server's to check (it resolves the host).
#[derive(Debug, Default, Serialize)]
pub struct EndpointChanges {
    #[serde(skip_serializing_if = "Patch::is_absent")]
    pub url: Patch<String>,
    #[serde(skip_serializing_if = "Patch::is_absent")]
    pub description: Patch<String>,
    #[serde(skip_serializing_if = "Patch::is_absent")]
    pub event_types: Patch<Vec<String>>,
    #[serde(skip_serializing_if = "Patch::is_absent")]
    pub enabled: Patch<bool>,
}

impl Columns for EndpointChanges {}

impl TryFrom<EndpointInput> for EndpointChanges {
    type Error = Invalid;

    fn try_from(w: EndpointInput) -> Result<Self, Invalid> {
        let mut e = Invalid::new(w.unknown);
        let changes = Self {
            url: e.patch_not_null("url", w.url, |u: String| {
                let lower = u.to_ascii_lowercase();
                if !(lower.starts_with("http://") || lower.starts_with("https://"))
                    || u.len() > 2000
                    || u.chars().any(char::is_whitespace)
                {
                    Err("must be an http or https URL of at most 2000 characters".to_owned())
                } else {
                    Ok(u)
                }
            }),
            description: e.patch("description", w.description, |d: String| {
                if d.chars().count() > 500 {
                    Err("must be at most 500 characters".to_owned())
                } else {
                    Ok(d)
                }
            }),
            event_types: e.patch_not_null("event_types", w.event_types, |types: Vec<String>| {
                if types.len() > 50 {
                    return Err("at most 50 types".to_owned());
                }
                match types.iter().find(|t| !is_event_type_filter(t)) {
                    Some(t) => Err(format!(
                        "{t:?} is not an event type (e.g. message.created) or a family (e.g. conversation.*)"
                    )),
                    None => Ok(types),
                }
            }),
            enabled: e.patch_not_null("enabled", w.enabled, any),
        };
        e.finish(changes)
    }
}

/// A checked new endpoint: its settings, with a `url`.
#[derive(Debug)]
pub struct NewEndpoint(pub EndpointChanges);

impl TryFrom<EndpointInput> for NewEndpoint {
    type Error = Invalid;

    fn try_from(w: EndpointInput) -> Result<Self, Invalid> {
        let missing = w.url.is_absent();
        let mut e = match EndpointChanges::try_from(w) {
            Ok(changes) if !missing => return Ok(Self(changes)),
            Ok(_) => Invalid::default(),
            Err(e) => e,
        };
        if missing {
            e.push("url", "is required");
        }
        Err(e)
    }
}

/// Whether an event type filter entry is well formed: `a.b`, `a.b_c`, or a family `a.*`.
pub fn is_event_type_filter(s: &str) -> bool {
    let mut parts = s.split('.').peekable();
    let mut n = 0;
    while let Some(part) = parts.next() {
        n += 1;
        let last = parts.peek().is_none();
        let word = !part.is_empty()
            && part.as_bytes()[0].is_ascii_lowercase()
            && part.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
        if !(word || (last && n > 1 && part == "*")) {
            return false;
        }
    }
    n >= 2 && s.len() <= 100
}

/// Create an endpoint with `secret`.
pub async fn create(
    tx: &mut Tx,
    tenant: Uuid,
    new: &NewEndpoint,
    secret: String,
) -> Result<EndpointWithSecret, CoreError> {
    let mut fields = new.0.columns();
    fields.insert("secret".into(), Value::String(secret.clone()));
    let id = crate::platform::store::create(tx, "webhook_endpoints", tenant, fields).await?;
    Ok(EndpointWithSecret {
        endpoint: Endpoint::get(tx, tenant, id).await?,
        secret,
    })
}

impl Record for Endpoint {
    const TABLE: &'static str = "webhook_endpoints";

    fn select_one() -> String {
        format!(
            "select {ENDPOINT_COLUMNS} from app.webhook_endpoints where tenant_id = $1 and id = $2"
        )
    }

    fn from_row(row: &Row) -> Result<Self, CoreError> {
        Endpoint::from_row(row)
    }
}

pub async fn list(
    tx: &mut Tx,
    tenant: Uuid,
    page: &Page<Uuid>,
) -> Result<Paged<Endpoint>, CoreError> {
    tx.last();
    let rows = tx
        .query(
            &format!(
                "select {ENDPOINT_COLUMNS} from app.webhook_endpoints
                 where tenant_id = $1 and ($2::uuid is null or id > $2) order by id limit $3"
            ),
            &[&tenant, &page.after, &(page.limit + 1)],
        )
        .await?;
    Ok(Paged::from_rows(
        rows.iter()
            .map(Endpoint::from_row)
            .collect::<Result<_, _>>()?,
        page.limit,
        |e: &Endpoint| e.id,
    ))
}

/// Enable an endpoint again (its trigger clears the failure record).
pub async fn enable(tx: &mut Tx, tenant: Uuid, id: Uuid) -> Result<Endpoint, CoreError> {
    let mut fields = Map::new();
    fields.insert("enabled".into(), Value::Bool(true));
    Endpoint::update(tx, tenant, id, fields).await
}

/// `POST …/webhook-endpoints/{id}/rotate-secret`.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct Rotation {
    /// How long the old secret still signs, 0–604800 seconds (default 86400: a day).
    #[serde(default)]
    #[schema(value_type = Option<i64>)]
    pub grace_seconds: Field<i64>,
    #[serde(flatten)]
    #[schema(ignore)]
    pub unknown: Unknown,
}

/// A checked rotation: how long the old secret keeps signing.
#[derive(Debug)]
pub struct SecretRotation {
    pub grace_seconds: i32,
}

impl TryFrom<Rotation> for SecretRotation {
    type Error = Invalid;

    fn try_from(w: Rotation) -> Result<Self, Invalid> {
        let mut e = Invalid::new(w.unknown);
        let grace_seconds = e
            .optional("grace_seconds", w.grace_seconds, int32_within(0..=604_800))
            .unwrap_or(86_400);
        e.finish(Self { grace_seconds })
    }
}

/// Give the endpoint a new secret; the old one keeps signing for the grace period.
pub async fn rotate(
    tx: &mut Tx,
    tenant: Uuid,
    id: Uuid,
    rotation: &SecretRotation,
) -> Result<EndpointWithSecret, CoreError> {
    let grace = rotation.grace_seconds;
    let secret = new_secret();
    let rotated: bool = tx
        .query_one(
            "select app.rotate_webhook_secret($1, $2, make_interval(secs => $3::float8))",
            &[&id, &secret, &f64::from(grace)],
        )
        .await?
        .col(0)?;
    if !rotated {
        return Err(CoreError::NotFound);
    }
    Ok(EndpointWithSecret {
        endpoint: Endpoint::get(tx, tenant, id).await?,
        secret,
    })
}

/// Queue a `webhook.test` event for this endpoint only; the delivery's id.
pub async fn send_test(tx: &mut Tx, id: Uuid) -> Result<Uuid, CoreError> {
    let delivery: Option<Uuid> = tx
        .query_one("select app.send_test_event($1)", &[&id])
        .await?
        .col(0)?;
    delivery.ok_or(CoreError::NotFound)
}

crate::text_enum!(
    /// Where a delivery stands: pending, delivered or failed.
    pub enum DeliveryStatus {
        Pending = "pending",
        Delivered = "delivered",
        Failed = "failed",
    }
);

/// One event for one endpoint.
#[derive(Debug, Serialize, ToSchema)]
pub struct Delivery {
    pub id: Uuid,
    pub endpoint_id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    /// pending, delivered or failed (no attempts left, or the endpoint answered 410).
    pub status: DeliveryStatus,
    pub attempts: i32,
    /// When a pending delivery is attempted next.
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// Every attempt, oldest first (one delivery's answer only; lists leave them out).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt_log: Option<Vec<Attempt>>,
}

/// One attempt to deliver.
#[derive(Debug, Serialize, ToSchema)]
pub struct Attempt {
    pub attempt: i32,
    pub started_at: DateTime<Utc>,
    pub duration_ms: i32,
    /// The endpoint's HTTP status; null when there was no answer (see `error`).
    pub status_code: Option<i32>,
    /// The start of the answer's body (at most 1000 characters).
    pub response_excerpt: Option<String>,
    pub error: Option<String>,
}

const DELIVERY_COLUMNS: &str = "d.id, d.endpoint_id, d.event_id, v.type, d.status, d.attempts, \
    d.next_attempt_at, d.last_attempt_at, d.last_status, d.last_error, d.delivered_at, d.created_at";

impl Delivery {
    fn from_row(row: &Row) -> Result<Self, CoreError> {
        Ok(Self {
            id: row.col(0)?,
            endpoint_id: row.col(1)?,
            event_id: row.col(2)?,
            event_type: row.col(3)?,
            status: row.col(4)?,
            attempts: row.col(5)?,
            next_attempt_at: row.col(6)?,
            last_attempt_at: row.col(7)?,
            last_status: row.col(8)?,
            last_error: row.col(9)?,
            delivered_at: row.col(10)?,
            created_at: row.col(11)?,
            attempt_log: None,
        })
    }
}

/// `GET …/webhook-endpoints/{id}/deliveries`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryQuery {
    /// pending, delivered or failed.
    #[serde(default)]
    #[param(value_type = Option<DeliveryStatus>)]
    pub status: Param<String>,
    #[serde(default)]
    #[param(value_type = Option<i64>, minimum = 1, maximum = 200)]
    pub limit: Param<i64>,
    #[serde(default)]
    #[param(value_type = Option<String>)]
    pub cursor: Param<String>,
}

impl DeliveryQuery {
    /// The status asked for and the page, checked.
    pub fn parse(&self) -> Result<(Option<DeliveryStatus>, Page<Uuid>), Invalid> {
        let mut e = Invalid::default();
        let status = e.param("status", &self.status, |s| DeliveryStatus::parse(&s));
        let page = Page::parse(&mut e, &self.limit, &self.cursor, DEFAULT_LIMIT, MAX_LIMIT);
        e.finish((status, page))
    }
}

/// An endpoint's deliveries, newest first.
pub async fn deliveries(
    tx: &mut Tx,
    tenant: Uuid,
    endpoint: Uuid,
    status: Option<DeliveryStatus>,
    page: &Page<Uuid>,
) -> Result<Paged<Delivery>, CoreError> {
    tx.part(async |tx| Endpoint::get(tx, tenant, endpoint).await)
        .await?;
    tx.last();
    let rows = tx
        .query(
            &format!(
                "select {DELIVERY_COLUMNS} from app.webhook_deliveries d
                 join app.events v on v.tenant_id = d.tenant_id and v.id = d.event_id
                 where d.tenant_id = $1 and d.endpoint_id = $2 and ($3::uuid is null or d.id < $3)
                   and ($4::text is null or d.status = $4)
                 order by d.id desc limit $5"
            ),
            &[&tenant, &endpoint, &page.after, &status, &(page.limit + 1)],
        )
        .await?;
    Ok(Paged::from_rows(
        rows.iter()
            .map(Delivery::from_row)
            .collect::<Result<_, _>>()?,
        page.limit,
        |d: &Delivery| d.id,
    ))
}

/// One delivery with its attempts.
pub async fn delivery(tx: &mut Tx, tenant: Uuid, id: Uuid) -> Result<Delivery, CoreError> {
    let row = tx
        .query_opt(
            &format!(
                "select {DELIVERY_COLUMNS} from app.webhook_deliveries d
                 join app.events v on v.tenant_id = d.tenant_id and v.id = d.event_id
                 where d.tenant_id = $1 and d.id = $2"
            ),
            &[&tenant, &id],
        )
        .await?
        .ok_or(CoreError::NotFound)?;
    let mut delivery = Delivery::from_row(&row)?;
    tx.last();
    let attempts = tx
        .query(
            "select attempt, started_at, duration_ms, status_code, response_excerpt, error
             from app.webhook_attempts where tenant_id = $1 and delivery_id = $2 order by attempt",
            &[&tenant, &id],
        )
        .await?;
    delivery.attempt_log = Some(
        attempts
            .iter()
            .map(|r| {
                Ok(Attempt {
                    attempt: r.col(0)?,
                    started_at: r.col(1)?,
                    duration_ms: r.col(2)?,
                    status_code: r.col(3)?,
                    response_excerpt: r.col(4)?,
                    error: r.col(5)?,
                })
            })
            .collect::<Result<_, CoreError>>()?,
    );
    Ok(delivery)
}

/// Attempt a delivery again now (pending: at once; delivered or failed: queued again).
///
/// Like `send_test`, a SECURITY DEFINER function writes the queue: the caller reads the
/// delivery back in a transaction of its own (on Citus a transaction may not read a
/// tenant's shards as the request role once the owner wrote them).
pub async fn retry(tx: &mut Tx, id: Uuid) -> Result<(), CoreError> {
    let found: bool = tx
        .query_one("select app.retry_delivery($1)", &[&id])
        .await?
        .col(0)?;
    if found {
        Ok(())
    } else {
        Err(CoreError::NotFound)
    }
}
