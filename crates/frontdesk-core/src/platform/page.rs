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
    #[param(value_type = Option<i64>)]
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

/// The most JSON a page of results holds, in bytes: a page ends early (with a
/// `next_cursor`) before the row that would take it past this, and holds at least one row
/// (which its fields' own bounds keep small). docs/API.md, "Pagination".
pub const MAX_PAGE_BYTES: usize = 4 * 1024 * 1024;

/// Keep the rows of one page: at most `limit`, and no more than fit in `MAX_PAGE_BYTES`
/// of JSON (at least one). Whether rows were left for another page.
fn fit_page<T: Serialize>(rows: &mut Vec<T>, limit: i64) -> bool {
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut keep = rows.len().min(usize::try_from(limit).unwrap_or(0));
    let mut size = Counter(0);
    for (i, row) in rows.iter().take(keep).enumerate() {
        // A row that does not serialize fails the page when it is sent; count it as small.
        let _ = serde_json::to_writer(&mut size, row);
        size.0 += 1;
        if size.0 > MAX_PAGE_BYTES && i > 0 {
            keep = i;
            break;
        }
    }
    let more = rows.len() > keep;
    rows.truncate(keep);
    more
}

impl<T: Serialize> Paged<T> {
    /// Build a page from up to `limit + 1` fetched rows: the extra row only tells that
    /// another page exists. A page also ends early when it reaches `MAX_PAGE_BYTES`.
    pub fn from_rows<K: CursorKey>(mut rows: Vec<T>, limit: i64, key: impl Fn(&T) -> K) -> Self {
        let more = fit_page(&mut rows, limit);
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

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    #[test]
    fn a_page_ends_before_the_row_that_would_pass_the_byte_bound() {
        let big = "x".repeat(MAX_PAGE_BYTES / 4);
        let rows: Vec<(Uuid, String)> = (0..10).map(|i| (id(i), big.clone())).collect();
        let page = Paged::from_rows(rows, 200, |r: &(Uuid, String)| r.0);
        // Four rows are a little more than the bound (quotes, commas, brackets, ids).
        assert_eq!(page.data.len(), 3);
        let cursor = URL_SAFE_NO_PAD.encode(id(2).to_string());
        assert_eq!(page.next_cursor.as_deref(), Some(cursor.as_str()));
        assert!(serde_json::to_vec(&page).unwrap().len() <= MAX_PAGE_BYTES);
    }

    #[test]
    fn a_page_holds_at_least_one_row_and_small_pages_are_cut_by_limit_only() {
        let huge = vec![
            (id(0), "x".repeat(MAX_PAGE_BYTES + 1)),
            (id(1), String::new()),
        ];
        let page = Paged::from_rows(huge, 200, |r: &(Uuid, String)| r.0);
        assert_eq!(page.data.len(), 1);
        assert!(page.next_cursor.is_some());
        let small: Vec<Uuid> = (0..5).map(id).collect();
        let page = Paged::from_rows(small.clone(), 5, |r: &Uuid| *r);
        assert_eq!((page.data.len(), page.next_cursor), (5, None));
        let page = Paged::from_rows(small, 4, |r: &Uuid| *r);
        assert_eq!(page.data.len(), 4);
        assert!(page.next_cursor.is_some());
    }
}
