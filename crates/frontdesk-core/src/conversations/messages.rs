//! Messages: append-only. Each insert moves its conversation's counters and
//! last_activity_at and emits message.created, in the database, in the same statement.

use chrono::{DateTime, Utc};
use frontdesk_pg::RowExt;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, value::RawValue};
use std::borrow::Cow;
use tokio_postgres::Row;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::{
    CoreError, Tx,
    platform::input::{
        Field, Invalid, Param, Unknown, any, int32_within, json_array, json_object, json_value,
    },
    platform::page::{DEFAULT_LIMIT, MAX_LIMIT, Order, Ordered, Page, Paged},
    platform::values::CostUsd,
    usage::limits::LimitName,
};
/// The default limit on a message's content, in bytes.
pub const DEFAULT_MAX_CONTENT_BYTES: usize = 100 * 1024;
/// The content that replaces a redacted message's.
pub const REDACTED: &str = "[redacted]";

crate::text_enum!(
    /// Who wrote a message.
    pub enum MessageRole {
        User = "user",
        Assistant = "assistant",
        System = "system",
        Tool = "tool",
        Agent = "agent",
    }
);

crate::text_enum!(
    /// Where a cost came from: provided (by the client), catalog (the model's own price at
    /// the time, the tenant's or the catalog's), catalog_prefix (the price of the longest
    /// name the model extends with a date or version suffix, e.g. `claude-3-5-haiku` for
    /// `claude-3-5-haiku-20241022`) or unpriced (tokens of a model without a price: costed
    /// 0). See docs/API.md, "Prices".
    pub enum CostSource {
        Provided = "provided",
        Catalog = "catalog",
        CatalogPrefix = "catalog_prefix",
        Unpriced = "unpriced",
    }
);

// A message as the API shows it: borrowed from its row when a page of history is written
// straight out (no owned copy of every string, no parse of every JSON field: see
// docs/BENCHMARKS.md, "Analysis of GET"), owned (`Message<'static>`) otherwise.
#[derive(Debug, Serialize, ToSchema)]
pub struct Message<'a> {
    pub id: Uuid,
    pub conversation_id: Uuid,
    pub role: MessageRole,
    #[schema(value_type = String)]
    pub content: Cow<'a, str>,
    pub prompt_tokens: Option<i32>,
    pub completion_tokens: Option<i32>,
    /// prompt_tokens + completion_tokens.
    pub total_tokens: i32,
    /// The part of prompt_tokens read from the provider's prompt cache.
    pub cached_tokens: Option<i32>,
    /// The part of completion_tokens spent reasoning.
    pub reasoning_tokens: Option<i32>,
    #[schema(value_type = Option<String>)]
    pub model: Option<Cow<'a, str>>,
    #[schema(value_type = Option<String>)]
    pub provider: Option<Cow<'a, str>>,
    /// USD, decimal string.
    #[schema(value_type = Option<String>, example = "0.0008")]
    pub cost_usd: Option<Decimal>,
    /// provided (by the client), catalog (the model's price at the message's time),
    /// catalog_prefix (the price of the longest name the model extends with a date or
    /// version suffix) or unpriced (tokens of a model without a price: costed 0); null
    /// without tokens or cost.
    pub cost_source: Option<CostSource>,
    /// The price list's model name the cost was computed from (catalog and catalog_prefix).
    #[schema(value_type = Option<String>, example = "claude-3-5-haiku")]
    pub priced_model: Option<Cow<'a, str>>,
    pub latency_ms: Option<i32>,
    #[schema(value_type = Option<String>)]
    pub action_taken: Option<Cow<'a, str>>,
    /// A JSON array of any values, as the client sent it.
    #[schema(value_type = Option<Vec<Value>>)]
    pub questions_asked: Option<Cow<'a, RawValue>>,
    /// Any JSON.
    #[schema(value_type = Option<Value>)]
    pub delegation_plan: Option<Cow<'a, RawValue>>,
    #[schema(value_type = Object)]
    pub metadata: Cow<'a, RawValue>,
    pub created_at: DateTime<Utc>,
    /// Set when an admin redacted the content.
    pub redacted_at: Option<DateTime<Utc>>,
    /// Who redacted it (the nil UUID for the operator).
    pub redacted_by: Option<Uuid>,
    /// Whether this message took the tenant past one of its limits. It was stored all the
    /// same (a message records what already happened); the next `limits/check` refuses.
    pub over_limit: bool,
    /// The limits it took the tenant past (rate_limit_per_minute, daily_token_limit,
    /// monthly_budget_usd); empty when none.
    pub over_limits: Vec<LimitName>,
}

