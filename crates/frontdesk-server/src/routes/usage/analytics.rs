//! `/v1/tenants/{tenant}/analytics/…`: figures from the daily rollups (and, for funnels,
//! the state history), as JSON or, with `Accept: text/csv`, as CSV.

use axum::{http::HeaderMap, response::Response};
use frontdesk_core::{
    CoreError, Tx,
    usage::analytics::{
        self, DailyMessages, FeedbackByAssistant, FeedbackQuery, FunnelQuery, FunnelStep,
        ProviderUsage, Table, TopQuery, TopSpender,
    },
    usage::period::{FilterQuery, PeriodQuery, Selection},
};

use crate::{
    error::{ApiResult, Problem},
    extract::{QueryParams, TenantScope},
    reply,
    routes::TenantPath,
};

/// A row of `/analytics/feedback`: by assistant (the default) or, with `by=model`, by
/// model. `anyOf`, not `oneOf`: the two overlap (every field but the first is shared and
/// the rest may be absent in a schema's eyes).
struct FeedbackRow;

impl utoipa::PartialSchema for FeedbackRow {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::{Ref, schema::AnyOfBuilder};
        AnyOfBuilder::new()
            .item(Ref::from_schema_name("FeedbackByAssistant"))
            .item(Ref::from_schema_name("FeedbackByModel"))
            .description(Some(
                "A row by assistant (the default) or, with by=model, by model.",
            ))
            .into()
    }
}

impl utoipa::ToSchema for FeedbackRow {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        use utoipa::PartialSchema;
        schemas.push(("FeedbackByAssistant".into(), FeedbackByAssistant::schema()));
        schemas.push((
            "FeedbackByModel".into(),
            frontdesk_core::usage::analytics::FeedbackByModel::schema(),
        ));
        <FeedbackByAssistant as utoipa::ToSchema>::schemas(schemas);
        <frontdesk_core::usage::analytics::FeedbackByModel as utoipa::ToSchema>::schemas(schemas);
    }
}

/// Every analytics handler: read the table `work` makes, answer it as JSON or CSV.
async fn table<T: Table>(
    scope: &TenantScope,
    headers: &HeaderMap,
    work: impl AsyncFnOnce(&mut Tx) -> Result<T, CoreError>,
) -> ApiResult<Response> {
    let table = scope.read(work).await?;
    reply::table(headers, &table)
}

/// Usage per provider and model over the period (default: the last 30 days): requests,
/// tokens, cost, mean latency, first and last use; most expensive first.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/analytics/providers", tag = "analytics", params(TenantPath, PeriodQuery, FilterQuery),
    responses((status = 200, description = "JSON, or CSV with Accept: text/csv",
               content((Vec<ProviderUsage> = "application/json"), (String = "text/csv"))),
              (status = 422, body = Problem)))]
pub async fn providers(
    scope: TenantScope,
    headers: HeaderMap,
    QueryParams(period): QueryParams<PeriodQuery>,
    QueryParams(filters): QueryParams<FilterQuery>,
) -> ApiResult<Response> {
    let q = Selection::parse(&period, &filters)?;
    table(&scope, &headers, async |tx| {
        analytics::providers(tx, scope.tenant, &q).await
    })
    .await
}

/// Messages per day and user over the period: user and assistant messages, tokens, cost.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/analytics/messages/daily", tag = "analytics", params(TenantPath, PeriodQuery, FilterQuery),
    responses((status = 200, description = "JSON, or CSV with Accept: text/csv",
               content((Vec<DailyMessages> = "application/json"), (String = "text/csv"))),
              (status = 422, body = Problem)))]
pub async fn daily_messages(
    scope: TenantScope,
    headers: HeaderMap,
    QueryParams(period): QueryParams<PeriodQuery>,
    QueryParams(filters): QueryParams<FilterQuery>,
) -> ApiResult<Response> {
    let q = Selection::parse(&period, &filters)?;
    table(&scope, &headers, async |tx| {
        analytics::daily_messages(tx, scope.tenant, &q).await
    })
    .await
}

/// The users, assistants, contacts or conversations that spent most over the period, each
/// with a name to show. Contacts and conversations are counted from the period's messages
/// and usage events (no rollup holds them), the others from the daily rollups.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/analytics/top", tag = "analytics", params(TenantPath, TopQuery, PeriodQuery, FilterQuery),
    responses((status = 200, description = "JSON, or CSV with Accept: text/csv",
               content((Vec<TopSpender> = "application/json"), (String = "text/csv"))),
              (status = 422, body = Problem)))]
pub async fn top(
    scope: TenantScope,
    headers: HeaderMap,
    QueryParams(q): QueryParams<TopQuery>,
    QueryParams(period): QueryParams<PeriodQuery>,
    QueryParams(filters): QueryParams<FilterQuery>,
) -> ApiResult<Response> {
    let checked = q.parse(&period, &filters)?;
    table(&scope, &headers, async |tx| {
        analytics::top(tx, scope.tenant, &checked).await
    })
    .await
}

/// A flow's funnel: for each of its states, in order, how many conversations (optionally
/// of one assistant) entered it in the period.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/analytics/funnel", tag = "analytics", params(TenantPath, FunnelQuery, PeriodQuery),
    responses((status = 200, description = "JSON, or CSV with Accept: text/csv",
               content((Vec<FunnelStep> = "application/json"), (String = "text/csv"))),
              (status = 422, body = Problem)))]
pub async fn funnel(
    scope: TenantScope,
    headers: HeaderMap,
    QueryParams(q): QueryParams<FunnelQuery>,
    QueryParams(period): QueryParams<PeriodQuery>,
) -> ApiResult<Response> {
    let checked = q.parse(&period)?;
    table(&scope, &headers, async |tx| {
        analytics::funnel(tx, scope.tenant, &checked).await
    })
    .await
}

/// Ratings of the messages written in the period, by assistant (default) or by model
/// (`by=model`): how many, up, down, and the positive rate; most rated first. From the
/// feedback rollup; a member counts the ratings in their own conversations.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/analytics/feedback", tag = "analytics", params(TenantPath, FeedbackQuery, PeriodQuery, FilterQuery),
    responses((status = 200, description = "JSON (by=model: FeedbackByModel rows), or CSV with Accept: text/csv",
               content((Vec<FeedbackRow> = "application/json"), (String = "text/csv"))),
              (status = 422, body = Problem)),
    )]
pub async fn feedback(
    scope: TenantScope,
    headers: HeaderMap,
    QueryParams(q): QueryParams<FeedbackQuery>,
    QueryParams(period): QueryParams<PeriodQuery>,
    QueryParams(filters): QueryParams<FilterQuery>,
) -> ApiResult<Response> {
    let checked = q.parse(&period, &filters)?;
    table(&scope, &headers, async |tx| {
        analytics::feedback(tx, scope.tenant, &checked).await
    })
    .await
}
