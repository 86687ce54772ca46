//! Conversations: one thread between an assistant and a person or contact, following a
//! flow. Members see and write only the conversations they own; staff and keys see all
//! of the tenant's (row policies enforce it; the queries here filter the tenant too).

use chrono::{DateTime, Utc};
use frontdesk_pg::RowExt;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio_postgres::Row;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::{
    CoreError, Tx,
    conversations::{assistants::Channel, flows},
    platform::input::{
        Columns, Field, Invalid, Param, Patch, Unknown, any, json_array, json_object, json_value,
        text_of,
    },
    platform::page::{CursorKey, DEFAULT_LIMIT, MAX_LIMIT, Page, Paged},
    platform::store::Record,
};

/// Who is asking, as far as conversation rules go.
#[derive(Debug, Clone, Copy)]
pub struct Viewer {
    /// The signed-in person, if any.
    pub user: Option<Uuid>,
    /// Owners, admins, agents, keys and the operator see all of the tenant's conversations.
    pub staff: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Conversation {
    pub id: Uuid,
    pub assistant_id: Uuid,
    /// The person who owns it (members see only their own).
    pub user_id: Option<Uuid>,
    pub contact_id: Option<Uuid>,
    pub channel: Channel,
    pub title: Option<String>,
    /// The flow's key.
    pub flow: String,
    pub state: String,
    #[schema(value_type = Object)]
    pub context: Value,
    /// Any JSON value the client stored (null when none).
    #[schema(value_type = Value)]
    pub parsed_intent: Option<Value>,
    /// A JSON array of any values, as the client stored it.
    #[schema(value_type = Vec<Value>)]
    pub answered_questions: Value,
    /// A JSON array of any values, as the client stored it.
    #[schema(value_type = Vec<Value>)]
    pub pending_questions: Value,
    pub selected_kb_ids: Vec<Uuid>,
    pub active_task_plan_id: Option<Uuid>,
    pub assignee_id: Option<Uuid>,
    pub handoff_reason: Option<String>,
    pub handoff_at: Option<DateTime<Utc>>,
    pub archived: bool,
    #[schema(value_type = Object)]
    pub metadata: Value,
    pub message_count: i64,
    pub total_tokens: i64,
    /// USD, decimal string.
    #[schema(value_type = String, example = "0.0042")]
    pub cost_usd: Decimal,
    pub last_activity_at: DateTime<Utc>,
    /// Set when the conversation entered a terminal state of its flow.
    pub completed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str =
    "id, assistant_id, user_id, contact_id, channel, title, flow_key, state, context,
    parsed_intent, answered_questions, pending_questions, selected_kb_ids, active_task_plan_id,
    assignee_id, handoff_reason, handoff_at, archived, metadata, message_count, prompt_tokens,
    completion_tokens, cost_usd, last_activity_at, completed_at, created_at, updated_at";

impl Conversation {
    fn from_row(row: &Row) -> Result<Self, CoreError> {
        Ok(Self {
            id: row.col("id")?,
            assistant_id: row.col("assistant_id")?,
            user_id: row.col("user_id")?,
            contact_id: row.col("contact_id")?,
            channel: row.col("channel")?,
            title: row.col("title")?,
            flow: row.col("flow_key")?,
            state: row.col("state")?,
            context: row.col("context")?,
            parsed_intent: row.col("parsed_intent")?,
            answered_questions: row.col("answered_questions")?,
            pending_questions: row.col("pending_questions")?,
            selected_kb_ids: row.col("selected_kb_ids")?,
            active_task_plan_id: row.col("active_task_plan_id")?,
            assignee_id: row.col("assignee_id")?,
            handoff_reason: row.col("handoff_reason")?,
            handoff_at: row.col("handoff_at")?,
            archived: row.col("archived")?,
            metadata: row.col("metadata")?,
            message_count: row.col("message_count")?,
            total_tokens: row.col::<i64>("prompt_tokens")? + row.col::<i64>("completion_tokens")?,
            cost_usd: row.col::<Decimal>("cost_usd")?.normalize(),
            last_activity_at: row.col("last_activity_at")?,
            completed_at: row.col("completed_at")?,
            created_at: row.col("created_at")?,
            updated_at: row.col("updated_at")?,
        })
    }
}

/// The body of `POST …/conversations` (`assistant_id` required) and
/// `PATCH …/conversations/{id}` (the mutable fields; absent = unchanged, null = cleared).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(example = json!({"assistant_id": "0190f5e2-7c3a-7d2e-9b1a-3c4d5e6f7a8b", "title": "Trip to Bali"}))]
pub struct ConversationInput {
    /// On create only.
    #[serde(default)]
    #[schema(value_type = Uuid, required = false)]
    pub assistant_id: Field<Uuid>,
    /// On create only, by staff: the person who owns it. A member always owns what they
    /// create; staff default to themselves unless a contact is given.
    #[serde(default)]
    #[schema(value_type = Option<Uuid>)]
    pub user_id: Field<Uuid>,
    #[serde(default)]
    #[schema(value_type = Option<Uuid>)]
    pub contact_id: Field<Uuid>,
    /// On create only; defaults to the assistant's channel.
    #[serde(default)]
    #[schema(value_type = Channel, required = false)]
    pub channel: Field<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub title: Field<String>,
    #[serde(default)]
    #[schema(value_type = Object, required = false)]
    pub context: Field<Value>,
    /// Any JSON value; null clears it.
    #[serde(default)]
    #[schema(value_type = Value)]
    pub parsed_intent: Field<Value>,
    /// A JSON array (of any values).
    #[serde(default)]
    #[schema(value_type = Vec<Value>, required = false)]
    pub answered_questions: Field<Value>,
    /// A JSON array (of any values).
    #[serde(default)]
    #[schema(value_type = Vec<Value>, required = false)]
    pub pending_questions: Field<Value>,
    #[serde(default)]
    #[schema(value_type = Vec<Uuid>, required = false)]
    pub selected_kb_ids: Field<Vec<Uuid>>,
    #[serde(default)]
    #[schema(value_type = Option<Uuid>)]
    pub active_task_plan_id: Field<Uuid>,
    /// Staff only: a member of the tenant who handles it.
    #[serde(default)]
    #[schema(value_type = Option<Uuid>)]
    pub assignee_id: Field<Uuid>,
    #[serde(default)]
    #[schema(value_type = Object, required = false)]
    pub metadata: Field<Value>,
    #[serde(flatten)]
    #[schema(ignore)]
    pub unknown: Unknown,
}

/// Checked changes to a conversation's mutable fields (absent = unchanged, null =
/// cleared); serialized, the columns they set.
#[derive(Debug, Default, Serialize)]
pub struct ConversationChanges {
    #[serde(skip_serializing_if = "Patch::is_absent")]
    pub contact_id: Patch<Uuid>,
    #[serde(skip_serializing_if = "Patch::is_absent")]
    pub title: Patch<String>,
    #[serde(skip_serializing_if = "Patch::is_absent")]
    pub context: Patch<Map<String, Value>>,
    #[serde(skip_serializing_if = "Patch::is_absent")]
    pub parsed_intent: Patch<Value>,
    #[serde(skip_serializing_if = "Patch::is_absent")]
    pub answered_questions: Patch<Vec<Value>>,
    #[serde(skip_serializing_if = "Patch::is_absent")]
    pub pending_questions: Patch<Vec<Value>>,
    #[serde(skip_serializing_if = "Patch::is_absent")]
    pub selected_kb_ids: Patch<Vec<Uuid>>,
    #[serde(skip_serializing_if = "Patch::is_absent")]
    pub active_task_plan_id: Patch<Uuid>,
    #[serde(skip_serializing_if = "Patch::is_absent")]
    pub assignee_id: Patch<Uuid>,
    #[serde(skip_serializing_if = "Patch::is_absent")]
    pub metadata: Patch<Map<String, Value>>,
}

impl Columns for ConversationChanges {}

impl ConversationChanges {
    /// Check the mutable fields of a body into `e`.
    fn parse(w: ConversationInput, e: &mut Invalid) -> Self {
        Self {
            contact_id: e.patch("contact_id", w.contact_id, any),
            title: e.patch("title", w.title, text_of(500)),
            context: e.patch_not_null("context", w.context, json_object),
            parsed_intent: e.patch("parsed_intent", w.parsed_intent, json_value),
            answered_questions: e.patch_not_null(
                "answered_questions",
                w.answered_questions,
                json_array,
            ),
            pending_questions: e.patch_not_null(
                "pending_questions",
                w.pending_questions,
                json_array,
            ),
            selected_kb_ids: e.patch_not_null(
                "selected_kb_ids",
                w.selected_kb_ids,
                |ids: Vec<Uuid>| {
                    if ids.len() > 1000 {
                        Err("must list at most 1000 ids".to_owned())
                    } else {
                        Ok(ids)
                    }
                },
            ),
            active_task_plan_id: e.patch("active_task_plan_id", w.active_task_plan_id, any),
            assignee_id: e.patch("assignee_id", w.assignee_id, any),
            metadata: e.patch_not_null("metadata", w.metadata, json_object),
        }
    }

    /// Refuse what only staff may set.
    pub fn allowed_for(&self, viewer: Viewer) -> Result<(), CoreError> {
        for (name, absent) in [
            ("assignee_id", self.assignee_id.is_absent()),
            ("contact_id", self.contact_id.is_absent()),
        ] {
            if !viewer.staff && !absent {
                return Err(CoreError::Forbidden(format!(
                    "only staff set a conversation's {name}"
                )));
            }
        }
        Ok(())
    }
}

impl TryFrom<ConversationInput> for ConversationChanges {
    type Error = Invalid;

    fn try_from(mut w: ConversationInput) -> Result<Self, Invalid> {
        // A state is not a field: it changes along the flow, through /transitions.
        let moves_state = w.unknown.0.iter().any(|name| name == "state");
        w.unknown.0.retain(|name| name != "state");
        let mut e = Invalid::new(std::mem::take(&mut w.unknown));
        if moves_state {
            e.push(
                "state",
                "changes through POST /v1/tenants/{tenant}/conversations/{id}/transitions \
                 with {\"to\": \"<state>\", \"reason\"?: \"…\"}, which checks the conversation's flow",
            );
        }
        for (name, absent) in [
            ("assistant_id", w.assistant_id.is_absent()),
            ("user_id", w.user_id.is_absent()),
            ("channel", w.channel.is_absent()),
        ] {
            if !absent {
                e.push(name, "cannot be changed after creation");
            }
        }
        let changes = Self::parse(w, &mut e);
        e.finish(changes)
    }
}

/// A checked new conversation.
#[derive(Debug, Serialize)]
pub struct NewConversation {
    pub assistant_id: Uuid,
    /// Absent: the creator, or nobody for a contact's conversation created by staff.
    #[serde(skip_serializing_if = "Patch::is_absent")]
    pub user_id: Patch<Uuid>,
    #[serde(skip_serializing_if = "Patch::is_absent")]
    pub channel: Patch<Channel>,
    #[serde(flatten)]
    pub fields: ConversationChanges,
}

impl TryFrom<ConversationInput> for NewConversation {
    type Error = Invalid;

    fn try_from(mut w: ConversationInput) -> Result<Self, Invalid> {
        let mut e = Invalid::new(std::mem::take(&mut w.unknown));
        let assistant_id = e.required("assistant_id", std::mem::take(&mut w.assistant_id), any);
        let user_id = e.patch("user_id", std::mem::take(&mut w.user_id), any);
        let channel = e.patch_not_null("channel", std::mem::take(&mut w.channel), |s| {
            Channel::parse(&s)
        });
        let fields = ConversationChanges::parse(w, &mut e);
        match assistant_id {
            Some(assistant_id) => e.finish(Self {
                assistant_id,
                user_id,
                channel,
                fields,
            }),
            None => Err(e),
        }
    }
}

impl NewConversation {
    /// The columns to store for `viewer`: only staff name an owner, contact or assignee;
    /// a member owns what they create, staff too unless it is a contact's.
    pub fn columns_for(&self, viewer: Viewer) -> Result<Map<String, Value>, CoreError> {
        if !viewer.staff && !self.user_id.is_absent() {
            return Err(CoreError::Forbidden(
                "only staff set a conversation's user_id".into(),
            ));
        }
        self.fields.allowed_for(viewer)?;
        let mut columns = match serde_json::to_value(self) {
            Ok(Value::Object(map)) => map,
            _ => unreachable!("a new conversation serializes to a JSON object"),
        };
        if self.user_id.is_absent() {
            let owner = if viewer.staff && self.fields.contact_id.value().is_some() {
                None
            } else {
                viewer.user
            };
            columns.insert("user_id".into(), json!(owner));
        }
        Ok(columns)
    }
}

/// Create a conversation of checked `columns` (`NewConversation::columns_for`). A contact
/// that already has an open conversation with an assistant allowing only one is a 409
/// naming that conversation (`conversation_id`).
pub async fn create(
    tx: &mut Tx,
    tenant: Uuid,
    columns: Map<String, Value>,
) -> Result<Conversation, CoreError> {
    let id_of = |name: &str| {
        columns
            .get(name)
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<Uuid>().ok())
    };
    let (Some(assistant), Some(contact)) = (id_of("assistant_id"), id_of("contact_id")) else {
        return Conversation::create(tx, tenant, columns).await;
    };
    // The insert under a savepoint: after the unique index refuses it, the transaction
    // can still read which conversation is open.
    tx.execute("savepoint conversation_create", &[]).await?;
    // (The insert fails before the read that may carry the COMMIT is sent.)
    match Conversation::create(tx, tenant, columns).await {
        Err(CoreError::Conflict {
            field: Some(field),
            message,
        }) if field == "contact_id" => {
            tx.execute("rollback to savepoint conversation_create", &[])
                .await?;
            let open = tx
                .last()
                .query_opt(
                    "select id from app.conversations
                      where tenant_id = $1 and assistant_id = $2 and contact_id = $3
                        and one_open_per_contact and completed_at is null",
                    &[&tenant, &assistant, &contact],
                )
                .await?;
            Err(match open {
                Some(row) => CoreError::Exists {
                    field: Some(field),
                    message,
                    member: "conversation_id",
                    id: row.col("id")?,
                },
                None => CoreError::Conflict {
                    field: Some(field),
                    message,
                },
            })
        }
        other => other,
    }
}

/// Keyset position in a list ordered by last activity, newest first.
#[derive(Debug, Clone, Copy)]
pub struct ActivityKey {
    pub at: DateTime<Utc>,
    pub id: Uuid,
}

impl CursorKey for ActivityKey {
    fn encode(&self) -> String {
        format!("{}_{}", self.at.timestamp_micros(), self.id)
    }
    fn decode(s: &str) -> Option<Self> {
        let (micros, id) = s.split_once('_')?;
        Some(Self {
            at: DateTime::from_timestamp_micros(micros.parse().ok()?)?,
            id: id.parse().ok()?,
        })
    }
}

/// `GET …/conversations` filters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConversationQuery {
    #[serde(default)]
    #[param(value_type = Option<String>)]
    pub state: Param<String>,
    #[serde(default)]
    #[param(value_type = Option<Uuid>)]
    pub assistant_id: Param<Uuid>,
    #[serde(default)]
    #[param(value_type = Option<Uuid>)]
    pub contact_id: Param<Uuid>,
    /// A member's id, or `none` for conversations nobody is assigned.
    #[serde(default)]
    #[param(value_type = Option<String>)]
    pub assignee_id: Param<String>,
    /// Open conversations only (true: not in a terminal state of their flow) or completed
    /// ones only (false); both when absent.
    #[serde(default)]
    #[param(value_type = Option<bool>)]
    pub open: Param<bool>,
    /// Archived conversations only (true) or unarchived only (false, the default).
    #[serde(default)]
    #[param(value_type = Option<bool>)]
    pub archived: Param<bool>,
    /// Only conversations changed at or after this time (RFC 3339).
    #[serde(default)]
    #[param(value_type = Option<DateTime<Utc>>)]
    pub updated_since: Param<DateTime<Utc>>,
    #[serde(default)]
    #[param(value_type = Option<i64>, minimum = 1, maximum = 200)]
    pub limit: Param<i64>,
    #[serde(default)]
    #[param(value_type = Option<String>)]
    pub cursor: Param<String>,
}