const COLUMNS: &str =
    "id, conversation_id, role, content, prompt_tokens, completion_tokens, total_tokens,
    model, provider, cost_usd, latency_ms, action_taken, questions_asked, delegation_plan, metadata,
    created_at, redacted_at, redacted_by, cost_source, over_limits, cached_tokens, reasoning_tokens, priced_model";

fn borrowed(s: Option<&str>) -> Option<Cow<'_, str>> {
    s.map(Cow::Borrowed)
}

fn owned<T: ?Sized + ToOwned>(c: Option<Cow<'_, T>>) -> Option<Cow<'static, T>> {
    c.map(|c| Cow::Owned(c.into_owned()))
}

impl<'a> Message<'a> {
    /// The `COLUMNS` of `row`, by position (name lookups cost more than the rest of the
    /// conversion on a page of 50 messages), borrowed from it.
    fn from_row(row: &'a Row) -> Result<Self, CoreError> {
        let over_limits: Vec<LimitName> = row.col::<Option<_>>(19)?.unwrap_or_default();
        let over_limit = !over_limits.is_empty();
        Ok(Self {
            id: row.col(0)?,
            conversation_id: row.col(1)?,
            role: row.col(2)?,
            content: Cow::Borrowed(row.col(3)?),
            prompt_tokens: row.col(4)?,
            completion_tokens: row.col(5)?,
            total_tokens: row.col(6)?,
            model: borrowed(row.col(7)?),
            provider: borrowed(row.col(8)?),
            cost_usd: row.col::<Option<Decimal>>(9)?.map(|d| d.normalize()),
            latency_ms: row.col(10)?,
            action_taken: borrowed(row.col(11)?),
            questions_asked: raw_json(row, 12)?.map(Cow::Borrowed),
            delegation_plan: raw_json(row, 13)?.map(Cow::Borrowed),
            metadata: Cow::Borrowed(raw_json(row, 14)?.ok_or(CoreError::NotFound)?),
            created_at: row.col(15)?,
            redacted_at: row.col(16)?,
            redacted_by: row.col(17)?,
            cost_source: row.col(18)?,
            over_limit,
            over_limits,
            cached_tokens: row.col(20)?,
            reasoning_tokens: row.col(21)?,
            priced_model: borrowed(row.col(22)?),
        })
    }

    /// The message, no longer borrowing its row.
    pub fn into_owned(self) -> Message<'static> {
        Message {
            content: Cow::Owned(self.content.into_owned()),
            model: owned(self.model),
            provider: owned(self.provider),
            priced_model: owned(self.priced_model),
            action_taken: owned(self.action_taken),
            questions_asked: owned(self.questions_asked),
            delegation_plan: owned(self.delegation_plan),
            metadata: Cow::Owned(self.metadata.into_owned()),
            ..self
        }
    }

    fn owned_from_row(row: &Row) -> Result<Message<'static>, CoreError> {
        Message::from_row(row).map(Message::into_owned)
    }
}

/// `POST …/conversations/{id}/messages`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(example = json!({"role": "assistant", "content": "Bali is lovely in May.", "prompt_tokens": 120,
    "completion_tokens": 18, "model": "gpt-4o-mini", "provider": "openai", "cost_usd": "0.0008", "latency_ms": 640}))]
pub struct NewMessage {
    #[serde(default)]
    #[schema(value_type = MessageRole, required = true)]
    pub role: Field<String>,
    /// Not blank; at most the server's limit (100 kB unless configured).
    #[serde(default)]
    #[schema(value_type = String, required = true, min_length = 1)]
    pub content: Field<String>,
    #[serde(default)]
    #[schema(value_type = Option<i64>)]
    pub prompt_tokens: Field<i64>,
    #[serde(default)]
    #[schema(value_type = Option<i64>)]
    pub completion_tokens: Field<i64>,
    /// The part of `prompt_tokens` read from the provider's prompt cache (OpenAI's
    /// `cached_tokens`; Anthropic's `cache_read_input_tokens`, counted in `prompt_tokens`
    /// too): priced at the cached-input price. At most `prompt_tokens`.
    #[serde(default)]
    #[schema(value_type = Option<i64>)]
    pub cached_tokens: Field<i64>,
    /// The part of `completion_tokens` spent reasoning (priced as completion tokens). At
    /// most `completion_tokens`.
    #[serde(default)]
    #[schema(value_type = Option<i64>)]
    pub reasoning_tokens: Field<i64>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub model: Field<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub provider: Field<String>,
    /// USD as a decimal string, at most 10 decimal places.
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "0.0008", pattern = r"^[0-9]+(\.[0-9]+)?$")]
    pub cost_usd: Field<crate::platform::input::DecimalText>,
    #[serde(default)]
    #[schema(value_type = Option<i64>)]
    pub latency_ms: Field<i64>,
    /// What the assistant did (e.g. `booked_appointment`).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub action_taken: Field<String>,
    #[serde(default)]
    /// A JSON array (of any values).
    #[schema(value_type = Option<Vec<Value>>)]
    pub questions_asked: Field<Value>,
    /// Any JSON: how the assistant split the work.
    #[serde(default)]
    #[schema(value_type = Option<Value>)]
    pub delegation_plan: Field<Value>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub metadata: Field<Value>,
    /// The reservation (`POST …/limits/check`) this message settles: what it held is
    /// given back and the message's own tokens and cost are charged.
    #[serde(default)]
    #[schema(value_type = Option<Uuid>)]
    pub reservation_id: Field<Uuid>,
    #[serde(flatten)]
    #[schema(ignore)]
    pub unknown: Unknown,
}

