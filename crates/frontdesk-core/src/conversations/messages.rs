//! Messages: append-only. Each insert moves its conversation's counters and
//! last_activity_at and emits message.created, in the database, in the same statement.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Value, value::RawValue};
use tokio_postgres::Row;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::{
    CoreError, FieldError, Tx,
    platform::input::decimal_rule,
    platform::page::{Page, PageQuery, Paged},
};

pub const ROLES: [&str; 5] = ["user", "assistant", "system", "tool", "agent"];
/// The default limit on a message's content, in bytes.
pub const DEFAULT_MAX_CONTENT_BYTES: usize = 100 * 1024;
/// The content that replaces a redacted message's.
pub const REDACTED: &str = "[redacted]";

#[derive(Debug, Serialize, ToSchema)]
pub struct Message {
    pub id: Uuid,
    pub conversation_id: Uuid,
    /// user, assistant, system, tool or agent.
    pub role: String,
    pub content: String,
    pub prompt_tokens: Option<i32>,
    pub completion_tokens: Option<i32>,
    /// prompt_tokens + completion_tokens.
    pub total_tokens: i32,
    pub model: Option<String>,
    pub provider: Option<String>,
    /// USD, decimal string.
    #[schema(value_type = Option<String>, example = "0.0008")]
    pub cost_usd: Option<Decimal>,
    /// provided (by the client), catalog (computed from the price catalog at the message's
    /// time) or unpriced (tokens of a model without a price: costed 0); null without tokens
    /// or cost.
    pub cost_source: Option<String>,
    pub latency_ms: Option<i32>,
    pub action_taken: Option<String>,
    #[schema(value_type = Option<Vec<Object>>)]
    pub questions_asked: Option<Value>,
    /// Any JSON.
    pub delegation_plan: Option<Value>,
    #[schema(value_type = Object)]
    pub metadata: Value,
    pub created_at: DateTime<Utc>,
    /// Set when an admin redacted the content.
    pub redacted_at: Option<DateTime<Utc>>,
    /// Who redacted it (the nil UUID for the operator).
    pub redacted_by: Option<Uuid>,
}

const COLUMNS: &str =
    "id, conversation_id, role, content, prompt_tokens, completion_tokens, total_tokens,
    model, provider, cost_usd, latency_ms, action_taken, questions_asked, delegation_plan, metadata,
    created_at, redacted_at, redacted_by, cost_source";

impl Message {
    fn from_row(row: &Row) -> Self {
        Self::from_row_at(row, 0)
    }

    /// Read the `COLUMNS` starting at column `at`, by position: name lookups cost more
    /// than the rest of the conversion on a page of 50 messages.
    fn from_row_at(row: &Row, at: usize) -> Self {
        Self {
            id: row.get(at),
            conversation_id: row.get(at + 1),
            role: row.get(at + 2),
            content: row.get(at + 3),
            prompt_tokens: row.get(at + 4),
            completion_tokens: row.get(at + 5),
            total_tokens: row.get(at + 6),
            model: row.get(at + 7),
            provider: row.get(at + 8),
            cost_usd: row.get::<_, Option<Decimal>>(at + 9).map(|d| d.normalize()),
            latency_ms: row.get(at + 10),
            action_taken: row.get(at + 11),
            questions_asked: row.get(at + 12),
            delegation_plan: row.get(at + 13),
            metadata: row.get(at + 14),
            created_at: row.get(at + 15),
            redacted_at: row.get(at + 16),
            redacted_by: row.get(at + 17),
            cost_source: row.get(at + 18),
        }
    }
}

/// `POST …/conversations/{id}/messages`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"role": "assistant", "content": "Bali is lovely in May.", "prompt_tokens": 120,
    "completion_tokens": 18, "model": "gpt-4o-mini", "provider": "openai", "cost_usd": "0.0008", "latency_ms": 640}))]
pub struct NewMessage {
    /// user, assistant, system, tool or agent.
    pub role: String,
    /// Not blank; at most the server's limit (100 kB unless configured).
    pub content: String,
    pub prompt_tokens: Option<i64>,
    pub completion_tokens: Option<i64>,
    pub model: Option<String>,
    pub provider: Option<String>,
    /// USD as a decimal string, at most 10 decimal places.
    #[schema(value_type = Option<String>, example = "0.0008")]
    pub cost_usd: Option<Decimal>,
    pub latency_ms: Option<i64>,
    /// What the assistant did (e.g. `booked_appointment`).
    pub action_taken: Option<String>,
    #[schema(value_type = Option<Vec<Object>>)]
    pub questions_asked: Option<Value>,
    /// Any JSON: how the assistant split the work.
    pub delegation_plan: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
    /// The reservation (`POST …/limits/check`) this message settles: what it held is
    /// given back and the message's own tokens and cost are charged.
    pub reservation_id: Option<Uuid>,
}