/// The `assignee_id` filter: one member, or nobody.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assignee {
    Member(Uuid),
    Nobody,
}

impl Assignee {
    pub fn parse(s: String) -> Result<Self, String> {
        if s == "none" {
            return Ok(Self::Nobody);
        }
        s.parse()
            .map(Self::Member)
            .map_err(|_| "must be a member's id (a UUID) or none".to_owned())
    }
}

/// Checked `GET …/conversations` filters.
#[derive(Debug, Default)]
pub struct ConversationFilter {
    pub state: Option<String>,
    pub assistant_id: Option<Uuid>,
    pub contact_id: Option<Uuid>,
    pub assignee: Option<Assignee>,
    pub open: Option<bool>,
    pub archived: Option<bool>,
    pub updated_since: Option<DateTime<Utc>>,
}

impl ConversationQuery {
    /// The filters and the page, checked.
    pub fn parse(&self) -> Result<(ConversationFilter, Page<ActivityKey>), Invalid> {
        let mut e = Invalid::default();
        let filter = ConversationFilter {
            state: e.param("state", &self.state, any),
            assistant_id: e.param("assistant_id", &self.assistant_id, any),
            contact_id: e.param("contact_id", &self.contact_id, any),
            assignee: e.param("assignee_id", &self.assignee_id, Assignee::parse),
            open: e.param("open", &self.open, any),
            archived: e.param("archived", &self.archived, any),
            updated_since: e.param(
                "updated_since",
                &self.updated_since,
                crate::platform::input::timestamp,
            ),
        };
        let page = Page::parse(&mut e, &self.limit, &self.cursor, DEFAULT_LIMIT, MAX_LIMIT);
        e.finish((filter, page))
    }
}

