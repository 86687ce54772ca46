//! Analytics over the daily rollups (never the messages): provider usage, daily message
//! volume, the top users or assistants by cost, and feedback by assistant or model. Periods are the tenant's days; a
//! member sees only their own usage (the rollups' row policy), staff the tenant's.

use chrono::{DateTime, Utc};
use frontdesk_pg::RowExt;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use tokio_postgres::Row;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::{
    CoreError, Tx,
    platform::input::{Invalid, Param, any},
    usage::period::{self, FilterQuery, PeriodQuery, Selection},
    usage::usage::{UnpricedModel, Usage, UsageEvent},
};

/// An answer of analytics: rows that are sent as JSON, or as CSV with `columns`.
pub trait Table: Serialize {
    /// The CSV's columns, each the name of a field of the rows' JSON.
    fn columns(&self) -> &'static [&'static str];
    /// How many rows.
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The rows as JSON values, for CSV (by default: the table's JSON, an array).
    fn rows(&self) -> Result<Vec<serde_json::Value>, serde_json::Error> {
        match serde_json::to_value(self)? {
            serde_json::Value::Array(rows) => Ok(rows),
            other => Ok(vec![other]),
        }
    }
    /// Where the next page starts, for a table that is a page.
    fn next_cursor(&self) -> Option<&str> {
        None
    }
}

/// One row of an analytics table, with the table's columns.
pub trait TableRow: Serialize {
    const COLUMNS: &'static [&'static str];
}

impl<T: TableRow> Table for Vec<T> {
    fn columns(&self) -> &'static [&'static str] {
        T::COLUMNS
    }

    fn len(&self) -> usize {
        Vec::len(self)
    }
}

/// One row answered as a JSON object, or as CSV of one line (`GET /usage/today`).
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct One<T>(pub T);

impl<T: TableRow> Table for One<T> {
    fn columns(&self) -> &'static [&'static str] {
        T::COLUMNS
    }

    fn len(&self) -> usize {
        1
    }

    fn rows(&self) -> Result<Vec<serde_json::Value>, serde_json::Error> {
        Ok(vec![serde_json::to_value(&self.0)?])
    }
}

/// A page: its rows as CSV, its `next_cursor` in a header.
impl<T: TableRow> Table for crate::platform::page::Paged<T> {
    fn columns(&self) -> &'static [&'static str] {
        T::COLUMNS
    }

    fn len(&self) -> usize {
        self.data.len()
    }

    fn rows(&self) -> Result<Vec<serde_json::Value>, serde_json::Error> {
        self.data.iter().map(serde_json::to_value).collect()
    }

    fn next_cursor(&self) -> Option<&str> {
        self.next_cursor.as_deref()
    }
}

impl TableRow for Usage {
    const COLUMNS: &'static [&'static str] = &[
        "period",
        "request_count",
        "message_count",
        "user_messages",
        "assistant_messages",
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "cost_usd",
        "unpriced_count",
    ];
}

impl TableRow for UsageEvent {
    const COLUMNS: &'static [&'static str] = &[
        "id",
        "user_id",
        "assistant_id",
        "conversation_id",
        "provider",
        "model",
        "prompt_tokens",
        "completion_tokens",
        "cached_tokens",
        "reasoning_tokens",
        "unit",
        "quantity",
        "unit_price_usd",
        "cost_usd",
        "cost_source",
        "priced_model",
        "over_limit",
        "metadata",
        "created_at",
    ];
}

impl TableRow for UnpricedModel {
    const COLUMNS: &'static [&'static str] = &[
        "provider",
        "model",
        "unpriced_count",
        "first_day",
        "last_day",
    ];
}

/// Usage of one provider's model over the period.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderUsage {
    pub provider: Option<String>,
    pub model: Option<String>,
    pub request_count: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub total_tokens: i64,
    #[schema(value_type = String)]
    pub cost_usd: Decimal,
    /// Mean latency of the messages that reported one.
    pub avg_latency_ms: Option<f64>,
    pub first_used_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
}

