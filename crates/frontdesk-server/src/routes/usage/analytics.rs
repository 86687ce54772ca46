//! `/v1/tenants/{tenant}/analytics/…`: figures from the daily rollups (and, for funnels,
//! the state history), as JSON or, with `Accept: text/csv`, as CSV.

use axum::{http::HeaderMap, response::Response};
use frontdesk_core::{
    usage::analytics::{
        self, DAILY_MESSAGES_COLUMNS, DailyMessages, FEEDBACK_BY_ASSISTANT_COLUMNS,
        FEEDBACK_BY_MODEL_COLUMNS, FUNNEL_COLUMNS, Feedback, FeedbackByAssistant, FeedbackQuery,
        FunnelQuery, FunnelStep, PROVIDER_COLUMNS, ProviderUsage, TOP_COLUMNS, TopQuery,
        TopSpender,
    },
    usage::usage::Days,
};

use crate::{
    error::{ApiResult, Problem},
    extract::{QueryParams, TenantScope},
    reply,
    routes::TenantPath,
};

/// Usage per provider and model over the last `days` days: requests, tokens, cost, mean
/// latency, first and last use; most expensive first.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/analytics/providers", tag = "analytics", params(TenantPath, Days),
    responses((status = 200, body = Vec<ProviderUsage>, description = "JSON, or CSV with Accept: text/csv"),
              (status = 422, body = Problem)))]
pub async fn providers(
    scope: TenantScope,
    headers: HeaderMap,
    QueryParams(q): QueryParams<Days>,
) -> ApiResult<Response> {
    let days = q.parse()?;
    let mut tx = scope.begin().await?;
    let rows = analytics::providers(&mut tx, scope.tenant, days).await?;
    reply::table(&headers, &rows, PROVIDER_COLUMNS)
}

/// Messages per day and user over the last `days` days: user and assistant messages,
/// tokens, cost.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/analytics/messages/daily", tag = "analytics", params(TenantPath, Days),
    responses((status = 200, body = Vec<DailyMessages>, description = "JSON, or CSV with Accept: text/csv"),
              (status = 422, body = Problem)))]
pub async fn daily_messages(
    scope: TenantScope,
    headers: HeaderMap,
    QueryParams(q): QueryParams<Days>,
) -> ApiResult<Response> {
    let days = q.parse()?;
    let mut tx = scope.begin().await?;
    let rows = analytics::daily_messages(&mut tx, scope.tenant, days).await?;
    reply::table(&headers, &rows, DAILY_MESSAGES_COLUMNS)
}

/// The users or assistants that spent most over the last `days` days.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/analytics/top", tag = "analytics", params(TenantPath, TopQuery),
    responses((status = 200, body = Vec<TopSpender>, description = "JSON, or CSV with Accept: text/csv"),
              (status = 422, body = Problem)))]
pub async fn top(
    scope: TenantScope,
    headers: HeaderMap,
    QueryParams(q): QueryParams<TopQuery>,
) -> ApiResult<Response> {
    let mut tx = scope.begin().await?;
    let rows = analytics::top(&mut tx, scope.tenant, &q).await?;
    reply::table(&headers, &rows, TOP_COLUMNS)
}

/// A flow's funnel: for each of its states, in order, how many conversations entered it
/// in the last `days` days.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/analytics/funnel", tag = "analytics", params(TenantPath, FunnelQuery),
    responses((status = 200, body = Vec<FunnelStep>, description = "JSON, or CSV with Accept: text/csv"),
              (status = 422, body = Problem)))]
pub async fn funnel(
    scope: TenantScope,
    headers: HeaderMap,
    QueryParams(q): QueryParams<FunnelQuery>,
) -> ApiResult<Response> {
    let mut tx = scope.begin().await?;
    let rows = analytics::funnel(&mut tx, scope.tenant, &q).await?;
    reply::table(&headers, &rows, FUNNEL_COLUMNS)
}

/// Ratings of the messages written in the last `days` days, by assistant (default) or by
/// model (`by=model`): how many, up, down, and the positive rate; most rated first. From
/// the feedback rollup; a member counts the ratings in their own conversations.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/analytics/feedback", tag = "analytics", params(TenantPath, FeedbackQuery),
    responses((status = 200, body = Vec<FeedbackByAssistant>, description = "JSON (by=model: FeedbackByModel rows), or CSV with Accept: text/csv"),
              (status = 422, body = Problem)),
    )]
pub async fn feedback(
    scope: TenantScope,
    headers: HeaderMap,
    QueryParams(q): QueryParams<FeedbackQuery>,
) -> ApiResult<Response> {
    let mut tx = scope.begin().await?;
    match analytics::feedback(&mut tx, scope.tenant, &q).await? {
        Feedback::ByAssistant(rows) => reply::table(&headers, &rows, FEEDBACK_BY_ASSISTANT_COLUMNS),
        Feedback::ByModel(rows) => reply::table(&headers, &rows, FEEDBACK_BY_MODEL_COLUMNS),
    }
}
