//! The tenant's limits (writes per minute, tokens per day, cost per month): where each
//! stands, and reservations — an estimate held against them before an LLM call, settled
//! by the message or usage event that follows (`reservation_id`), or expiring unused.
//! The figures are the tenant's totals for every caller: the limits are the tenant's.
//!
//! Limits act where spending is decided (a check, a reservation, and, where the tenant
//! chose it, a new conversation). A message or usage event records what already happened:
//! it is always stored and charged, and flagged `over_limit` when it takes the tenant past
//! a limit (`app.charge_write`), unless the tenant chose `strict_limits`.

use chrono::{DateTime, Utc};
use frontdesk_pg::RowExt;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use tokio_postgres::Row;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::{
    CoreError, LimitReached, Tx,
    conversations::messages::CostSource,
    platform::input::{Field, Invalid, Param, Unknown, any, int32_within},
    platform::page::{DEFAULT_LIMIT, MAX_LIMIT, Page, Paged},
    platform::values::CostUsd,
    usage::usage::LlmCall,
};

crate::text_enum!(
    /// One of a tenant's limits.
    pub enum LimitName {
        RateLimitPerMinute = "rate_limit_per_minute",
        DailyTokenLimit = "daily_token_limit",
        MonthlyBudgetUsd = "monthly_budget_usd",
    }
);

impl LimitName {
    /// A set of limit names (a JSON array of them, each at most once).
    pub fn parse_set(names: Vec<String>) -> Result<Vec<Self>, String> {
        let mut set = Vec::with_capacity(names.len());
        for name in names {
            let limit = Self::parse(&name)?;
            if set.contains(&limit) {
                return Err(format!("names {name} twice"));
            }
            set.push(limit);
        }
        Ok(set)
    }
}

/// The share of a limit at which `usage.limit_warning` is sent: 0.01 to 1, at most two
/// decimal places (what the column keeps: more would be rounded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct WarningShare(Decimal);

impl WarningShare {
    pub fn parse(share: f64) -> Result<Self, String> {
        const RULE: &str = "must be a number from 0.01 to 1 with at most two decimal places";
        // The number as written (an f64 prints as the shortest text that reads back as it).
        let d = Decimal::from_str_exact(&share.to_string())
            .map_err(|_| RULE.to_owned())?
            .normalize();
        if d < Decimal::new(1, 2) || d > Decimal::ONE || d.scale() > 2 {
            Err(RULE.to_owned())
        } else {
            Ok(Self(d))
        }
    }
}

/// One of the tenant's limits and where it stands in its current window.
#[derive(Debug, Serialize, ToSchema)]
pub struct LimitStatus {
    /// rate_limit_per_minute, daily_token_limit or monthly_budget_usd.
    #[schema(pattern = "^(rate_limit_per_minute|daily_token_limit|monthly_budget_usd)$")]
    pub name: String,
    /// Null: unlimited. Decimal string.
    pub limit: Option<String>,
    /// Writes this minute, tokens today, or USD this month (decimal string).
    pub used: String,
    /// What live reservations hold in this window (decimal string).
    pub reserved: String,
    /// limit − used − reserved; null when unlimited.
    pub remaining: Option<String>,
    pub window_start: DateTime<Utc>,
    pub resets_at: DateTime<Utc>,
}

/// A limit's state as numbers, for deciding.
struct Standing {
    name: String,
    limit: Option<Decimal>,
    used: Decimal,
    reserved: Decimal,
    window_start: DateTime<Utc>,
    resets_at: DateTime<Utc>,
}

impl Standing {
    /// Whether writes took the tenant past this limit in its window.
    fn is_past(&self) -> bool {
        self.limit.is_some_and(|l| self.used + self.reserved > l)
    }

    fn remaining(&self) -> Option<Decimal> {
        self.limit
            .map(|l| (l - self.used - self.reserved).max(Decimal::ZERO))
    }

    fn view(&self) -> LimitStatus {
        LimitStatus {
            name: self.name.clone(),
            limit: self.limit.map(|l| l.normalize().to_string()),
            used: self.used.normalize().to_string(),
            reserved: self.reserved.normalize().to_string(),
            remaining: self.remaining().map(|r| r.normalize().to_string()),
            window_start: self.window_start,
            resets_at: self.resets_at,
        }
    }
}

async fn standings(tx: &mut Tx) -> Result<Vec<Standing>, CoreError> {
    let rows = tx
        .query(
            "select name, lim, used, reserved, window_start, resets_at from app.limit_status()",
            &[],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Standing {
                name: r.col(0)?,
                limit: r.col(1)?,
                used: r.col(2)?,
                reserved: r.col(3)?,
                window_start: r.col(4)?,
                resets_at: r.col(5)?,
            })
        })
        .collect::<Result<_, CoreError>>()
}