impl TableRow for ProviderUsage {
    const COLUMNS: &'static [&'static str] = &[
        "provider",
        "model",
        "request_count",
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "cost_usd",
        "avg_latency_ms",
        "first_used_at",
        "last_used_at",
    ];
}

pub async fn providers(
    tx: &mut Tx,
    tenant: Uuid,
    q: &Selection,
) -> Result<Vec<ProviderUsage>, CoreError> {
    tx.last();
    let rows = tx
        .query(
            &format!(
                "select provider, model, sum(request_count)::bigint as requests,
                        sum(prompt_tokens)::bigint as prompt, sum(completion_tokens)::bigint as completion,
                        sum(cost_usd) as cost,
                        (sum(latency_ms_sum)::float8 / nullif(sum(latency_count), 0)) as latency,
                        min(first_at) as first_at, max(last_at) as last_at
                 from app.usage_daily u
                 where u.tenant_id = $1 and {in_period} and {filtered} and u.request_count > 0
                 group by provider, model order by cost desc, requests desc, provider, model",
                in_period = period::in_days("u"),
                filtered = period::filtered("u"),
            ),
            &q.params(&tenant),
        )
        .await?;
    rows.iter()
        .map(|r: &Row| {
            let prompt: i64 = r.col("prompt")?;
            let completion: i64 = r.col("completion")?;
            Ok(ProviderUsage {
                provider: r.col("provider")?,
                model: r.col("model")?,
                request_count: r.col("requests")?,
                prompt_tokens: prompt,
                completion_tokens: completion,
                total_tokens: prompt + completion,
                cost_usd: r.col::<Decimal>("cost")?.normalize(),
                avg_latency_ms: r.col("latency")?,
                first_used_at: r.col("first_at")?,
                last_used_at: r.col("last_at")?,
            })
        })
        .collect::<Result<_, CoreError>>()
}

/// Messages of one day and user.
#[derive(Debug, Serialize, ToSchema)]
pub struct DailyMessages {
    /// `YYYY-MM-DD`, the tenant's day.
    pub day: String,
    /// The conversation owner; null for contacts' conversations.
    pub user_id: Option<Uuid>,
    pub message_count: i64,
    pub user_messages: i64,
    pub assistant_messages: i64,
    pub total_tokens: i64,
    #[schema(value_type = String)]
    pub cost_usd: Decimal,
}

impl TableRow for DailyMessages {
    const COLUMNS: &'static [&'static str] = &[
        "day",
        "user_id",
        "message_count",
        "user_messages",
        "assistant_messages",
        "total_tokens",
        "cost_usd",
    ];
}

pub async fn daily_messages(
    tx: &mut Tx,
    tenant: Uuid,
    q: &Selection,
) -> Result<Vec<DailyMessages>, CoreError> {
    tx.last();
    let rows = tx
        .query(
            &format!(
                "select to_char(day, 'YYYY-MM-DD') as day, user_id, sum(message_count)::bigint as messages,
                        sum(user_messages)::bigint as from_users, sum(assistant_messages)::bigint as from_assistants,
                        sum(total_tokens)::bigint as tokens, sum(cost_usd) as cost
                 from app.usage_daily u
                 where u.tenant_id = $1 and {in_period} and {filtered} and u.message_count > 0
                 group by day, user_id order by day, user_id nulls first",
                in_period = period::in_days("u"),
                filtered = period::filtered("u"),
            ),
            &q.params(&tenant),
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(DailyMessages {
                day: r.col("day")?,
                user_id: r.col("user_id")?,
                message_count: r.col("messages")?,
                user_messages: r.col("from_users")?,
                assistant_messages: r.col("from_assistants")?,
                total_tokens: r.col("tokens")?,
                cost_usd: r.col::<Decimal>("cost")?.normalize(),
            })
        })
        .collect::<Result<_, CoreError>>()
}