/// A message checked against every rule: what `create` stores.
#[derive(Debug)]
pub struct MessageDraft {
    pub role: MessageRole,
    pub content: String,
    pub prompt_tokens: Option<i32>,
    pub completion_tokens: Option<i32>,
    pub cached_tokens: Option<i32>,
    pub reasoning_tokens: Option<i32>,
    pub model: Option<String>,
    pub provider: Option<String>,
    pub cost_usd: Option<CostUsd>,
    pub latency_ms: Option<i32>,
    pub action_taken: Option<String>,
    pub questions_asked: Option<Value>,
    pub delegation_plan: Option<Value>,
    pub metadata: Map<String, Value>,
    pub reservation_id: Option<Uuid>,
}

/// Check `cached_tokens` and `reasoning_tokens` into `e`: each a count that is a part of
/// its whole (the prompt tokens, the completion tokens), so at most it. Shared by messages
/// and usage events.
pub fn token_parts(
    e: &mut Invalid,
    (cached, prompt): (Field<i64>, Option<i32>),
    (reasoning, completion): (Field<i64>, Option<i32>),
) -> (Option<i32>, Option<i32>) {
    let part_of = |whole: Option<i32>, name: &'static str| {
        move |n: i64| match i32::try_from(n) {
            Ok(n) if n >= 0 && n <= whole.unwrap_or(0) => Ok(n),
            _ if whole.is_none() => Err(format!("needs {name}: it is a part of them")),
            _ => Err(format!(
                "must be between 0 and {name} ({})",
                whole.unwrap_or(0)
            )),
        }
    };
    (
        e.optional("cached_tokens", cached, part_of(prompt, "prompt_tokens")),
        e.optional(
            "reasoning_tokens",
            reasoning,
            part_of(completion, "completion_tokens"),
        ),
    )
}

/// A rule: 1 to `max` characters, not blank.
fn short(max: usize) -> impl Fn(String) -> Result<String, String> {
    move |s| {
        if s.trim().is_empty() || s.chars().count() > max {
            Err(format!("must be 1 to {max} characters, not blank"))
        } else {
            Ok(s)
        }
    }
}

impl NewMessage {
    /// Check every field; `content` may be at most `max_content_bytes` long.
    pub fn parse(self, max_content_bytes: usize) -> Result<MessageDraft, Invalid> {
        let mut e = Invalid::new(self.unknown);
        let count = int32_within(0..=i32::MAX);
        let role = e.required("role", self.role, |s| MessageRole::parse(&s));
        let content = e.required("content", self.content, |s: String| {
            if s.trim().is_empty() {
                Err("must not be blank".to_owned())
            } else if s.len() > max_content_bytes {
                Err(format!("must be at most {max_content_bytes} bytes"))
            } else {
                Ok(s)
            }
        });
        let prompt_tokens = e.optional("prompt_tokens", self.prompt_tokens, &count);
        let completion_tokens = e.optional("completion_tokens", self.completion_tokens, &count);
        if i64::from(prompt_tokens.unwrap_or(0)) + i64::from(completion_tokens.unwrap_or(0))
            > i64::from(i32::MAX)
        {
            e.push(
                "completion_tokens",
                "prompt and completion tokens together are too many",
            );
        }
        let (cached_tokens, reasoning_tokens) = token_parts(
            &mut e,
            (self.cached_tokens, prompt_tokens),
            (self.reasoning_tokens, completion_tokens),
        );
        let model = e.optional("model", self.model, short(200));
        let provider = e.optional("provider", self.provider, short(100));
        let cost_usd = e.optional("cost_usd", self.cost_usd.decimal(), CostUsd::parse);
        let latency_ms = e.optional("latency_ms", self.latency_ms, &count);
        let action_taken = e.optional("action_taken", self.action_taken, short(200));
        let questions_asked = e.optional("questions_asked", self.questions_asked, json_array);
        let delegation_plan = e.optional("delegation_plan", self.delegation_plan, json_value);
        let metadata = e.optional("metadata", self.metadata, json_object);
        let reservation_id = e.optional("reservation_id", self.reservation_id, any);
        let (Some(role), Some(content)) = (role, content) else {
            return Err(e);
        };
        e.finish(MessageDraft {
            role,
            content,
            prompt_tokens,
            completion_tokens,
            cached_tokens,
            reasoning_tokens,
            model,
            provider,
            cost_usd,
            latency_ms,
            action_taken,
            questions_asked: questions_asked.map(Value::Array),
            delegation_plan,
            metadata: metadata.unwrap_or_default(),
            reservation_id,
        })
    }
}

