//! `/v1/tenants/{tenant}/usage/…`: usage from the daily rollups, as JSON or, with
//! `Accept: text/csv`, as CSV.

use axum::{
    http::{HeaderMap, StatusCode},
    response::Response,
};
use frontdesk_core::{
    platform::page::{PageQuery, Paged},
    usage::analytics::One,
    usage::period::{EventSelection, FilterQuery, MonthsQuery, PeriodQuery, Selection, TimesQuery},
    usage::usage::{self, NewUsageEvent, UnpricedModel, Usage, UsageDraft, UsageEvent},
};

use crate::{
    error::{ApiResult, Problem},
    extract::{QueryParams, TenantScope},
    idempotency::Creating,
    reply,
    routes::{IdempotencyHeader, TenantPath},
};

/// Record usage not tied to a message (embeddings, voice minutes, tool calls): tokens of a
/// model, costed from the price catalog unless `cost_usd` is given, or a unit and quantity
/// with a unit price. Staff and keys. It counts in the rollups at once. Past one of the
/// tenant's limits it is stored all the same, with `over_limit: true` (429 only with
/// `strict_limits`).
#[utoipa::path(post, path = "/v1/tenants/{tenant}/usage", tag = "usage",
    params(TenantPath, IdempotencyHeader), request_body = NewUsageEvent,
    responses((status = 201, body = UsageEvent), (status = 403, body = Problem), (status = 422, body = Problem),
              (status = 429, body = Problem, description = "only with the tenant's strict_limits: its rate limit per minute, daily tokens or monthly budget would be passed; nothing was stored")))]
pub async fn record(scope: TenantScope, new: Creating<NewUsageEvent>) -> ApiResult<Response> {
    let draft = UsageDraft::try_from(new.body)?;
    scope
        .create(new.idempotency, StatusCode::CREATED, async |tx| {
            usage::record(tx, scope.tenant, &draft).await
        })
        .await
}

/// Recorded usage events, newest first (a member: their own); optionally between two
/// times, of one assistant or provider. As CSV: the page's rows, with the next page's
/// cursor in the `Next-Cursor` header.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/usage/events", tag = "usage", params(TenantPath, PageQuery, TimesQuery, FilterQuery),
    responses((status = 200, description = "JSON, or CSV with Accept: text/csv (the cursor of the next page, if any, in Next-Cursor)",
               content((Paged<UsageEvent> = "application/json"), (String = "text/csv")),
               headers(("Next-Cursor" = String, description = "CSV only: the next page's cursor"))),
              (status = 422, body = Problem)))]
pub async fn events(
    scope: TenantScope,
    headers: HeaderMap,
    QueryParams(page): QueryParams<PageQuery>,
    QueryParams(times): QueryParams<TimesQuery>,
    QueryParams(filters): QueryParams<FilterQuery>,
) -> ApiResult<Response> {
    let (page, q) = EventSelection::parse(&page, &times, &filters)?;
    let events = scope
        .read(async |tx| usage::events(tx, scope.tenant, &q, &page).await)
        .await?;
    reply::table(&headers, &events)
}

/// Usage per day of the period (default: the last 30 days), oldest first, in the tenant's
/// time zone; optionally of one assistant or provider. Members see their own usage only.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/usage/daily", tag = "usage", params(TenantPath, PeriodQuery, FilterQuery),
    responses((status = 200, description = "JSON, or CSV with Accept: text/csv",
               content((Vec<Usage> = "application/json"), (String = "text/csv"))),
              (status = 422, body = Problem)))]
pub async fn daily(
    scope: TenantScope,
    headers: HeaderMap,
    QueryParams(period): QueryParams<PeriodQuery>,
    QueryParams(filters): QueryParams<FilterQuery>,
) -> ApiResult<Response> {
    let q = Selection::parse(&period, &filters)?;
    let usage = scope
        .read(async |tx| usage::daily(tx, scope.tenant, &q).await)
        .await?;
    reply::table(&headers, &usage)
}

/// Today's usage so far, in the tenant's time zone; optionally of one assistant or
/// provider.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/usage/today", tag = "usage", params(TenantPath, FilterQuery),
    responses((status = 200, description = "JSON, or CSV (one line) with Accept: text/csv",
               content((Usage = "application/json"), (String = "text/csv"))),
              (status = 422, body = Problem)))]
pub async fn today(
    scope: TenantScope,
    headers: HeaderMap,
    QueryParams(filters): QueryParams<FilterQuery>,
) -> ApiResult<Response> {
    let q = Selection::parse(&PeriodQuery::default(), &filters)?;
    let usage = scope
        .read(async |tx| usage::today(tx, scope.tenant, q.filters).await)
        .await?;
    reply::table(&headers, &One(usage))
}

/// Usage per calendar month of the period (default: the last 12 months), oldest first;
/// optionally of one assistant or provider.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/usage/monthly", tag = "usage", params(TenantPath, MonthsQuery, FilterQuery),
    responses((status = 200, description = "JSON, or CSV with Accept: text/csv",
               content((Vec<Usage> = "application/json"), (String = "text/csv"))),
              (status = 422, body = Problem)))]
pub async fn monthly(
    scope: TenantScope,
    headers: HeaderMap,
    QueryParams(months): QueryParams<MonthsQuery>,
    QueryParams(filters): QueryParams<FilterQuery>,
) -> ApiResult<Response> {
    let q = Selection::parse_months(&months, &filters)?;
    let usage = scope
        .read(async |tx| usage::monthly(tx, scope.tenant, &q).await)
        .await?;
    reply::table(&headers, &usage)
}

/// The models used without a price (their calls costed 0), with how many calls and the
/// first and last day, most calls first; from the daily rollups (a member: their own).
#[utoipa::path(get, path = "/v1/tenants/{tenant}/usage/unpriced", tag = "usage", params(TenantPath),
    responses((status = 200, description = "JSON, or CSV with Accept: text/csv",
               content((Vec<UnpricedModel> = "application/json"), (String = "text/csv")))))]
pub async fn unpriced(scope: TenantScope, headers: HeaderMap) -> ApiResult<Response> {
    let models = scope
        .read(async |tx| usage::unpriced(tx, scope.tenant).await)
        .await?;
    reply::table(&headers, &models)
}