/// `GET …/analytics/top`: who spent most.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TopQuery {
    /// users, assistants, contacts or conversations.
    #[serde(default)]
    #[param(value_type = String, required = true, example = "users",
            pattern = "^(users|assistants|contacts|conversations)$")]
    pub by: Param<String>,
    /// 1–100 (default 10).
    #[serde(default)]
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    pub limit: Param<i64>,
}

/// What `top` groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TopBy {
    Users,
    Assistants,
    Contacts,
    Conversations,
}

/// A checked `GET …/analytics/top`.
#[derive(Debug)]
pub struct Top {
    by: TopBy,
    limit: i64,
    selection: Selection,
}

impl TopQuery {
    pub fn parse(&self, period: &PeriodQuery, filters: &FilterQuery) -> Result<Top, Invalid> {
        let mut e = Invalid::default();
        let by = e.required_param("by", &self.by, |by| match by.as_str() {
            "users" => Ok(TopBy::Users),
            "assistants" => Ok(TopBy::Assistants),
            "contacts" => Ok(TopBy::Contacts),
            "conversations" => Ok(TopBy::Conversations),
            _ => Err("must be users, assistants, contacts or conversations".to_owned()),
        });
        let limit = e
            .param("limit", &self.limit, |n| {
                if (1..=100).contains(&n) {
                    Ok(n)
                } else {
                    Err("must be between 1 and 100".to_owned())
                }
            })
            .unwrap_or(10);
        let selection = Selection {
            period: period.check(&mut e),
            filters: filters.check(&mut e),
        };
        match by {
            Some(by) => e.finish(Top {
                by,
                limit,
                selection,
            }),
            None => Err(e),
        }
    }
}

/// A user's, assistant's, contact's or conversation's spending over the period.
#[derive(Debug, Serialize, ToSchema)]
pub struct TopSpender {
    /// The user, assistant, contact or conversation; null for usage without one (or a
    /// contact the caller may not see).
    pub id: Option<Uuid>,
    /// What to show: a user's name (or email), an assistant's name, a contact's name, a
    /// conversation's title (or its contact's name). Null when there is none to show, or
    /// it is no longer there (a user who left, a deleted assistant).
    pub name: Option<String>,
    pub request_count: i64,
    pub total_tokens: i64,
    #[schema(value_type = String)]
    pub cost_usd: Decimal,
}

impl TableRow for TopSpender {
    const COLUMNS: &'static [&'static str] =
        &["id", "name", "request_count", "total_tokens", "cost_usd"];
}

impl TopSpender {
    fn from_row(r: &Row) -> Result<Self, CoreError> {
        Ok(Self {
            id: r.col("id")?,
            name: r.col("name")?,
            request_count: r.col("requests")?,
            total_tokens: r.col("tokens")?,
            cost_usd: r.col::<Decimal>("cost")?.normalize(),
        })
    }
}

pub async fn top(tx: &mut Tx, tenant: Uuid, q: &Top) -> Result<Vec<TopSpender>, CoreError> {
    match q.by {
        TopBy::Users | TopBy::Assistants => top_from_rollups(tx, tenant, q).await,
        TopBy::Contacts | TopBy::Conversations => top_from_facts(tx, tenant, q).await,
    }
}

