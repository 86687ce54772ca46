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
    usage::usage::Days,
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

/// The first day of the last `days` days, in the tenant's time zone.
const SINCE: &str =
    "(select (now() at time zone timezone)::date - ($2 - 1) from app.tenants where id = $1)";

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
    days: i32,
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
                 from app.usage_daily
                 where tenant_id = $1 and day >= {SINCE} and request_count > 0
                 group by provider, model order by cost desc, requests desc, provider, model"
            ),
            &[&tenant, &days],
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
    days: i32,
) -> Result<Vec<DailyMessages>, CoreError> {
    tx.last();
    let rows = tx
        .query(
            &format!(
                "select to_char(day, 'YYYY-MM-DD') as day, user_id, sum(message_count)::bigint as messages,
                        sum(user_messages)::bigint as from_users, sum(assistant_messages)::bigint as from_assistants,
                        sum(total_tokens)::bigint as tokens, sum(cost_usd) as cost
                 from app.usage_daily
                 where tenant_id = $1 and day >= {SINCE} and message_count > 0
                 group by day, user_id order by day, user_id nulls first"
            ),
            &[&tenant, &days],
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
    /// users or assistants.
    #[serde(default)]
    #[param(value_type = String, required = true, example = "users", pattern = "^(users|assistants)$")]
    pub by: Param<String>,
    /// 1–366 (default 30).
    #[serde(default)]
    #[param(value_type = Option<i32>, minimum = 1, maximum = 366)]
    pub days: Param<i32>,
    /// 1–100 (default 10).
    #[serde(default)]
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    pub limit: Param<i64>,
}

/// A checked `GET …/analytics/top`.
#[derive(Debug)]
pub struct Top {
    /// user_id or assistant_id.
    column: &'static str,
    days: i32,
    limit: i64,
}

impl TopQuery {
    pub fn parse(&self) -> Result<Top, Invalid> {
        let mut e = Invalid::default();
        let column = e.required_param("by", &self.by, |by| match by.as_str() {
            "users" => Ok("user_id"),
            "assistants" => Ok("assistant_id"),
            _ => Err("must be users or assistants".to_owned()),
        });
        let days = Days::check(&mut e, &self.days);
        let limit = e
            .param("limit", &self.limit, |n| {
                if (1..=100).contains(&n) {
                    Ok(n)
                } else {
                    Err("must be between 1 and 100".to_owned())
                }
            })
            .unwrap_or(10);
        match column {
            Some(column) => e.finish(Top {
                column,
                days,
                limit,
            }),
            None => Err(e),
        }
    }
}

/// A user's or assistant's spending over the period.
#[derive(Debug, Serialize, ToSchema)]
pub struct TopSpender {
    /// The user or assistant; null for usage without one.
    pub id: Option<Uuid>,
    pub request_count: i64,
    pub total_tokens: i64,
    #[schema(value_type = String)]
    pub cost_usd: Decimal,
}

impl TableRow for TopSpender {
    const COLUMNS: &'static [&'static str] = &["id", "request_count", "total_tokens", "cost_usd"];
}

pub async fn top(tx: &mut Tx, tenant: Uuid, q: &Top) -> Result<Vec<TopSpender>, CoreError> {
    let Top {
        column,
        days,
        limit,
    } = *q;
    tx.last();
    let rows = tx
        .query(
            &format!(
                "select {column} as id, sum(request_count)::bigint as requests,
                        sum(total_tokens)::bigint as tokens, sum(cost_usd) as cost
                 from app.usage_daily
                 where tenant_id = $1 and day >= {SINCE}
                 group by {column} order by cost desc, tokens desc, id limit $3"
            ),
            &[&tenant, &days, &limit],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(TopSpender {
                id: r.col("id")?,
                request_count: r.col("requests")?,
                total_tokens: r.col("tokens")?,
                cost_usd: r.col::<Decimal>("cost")?.normalize(),
            })
        })
        .collect::<Result<_, CoreError>>()
}

/// `GET …/analytics/feedback`: ratings grouped by assistant or by model.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FeedbackQuery {
    /// assistant (default) or model.
    #[serde(default)]
    #[param(value_type = Option<String>, pattern = "^(assistant|model)$")]
    pub by: Param<String>,
    /// 1–366 (default 30): ratings of messages written in the last N days.
    #[serde(default)]
    #[param(value_type = Option<i32>, minimum = 1, maximum = 366)]
    pub days: Param<i32>,
}

/// A checked `GET …/analytics/feedback`.
#[derive(Debug, Clone, Copy)]
pub struct FeedbackBy {
    by_model: bool,
    days: i32,
}

impl FeedbackQuery {
    pub fn parse(&self) -> Result<FeedbackBy, Invalid> {
        let mut e = Invalid::default();
        let by_model = e
            .param("by", &self.by, |by| match by.as_str() {
                "assistant" => Ok(false),
                "model" => Ok(true),
                _ => Err("must be assistant or model".to_owned()),
            })
            .unwrap_or(false);
        let days = Days::check(&mut e, &self.days);
        e.finish(FeedbackBy { by_model, days })
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
    let FeedbackBy { by_model, days } = *q;
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
                 from app.feedback_daily
                 where tenant_id = $1 and day >= {SINCE}
                 group by 1, 2 having sum(positive) + sum(negative) > 0
                 order by sum(positive) + sum(negative) desc, 1, 2"
            ),
            &[&tenant, &days],
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
    /// 1–366 (default 30).
    #[serde(default)]
    #[param(value_type = Option<i32>, minimum = 1, maximum = 366)]
    pub days: Param<i32>,
}

/// A checked `GET …/analytics/funnel`.
#[derive(Debug)]
pub struct Funnel {
    flow: String,
    days: i32,
}

impl FunnelQuery {
    pub fn parse(&self) -> Result<Funnel, Invalid> {
        let mut e = Invalid::default();
        let flow = e.required_param("flow", &self.flow, any);
        let days = Days::check(&mut e, &self.days);
        match flow {
            Some(flow) => e.finish(Funnel { flow, days }),
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
/// in the last `days` days (from the state history; a member counts their own).
pub async fn funnel(tx: &mut Tx, tenant: Uuid, q: &Funnel) -> Result<Vec<FunnelStep>, CoreError> {
    let days = q.days;
    let flow = match tx
        .part(async |tx| crate::conversations::flows::get(tx, tenant, &q.flow).await)
        .await
    {
        Err(CoreError::NotFound) => return Err(CoreError::invalid("flow", "no such flow")),
        other => other?,
    };
    tx.last();
    let rows = tx
        .query(
            &format!(
                "select t.to_state, count(distinct t.conversation_id) as n
                 from app.conversation_transitions t
                 join app.conversations c on c.tenant_id = t.tenant_id and c.id = t.conversation_id
                 where t.tenant_id = $1 and c.flow_key = $3
                   and t.created_at >= ({SINCE})::timestamp at time zone
                       (select timezone from app.tenants where id = $1)
                 group by t.to_state"
            ),
            &[&tenant, &days, &q.flow],
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