pub async fn list(
    tx: &mut Tx,
    tenant: Uuid,
    viewer: Viewer,
    filter: &ConversationFilter,
    page: &Page<ActivityKey>,
) -> Result<Paged<Conversation>, CoreError> {
    // A member's own conversations, said explicitly so the owner index serves it (the row
    // policy would give the same rows, but only by filtering the whole tenant's).
    let owner = if viewer.staff { None } else { viewer.user };
    let (after_at, after_id) = match page.after {
        Some(k) => (Some(k.at), Some(k.id)),
        None => (None, None),
    };
    let (assignee_id, unassigned) = match filter.assignee {
        Some(Assignee::Member(id)) => (Some(id), false),
        Some(Assignee::Nobody) => (None, true),
        None => (None, false),
    };
    let rows = tx
        .last()
        .query(
            &format!(
                "select {COLUMNS} from app.conversations
                 where tenant_id = $1 and archived = $2
                   and ($3::timestamptz is null or (last_activity_at, id) < ($3, $4::uuid))
                   and ($5::text is null or state = $5)
                   and ($6::uuid is null or assistant_id = $6)
                   and ($7::uuid is null or contact_id = $7)
                   and ($8::uuid is null or assignee_id = $8)
                   and ($9::timestamptz is null or updated_at >= $9)
                   and ($11::uuid is null or user_id = $11)
                   and (not $12 or assignee_id is null)
                   and ($13::boolean is null or (completed_at is null) = $13)
                 order by last_activity_at desc, id desc limit $10"
            ),
            &[
                &tenant,
                &filter.archived.unwrap_or(false),
                &after_at,
                &after_id,
                &filter.state,
                &filter.assistant_id,
                &filter.contact_id,
                &assignee_id,
                &filter.updated_since,
                &(page.limit + 1),
                &owner,
                &unassigned,
                &filter.open,
            ],
        )
        .await?;
    Ok(Paged::from_rows(
        rows.iter()
            .map(Conversation::from_row)
            .collect::<Result<_, _>>()?,
        page.limit,
        |c: &Conversation| ActivityKey {
            at: c.last_activity_at,
            id: c.id,
        },
    ))
}

