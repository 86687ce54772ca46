//! The event log: what happened in a tenant, written by the database in the same
//! transaction as the change (`app.emit_event`). Staff and keys read it.

use chrono::{DateTime, Utc};
use frontdesk_pg::RowExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_postgres::Row;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::{
    CoreError, Tx,
    platform::input::{Invalid, Param},
    platform::page::{DEFAULT_LIMIT, MAX_LIMIT, Page, Paged},
};

#[derive(Debug, Serialize, ToSchema)]
pub struct Event {
    pub id: Uuid,
    /// e.g. conversation.created, message.created.
    #[serde(rename = "type")]
    pub kind: String,
    /// The id of what the event is about.
    pub subject_id: Option<Uuid>,
    #[schema(value_type = Object)]
    pub data: Value,
    pub actor_user_id: Option<Uuid>,
    pub actor_key_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

impl Event {
    fn from_row(row: &Row) -> Result<Self, CoreError> {
        Ok(Self {
            id: row.col("id")?,
            kind: row.col("type")?,
            subject_id: row.col("subject_id")?,
            data: row.col("data")?,
            actor_user_id: row.col("actor_user_id")?,
            actor_key_id: row.col("actor_key_id")?,
            created_at: row.col("created_at")?,
        })
    }
}

/// `GET …/events` filters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventQuery {
    /// An exact type (`message.created`) or a family (`conversation.*`).
    #[serde(rename = "type", default)]
    #[param(rename = "type", value_type = Option<String>)]
    pub kind: Param<String>,
    /// Only events at or after this time (RFC 3339).
    #[serde(default)]
    #[param(value_type = Option<DateTime<Utc>>)]
    pub since: Param<DateTime<Utc>>,
    /// Only events before this time (RFC 3339).
    #[serde(default)]
    #[param(value_type = Option<DateTime<Utc>>)]
    pub until: Param<DateTime<Utc>>,
    #[serde(default)]
    #[param(value_type = Option<i64>, minimum = 1, maximum = 200)]
    pub limit: Param<i64>,
    #[serde(default)]
    #[param(value_type = Option<String>)]
    pub cursor: Param<String>,
}

/// Checked `GET …/events` filters.
#[derive(Debug, Default)]
pub struct EventFilter {
    pub kind: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

impl EventQuery {
    /// The filters and the page, checked.
    pub fn parse(&self) -> Result<(EventFilter, Page<Uuid>), Invalid> {
        let mut e = Invalid::default();
        let filter = EventFilter {
            kind: e.param("type", &self.kind, event_type_filter),
            since: e.param("since", &self.since, crate::platform::input::timestamp),
            until: e.param("until", &self.until, crate::platform::input::timestamp),
        };
        let page = Page::parse(&mut e, &self.limit, &self.cursor, DEFAULT_LIMIT, MAX_LIMIT);
        e.finish((filter, page))
    }
}

/// A rule: an exact event type (`message.created`) or a family (`conversation.*`); a
/// family's bare name (`conversation`) is refused with the spelling that filters it.
fn event_type_filter(t: String) -> Result<String, String> {
    if crate::events::webhooks::is_event_type_filter(&t) {
        Ok(t)
    } else if crate::events::webhooks::is_event_type_filter(&format!("{t}.*")) {
        Err(format!(
            "{t:?} names a family of events, not a type: write {t}.* for all of them"
        ))
    } else {
        Err(format!(
            "{t:?} is not an event type (e.g. message.created) or a family (e.g. conversation.*)"
        ))
    }
}

/// The tenant's events, newest first.
pub async fn list(
    tx: &mut Tx,
    tenant: Uuid,
    filter: &EventFilter,
    page: &Page<Uuid>,
) -> Result<Paged<Event>, CoreError> {
    let (exact, family) = match filter.kind.as_deref() {
        Some(k) => match k.strip_suffix(".*") {
            Some(f) => (None, Some(format!("{f}."))),
            None => (Some(k.to_owned()), None),
        },
        None => (None, None),
    };
    tx.last();
    let rows = tx
        .query(
            "select id, type, subject_id, data, actor_user_id, actor_key_id, created_at
             from app.events
             where tenant_id = $1 and ($2::uuid is null or id < $2)
               and ($3::text is null or type = $3)
               and ($4::text is null or starts_with(type, $4))
               and ($5::timestamptz is null or created_at >= $5)
               and ($6::timestamptz is null or created_at < $6)
             order by id desc limit $7",
            &[
                &tenant,
                &page.after,
                &exact,
                &family,
                &filter.since,
                &filter.until,
                &(page.limit + 1),
            ],
        )
        .await?;
    Ok(Paged::from_rows(
        rows.iter().map(Event::from_row).collect::<Result<_, _>>()?,
        page.limit,
        |e: &Event| e.id,
    ))
}