/// Append a message; NotFound when the conversation is not one the caller may write to.
pub async fn create(
    tx: &mut Tx,
    tenant: Uuid,
    conversation: Uuid,
    m: &MessageDraft,
) -> Result<Message<'static>, CoreError> {
    let id = Uuid::now_v7();
    let metadata = Value::Object(m.metadata.clone());
    let result = tx
        .last()
        .query_one(
            &format!(
                "insert into app.messages (tenant_id, id, conversation_id, role, content, prompt_tokens,
                     completion_tokens, model, provider, cost_usd, latency_ms, action_taken,
                     questions_asked, delegation_plan, metadata, reservation_id, cached_tokens,
                     reasoning_tokens)
                 values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
                 returning {COLUMNS}"
            ),
            &[
                &tenant,
                &id,
                &conversation,
                &m.role,
                &m.content,
                &m.prompt_tokens,
                &m.completion_tokens,
                &m.model,
                &m.provider,
                &m.cost_usd.map(CostUsd::get),
                &m.latency_ms,
                &m.action_taken,
                &m.questions_asked,
                &m.delegation_plan,
                &metadata,
                &m.reservation_id,
                &m.cached_tokens,
                &m.reasoning_tokens,
            ],
        )
        .await;
    match result {
        Ok(row) => Message::owned_from_row(&row),
        // The insert trigger found no conversation the caller may write to.
        Err(e)
            if e.db_error()
                .and_then(|d| d.constraint())
                .is_some_and(|c| c.starts_with("messages_conversation_id_fkey")) =>
        {
            Err(CoreError::NotFound)
        }
        Err(e) => Err(e.into()),
    }
}

/// `GET …/messages`: a page of a conversation's history.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// 1–200 (default 50).
    #[serde(default)]
    #[param(value_type = Option<i64>, minimum = 1, maximum = 200)]
    pub limit: Param<i64>,
    /// desc (newest first, the default) or asc.
    #[serde(default)]
    #[param(value_type = Option<String>, pattern = "^(asc|desc)$")]
    pub order: Param<String>,
    /// Only messages older than this message id.
    #[serde(default)]
    #[param(value_type = Option<Uuid>)]
    pub before: Param<Uuid>,
    /// Only messages newer than this message id.
    #[serde(default)]
    #[param(value_type = Option<Uuid>)]
    pub after: Param<Uuid>,
    /// `next_cursor` of the previous page (continues in the same order).
    #[serde(default)]
    #[param(value_type = Option<String>)]
    pub cursor: Param<String>,
}

/// A checked history request.
pub struct History {
    pub page: Page<Uuid>,
    pub newest_first: bool,
    pub before: Option<Uuid>,
    pub after: Option<Uuid>,
}

impl HistoryQuery {
    pub fn parse(&self) -> Result<History, Invalid> {
        let mut e = Invalid::default();
        let (order, page) = Page::<Ordered<Uuid>>::parse_ordered(
            &mut e,
            &self.limit,
            &self.cursor,
            &self.order,
            DEFAULT_LIMIT,
            MAX_LIMIT,
        );
        let newest_first = order == Order::Desc;
        let (mut before, mut after) = (
            e.param("before", &self.before, any),
            e.param("after", &self.after, any),
        );
        if !e.is_empty() {
            return Err(e);
        }
        if let Some(cursor) = page.after {
            if newest_first {
                before = Some(before.map_or(cursor, |b| b.min(cursor)));
            } else {
                after = Some(after.map_or(cursor, |a| a.max(cursor)));
            }
        }
        Ok(History {
            page,
            newest_first,
            before,
            after,
        })
    }
}