impl Record for Conversation {
    const TABLE: &'static str = "conversations";

    fn select_one() -> String {
        format!("select {COLUMNS} from app.conversations where tenant_id = $1 and id = $2")
    }

    fn from_row(row: &Row) -> Result<Self, CoreError> {
        Conversation::from_row(row)
    }
}

pub async fn set_archived(
    tx: &mut Tx,
    tenant: Uuid,
    id: Uuid,
    archived: bool,
) -> Result<Conversation, CoreError> {
    Conversation::update(
        tx,
        tenant,
        id,
        Map::from_iter([("archived".to_owned(), json!(archived))]),
    )
    .await
}

/// `POST …/transitions`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(example = json!({"to": "closed", "reason": "the customer confirmed the booking"}))]
pub struct Transition {
    /// The state to move to; the flow must allow it from the current state.
    #[serde(default)]
    #[schema(value_type = String, required = true)]
    pub to: Field<String>,
    /// Why (at most 2000 characters): recorded in the state history and the
    /// conversation.state_changed event.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub reason: Field<String>,
    #[serde(flatten)]
    #[schema(ignore)]
    pub unknown: Unknown,
}

/// A checked transition: the state asked for (whether the flow allows it is the flow's
/// to say).
#[derive(Debug)]
pub struct TransitionTo {
    pub to: String,
    /// Trimmed, 1 to 2000 characters.
    pub reason: Option<String>,
}