/// The tenant's limits with what is used, reserved and left in each current window.
pub async fn limits(tx: &mut Tx) -> Result<Vec<LimitStatus>, CoreError> {
    tx.last();
    Ok(standings(tx).await?.iter().map(Standing::view).collect())
}

/// `POST …/limits/check`: an estimate of the call about to be made.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(example = json!({"provider": "openai", "model": "gpt-4o-mini", "prompt_tokens": 1200,
                          "completion_tokens": 400, "reserve": true, "ttl_seconds": 120}))]
pub struct LimitCheck {
    #[serde(default)]
    #[schema(value_type = Option<i64>)]
    pub prompt_tokens: Field<i64>,
    #[serde(default)]
    #[schema(value_type = Option<i64>)]
    pub completion_tokens: Field<i64>,
    /// With `model`, prices the tokens from the catalog when `cost_usd` is not given.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub provider: Field<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub model: Field<String>,
    /// The estimated cost; wins over the catalog's.
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = r"^[0-9]+(\.[0-9]+)?$")]
    pub cost_usd: Field<crate::platform::input::DecimalText>,
    /// Hold the estimate (and one write of the rate limit) until a write settles it or
    /// it expires. Default false: only ask.
    #[serde(default)]
    #[schema(value_type = Option<bool>)]
    pub reserve: Field<bool>,
    /// How long a reservation holds: 1–3600 seconds (default 300).
    #[serde(default)]
    #[schema(value_type = Option<i64>)]
    pub ttl_seconds: Field<i64>,
    #[serde(flatten)]
    #[schema(ignore)]
    pub unknown: Unknown,
}

/// A checked estimate.
#[derive(Debug)]
pub struct Estimate {
    pub call: LlmCall,
    pub cost_usd: Option<CostUsd>,
    pub tokens: i64,
    pub reserve: bool,
    pub ttl_seconds: i32,
}

impl TryFrom<LimitCheck> for Estimate {
    type Error = Invalid;

    fn try_from(w: LimitCheck) -> Result<Self, Invalid> {
        let mut e = Invalid::new(w.unknown);
        let call = LlmCall::parse(
            &mut e,
            w.prompt_tokens,
            w.completion_tokens,
            w.provider,
            w.model,
        );
        let cost_usd = e.optional("cost_usd", w.cost_usd.decimal(), CostUsd::parse);
        let reserve = e.optional("reserve", w.reserve, any).unwrap_or(false);
        let ttl_seconds = e
            .optional("ttl_seconds", w.ttl_seconds, int32_within(1..=3600))
            .unwrap_or(300);
        let tokens = i64::from(call.prompt_tokens.unwrap_or(0))
            + i64::from(call.completion_tokens.unwrap_or(0));
        e.finish(Self {
            call,
            cost_usd,
            tokens,
            reserve,
            ttl_seconds,
        })
    }
}

crate::text_enum!(
    /// Where a reservation stands: active (holding), settled (by a write), expired or
    /// cancelled.
    pub enum ReservationStatus {
        Active = "active",
        Settled = "settled",
        Expired = "expired",
        Cancelled = "cancelled",
    }
);