fn count(errors: &mut Vec<FieldError>, name: &str, n: Option<i64>) -> Option<i32> {
    match n {
        Some(n) if !(0..=i64::from(i32::MAX)).contains(&n) => {
            errors.push(FieldError::new(
                name,
                format!("must be between 0 and {}", i32::MAX),
            ));
            None
        }
        n => n.map(|n| n as i32),
    }
}

fn short(errors: &mut Vec<FieldError>, name: &str, s: &Option<String>, max: usize) {
    if let Some(s) = s
        && (s.trim().is_empty() || s.chars().count() > max)
    {
        errors.push(FieldError::new(
            name,
            format!("must be 1 to {max} characters, not blank"),
        ));
    }
}

/// A message checked against every rule; what `create` stores.
#[derive(Debug)]
pub struct CheckedMessage<'a> {
    pub new: &'a NewMessage,
    pub prompt_tokens: Option<i32>,
    pub completion_tokens: Option<i32>,
    pub latency_ms: Option<i32>,
}

impl NewMessage {
    pub fn check(&self, max_content_bytes: usize) -> Result<CheckedMessage<'_>, CoreError> {
        let mut errors = Vec::new();
        if !ROLES.contains(&self.role.as_str()) {
            errors.push(FieldError::new(
                "role",
                "must be one of user, assistant, system, tool, agent",
            ));
        }
        if self.content.trim().is_empty() {
            errors.push(FieldError::new("content", "must not be blank"));
        } else if self.content.len() > max_content_bytes {
            errors.push(FieldError::new(
                "content",
                format!("must be at most {max_content_bytes} bytes"),
            ));
        }
        let prompt_tokens = count(&mut errors, "prompt_tokens", self.prompt_tokens);
        let completion_tokens = count(&mut errors, "completion_tokens", self.completion_tokens);
        let latency_ms = count(&mut errors, "latency_ms", self.latency_ms);
        if prompt_tokens.unwrap_or(0) as i64 + completion_tokens.unwrap_or(0) as i64
            > i64::from(i32::MAX)
        {
            errors.push(FieldError::new(
                "completion_tokens",
                "prompt and completion tokens together are too many",
            ));
        }
        short(&mut errors, "model", &self.model, 200);
        short(&mut errors, "provider", &self.provider, 100);
        short(&mut errors, "action_taken", &self.action_taken, 200);
        if let Some(message) = self.cost_usd.and_then(|c| decimal_rule(&c, 10)) {
            errors.push(FieldError::new("cost_usd", message));
        }
        if self.questions_asked.as_ref().is_some_and(|q| !q.is_array()) {
            errors.push(FieldError::new("questions_asked", "must be an array"));
        }
        if self.metadata.as_ref().is_some_and(|m| !m.is_object()) {
            errors.push(FieldError::new("metadata", "must be an object"));
        }
        if errors.is_empty() {
            Ok(CheckedMessage {
                new: self,
                prompt_tokens,
                completion_tokens,
                latency_ms,
            })
        } else {
            Err(CoreError::Invalid(errors))
        }
    }
}

/// Append a message; NotFound when the conversation is not one the caller may write to.
pub async fn create(
    tx: &mut Tx,
    tenant: Uuid,
    conversation: Uuid,
    m: &CheckedMessage<'_>,
) -> Result<Message, CoreError> {
    let id = Uuid::now_v7();
    let metadata = m
        .new
        .metadata
        .clone()
        .unwrap_or_else(|| Value::Object(Default::default()));
    let result = tx
        .last()
        .query_one(
            &format!(
                "insert into app.messages (tenant_id, id, conversation_id, role, content, prompt_tokens,
                     completion_tokens, model, provider, cost_usd, latency_ms, action_taken,
                     questions_asked, delegation_plan, metadata, reservation_id)
                 values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
                 returning {COLUMNS}"
            ),
            &[
                &tenant,
                &id,
                &conversation,
                &m.new.role,
                &m.new.content,
                &m.prompt_tokens,
                &m.completion_tokens,
                &m.new.model,
                &m.new.provider,
                &m.new.cost_usd,
                &m.latency_ms,
                &m.new.action_taken,
                &m.new.questions_asked,
                &m.new.delegation_plan,
                &metadata,
                &m.new.reservation_id,
            ],
        )
        .await;
    match result {
        Ok(row) => Ok(Message::from_row(&row)),
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
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// 1–200 (default 50).
    pub limit: Option<i64>,
    /// desc (newest first, the default) or asc.
    pub order: Option<String>,
    /// Only messages older than this message id.
    pub before: Option<Uuid>,
    /// Only messages newer than this message id.
    pub after: Option<Uuid>,
    /// `next_cursor` of the previous page (continues in the same order).
    pub cursor: Option<String>,
}

