//! What the usage and analytics reads select: a period — the last `days` (or `months`), or
//! the days `from` … `to` — and the filters by assistant and provider. Days are the
//! tenant's, in its time zone, as the daily rollups count them; both ends of `from`/`to`
//! are included.

use chrono::{Datelike, NaiveDate};
use serde::Deserialize;
use tokio_postgres::types::ToSql;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::platform::{
    input::{Invalid, Param, any},
    page::{DEFAULT_LIMIT, MAX_LIMIT, Page, PageQuery},
};

/// The longest period by days, in days (as `days`' maximum).
pub const MAX_DAYS: i32 = 366;
/// The longest period by months, in calendar months (as `months`' maximum).
pub const MAX_MONTHS: i32 = 36;

/// `?days=` (1–366, default 30), or `?from=&to=`: dates (`YYYY-MM-DD`) of the tenant, both
/// included, at most 366 days apart.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PeriodQuery {
    /// The last N days, today included (default 30). Not with `from`/`to`.
    #[serde(default)]
    #[param(value_type = Option<i32>, minimum = 1, maximum = 366)]
    pub days: Param<i32>,
    /// The first day (`YYYY-MM-DD`, the tenant's time zone), with `to`.
    #[serde(default)]
    #[param(value_type = Option<String>, format = Date, example = "2026-11-01")]
    pub from: Param<String>,
    /// The last day, included (`YYYY-MM-DD`), with `from`.
    #[serde(default)]
    #[param(value_type = Option<String>, format = Date, example = "2026-11-30")]
    pub to: Param<String>,
}

/// `?months=` (1–36, default 12), or `?from=&to=`: dates of the tenant, both included,
/// within 36 calendar months.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MonthsQuery {
    /// The last N calendar months, this one included (default 12). Not with `from`/`to`.
    #[serde(default)]
    #[param(value_type = Option<i32>, minimum = 1, maximum = 36)]
    pub months: Param<i32>,
    /// The first day (`YYYY-MM-DD`, the tenant's time zone), with `to`: its month starts
    /// with it.
    #[serde(default)]
    #[param(value_type = Option<String>, format = Date, example = "2026-01-01")]
    pub from: Param<String>,
    /// The last day, included (`YYYY-MM-DD`), with `from`: its month ends with it.
    #[serde(default)]
    #[param(value_type = Option<String>, format = Date, example = "2026-06-30")]
    pub to: Param<String>,
}

/// `?assistant_id=&provider=`: only the usage of one assistant, of one provider's models.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FilterQuery {
    /// Only this assistant's usage (an id of another tenant finds nothing).
    #[serde(default)]
    #[param(value_type = Option<Uuid>)]
    pub assistant_id: Param<Uuid>,
    /// Only this provider's calls (any case; providers are kept lower-case).
    #[serde(default)]
    #[param(value_type = Option<String>, max_length = 100, example = "openai")]
    pub provider: Param<String>,
}

/// A checked period: the last `count` days or months, or the days `from` … `to`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Period {
    count: i32,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
}

impl Period {
    /// The last `days` days, today included.
    pub fn last_days(days: i32) -> Self {
        Self {
            count: days,
            from: None,
            to: None,
        }
    }
}

/// Checked filters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filters {
    pub assistant_id: Option<Uuid>,
    /// Lower case, as stored.
    pub provider: Option<String>,
}

/// What a usage or analytics read covers: its period and filters.
#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    pub period: Period,
    pub filters: Filters,
}

/// A date as the API takes it: exactly `YYYY-MM-DD`, years 1 to 9999.
fn date(s: String) -> Result<NaiveDate, String> {
    const RULE: &str = "must be a date, YYYY-MM-DD (a day in the tenant's time zone)";
    let b = s.as_bytes();
    let shape = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !shape {
        return Err(RULE.into());
    }
    NaiveDate::parse_from_str(&s, "%Y-%m-%d")
        .ok()
        .filter(|d| d.year() >= 1)
        .ok_or_else(|| RULE.into())
}

