//! `…/messages/{id}/feedback`: one rating per person (or key) per message.

use axum::{http::StatusCode, response::IntoResponse, response::Response};
use frontdesk_core::conversations::feedback::{self, Feedback, NewRating, Rating, Summary};

use crate::{
    error::{ApiError, ApiResult, Problem},
    extract::{Json, PathParams, TenantScope},
    routes::IdPath,
};

fn rater(scope: &TenantScope) -> ApiResult<feedback::Rater> {
    scope.rater().ok_or_else(|| {
        ApiError::Forbidden("feedback is given by people and API keys, not the operator".into())
    })
}

/// Set the caller's rating of a message: 201 when new, 200 when changed.
#[utoipa::path(put, path = "/v1/tenants/{tenant}/messages/{id}/feedback", tag = "feedback", params(IdPath),
    request_body = Rating,
    responses((status = 201, body = Feedback), (status = 200, body = Feedback),
              (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn put(
    scope: TenantScope,
    PathParams(path): PathParams<IdPath>,
    Json(rating): Json<Rating>,
) -> ApiResult<Response> {
    let rating = NewRating::try_from(rating)?;
    let rater = rater(&scope)?;
    let (feedback, created) = scope
        .write(async |tx| feedback::put(tx, scope.tenant, path.id, rater, &rating).await)
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(feedback)).into_response())
}

/// The caller's own rating of a message, or every rating for staff.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/messages/{id}/feedback", tag = "feedback", params(IdPath),
    responses((status = 200, body = Vec<Feedback>), (status = 404, body = Problem)))]
pub async fn list(
    scope: TenantScope,
    PathParams(path): PathParams<IdPath>,
) -> ApiResult<axum::Json<Vec<Feedback>>> {
    let all = scope.viewer().staff;
    let feedback = scope
        .read(async |tx| feedback::list(tx, scope.tenant, path.id, scope.rater(), all).await)
        .await?;
    Ok(axum::Json(feedback))
}

/// Remove the caller's rating of a message.
#[utoipa::path(delete, path = "/v1/tenants/{tenant}/messages/{id}/feedback", tag = "feedback", params(IdPath),
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn delete(
    scope: TenantScope,
    PathParams(path): PathParams<IdPath>,
) -> ApiResult<StatusCode> {
    let rater = rater(&scope)?;
    scope
        .write(async |tx| feedback::delete(tx, scope.tenant, path.id, rater).await)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A message's ratings in sum: up, down, count.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/messages/{id}/feedback/summary", tag = "feedback", params(IdPath),
    responses((status = 200, body = Summary), (status = 404, body = Problem)))]
pub async fn summary(
    scope: TenantScope,
    PathParams(path): PathParams<IdPath>,
) -> ApiResult<axum::Json<Summary>> {
    let summary = scope
        .read(async |tx| feedback::summary(tx, scope.tenant, path.id).await)
        .await?;
    Ok(axum::Json(summary))
}