/// Users and assistants: from the daily rollups, with the assistant's name joined, or the
/// users' names read after (users are global; a tenant's staff read them through
/// `app.tenant_members`, a member their own).
async fn top_from_rollups(
    tx: &mut Tx,
    tenant: Uuid,
    q: &Top,
) -> Result<Vec<TopSpender>, CoreError> {
    let users = q.by == TopBy::Users;
    let (column, name, join) = if users {
        ("user_id", "null::text", "")
    } else {
        (
            "assistant_id",
            "a.name",
            "left join app.assistants a on a.tenant_id = $1 and a.id = top.id",
        )
    };
    if !users {
        tx.last();
    }
    let mut params = q.selection.params(&tenant);
    params.push(&q.limit);
    let rows = tx
        .query(
            &format!(
                "with top as (
                     select u.{column} as id, sum(u.request_count)::bigint as requests,
                            sum(u.total_tokens)::bigint as tokens, sum(u.cost_usd) as cost
                     from app.usage_daily u
                     where u.tenant_id = $1 and {in_period} and {filtered}
                     group by u.{column} order by cost desc, tokens desc, id limit $7)
                 select top.id, {name} as name, top.requests, top.tokens, top.cost
                 from top {join}
                 order by top.cost desc, top.tokens desc, top.id",
                in_period = period::in_days("u"),
                filtered = period::filtered("u"),
            ),
            &params,
        )
        .await?;
    let mut top = rows
        .iter()
        .map(TopSpender::from_row)
        .collect::<Result<Vec<_>, CoreError>>()?;
    if users {
        let ids: Vec<Uuid> = top.iter().filter_map(|t| t.id).collect();
        tx.last();
        let names = tx
            .query(
                "select i.id, coalesce(nullif(m.name, ''), m.email, nullif(u.name, ''), u.email) as name
                 from unnest($1::uuid[]) as i (id)
                 left join lateral app.tenant_members(null, 1, i.id) m on true
                 left join app.users u on u.id = i.id",
                &[&ids],
            )
            .await?;
        let mut by_id = std::collections::HashMap::with_capacity(names.len());
        for r in &names {
            by_id.insert(r.col::<Uuid>("id")?, r.col::<Option<String>>("name")?);
        }
        for t in &mut top {
            t.name = t.id.and_then(|id| by_id.remove(&id).flatten());
        }
    }
    Ok(top)
}

/// Contacts and conversations: from the messages and usage events of the period (no
/// rollup holds them), read as ranges of their primary keys.
async fn top_from_facts(tx: &mut Tx, tenant: Uuid, q: &Top) -> Result<Vec<TopSpender>, CoreError> {
    let bounds = tx
        .query_one(
            &format!(
                "select ({first}::timestamp at time zone t.timezone) as start_at,
                        (({last} + 1)::timestamp at time zone t.timezone) as end_at
                 from app.tenants t where t.id = $1",
                first = period::first_day(),
                last = period::last_day(),
            ),
            &q.selection.params(&tenant)[..4],
        )
        .await?;
    let (start, end): (DateTime<Utc>, DateTime<Utc>) =
        (bounds.col("start_at")?, bounds.col("end_at")?);
    // Ids are made by the servers, created_at by the database: an hour either side
    // covers any clock difference between them; created_at decides.
    let margin = chrono::Duration::hours(1);
    let floor = |at: DateTime<Utc>| crate::operations::uuid_v7_floor(at.into());
    let (low, high) = (floor(start - margin), floor(end + margin));
    let (id, name) = match q.by {
        TopBy::Contacts => ("k.id", "k.name"),
        _ => ("c.id", "coalesce(nullif(c.title, ''), k.name)"),
    };
    tx.last();
    let rows = tx
        .query(
            &include_str!("top_raw.sql")
                .replace("{id}", id)
                .replace("{name}", name),
            &[
                &tenant,
                &start,
                &end,
                &low,
                &high,
                &q.selection.filters.assistant_id,
                &q.selection.filters.provider,
                &q.limit,
            ],
        )
        .await?;
    rows.iter().map(TopSpender::from_row).collect()
}

/// `GET …/analytics/feedback`: ratings grouped by assistant or by model.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FeedbackQuery {
    /// assistant (default) or model.
    #[serde(default)]
    #[param(value_type = Option<String>, pattern = "^(assistant|model)$")]
    pub by: Param<String>,
}

/// A checked `GET …/analytics/feedback`.
#[derive(Debug, Clone)]
pub struct FeedbackBy {
    by_model: bool,
    selection: Selection,
}

impl FeedbackQuery {
    pub fn parse(
        &self,
        period: &PeriodQuery,
        filters: &FilterQuery,
    ) -> Result<FeedbackBy, Invalid> {
        let mut e = Invalid::default();
        let by_model = e
            .param("by", &self.by, |by| match by.as_str() {
                "assistant" => Ok(false),
                "model" => Ok(true),
                _ => Err("must be assistant or model".to_owned()),
            })
            .unwrap_or(false);
        let selection = Selection {
            period: period.check(&mut e),
            filters: filters.check(&mut e),
        };
        e.finish(FeedbackBy {
            by_model,
            selection,
        })
    }
}