/// Check a count (`days` or `months`, 1 to `max`) or a `from`/`to` pair into `e`: one or
/// the other, `from` not after `to`, and no longer than `fits` allows (`too_long` says
/// why not).
#[expect(
    clippy::too_many_arguments,
    reason = "the two period forms share these rules; each caller names its own count"
)]
fn check_period(
    e: &mut Invalid,
    count_name: &str,
    count: &Param<i32>,
    default: i32,
    max: i32,
    from: &Param<String>,
    to: &Param<String>,
    fits: impl Fn(NaiveDate, NaiveDate) -> bool,
    too_long: &str,
) -> Period {
    let n = e
        .param(count_name, count, |n| {
            if (1..=max).contains(&n) {
                Ok(n)
            } else {
                Err(format!("must be between 1 and {max}"))
            }
        })
        .unwrap_or(default);
    let first = e.param("from", from, date);
    let last = e.param("to", to, date);
    let mut period = Period::last_days(n);
    if from.is_absent() && to.is_absent() {
        return period;
    }
    if !count.is_absent() {
        e.push(
            count_name,
            format!("give {count_name}, or from and to, not both"),
        );
    }
    if from.is_absent() {
        e.push("from", "is required with to");
    }
    if to.is_absent() {
        e.push("to", "is required with from");
    }
    if let (Some(first), Some(last)) = (first, last) {
        if first > last {
            e.push("from", "must not be after to");
        } else if !fits(first, last) {
            e.push("to", too_long);
        }
        period.from = Some(first);
        period.to = Some(last);
    }
    period
}

impl PeriodQuery {
    /// Check into `e` (the last 30 days when nothing is given).
    pub fn check(&self, e: &mut Invalid) -> Period {
        check_period(
            e,
            "days",
            &self.days,
            30,
            MAX_DAYS,
            &self.from,
            &self.to,
            |first, last| (last - first).num_days() < i64::from(MAX_DAYS),
            "the period may span at most 366 days",
        )
    }
}

impl MonthsQuery {
    /// Check into `e` (the last 12 months when nothing is given).
    pub fn check(&self, e: &mut Invalid) -> Period {
        let month = |d: NaiveDate| d.year() * 12 + d.month0() as i32;
        check_period(
            e,
            "months",
            &self.months,
            12,
            MAX_MONTHS,
            &self.from,
            &self.to,
            |first, last| month(last) - month(first) < MAX_MONTHS,
            "the period may touch at most 36 calendar months",
        )
    }
}

impl FilterQuery {
    /// Check into `e`.
    pub fn check(&self, e: &mut Invalid) -> Filters {
        Filters {
            assistant_id: e.param("assistant_id", &self.assistant_id, any),
            provider: e.param("provider", &self.provider, |p: String| {
                if p.trim().is_empty() || p.chars().count() > 100 || p.chars().any(char::is_control)
                {
                    Err("must be 1 to 100 characters, not blank".to_owned())
                } else {
                    Ok(p.to_lowercase())
                }
            }),
        }
    }
}

impl Selection {
    /// A checked period by days and filters.
    pub fn parse(period: &PeriodQuery, filters: &FilterQuery) -> Result<Self, Invalid> {
        let mut e = Invalid::default();
        let selection = Self {
            period: period.check(&mut e),
            filters: filters.check(&mut e),
        };
        e.finish(selection)
    }

    /// A checked period by months and filters.
    pub fn parse_months(months: &MonthsQuery, filters: &FilterQuery) -> Result<Self, Invalid> {
        let mut e = Invalid::default();
        let selection = Self {
            period: months.check(&mut e),
            filters: filters.check(&mut e),
        };
        e.finish(selection)
    }

    /// The parameters the SQL below reads: `$1` the tenant, `$2`/`$3` from/to (null: the
    /// last `$4` days or months), `$5` the assistant, `$6` the provider (null: any).
    pub(crate) fn params<'a>(&'a self, tenant: &'a Uuid) -> Vec<&'a (dyn ToSql + Sync)> {
        vec![
            tenant,
            &self.period.from,
            &self.period.to,
            &self.period.count,
            &self.filters.assistant_id,
            &self.filters.provider,
        ]
    }
}

/// `GET …/usage/events?from=&to=`: RFC 3339 times, both included (events are not counted
/// by day).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TimesQuery {
    /// Events recorded at or after this time (RFC 3339).
    #[serde(default)]
    #[param(value_type = Option<String>, format = DateTime, example = "2026-11-01T00:00:00Z")]
    pub from: Param<chrono::DateTime<chrono::Utc>>,
    /// Events recorded at or before this time (RFC 3339).
    #[serde(default)]
    #[param(value_type = Option<String>, format = DateTime, example = "2026-12-01T00:00:00Z")]
    pub to: Param<chrono::DateTime<chrono::Utc>>,
}

/// A checked selection of usage events: times and filters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventSelection {
    pub from: Option<chrono::DateTime<chrono::Utc>>,
    pub to: Option<chrono::DateTime<chrono::Utc>>,
    pub filters: Filters,
}