/// A rule: a reason of 1 to 2000 characters, not blank (trimmed).
fn reason_text(s: String) -> Result<String, String> {
    let s = s.trim();
    if s.is_empty() || s.chars().count() > 2000 {
        Err("must be 1 to 2000 characters, not blank".to_owned())
    } else {
        Ok(s.to_owned())
    }
}

impl TryFrom<Transition> for TransitionTo {
    type Error = Invalid;

    fn try_from(w: Transition) -> Result<Self, Invalid> {
        let mut e = Invalid::new(w.unknown);
        let to = e.required("to", w.to, any);
        let reason = e.optional("reason", w.reason, reason_text);
        match to {
            Some(to) => e.finish(Self { to, reason }),
            None => Err(e),
        }
    }
}

/// The conversation and its flow, the row locked until the transaction ends.
async fn lock(tx: &mut Tx, tenant: Uuid, id: Uuid) -> Result<(String, flows::Flow), CoreError> {
    let row = tx
        .query_opt(
            "select state, flow_key from app.conversations where tenant_id = $1 and id = $2 for update",
            &[&tenant, &id],
        )
        .await?
        .ok_or(CoreError::NotFound)?;
    let key: String = row.col("flow_key")?;
    let flow = tx
        .part(async |tx| flows::get(tx, tenant, &key).await)
        .await?;
    Ok((row.col("state")?, flow))
}