/// A held estimate.
#[derive(Debug, Serialize, ToSchema)]
pub struct Reservation {
    pub id: Uuid,
    pub tokens: i64,
    #[schema(value_type = String, example = "0.00042")]
    pub cost_usd: Decimal,
    /// provided, catalog or unpriced; null when the estimate had no cost or tokens.
    pub cost_source: Option<CostSource>,
    /// active (holding), settled (by a write), expired or cancelled.
    pub status: ReservationStatus,
    /// The rate window in which it holds one write (null: none).
    pub minute_window: Option<DateTime<Utc>>,
    /// The day in which it holds its tokens (null: none).
    pub day_window: Option<DateTime<Utc>>,
    /// The month in which it holds its cost (null: none).
    pub month_window: Option<DateTime<Utc>>,
    pub expires_at: DateTime<Utc>,
    pub settled_at: Option<DateTime<Utc>>,
    /// The message or usage event that settled it.
    pub settled_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

/// An active reservation past its expiry holds nothing: it reads as expired even before
/// the sweeper marks it.
const RESERVATION_COLUMNS: &str = "id, tokens, cost_usd, cost_source,
    case when status = 'active' and expires_at <= now() then 'expired' else status end,
    minute_window, day_window, month_window, expires_at, settled_at, settled_by, created_at";

impl Reservation {
    fn from_row(row: &Row) -> Result<Self, CoreError> {
        Ok(Self {
            id: row.col(0)?,
            tokens: row.col(1)?,
            cost_usd: row.col::<Decimal>(2)?.normalize(),
            cost_source: row.col(3)?,
            status: row.col(4)?,
            minute_window: row.col(5)?,
            day_window: row.col(6)?,
            month_window: row.col(7)?,
            expires_at: row.col(8)?,
            settled_at: row.col(9)?,
            settled_by: row.col(10)?,
            created_at: row.col(11)?,
        })
    }
}

/// The answer to a check.
#[derive(Debug, Serialize, ToSchema)]
pub struct LimitCheckResult {
    /// Whether a write of this size fits every limit now (with `reserve`: it was reserved).
    pub allowed: bool,
    /// The limits it does not fit, or that writes already took the tenant past.
    pub refused_by: Vec<String>,
    /// The estimate's tokens and cost, as they count against the limits.
    pub tokens: i64,
    #[schema(value_type = String, example = "0.00042")]
    pub cost_usd: Decimal,
    pub cost_source: Option<CostSource>,
    /// The limits after the reservation, if one was made.
    pub limits: Vec<LimitStatus>,
    pub reservation: Option<Reservation>,
}

/// The estimate's cost: given, priced from the catalog, or zero without tokens.
async fn estimate_cost(
    tx: &mut Tx,
    tenant: Uuid,
    e: &Estimate,
) -> Result<(Decimal, Option<CostSource>), CoreError> {
    if let Some(cost) = e.cost_usd {
        return Ok((cost.get(), Some(CostSource::Provided)));
    }
    if !e.call.has_tokens() {
        return Ok((Decimal::ZERO, None));
    }
    let row = tx
        .query_one(
            "select cost_usd, cost_source from app.token_cost($1, lower($2), $3, now(), $4, $5)",
            &[
                &tenant,
                &e.call.provider(),
                &e.call.model,
                &e.call.prompt_tokens,
                &e.call.completion_tokens,
            ],
        )
        .await?;
    Ok((row.col::<Decimal>(0)?, row.col(1)?))
}

/// Whether the estimate fits every limit now, without holding anything.
pub async fn check(tx: &mut Tx, tenant: Uuid, e: &Estimate) -> Result<LimitCheckResult, CoreError> {
    let (cost, cost_source) = estimate_cost(tx, tenant, e).await?;
    tx.last();
    let standings = standings(tx).await?;
    let need = |name: &str| match name {
        "rate_limit_per_minute" => Decimal::ONE,
        "daily_token_limit" => Decimal::from(e.tokens),
        _ => cost,
    };
    let refused_by: Vec<String> = standings
        .iter()
        .filter(|s| {
            let need = need(&s.name);
            // A limit already past refuses every check, whatever its size: the writes
            // that took the tenant past it were stored, the next call is not made.
            s.is_past() || (need > Decimal::ZERO && s.remaining().is_some_and(|left| left < need))
        })
        .map(|s| s.name.clone())
        .collect();
    Ok(LimitCheckResult {
        allowed: refused_by.is_empty(),
        refused_by,
        tokens: e.tokens,
        cost_usd: cost.normalize(),
        cost_source,
        limits: standings.iter().map(Standing::view).collect(),
        reservation: None,
    })
}

/// Hold the estimate against the limits, or refuse with `LimitReached` holding nothing.
pub async fn reserve(
    tx: &mut Tx,
    tenant: Uuid,
    e: &Estimate,
) -> Result<LimitCheckResult, CoreError> {
    let (cost, cost_source) = estimate_cost(tx, tenant, e).await?;
    let row = tx
        .query_one(
            &format!("select {RESERVATION_COLUMNS} from app.reserve_limits($1, $2, $3, $4, $5)"),
            &[
                &Uuid::now_v7(),
                &e.tokens,
                &cost,
                &cost_source,
                &e.ttl_seconds,
            ],
        )
        .await?;
    let reservation = Reservation::from_row(&row)?;
    let limits = standings(tx).await?.iter().map(Standing::view).collect();
    Ok(LimitCheckResult {
        allowed: true,
        refused_by: Vec::new(),
        tokens: e.tokens,
        cost_usd: cost.normalize(),
        cost_source,
        limits,
        reservation: Some(reservation),
    })
}

/// One reservation the caller may see (staff: any of the tenant's; others: their own).
pub async fn get(tx: &mut Tx, tenant: Uuid, id: Uuid) -> Result<Reservation, CoreError> {
    tx.last();
    let row = tx
        .query_opt(
            &format!(
                "select {RESERVATION_COLUMNS} from app.limit_reservations where tenant_id = $1 and id = $2"
            ),
            &[&tenant, &id],
        )
        .await?
        .ok_or(CoreError::NotFound)?;
    Reservation::from_row(&row)
}

/// `GET …/limits/reservations`: `?status=` narrows to one status.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReservationQuery {
    /// active, settled, expired or cancelled.
    #[serde(default)]
    #[param(value_type = Option<ReservationStatus>)]
    pub status: Param<String>,
    #[serde(default)]
    #[param(value_type = Option<i64>, minimum = 1, maximum = 200)]
    pub limit: Param<i64>,
    #[serde(default)]
    #[param(value_type = Option<String>)]
    pub cursor: Param<String>,
}

