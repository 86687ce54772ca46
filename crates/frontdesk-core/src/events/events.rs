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
    platform::page::{DEFAULT_LIMIT, MAX_LIMIT, Order, Ordered, Page, Paged},
};

#[derive(Debug, Serialize, ToSchema)]
pub struct Event {
    pub id: Uuid,
    /// The event's place in its tenant's commit order: 1, 2, 3, … Sequence order is the
    /// order the writing transactions committed in, and the order of deliveries.
    pub sequence: i64,
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
            sequence: row.col("sequence")?,
            kind: row.col("type")?,
            subject_id: row.col("subject_id")?,
            data: row.col("data")?,
            actor_user_id: row.col("actor_user_id")?,
            actor_key_id: row.col("actor_key_id")?,
            created_at: row.col("created_at")?,
        })
    }
}

/// A time as `since` and `until` take it: RFC 3339, or a date alone (midnight UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeOrDate(pub DateTime<Utc>);

impl std::str::FromStr for TimeOrDate {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if let Ok(t) = s.parse::<DateTime<Utc>>() {
            return Ok(Self(t));
        }
        match chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
            Ok(day) if s.len() == 10 => Ok(Self(day.and_time(chrono::NaiveTime::MIN).and_utc())),
            _ => Err(format!(
                "{s:?} is neither an RFC 3339 time (2026-12-02T09:30:00Z) nor a date (2026-12-02, read as midnight UTC)"
            )),
        }
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
    /// Only events at or after this time: RFC 3339 (`2026-12-02T09:30:00Z`), or a date
    /// (`2026-12-02`), read as midnight UTC.
    #[serde(default)]
    #[param(value_type = Option<String>, example = "2026-12-02")]
    pub since: Param<TimeOrDate>,
    /// Only events before this time: RFC 3339, or a date, read as midnight UTC.
    #[serde(default)]
    #[param(value_type = Option<String>, example = "2026-12-03T00:00:00Z")]
    pub until: Param<TimeOrDate>,
    /// Only events with a higher sequence than this (a poller passes the last one it saw,
    /// with `order=asc`).
    #[serde(default)]
    #[param(value_type = Option<i64>, minimum = 0)]
    pub after: Param<i64>,
    /// Only events with a lower sequence than this.
    #[serde(default)]
    #[param(value_type = Option<i64>, minimum = 1)]
    pub before: Param<i64>,
    /// desc (the latest first, the default) or asc (in sequence order, as delivered).
    #[serde(default)]
    #[param(value_type = Option<String>, pattern = "^(asc|desc)$")]
    pub order: Param<String>,
    #[serde(default)]
    #[param(value_type = Option<i64>, minimum = 1, maximum = 200)]
    pub limit: Param<i64>,
    /// `next_cursor` of the previous page, with the same `order`.
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
    /// Only sequences above this.
    pub after: Option<i64>,
    /// Only sequences below this.
    pub before: Option<i64>,
    pub order: Order,
}

impl EventQuery {
    /// The filters and the page, checked.
    pub fn parse(&self) -> Result<(EventFilter, Page<i64>), Invalid> {
        let mut e = Invalid::default();
        let time = |t: TimeOrDate| crate::platform::input::timestamp(t.0);
        let (order, page) = Page::<Ordered<i64>>::parse_ordered(
            &mut e,
            &self.limit,
            &self.cursor,
            &self.order,
            DEFAULT_LIMIT,
            MAX_LIMIT,
        );
        let mut filter = EventFilter {
            kind: e.param("type", &self.kind, event_type_filter),
            since: e.param("since", &self.since, time),
            until: e.param("until", &self.until, time),
            after: e.param("after", &self.after, |n| {
                if n >= 0 {
                    Ok(n)
                } else {
                    Err("must be a sequence number, 0 or more".to_owned())
                }
            }),
            before: e.param("before", &self.before, |n| {
                if n >= 1 {
                    Ok(n)
                } else {
                    Err("must be a sequence number, 1 or more".to_owned())
                }
            }),
            order,
        };
        // The cursor narrows the range in the direction of the list.
        if let Some(at) = page.after {
            match order {
                Order::Desc => filter.before = Some(filter.before.map_or(at, |b| b.min(at))),
                Order::Asc => filter.after = Some(filter.after.map_or(at, |a| a.max(at))),
            }
        }
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

/// The tenant's events in sequence order (the latest first unless `order=asc`).
pub async fn list(
    tx: &mut Tx,
    tenant: Uuid,
    filter: &EventFilter,
    page: &Page<i64>,
) -> Result<Paged<Event>, CoreError> {
    let (exact, family) = match filter.kind.as_deref() {
        Some(k) => match k.strip_suffix(".*") {
            Some(f) => (None, Some(format!("{f}."))),
            None => (Some(k.to_owned()), None),
        },
        None => (None, None),
    };
    // Two statements rather than an ORDER BY CASE, so both directions walk the index.
    let direction = filter.order.as_str();
    tx.last();
    let rows = tx
        .query(
            &format!(
                "select id, sequence, type, subject_id, data, actor_user_id, actor_key_id, created_at
                 from app.events
                 where tenant_id = $1 and ($2::bigint is null or sequence > $2)
                   and ($3::bigint is null or sequence < $3)
                   and ($4::text is null or type = $4)
                   and ($5::text is null or starts_with(type, $5))
                   and ($6::timestamptz is null or created_at >= $6)
                   and ($7::timestamptz is null or created_at < $7)
                 order by sequence {direction} limit $8"
            ),
            &[
                &tenant,
                &filter.after,
                &filter.before,
                &exact,
                &family,
                &filter.since,
                &filter.until,
                &(page.limit + 1),
            ],
        )
        .await?;
    let order = filter.order;
    Ok(Paged::from_rows(
        rows.iter().map(Event::from_row).collect::<Result<_, _>>()?,
        page.limit,
        |e: &Event| Ordered {
            order,
            key: e.sequence,
        },
    ))
}