fn refuse(flow: &flows::Flow, from: &str, to: &str) -> CoreError {
    let allowed = flow.targets(from);
    CoreError::Transition {
        message: if flow.states.iter().any(|s| s == to) {
            format!("flow {} does not allow {from} → {to}", flow.key)
        } else {
            format!("{to} is not a state of flow {}", flow.key)
        },
        from: from.to_owned(),
        allowed,
    }
}

/// Move a conversation to another state of its flow (409 with the allowed targets when
/// the flow forbids it). The database records who moved it and why, and emits the event.
pub async fn transition(
    tx: &mut Tx,
    tenant: Uuid,
    id: Uuid,
    t: &TransitionTo,
) -> Result<Conversation, CoreError> {
    let to = t.to.as_str();
    let (from, flow) = lock(tx, tenant, id).await?;
    if !flow.targets(&from).iter().any(|s| s == to) {
        return Err(refuse(&flow, &from, to));
    }
    Conversation::update(
        tx,
        tenant,
        id,
        Map::from_iter([
            ("state".to_owned(), json!(to)),
            ("state_reason".to_owned(), json!(t.reason)),
        ]),
    )
    .await
}

/// `POST …/handoff`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(example = json!({"reason": "asks for a discount"}))]
pub struct Handoff {
    /// Why a person is needed (at most 2000 characters).
    #[serde(default)]
    #[schema(value_type = String, required = true)]
    pub reason: Field<String>,
    /// Staff only: who takes it (a member of the tenant).
    #[serde(default)]
    #[schema(value_type = Option<Uuid>)]
    pub assignee_id: Field<Uuid>,
    #[serde(flatten)]
    #[schema(ignore)]
    pub unknown: Unknown,
}

