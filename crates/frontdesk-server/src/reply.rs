//! JSON responses written into a buffer sized up front: axum's `Json` starts from 128
//! bytes and regrows, which showed up as a sixth of the server's time on a page of 50
//! messages (docs/BENCHMARKS.md).

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;

use crate::error::{ApiError, ApiResult};

/// `body` (JSON already) as a response.
pub fn json_bytes(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Serialize `value` into a buffer of `capacity` bytes (a good guess saves the regrowth).
pub fn to_vec<T: Serialize>(value: &T, capacity: usize) -> ApiResult<Vec<u8>> {
    let mut body = Vec::with_capacity(capacity);
    serde_json::to_writer(&mut body, value).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(body)
}

/// `value` as a JSON response, serialized into a buffer of `capacity` bytes.
pub fn json<T: Serialize>(status: StatusCode, value: &T, capacity: usize) -> ApiResult<Response> {
    Ok(json_bytes(status, to_vec(value, capacity)?))
}
