//! `/v1/tenants/{tenant}/limits…`: where the tenant's limits stand, checks before an LLM
//! call, and reservations.

use axum::{http::StatusCode, response::Response};
use frontdesk_core::{
    platform::page::Paged,
    usage::limits::{
        self, Estimate, LimitCheck, LimitCheckResult, LimitStatus, Reservation, ReservationQuery,
    },
};

use crate::{
    error::{ApiResult, Problem},
    extract::{PathParams, QueryParams, TenantScope},
    idempotency::Creating,
    routes::{IdPath, IdempotencyHeader, TenantPath},
};

/// The tenant's limits: each one's value (null: unlimited), what writes used, what live
/// reservations hold and what is left in its current window, and when that window ends.
/// The figures are the tenant's totals, for every caller.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/limits", tag = "limits", params(TenantPath),
    responses((status = 200, body = Vec<LimitStatus>)))]
pub async fn list(scope: TenantScope) -> ApiResult<axum::Json<Vec<LimitStatus>>> {
    let limits = scope.read(async |tx| limits::limits(tx).await).await?;
    Ok(axum::Json(limits))
}

/// Ask whether a call of this size fits the limits now (200, `allowed` true or false), or
/// with `reserve: true` hold it (201 with the reservation; 429 when it does not fit, and
/// nothing is held). A limit that writes already took the tenant past refuses every
/// check, whatever its size. The message or usage event that follows names the reservation in
/// `reservation_id`, which gives the estimate back and charges what was really used; an
/// unused reservation expires after `ttl_seconds`.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/limits/check", tag = "limits",
    params(TenantPath, IdempotencyHeader), request_body = LimitCheck,
    responses((status = 200, body = LimitCheckResult, description = "asked only"),
              (status = 201, body = LimitCheckResult, description = "reserved"),
              (status = 422, body = Problem), (status = 429, body = Problem)))]
pub async fn check(scope: TenantScope, new: Creating<LimitCheck>) -> ApiResult<Response> {
    let estimate = Estimate::try_from(new.body)?;
    if !estimate.reserve {
        let result = scope
            .write(async |tx| limits::check(tx, scope.tenant, &estimate).await)
            .await?;
        return crate::reply::json(StatusCode::OK, &result, 1024);
    }
    scope
        .create(new.idempotency, StatusCode::CREATED, async |tx| {
            limits::reserve(tx, scope.tenant, &estimate).await
        })
        .await
}

/// The tenant's reservations, newest first (staff: all; others: their own).
#[utoipa::path(get, path = "/v1/tenants/{tenant}/limits/reservations", tag = "limits",
    params(TenantPath, ReservationQuery),
    responses((status = 200, body = Paged<Reservation>), (status = 422, body = Problem)))]
pub async fn reservations(
    scope: TenantScope,
    QueryParams(q): QueryParams<ReservationQuery>,
) -> ApiResult<axum::Json<Paged<Reservation>>> {
    let (status, page) = q.parse()?;
    let reservations = scope
        .read(async |tx| limits::list(tx, scope.tenant, status, &page).await)
        .await?;
    Ok(axum::Json(reservations))
}

/// One reservation.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/limits/reservations/{id}", tag = "limits",
    params(IdPath), responses((status = 200, body = Reservation), (status = 404, body = Problem)))]
pub async fn reservation(
    scope: TenantScope,
    PathParams(path): PathParams<IdPath>,
) -> ApiResult<axum::Json<Reservation>> {
    let reservation = scope
        .read(async |tx| limits::get(tx, scope.tenant, path.id).await)
        .await?;
    Ok(axum::Json(reservation))
}

/// Cancel a reservation and give back what it holds (when the LLM call did not happen).
/// Cancelling a cancelled or expired one is a no-op; a settled one is 409.
#[utoipa::path(delete, path = "/v1/tenants/{tenant}/limits/reservations/{id}", tag = "limits",
    params(IdPath), responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn cancel(
    scope: TenantScope,
    PathParams(path): PathParams<IdPath>,
) -> ApiResult<StatusCode> {
    scope
        .write(async |tx| limits::cancel(tx, path.id).await)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