/// A checked request for a person.
#[derive(Debug)]
pub struct HandoffRequest {
    /// Trimmed, 1 to 2000 characters.
    pub reason: String,
    pub assignee_id: Option<Uuid>,
}

impl TryFrom<Handoff> for HandoffRequest {
    type Error = Invalid;

    fn try_from(w: Handoff) -> Result<Self, Invalid> {
        let mut e = Invalid::new(w.unknown);
        let reason = e.required("reason", w.reason, reason_text);
        let assignee_id = e.optional("assignee_id", w.assignee_id, any);
        match reason {
            Some(reason) => e.finish(Self {
                reason,
                assignee_id,
            }),
            None => Err(e),
        }
    }
}

/// Ask for a person: records reason, time and assignee, and moves a flow that has a
/// `handoff` state into it. Emits conversation.handoff_requested.
pub async fn handoff(
    tx: &mut Tx,
    tenant: Uuid,
    id: Uuid,
    handoff: &HandoffRequest,
    viewer: Viewer,
) -> Result<Conversation, CoreError> {
    if handoff.assignee_id.is_some() && !viewer.staff {
        return Err(CoreError::Forbidden(
            "only staff assign a conversation".into(),
        ));
    }
    let (from, flow) = lock(tx, tenant, id).await?;
    let mut to = None;
    if flow.states.iter().any(|s| s == "handoff") && from != "handoff" {
        if !flow.targets(&from).iter().any(|s| s == "handoff") {
            return Err(refuse(&flow, &from, "handoff"));
        }
        to = Some("handoff");
    }
    // The database's clock, like every other timestamp.
    tx.execute(
        "update app.conversations
            set state = coalesce($3, state), handoff_reason = $4, handoff_at = now(),
                state_reason = case when $3::text is null then state_reason else $4 end,
                assignee_id = coalesce($5, assignee_id)
          where tenant_id = $1 and id = $2",
        &[&tenant, &id, &to, &handoff.reason, &handoff.assignee_id],
    )
    .await?;
    Conversation::get(tx, tenant, id).await
}

/// One entry of a conversation's state history.
#[derive(Debug, Serialize, ToSchema)]
pub struct StateChange {
    pub id: Uuid,
    /// Null for the state the conversation started in.
    pub from: Option<String>,
    pub to: String,
    /// The reason given with the change (a handoff's reason for a move into `handoff`).
    pub reason: Option<String>,
    pub actor_user_id: Option<Uuid>,
    pub actor_key_id: Option<Uuid>,
    pub at: DateTime<Utc>,
}

