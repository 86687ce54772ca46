//! Cursor pagination: `?limit=` (default 50, at most 200) and an opaque `?cursor=`.
//! Cursors are the base64url of the last row's key; clients must not build them.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::platform::input::{Invalid, Param};

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 200;

/// `?limit=&cursor=` as sent.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items per page, 1–200 (default 50).
    #[serde(default)]
    #[param(value_type = Option<i64>, minimum = 1, maximum = 200)]
    pub limit: Param<i64>,
    /// `next_cursor` of the previous page.
    #[serde(default)]
    #[param(value_type = Option<String>)]
    pub cursor: Param<String>,
}

/// A checked page request.
#[derive(Debug, Clone)]
pub struct Page<K> {
    pub limit: i64,
    pub after: Option<K>,
}

/// A key that can be put in a cursor.
pub trait CursorKey: Sized {
    fn encode(&self) -> String;
    fn decode(s: &str) -> Option<Self>;
}

impl CursorKey for uuid::Uuid {
    fn encode(&self) -> String {
        self.to_string()
    }
    fn decode(s: &str) -> Option<Self> {
        s.parse().ok()
    }
}

impl<K: CursorKey> Page<K> {
    /// Check `?limit=` (1 to `max`, default `default`) and `?cursor=` into `e`.
    pub fn parse(
        e: &mut Invalid,
        limit: &Param<i64>,
        cursor: &Param<String>,
        default: i64,
        max: i64,
    ) -> Self {
        let limit = e
            .param("limit", limit, |n| {
                if (1..=max).contains(&n) {
                    Ok(n)
                } else {
                    Err(format!("must be between 1 and {max}"))
                }
            })
            .unwrap_or(default);
        let after = e.param("cursor", cursor, |c| {
            URL_SAFE_NO_PAD
                .decode(c)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|s| K::decode(&s))
                .ok_or_else(|| "is not a cursor this API returned".to_owned())
        });
        Self { limit, after }
    }
}

impl PageQuery {
    /// The page asked for, checked.
    pub fn parse<K: CursorKey>(&self) -> Result<Page<K>, Invalid> {
        let mut e = Invalid::default();
        let page = Page::parse(&mut e, &self.limit, &self.cursor, DEFAULT_LIMIT, MAX_LIMIT);
        e.finish(page)
    }
}

/// A page of results.
#[derive(Debug, Serialize, ToSchema)]
pub struct Paged<T> {
    pub data: Vec<T>,
    /// Pass as `?cursor=` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Paged<T> {
    /// Build a page from up to `limit + 1` fetched rows: the extra row only tells that
    /// another page exists.
    pub fn from_rows<K: CursorKey>(mut rows: Vec<T>, limit: i64, key: impl Fn(&T) -> K) -> Self {
        let more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        let next_cursor = if more {
            rows.last().map(|r| URL_SAFE_NO_PAD.encode(key(r).encode()))
        } else {
            None
        };
        Self {
            data: rows,
            next_cursor,
        }
    }
}
