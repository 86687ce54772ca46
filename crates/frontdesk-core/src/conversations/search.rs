//! Full-text search over a tenant's messages, in the tenant's search language. Row
//! policies limit a member to their own conversations' messages.

use chrono::{DateTime, Utc};
use frontdesk_pg::RowExt;
use serde::{Deserialize, Serialize};
use tokio_postgres::Row;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::{
    CoreError, Tx,
    conversations::messages::MessageRole,
    platform::input::{Invalid, Param, any},
    platform::page::MAX_LIMIT,
};

/// `GET …/search`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// Words to find; supports "quoted phrases", `or` and `-excluded` words.
    #[serde(default)]
    #[param(value_type = String, required = true, example = "bali")]
    pub q: Param<String>,
    /// Only this conversation's messages.
    #[serde(default)]
    #[param(value_type = Option<Uuid>)]
    pub conversation_id: Param<Uuid>,
    /// 1–200 (default 20).
    #[serde(default)]
    #[param(value_type = Option<i64>, minimum = 1, maximum = 200)]
    pub limit: Param<i64>,
    /// `next_cursor` of the previous page.
    #[serde(default)]
    #[param(value_type = Option<String>)]
    pub cursor: Param<String>,
}

/// A checked search.
#[derive(Debug)]
pub struct Search {
    /// Trimmed, 1 to 500 characters.
    pub q: String,
    pub conversation_id: Option<Uuid>,
    pub limit: i64,
    /// Ranked results page by position; the cursor is the offset of the next page.
    pub offset: i64,
}

impl SearchQuery {
    pub fn parse(&self) -> Result<Search, Invalid> {
        let mut e = Invalid::default();
        let q = e.required_param("q", &self.q, |q| {
            let q = q.trim();
            if q.is_empty() || q.chars().count() > 500 {
                Err("must be 1 to 500 characters, not blank".to_owned())
            } else {
                Ok(q.to_owned())
            }
        });
        let conversation_id = e.param("conversation_id", &self.conversation_id, any);
        let limit = e
            .param("limit", &self.limit, |n| {
                if (1..=MAX_LIMIT).contains(&n) {
                    Ok(n)
                } else {
                    Err(format!("must be between 1 and {MAX_LIMIT}"))
                }
            })
            .unwrap_or(20);
        let offset = e
            .param("cursor", &self.cursor, |c| {
                let c = crate::platform::page::open_cursor(&c).unwrap_or_default();
                match c.strip_prefix("o").and_then(|n| n.parse::<i64>().ok()) {
                    Some(n) if (0..=10_000).contains(&n) => Ok(n),
                    _ => Err("is not a cursor this API returned".to_owned()),
                }
            })
            .unwrap_or(0);
        match q {
            Some(q) => e.finish(Search {
                q,
                conversation_id,
                limit,
                offset,
            }),
            None => Err(e),
        }
    }
}

/// One matching message.
#[derive(Debug, Serialize, ToSchema)]
pub struct Hit {
    pub message_id: Uuid,
    pub conversation_id: Uuid,
    pub role: MessageRole,
    /// The matching part of the content, HTML-escaped, matched words between `<mark>` and
    /// `</mark>`.
    pub snippet: String,
    /// Higher is better.
    pub rank: f32,
    pub created_at: DateTime<Utc>,
}

/// A page of hits, best first.
#[derive(Debug, Serialize, ToSchema)]
pub struct Hits {
    pub data: Vec<Hit>,
    pub next_cursor: Option<String>,
}

impl Hit {
    fn from_row(row: &Row) -> Result<Self, CoreError> {
        Ok(Self {
            message_id: row.col("id")?,
            conversation_id: row.col("conversation_id")?,
            role: row.col("role")?,
            snippet: row.col("snippet")?,
            rank: row.col("rank")?,
            created_at: row.col("created_at")?,
        })
    }
}

/// Matches are delimited with control characters first, so that the snippet can be
/// HTML-escaped before they become `<mark>` tags: a message's own markup never reaches a
/// client that renders snippets as HTML.
const START: char = '\u{2}';
const STOP: char = '\u{3}';
const HEADLINE: &str =
    "StartSel=\"\u{2}\", StopSel=\"\u{3}\", MaxWords=30, MinWords=10, MaxFragments=2";

fn mark_up(snippet: &str) -> String {
    let mut out = String::with_capacity(snippet.len() + 16);
    for c in snippet.chars() {
        match c {
            START => out.push_str("<mark>"),
            STOP => out.push_str("</mark>"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

pub async fn search(tx: &mut Tx, tenant: Uuid, query: &Search) -> Result<Hits, CoreError> {
    let Search {
        ref q,
        conversation_id,
        limit,
        offset,
    } = *query;
    tx.last();
    let rows = tx
        .query(
            "with lang as (select search_language from app.tenants where id = $1),
                  query as (select websearch_to_tsquery(('pg_catalog.' || search_language)::regconfig, $2) as q,
                                   search_language from lang)
             select m.id, m.conversation_id, m.role, m.created_at,
                    ts_rank(app.message_document(m.search_language, m.content), query.q) as rank,
                    ts_headline(('pg_catalog.' || m.search_language)::regconfig, m.content, query.q,
                                $6) as snippet
             from app.messages m, query
             where m.tenant_id = $1
               and app.message_document(m.search_language, m.content) @@ query.q
               and ($3::uuid is null or m.conversation_id = $3)
             order by rank desc, m.id desc
             limit $4 offset $5",
            &[&tenant, q, &conversation_id, &(limit + 1), &offset, &HEADLINE],
        )
        .await?;
    let mut data: Vec<Hit> = rows.iter().map(Hit::from_row).collect::<Result<_, _>>()?;
    for hit in &mut data {
        hit.snippet = mark_up(&hit.snippet);
    }
    let more = data.len() as i64 > limit;
    data.truncate(limit as usize);
    Ok(Hits {
        data,
        next_cursor: more
            .then(|| crate::platform::page::seal_cursor(&format!("o{}", offset + limit))),
    })
}