/// Counts of ratings.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ratings {
    pub ratings: i64,
    pub positive: i64,
    pub negative: i64,
    /// positive ÷ ratings.
    pub positive_rate: f64,
}

/// Ratings of one assistant's messages over the period.
#[derive(Debug, Serialize, ToSchema)]
pub struct FeedbackByAssistant {
    /// Null: messages of conversations whose assistant was deleted.
    pub assistant_id: Option<Uuid>,
    #[serde(flatten)]
    pub ratings: Ratings,
}

/// Ratings of one model's messages over the period.
#[derive(Debug, Serialize, ToSchema)]
pub struct FeedbackByModel {
    /// Null, with `model`: messages without a model (e.g. a person's).
    pub provider: Option<String>,
    pub model: Option<String>,
    #[serde(flatten)]
    pub ratings: Ratings,
}

impl TableRow for FeedbackByAssistant {
    const COLUMNS: &'static [&'static str] = &[
        "assistant_id",
        "ratings",
        "positive",
        "negative",
        "positive_rate",
    ];
}
impl TableRow for FeedbackByModel {
    const COLUMNS: &'static [&'static str] = &[
        "provider",
        "model",
        "ratings",
        "positive",
        "negative",
        "positive_rate",
    ];
}

/// Feedback grouped as asked.
#[derive(Serialize)]
#[serde(untagged)]
pub enum Feedback {
    ByAssistant(Vec<FeedbackByAssistant>),
    ByModel(Vec<FeedbackByModel>),
}

impl Table for Feedback {
    fn columns(&self) -> &'static [&'static str] {
        match self {
            Self::ByAssistant(rows) => rows.columns(),
            Self::ByModel(rows) => rows.columns(),
        }
    }

    fn len(&self) -> usize {
        match self {
            Self::ByAssistant(rows) => rows.len(),
            Self::ByModel(rows) => rows.len(),
        }
    }
}

/// Feedback by assistant or by model, from the feedback rollup; most rated first.
pub async fn feedback(tx: &mut Tx, tenant: Uuid, q: &FeedbackBy) -> Result<Feedback, CoreError> {
    let by_model = q.by_model;
    let group = if by_model {
        "provider, model"
    } else {
        "assistant_id, null::text"
    };
    tx.last();
    let rows = tx
        .query(
            &format!(
                "select {group}, sum(positive)::bigint, sum(negative)::bigint
                 from app.feedback_daily f
                 where f.tenant_id = $1 and {in_period} and {filtered}
                 group by 1, 2 having sum(positive) + sum(negative) > 0
                 order by sum(positive) + sum(negative) desc, 1, 2",
                in_period = period::in_days("f"),
                filtered = period::filtered("f"),
            ),
            &q.selection.params(&tenant),
        )
        .await?;
    let ratings = |r: &Row| {
        let (positive, negative): (i64, i64) = (r.col(2)?, r.col(3)?);
        Ok::<_, CoreError>(Ratings {
            ratings: positive + negative,
            positive,
            negative,
            positive_rate: positive as f64 / (positive + negative) as f64,
        })
    };
    Ok(if by_model {
        Feedback::ByModel(
            rows.iter()
                .map(|r| {
                    Ok(FeedbackByModel {
                        provider: r.col(0)?,
                        model: r.col(1)?,
                        ratings: ratings(r)?,
                    })
                })
                .collect::<Result<_, CoreError>>()?,
        )
    } else {
        Feedback::ByAssistant(
            rows.iter()
                .map(|r| {
                    Ok(FeedbackByAssistant {
                        assistant_id: r.col(0)?,
                        ratings: ratings(r)?,
                    })
                })
                .collect::<Result<_, CoreError>>()?,
        )
    })
}

