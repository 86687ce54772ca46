//! JSON responses written into a buffer sized up front: axum's `Json` starts from 128
//! bytes and regrows, which showed up as a sixth of the server's time on a page of 50
//! messages (docs/BENCHMARKS.md).

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use frontdesk_core::usage::analytics::Table;
use serde::Serialize;

use crate::error::{ApiError, ApiResult};

fn typed(status: StatusCode, body: impl IntoResponse, content_type: &'static str) -> Response {
    let mut response = (status, body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// `body` (JSON already) as a response.
pub fn json_bytes(status: StatusCode, body: Vec<u8>) -> Response {
    typed(status, body, "application/json")
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

/// Whether the client asked for CSV (`Accept: text/csv`).
fn wants_csv(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|t| t.trim().starts_with("text/csv")))
}

/// One CSV cell: quoted when it must be, and text that a spreadsheet would run as a
/// formula (`=`, `+`, `-`, `@` first) prefixed with `'`.
fn csv_cell(value: &serde_json::Value, out: &mut String) {
    let text = match value {
        serde_json::Value::Null => return,
        serde_json::Value::String(s) => {
            if s.starts_with(['=', '+', '-', '@']) {
                format!("'{s}")
            } else {
                s.clone()
            }
        }
        other => other.to_string(),
    };
    if text.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&text.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(&text);
    }
}

/// `table` as CSV (RFC 4180, CRLF line ends) with a header line of its columns, each the
/// name of a field of the rows' JSON.
fn csv<T: Table>(table: &T) -> ApiResult<Response> {
    let columns = table.columns();
    let mut out = columns.join(",");
    out.push_str("\r\n");
    let rows = serde_json::to_value(table).map_err(|e| ApiError::Internal(e.to_string()))?;
    for value in rows.as_array().into_iter().flatten() {
        for (i, column) in columns.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            csv_cell(&value[*column], &mut out);
        }
        out.push_str("\r\n");
    }
    Ok(typed(StatusCode::OK, out, "text/csv; charset=utf-8"))
}

/// `table` as JSON, or as CSV when the client asked for it.
pub fn table<T: Table>(headers: &axum::http::HeaderMap, table: &T) -> ApiResult<Response> {
    if wants_csv(headers) {
        csv(table)
    } else {
        json(StatusCode::OK, table, 256 * table.len() + 2)
    }
}