/// A checked history request.
pub struct History {
    pub page: Page<Uuid>,
    pub newest_first: bool,
    pub before: Option<Uuid>,
    pub after: Option<Uuid>,
}

impl HistoryQuery {
    pub fn parse(&self) -> Result<History, CoreError> {
        let newest_first = match self.order.as_deref() {
            None | Some("desc") => true,
            Some("asc") => false,
            Some(_) => return Err(CoreError::invalid("order", "must be asc or desc")),
        };
        let page: Page<Uuid> = PageQuery {
            limit: self.limit,
            cursor: self.cursor.clone(),
        }
        .parse()?;
        let (mut before, mut after) = (self.before, self.after);
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
    row.get::<_, Option<JsonText<'a>>>(at)
        .map(|t| serde_json::from_str::<&RawValue>(t.0))
        .transpose()
        .map_err(|e| CoreError::Unavailable(format!("the database sent bad JSON: {e}")))
}

/// A message borrowed from its row, serialized like `Message`: a page of history is
/// written straight from the rows, without an owned copy of every string and a parse of
/// every JSON field (docs/BENCHMARKS.md, "Analysis of GET").
#[derive(Serialize)]
struct MessageRef<'a> {
    id: Uuid,
    conversation_id: Uuid,
    role: &'a str,
    content: &'a str,
    prompt_tokens: Option<i32>,
    completion_tokens: Option<i32>,
    total_tokens: i32,
    model: Option<&'a str>,
    provider: Option<&'a str>,
    cost_usd: Option<Decimal>,
    cost_source: Option<&'a str>,
    latency_ms: Option<i32>,
    action_taken: Option<&'a str>,
    questions_asked: Option<&'a RawValue>,
    delegation_plan: Option<&'a RawValue>,
    metadata: &'a RawValue,
    created_at: DateTime<Utc>,
    redacted_at: Option<DateTime<Utc>>,
    redacted_by: Option<Uuid>,
}

impl<'a> MessageRef<'a> {
    /// The `COLUMNS` of `row`, by position.
    fn from_row(row: &'a Row) -> Result<Self, CoreError> {
        Ok(Self {
            id: row.get(0),
            conversation_id: row.get(1),
            role: row.get(2),
            content: row.get(3),
            prompt_tokens: row.get(4),
            completion_tokens: row.get(5),
            total_tokens: row.get(6),
            model: row.get(7),
            provider: row.get(8),
            cost_usd: row.get::<_, Option<Decimal>>(9).map(|d| d.normalize()),
            latency_ms: row.get(10),
            action_taken: row.get(11),
            questions_asked: raw_json(row, 12)?,
            delegation_plan: raw_json(row, 13)?,
            metadata: raw_json(row, 14)?.ok_or(CoreError::NotFound)?,
            created_at: row.get(15),
            redacted_at: row.get(16),
            redacted_by: row.get(17),
            cost_source: row.get(18),
        })
    }
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
                     where m.tenant_id = c.tenant_id and m.conversation_id = c.id
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
        .filter(|r| r.get::<_, Option<Uuid>>(0).is_some())
        .map(MessageRef::from_row)
        .collect::<Result<Vec<_>, _>>()?;
    let size = messages
        .iter()
        .map(|m| m.content.len() + m.content.len() / 8 + m.metadata.get().len() + 600)
        .sum::<usize>()
        + 64;
    let page = Paged::from_rows(messages, h.page.limit, |m: &MessageRef| m.id);
    let mut body = Vec::with_capacity(size);
    serde_json::to_writer(&mut body, &page)
        .map_err(|e| CoreError::Unavailable(format!("serializing a page: {e}")))?;
    Ok(body)
}

pub async fn get(tx: &mut Tx, tenant: Uuid, id: Uuid) -> Result<Message, CoreError> {
    let row = tx
        .last()
        .query_opt(
            &format!("select {COLUMNS} from app.messages where tenant_id = $1 and id = $2"),
            &[&tenant, &id],
        )
        .await?
        .ok_or(CoreError::NotFound)?;
    Ok(Message::from_row(&row))
}

/// Replace a message's content with `[redacted]`, once, recording who and when.
pub async fn redact(tx: &mut Tx, tenant: Uuid, id: Uuid, by: Uuid) -> Result<Message, CoreError> {
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
    Ok(Message::from_row(&row))
}