/// A JSON value as PostgreSQL sends it (json, or jsonb's text after its version byte),
/// borrowed from the row: written out as it is, never parsed into a tree.
struct JsonText<'a>(&'a str);

impl<'a> tokio_postgres::types::FromSql<'a> for JsonText<'a> {
    fn from_sql(
        ty: &tokio_postgres::types::Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        let text = if *ty == tokio_postgres::types::Type::JSONB {
            match raw.split_first() {
                Some((1, rest)) => rest,
                _ => return Err("unknown jsonb format version".into()),
            }
        } else {
            raw
        };
        Ok(Self(std::str::from_utf8(text)?))
    }

    fn accepts(ty: &tokio_postgres::types::Type) -> bool {
        matches!(
            *ty,
            tokio_postgres::types::Type::JSON | tokio_postgres::types::Type::JSONB
        )
    }
}

fn raw_json<'a>(row: &'a Row, at: usize) -> Result<Option<&'a RawValue>, CoreError> {
    row.col::<Option<JsonText<'a>>>(at)?
        .map(|t| serde_json::from_str::<&RawValue>(t.0))
        .transpose()
        .map_err(|e| CoreError::Unavailable(format!("the database sent bad JSON: {e}")))
}

/// A conversation's messages as the JSON of a `Paged<Message>`; NotFound when the
/// conversation is not visible.
pub async fn history_json(
    tx: &mut Tx,
    tenant: Uuid,
    conversation: Uuid,
    h: &History,
) -> Result<Vec<u8>, CoreError> {
    // Two statements rather than an ORDER BY CASE, so both directions walk the index.
    let direction = if h.newest_first { "desc" } else { "asc" };
    tx.last();
    let rows = tx
        .query(
            &format!(
                "select m.*, c.id as conversation from app.conversations c
                 left join lateral (
                     select {COLUMNS} from app.messages m
                     where m.tenant_id = $1 and m.conversation_id = c.id -- $1, not c.tenant_id: Citus routes an outer join to one shard only then
                       and ($3::uuid is null or m.id < $3) and ($4::uuid is null or m.id > $4)
                     order by m.id {direction} limit $5) m on true
                 where c.tenant_id = $1 and c.id = $2"
            ),
            &[
                &tenant,
                &conversation,
                &h.before,
                &h.after,
                &(h.page.limit + 1),
            ],
        )
        .await?;
    if rows.is_empty() {
        return Err(CoreError::NotFound);
    }
    let messages = rows
        .iter()
        .filter(|r| !matches!(r.col::<Option<Uuid>>(0), Ok(None)))
        .map(Message::from_row)
        .collect::<Result<Vec<_>, _>>()?;
    let size = messages
        .iter()
        .map(|m| m.content.len() + m.content.len() / 8 + m.metadata.get().len() + 600)
        .sum::<usize>()
        + 64;
    let order = if h.newest_first {
        Order::Desc
    } else {
        Order::Asc
    };
    let page = Paged::from_rows(messages, h.page.limit, |m: &Message| Ordered {
        order,
        key: m.id,
    });
    let mut body = Vec::with_capacity(size);
    serde_json::to_writer(&mut body, &page)
        .map_err(|e| CoreError::Unavailable(format!("serializing a page: {e}")))?;
    Ok(body)
}

pub async fn get(tx: &mut Tx, tenant: Uuid, id: Uuid) -> Result<Message<'static>, CoreError> {
    let row = tx
        .last()
        .query_opt(
            &format!("select {COLUMNS} from app.messages where tenant_id = $1 and id = $2"),
            &[&tenant, &id],
        )
        .await?
        .ok_or(CoreError::NotFound)?;
    Message::owned_from_row(&row)
}

/// Replace a message's content with `[redacted]`, once, recording who and when.
pub async fn redact(
    tx: &mut Tx,
    tenant: Uuid,
    id: Uuid,
    by: Uuid,
) -> Result<Message<'static>, CoreError> {
    let current = tx.part(async |tx| get(tx, tenant, id).await).await?;
    if current.redacted_at.is_some() {
        return Err(CoreError::Conflict {
            field: None,
            message: "this message is already redacted".into(),
        });
    }
    let row = tx
        .query_opt(
            &format!(
                "update app.messages set content = $3, redacted_at = now(), redacted_by = $4
                 where tenant_id = $1 and id = $2 returning {COLUMNS}"
            ),
            &[&tenant, &id, &REDACTED, &by],
        )
        .await?
        .ok_or(CoreError::NotFound)?;
    Message::owned_from_row(&row)
}