/// The conversation's state history, oldest first.
pub async fn history(tx: &mut Tx, tenant: Uuid, id: Uuid) -> Result<Vec<StateChange>, CoreError> {
    let rows = tx
        .last()
        .query(
            "select t.id, t.from_state, t.to_state, t.reason, t.actor_user_id, t.actor_key_id, t.created_at
             from app.conversations c
             left join app.conversation_transitions t on t.tenant_id = c.tenant_id and t.conversation_id = c.id
             where c.tenant_id = $1 and c.id = $2 order by t.id",
            &[&tenant, &id],
        )
        .await?;
    if rows.is_empty() {
        return Err(CoreError::NotFound);
    }
    rows.iter()
        .filter(|r| !matches!(r.col::<Option<Uuid>>("id"), Ok(None)))
        .map(|r| {
            Ok(StateChange {
                id: r.col("id")?,
                from: r.col("from_state")?,
                to: r.col("to_state")?,
                reason: r.col("reason")?,
                actor_user_id: r.col("actor_user_id")?,
                actor_key_id: r.col("actor_key_id")?,
                at: r.col("created_at")?,
            })
        })
        .collect::<Result<_, CoreError>>()
}

/// `GET …/cost`: the conversation's totals, kept by the messages trigger.
#[derive(Debug, Serialize, ToSchema)]
pub struct Cost {
    #[schema(value_type = String, example = "0.0042")]
    pub cost_usd: Decimal,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub total_tokens: i64,
    pub message_count: i64,
}

pub async fn cost(tx: &mut Tx, tenant: Uuid, id: Uuid) -> Result<Cost, CoreError> {
    tx.last();
    let row = tx
        .query_opt(
            "select cost_usd, prompt_tokens, completion_tokens, message_count
             from app.conversations where tenant_id = $1 and id = $2",
            &[&tenant, &id],
        )
        .await?
        .ok_or(CoreError::NotFound)?;
    let prompt: i64 = row.col("prompt_tokens")?;
    let completion: i64 = row.col("completion_tokens")?;
    Ok(Cost {
        cost_usd: row.col::<Decimal>("cost_usd")?.normalize(),
        prompt_tokens: prompt,
        completion_tokens: completion,
        total_tokens: prompt + completion,
        message_count: row.col("message_count")?,
    })
}

/// Per-role figures of one conversation.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoleStats {
    pub role: String,
    pub message_count: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub total_tokens: i64,
    #[schema(value_type = String, example = "0.0042")]
    pub cost_usd: Decimal,
    /// Mean latency of the messages that recorded one, in milliseconds.
    pub avg_latency_ms: Option<f64>,
}

pub async fn stats(tx: &mut Tx, tenant: Uuid, id: Uuid) -> Result<Vec<RoleStats>, CoreError> {
    tx.last();
    let rows = tx
        .query(
            "select m.role, count(m.id) as n,
                    coalesce(sum(m.prompt_tokens), 0)::bigint as prompt,
                    coalesce(sum(m.completion_tokens), 0)::bigint as completion,
                    coalesce(sum(m.cost_usd), 0) as cost,
                    avg(m.latency_ms)::float8 as latency
             from app.conversations c
             left join app.messages m on m.tenant_id = c.tenant_id and m.conversation_id = c.id
             where c.tenant_id = $1 and c.id = $2
             group by m.role order by m.role",
            &[&tenant, &id],
        )
        .await?;
    if rows.is_empty() {
        return Err(CoreError::NotFound);
    }
    let mut stats = Vec::with_capacity(rows.len());
    for r in &rows {
        let Some(role) = r.col::<Option<String>>("role")? else {
            continue;
        };
        let prompt: i64 = r.col("prompt")?;
        let completion: i64 = r.col("completion")?;
        stats.push(RoleStats {
            role,
            message_count: r.col("n")?,
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: prompt + completion,
            cost_usd: r.col::<Decimal>("cost")?.normalize(),
            avg_latency_ms: r.col("latency")?,
        });
    }
    Ok(stats)
}
