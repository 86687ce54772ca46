//! Flows: the state machines conversations follow. Three are built in (`assistant`,
//! `ari_sales`, `creative_brief`); a tenant may define its own, which are immutable once
//! created so that every conversation stays in a state of its flow.

use frontdesk_pg::RowExt;
use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_postgres::Row;
use utoipa::ToSchema;

use crate::{
    CoreError, Tx,
    platform::input::{Field, Invalid, Unknown, any, is_identifier},
};

/// A flow with its states and allowed transitions.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Flow {
    pub key: String,
    pub name: String,
    pub description: Option<String>,
    /// Built-in flows are shared by every tenant and cannot be changed.
    pub builtin: bool,
    pub initial_state: String,
    pub states: Vec<String>,
    /// Entering one of these sets a conversation's `completed_at`.
    pub terminal_states: Vec<String>,
    /// For each state, the states a conversation may move to from it.
    pub transitions: BTreeMap<String, Vec<String>>,
    /// Null for built-in flows.
    pub created_at: Option<DateTime<Utc>>,
}

impl Flow {
    fn from_row(row: &Row) -> Result<Self, CoreError> {
        let transitions: Value = row.col("transitions")?;
        Ok(Self {
            key: row.col("key")?,
            name: row.col("name")?,
            description: row.col("description")?,
            builtin: row.col("builtin")?,
            initial_state: row.col("initial_state")?,
            states: row.col("states")?,
            terminal_states: row.col("terminal_states")?,
            transitions: serde_json::from_value(transitions).unwrap_or_default(),
            created_at: row.col("created_at")?,
        })
    }

    /// The states a conversation in `from` may move to.
    pub fn targets(&self, from: &str) -> Vec<String> {
        self.transitions.get(from).cloned().unwrap_or_default()
    }
}

/// `POST …/flows`: a tenant's own flow.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(example = json!({
    "key": "support", "name": "Support",
    "states": ["new", "investigating", "waiting", "resolved"],
    "initial_state": "new", "terminal_states": ["resolved"],
    "transitions": {"new": ["investigating"], "investigating": ["waiting", "resolved"], "waiting": ["investigating", "resolved"]}
}))]
pub struct NewFlow {
    /// 2–63 lower-case letters, digits and underscores, starting with a letter; not the
    /// key of a built-in flow.
    #[serde(default)]
    #[schema(value_type = String, required = true, pattern = "^[a-z][a-z0-9_]{1,62}$")]
    pub key: Field<String>,
    #[serde(default)]
    #[schema(value_type = String, required = true)]
    pub name: Field<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub description: Field<String>,
    /// 1–100 distinct state names (lower-case letters, digits, underscores).
    #[serde(default)]
    #[schema(value_type = Vec<String>, required = true, min_items = 1, max_items = 100)]
    pub states: Field<Vec<String>>,
    #[serde(default)]
    #[schema(value_type = String, required = true, pattern = "^[a-z][a-z0-9_]{0,62}$")]
    pub initial_state: Field<String>,
    /// Distinct states among `states` where a conversation ends (it may still have a way
    /// out, like the built-in `assistant`'s `closed`: leaving it clears `completed_at`).
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>)]
    pub terminal_states: Field<Vec<String>>,
    /// State → the other states it may move to, each named once.
    #[serde(default)]
    #[schema(value_type = BTreeMap<String, Vec<String>>, required = true)]
    pub transitions: Field<BTreeMap<String, Vec<String>>>,
    #[serde(flatten)]
    #[schema(ignore)]
    pub unknown: Unknown,
}

/// A checked flow: its states and transitions fit together.
#[derive(Debug)]
pub struct FlowDefinition {
    pub key: String,
    pub name: String,
    pub description: Option<String>,
    pub states: Vec<String>,
    pub initial_state: String,
    pub terminal_states: Vec<String>,
    pub transitions: BTreeMap<String, Vec<String>>,
}

impl TryFrom<NewFlow> for FlowDefinition {
    type Error = Invalid;

    fn try_from(w: NewFlow) -> Result<Self, Invalid> {
        let mut e = Invalid::new(w.unknown);
        let key = e.required("key", w.key, any);
        let name = e.required("name", w.name, any);
        let description = e.optional("description", w.description, any);
        let states = e.required("states", w.states, any);
        let initial_state = e.required("initial_state", w.initial_state, any);
        let terminal_states = e
            .optional("terminal_states", w.terminal_states, any)
            .unwrap_or_default();
        let transitions = e.required("transitions", w.transitions, any);
        let (Some(key), Some(name), Some(states), Some(initial_state), Some(transitions)) =
            (key, name, states, initial_state, transitions)
        else {
            return Err(e);
        };
        let flow = Self {
            key,
            name,
            description,
            states,
            initial_state,
            terminal_states,
            transitions,
        };
        flow.check(&mut e);
        e.finish(flow)
    }
}