/// `GET …/analytics/funnel`: a flow and a period.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FunnelQuery {
    /// The flow's key.
    #[serde(default)]
    #[param(value_type = String, required = true, example = "ari_sales")]
    pub flow: Param<String>,
    /// Only the conversations of this assistant (an id of another tenant finds nothing).
    #[serde(default)]
    #[param(value_type = Option<Uuid>)]
    pub assistant_id: Param<Uuid>,
}

/// A checked `GET …/analytics/funnel`.
#[derive(Debug)]
pub struct Funnel {
    flow: String,
    selection: Selection,
}

impl FunnelQuery {
    pub fn parse(&self, period: &PeriodQuery) -> Result<Funnel, Invalid> {
        let mut e = Invalid::default();
        let flow = e.required_param("flow", &self.flow, any);
        let selection = Selection {
            period: period.check(&mut e),
            filters: period::Filters {
                assistant_id: e.param("assistant_id", &self.assistant_id, any),
                provider: None,
            },
        };
        match flow {
            Some(flow) => e.finish(Funnel { flow, selection }),
            None => Err(e),
        }
    }
}

/// How many conversations of the flow entered a state in the period.
#[derive(Debug, Serialize, ToSchema)]
pub struct FunnelStep {
    pub state: String,
    pub conversations: i64,
}

impl TableRow for FunnelStep {
    const COLUMNS: &'static [&'static str] = &["state", "conversations"];
}

/// Every state of the flow, in the flow's order, with the conversations that entered it
/// in the period (from the state history; a member counts their own).
pub async fn funnel(tx: &mut Tx, tenant: Uuid, q: &Funnel) -> Result<Vec<FunnelStep>, CoreError> {
    let flow = match tx
        .part(async |tx| crate::conversations::flows::get(tx, tenant, &q.flow).await)
        .await
    {
        Err(CoreError::NotFound) => return Err(CoreError::invalid("flow", "no such flow")),
        other => other?,
    };
    let mut params = q.selection.params(&tenant);
    params.truncate(5);
    params.push(&q.flow);
    tx.last();
    let rows = tx
        .query(
            &format!(
                "with zone as (select timezone from app.tenants where id = $1)
                 select t.to_state, count(distinct t.conversation_id) as n
                 from app.conversation_transitions t
                 join app.conversations c on c.tenant_id = t.tenant_id and c.id = t.conversation_id
                 where t.tenant_id = $1 and c.flow_key = $6
                   and ($5::uuid is null or c.assistant_id = $5)
                   and t.created_at >= ({first})::timestamp at time zone (select timezone from zone)
                   and t.created_at < ({last} + 1)::timestamp at time zone (select timezone from zone)
                 group by t.to_state",
                first = period::first_day(),
                last = period::last_day(),
            ),
            &params,
        )
        .await?;
    let mut counts = std::collections::HashMap::with_capacity(rows.len());
    for r in &rows {
        counts.insert(r.col::<&str>(0)?, r.col::<i64>(1)?);
    }
    let count = |state: &str| counts.get(state).copied().unwrap_or(0);
    Ok(flow
        .states
        .iter()
        .map(|state| FunnelStep {
            state: state.clone(),
            conversations: count(state),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_v7_floor_of_a_time_sorts_between_the_ids_before_and_from_it() {
        let at = Utc::now();
        let ms = |t: DateTime<Utc>| {
            uuid::Timestamp::from_unix(
                uuid::NoContext,
                t.timestamp() as u64,
                t.timestamp_subsec_nanos() / 1_000_000 * 1_000_000,
            )
        };
        let made_at = Uuid::new_v7(ms(at));
        let made_before = Uuid::new_v7(ms(at - chrono::Duration::milliseconds(1)));
        let floor = crate::operations::uuid_v7_floor(at.into());
        assert!(
            made_before < floor && floor <= made_at,
            "{made_before} {floor} {made_at}"
        );
        assert_eq!(floor.get_version_num(), 7);
        // PostgreSQL compares uuids byte by byte, as Uuid's Ord does.
        assert!(floor.as_bytes() <= made_at.as_bytes());
    }
}