impl EventSelection {
    /// A checked page of usage events, with its times and filters.
    pub fn parse(
        page: &PageQuery,
        times: &TimesQuery,
        filters: &FilterQuery,
    ) -> Result<(Page<Uuid>, Self), Invalid> {
        let mut e = Invalid::default();
        let page = Page::parse(&mut e, &page.limit, &page.cursor, DEFAULT_LIMIT, MAX_LIMIT);
        let from = e.param("from", &times.from, crate::platform::input::timestamp);
        let to = e.param("to", &times.to, crate::platform::input::timestamp);
        if let (Some(from), Some(to)) = (from, to)
            && from > to
        {
            e.push("from", "must not be after to");
        }
        let filters = filters.check(&mut e);
        e.finish((page, Self { from, to, filters }))
    }
}

/// The tenant's today, for the subqueries below.
const TODAY: &str = "(now() at time zone timezone)::date";

/// The first day of a period by days (see [`Selection::params`]).
pub(crate) fn first_day() -> String {
    format!("(select coalesce($2::date, {TODAY} - ($4::int - 1)) from app.tenants where id = $1)")
}

/// The first day of a period by months: the first of the month `$4 - 1` months ago.
pub(crate) fn first_day_of_months() -> String {
    format!(
        "(select coalesce($2::date, (date_trunc('month', {TODAY}) - make_interval(months => $4::int - 1))::date)
          from app.tenants where id = $1)"
    )
}

/// The last day of a period (today unless `to` is given).
pub(crate) fn last_day() -> String {
    format!("(select coalesce($3::date, {TODAY}) from app.tenants where id = $1)")
}

/// `alias.day` within a period by days.
pub(crate) fn in_days(alias: &str) -> String {
    format!("{alias}.day between {} and {}", first_day(), last_day())
}

/// The rows of `alias` (a rollup) that the filters let through.
pub(crate) fn filtered(alias: &str) -> String {
    format!(
        "($5::uuid is null or {alias}.assistant_id = $5) and ($6::text is null or {alias}.provider = $6)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(days: Option<&str>, from: Option<&str>, to: Option<&str>) -> PeriodQuery {
        let p = |v: Option<&str>| v.map_or(Param::Absent, |v| Param::Value(v.to_owned()));
        PeriodQuery {
            days: days.map_or(Param::Absent, |d| {
                d.parse()
                    .map_or(Param::Invalid("not a number".into()), Param::Value)
            }),
            from: p(from),
            to: p(to),
        }
    }

    fn fields(q: &PeriodQuery) -> Vec<String> {
        let mut e = Invalid::default();
        q.check(&mut e);
        e.0.into_iter().map(|f| f.field).collect()
    }

    #[test]
    fn a_period_is_days_or_a_pair_of_dates_in_order_and_bounded() {
        assert!(fields(&query(None, None, None)).is_empty());
        assert!(fields(&query(Some("7"), None, None)).is_empty());
        assert!(fields(&query(None, Some("2026-01-01"), Some("2026-01-01"))).is_empty());
        assert!(fields(&query(None, Some("2025-01-01"), Some("2026-01-01"))).is_empty());
        assert_eq!(
            fields(&query(None, Some("2025-01-01"), Some("2026-01-02"))),
            ["to"]
        );
        assert_eq!(
            fields(&query(Some("7"), Some("2026-01-01"), Some("2026-01-02"))),
            ["days"]
        );
        assert_eq!(
            fields(&query(None, Some("2026-01-02"), Some("2026-01-01"))),
            ["from"]
        );
        assert_eq!(fields(&query(None, Some("2026-01-02"), None)), ["to"]);
        assert_eq!(fields(&query(None, None, Some("2026-01-02"))), ["from"]);
        for bad in [
            "2026-1-01",
            "2026-02-30",
            "0000-01-01",
            "2026-01-01T00:00:00Z",
            "+2026-01-01",
            "",
        ] {
            assert_eq!(
                fields(&query(None, Some(bad), Some("2026-03-01"))),
                ["from"],
                "{bad}"
            );
        }
    }

    #[test]
    fn a_period_by_months_touches_at_most_36() {
        let q = |from: &str, to: &str| {
            let mut e = Invalid::default();
            MonthsQuery {
                months: Param::Absent,
                from: Param::Value(from.into()),
                to: Param::Value(to.into()),
            }
            .check(&mut e);
            e.is_empty()
        };
        assert!(q("2024-01-15", "2026-12-31"));
        assert!(!q("2023-12-31", "2026-12-01"));
    }
}