impl ReservationQuery {
    /// The status asked for and the page, checked.
    pub fn parse(&self) -> Result<(Option<ReservationStatus>, Page<Uuid>), Invalid> {
        let mut e = Invalid::default();
        let status = e.param("status", &self.status, |s| ReservationStatus::parse(&s));
        let page = Page::parse(&mut e, &self.limit, &self.cursor, DEFAULT_LIMIT, MAX_LIMIT);
        e.finish((status, page))
    }
}

/// The tenant's reservations, newest first.
pub async fn list(
    tx: &mut Tx,
    tenant: Uuid,
    status: Option<ReservationStatus>,
    page: &Page<Uuid>,
) -> Result<Paged<Reservation>, CoreError> {
    tx.last();
    let rows = tx
        .query(
            &format!(
                "select * from (select {RESERVATION_COLUMNS} from app.limit_reservations
                                where tenant_id = $1 and ($2::uuid is null or id < $2)) r (id, tokens,
                     cost_usd, cost_source, status, minute_window, day_window, month_window, expires_at,
                     settled_at, settled_by, created_at)
                 where $3::text is null or status = $3
                 order by id desc limit $4"
            ),
            &[&tenant, &page.after, &status, &(page.limit + 1)],
        )
        .await?;
    Ok(Paged::from_rows(
        rows.iter()
            .map(Reservation::from_row)
            .collect::<Result<_, _>>()?,
        page.limit,
        |r: &Reservation| r.id,
    ))
}

/// Cancel a reservation and give back what it holds. Cancelling one that is already
/// cancelled or expired changes nothing; one a write settled is a conflict.
pub async fn cancel(tx: &mut Tx, id: Uuid) -> Result<(), CoreError> {
    tx.last();
    let status: Option<String> = tx
        .query_one("select app.cancel_reservation($1)", &[&id])
        .await?
        .col(0)?;
    match status.as_deref() {
        None => Err(CoreError::NotFound),
        Some("settled") => Err(CoreError::Conflict {
            field: None,
            message: "a write already settled this reservation".into(),
        }),
        Some(_) => Ok(()),
    }
}

/// The tenants whose reservations the sweeper has work on (expired ones to give back,
/// finished ones to delete): a plain read across tenants, as the operator.
pub async fn tenants_to_sweep(tx: &mut Tx) -> Result<Vec<Uuid>, CoreError> {
    let rows = tx
        .query("select tenant_id from app.tenants_to_sweep()", &[])
        .await?;
    Ok(rows.iter().map(|r| r.col(0)).collect::<Result<_, _>>()?)
}

/// Mark one tenant's expired reservations and give back what they held, as the operator
/// (each is claimed by one sweeper with `SKIP LOCKED`, within the tenant). Returns how
/// many expired.
pub async fn sweep(tx: &mut Tx, tenant: Uuid) -> Result<u64, CoreError> {
    let expired: i32 = tx
        .last()
        .query_one("select app.expire_reservations($1)", &[&tenant])
        .await?
        .col(0)?;
    Ok(expired as u64)
}

/// Record that a limit refused something (a reservation, a new conversation, a strict
/// write; it rolled back): the first time in its window this emits usage.limit_reached. Runs in a transaction of its own after the
/// refusal.
pub async fn note_reached(tx: &mut Tx, limit: &LimitReached) -> Result<(), CoreError> {
    let detail = serde_json::json!({
        "limit": limit.limit, "used": limit.used,
        "window_start": limit.window_start, "resets_at": limit.resets_at,
    });
    tx.last()
        .execute(
            "select app.note_limit_reached($1, $2, $3)",
            &[&limit.name, &limit.window_start, &detail],
        )
        .await?;
    Ok(())
}
