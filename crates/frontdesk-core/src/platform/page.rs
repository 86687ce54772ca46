//! Cursor pagination: `?limit=` (default 50, at most 200) and an opaque `?cursor=`.
//! A cursor is the base64url of the last row's key and a MAC over that key and the
//! listing it came from (the route, its path, and the tenant — or the user, for lists
//! outside a tenant — that the server binds for the request with [`in_cursor_scope`] and
//! [`bind_cursor_scope`]). So a cursor a client built or changed, or one returned by
//! another listing or for another tenant, is refused (422) instead of being read as a
//! position. The MAC's key is derived from a secret every server shares
//! ([`set_cursor_key`]), so a cursor works on any server.

use std::cell::RefCell;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
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
    /// `next_cursor` of the previous page of this same list (any other cursor is a 422).
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

/// Bytes of the MAC a cursor carries.
const MAC_LEN: usize = 16;

static CURSOR_KEY: std::sync::OnceLock<[u8; 32]> = std::sync::OnceLock::new();

/// Derive the cursors' MAC key from `secret`, shared by every server of a deployment (the
/// first call wins). Without it, a random key of this process is used.
pub fn set_cursor_key(secret: &[u8]) {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes any key");
    mac.update(b"frontdesk cursor key v1");
    let _ = CURSOR_KEY.set(mac.finalize().into_bytes().into());
}

fn cursor_key() -> &'static [u8; 32] {
    CURSOR_KEY.get_or_init(|| {
        let mut key = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut key);
        key
    })
}

tokio::task_local! {
    /// The listing a request's cursors belong to.
    static SCOPE: RefCell<String>;
}

/// Run `work` (a request) with cursors bound to `listing` (its route and path).
pub async fn in_cursor_scope<F: std::future::Future>(listing: String, work: F) -> F::Output {
    SCOPE.scope(RefCell::new(listing), work).await
}

/// Bind the request's cursors also to `part` (the tenant's id, or the user's).
pub fn bind_cursor_scope(part: &str) {
    let _ = SCOPE.try_with(|scope| {
        let mut scope = scope.borrow_mut();
        scope.push('\0');
        scope.push_str(part);
    });
}

fn cursor_mac(key: &str) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(cursor_key()).expect("HMAC takes any key");
    let _ = SCOPE.try_with(|scope| mac.update(scope.borrow().as_bytes()));
    mac.update(b"\0");
    mac.update(key.as_bytes());
    mac
}

/// The cursor for `key` in the current listing.
pub fn seal_cursor(key: &str) -> String {
    let mut bytes = key.as_bytes().to_vec();
    bytes.extend_from_slice(&cursor_mac(key).finalize().into_bytes()[..MAC_LEN]);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The key in `cursor`, if this listing sealed it.
pub fn open_cursor(cursor: &str) -> Option<String> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    let split = bytes.len().checked_sub(MAC_LEN)?;
    let (key, tag) = bytes.split_at(split);
    let key = String::from_utf8(key.to_vec()).ok()?;
    cursor_mac(&key).verify_truncated_left(tag).ok()?;
    Some(key)
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

impl CursorKey for i64 {
    fn encode(&self) -> String {
        self.to_string()
    }
    fn decode(s: &str) -> Option<Self> {
        s.parse().ok()
    }
}

/// The direction of a list that offers `?order=asc|desc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    /// Newest (or highest) first.
    #[default]
    Desc,
    Asc,
}

impl Order {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Desc => "desc",
            Self::Asc => "asc",
        }
    }

    /// Check `?order=` into `e` (absent: `desc`).
    pub fn parse(e: &mut Invalid, order: &Param<String>) -> Self {
        e.param("order", order, |o| match o.as_str() {
            "desc" => Ok(Self::Desc),
            "asc" => Ok(Self::Asc),
            _ => Err("must be asc or desc".to_owned()),
        })
        .unwrap_or_default()
    }
}

/// A position in a list read in one order: its cursors carry the order, so that a cursor
/// is only ever used to continue the list in the direction it was made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ordered<K> {
    pub order: Order,
    pub key: K,
}

impl<K: CursorKey> CursorKey for Ordered<K> {
    fn encode(&self) -> String {
        format!("{}:{}", self.order.as_str(), self.key.encode())
    }
    fn decode(s: &str) -> Option<Self> {
        let (order, key) = s.split_once(':')?;
        let order = match order {
            "desc" => Order::Desc,
            "asc" => Order::Asc,
            _ => return None,
        };
        Some(Self {
            order,
            key: K::decode(key)?,
        })
    }
}

impl<K: CursorKey> Page<Ordered<K>> {
    /// Check `?limit=`, `?cursor=` and `?order=` into `e`: a cursor made for the other
    /// order is refused. The order asked for, and the page with the cursor's position.
    pub fn parse_ordered(
        e: &mut Invalid,
        limit: &Param<i64>,
        cursor: &Param<String>,
        order: &Param<String>,
        default: i64,
        max: i64,
    ) -> (Order, Page<K>) {
        let asked = Order::parse(e, order);
        let page = Page::<Ordered<K>>::parse(e, limit, cursor, default, max);
        let after = match page.after {
            Some(c) if c.order != asked && !matches!(order, Param::Invalid(_)) => {
                e.push(
                    "cursor",
                    format!(
                        "continues the list in order={}, not order={}: repeat order={} with this cursor, or leave the cursor out to start again",
                        c.order.as_str(),
                        asked.as_str(),
                        c.order.as_str()
                    ),
                );
                None
            }
            Some(c) => Some(c.key),
            None => None,
        };
        (
            asked,
            Page {
                limit: page.limit,
                after,
            },
        )
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
            open_cursor(&c)
                .and_then(|s| K::decode(&s))
                .ok_or_else(|| "is not a cursor this API returned for this list".to_owned())
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
            rows.last().map(|r| seal_cursor(&key(r).encode()))
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
        let cursor = seal_cursor(&id(2).to_string());
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