impl FlowDefinition {
    /// Note every rule the flow breaks.
    fn check(&self, e: &mut Invalid) {
        let mut error = |field: String, message: &str| e.push(field, message);
        if !is_identifier(&self.key, 2, 63) {
            error(
                "key".into(),
                "must be 2 to 63 lower-case letters, digits and underscores, starting with a letter",
            );
        }
        if self.name.trim().is_empty() || self.name.chars().count() > 200 {
            error("name".into(), "must be 1 to 200 characters, not blank");
        }
        if self
            .description
            .as_ref()
            .is_some_and(|d| d.chars().count() > 2000)
        {
            error("description".into(), "must be at most 2000 characters");
        }
        let states: BTreeSet<&str> = self.states.iter().map(String::as_str).collect();
        if self.states.is_empty() || self.states.len() > 100 {
            error("states".into(), "must list 1 to 100 states");
        }
        if states.len() != self.states.len() {
            error("states".into(), "must not repeat a state");
        }
        for (i, s) in self.states.iter().enumerate() {
            if !is_identifier(s, 1, 63) {
                error(
                    format!("states[{i}]"),
                    "must be 1 to 63 lower-case letters, digits and underscores, starting with a letter",
                );
            }
        }
        if !states.contains(self.initial_state.as_str()) {
            error("initial_state".into(), "must be one of the states");
        }
        for (i, s) in self.terminal_states.iter().enumerate() {
            if !states.contains(s.as_str()) {
                error(format!("terminal_states[{i}]"), "must be one of the states");
            } else if self.terminal_states[..i].contains(s) {
                error(format!("terminal_states[{i}]"), "must not repeat a state");
            }
        }
        for (from, targets) in &self.transitions {
            if !states.contains(from.as_str()) {
                error(format!("transitions.{from}"), "is not one of the states");
            }
            for (i, to) in targets.iter().enumerate() {
                if !states.contains(to.as_str()) || to == from {
                    error(
                        format!("transitions.{from}[{i}]"),
                        "must be another of the states",
                    );
                } else if targets[..i].contains(to) {
                    error(
                        format!("transitions.{from}[{i}]"),
                        "must not repeat a target",
                    );
                }
            }
        }
    }
}

const SELECT: &str = "select key, name, description, builtin, initial_state, states, terminal_states, transitions, created_at from (
        select key, name, description, true as builtin, initial_state, states, terminal_states, transitions,
               null::timestamptz as created_at
        from app.builtin_flows
        union all
        select key, name, description, false, initial_state, states, terminal_states, transitions, created_at
        from app.flows where tenant_id = $1) f";

/// Every flow the tenant can use: the built-in ones, then its own, by key.
pub async fn list(tx: &mut Tx, tenant: uuid::Uuid) -> Result<Vec<Flow>, CoreError> {
    let rows = tx
        .last()
        .query(&format!("{SELECT} order by builtin desc, key"), &[&tenant])
        .await?;
    rows.iter().map(Flow::from_row).collect::<Result<_, _>>()
}

pub async fn get(tx: &mut Tx, tenant: uuid::Uuid, key: &str) -> Result<Flow, CoreError> {
    let row = tx
        .last()
        // Built-in first: a tenant flow never shadows one (app.flows_not_builtin).
        .query_opt(
            &format!("{SELECT} where key = $2 order by builtin desc limit 1"),
            &[&tenant, &key],
        )
        .await?
        .ok_or(CoreError::NotFound)?;
    Flow::from_row(&row)
}

pub async fn create(
    tx: &mut Tx,
    tenant: uuid::Uuid,
    new: &FlowDefinition,
) -> Result<Flow, CoreError> {
    let transitions = serde_json::to_value(&new.transitions).expect("plain map");
    tx.execute(
        "insert into app.flows (tenant_id, key, name, description, initial_state, states, terminal_states, transitions)
         values ($1, $2, $3, $4, $5, $6, $7, $8)",
        &[
            &tenant,
            &new.key,
            &new.name.trim(),
            &new.description,
            &new.initial_state,
            &new.states,
            &new.terminal_states,
            &transitions,
        ],
    )
    .await?;
    get(tx, tenant, &new.key).await
}
