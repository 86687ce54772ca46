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

/// Whether the client prefers CSV: `Accept` (RFC 9110 §12.5.1, media types compared
/// without regard to case) gives `text/csv` a higher weight than JSON. A type with `q=0`
/// is refused, never chosen; wildcards (`text/*`, `*/*`) count for the types they cover,
/// and on a tie (or with no `Accept`) JSON wins.
fn wants_csv(headers: &axum::http::HeaderMap) -> bool {
    let (mut csv, mut json) = (None::<(u8, u16)>, None::<(u8, u16)>);
    for value in headers.get_all(header::ACCEPT) {
        let Ok(value) = value.to_str() else { continue };
        for range in value.split(',') {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
            let mut weight = 1000u16;
            for parameter in parts {
                let Some((name, q)) = parameter.split_once('=') else {
                    continue;
                };
                if name.trim().eq_ignore_ascii_case("q") {
                    weight = quality(q.trim()).unwrap_or(0);
                }
            }
            // How specific the range is: an exact type wins over `type/*`, which wins over `*/*`.
            let (for_csv, for_json) = match media.as_str() {
                "text/csv" => (Some(2), None),
                "application/json" => (None, Some(2)),
                "text/*" => (Some(1), None),
                "application/*" => (None, Some(1)),
                "*/*" => (Some(0), Some(0)),
                _ => (None, None),
            };
            for (specificity, best) in [(for_csv, &mut csv), (for_json, &mut json)] {
                if let Some(specificity) = specificity
                    && best.is_none_or(|(s, _)| specificity > s)
                {
                    *best = Some((specificity, weight));
                }
            }
        }
    }
    let csv = csv.map_or(0, |(_, q)| q);
    let json = json.map_or(0, |(_, q)| q);
    csv > 0 && csv > json
}

/// A quality value (`0`, `0.5`, `1.000`) in thousandths; `None` when malformed.
fn quality(q: &str) -> Option<u16> {
    let (whole, fraction) = q.split_once('.').unwrap_or((q, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths: u16 = format!("{fraction:0<3}").parse().ok()?;
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
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
/// name of a field of the rows' JSON; a page's next cursor goes in `Next-Cursor`.
fn csv<T: Table>(table: &T) -> ApiResult<Response> {
    let columns = table.columns();
    let mut out = columns.join(",");
    out.push_str("\r\n");
    let rows = table
        .rows()
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    for value in &rows {
        for (i, column) in columns.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            csv_cell(&value[*column], &mut out);
        }
        out.push_str("\r\n");
    }
    let mut response = typed(StatusCode::OK, out, "text/csv; charset=utf-8");
    if let Some(cursor) = table.next_cursor() {
        // A cursor is base64url: always a valid header value.
        if let Ok(value) = HeaderValue::from_str(cursor) {
            response.headers_mut().insert("next-cursor", value);
        }
    }
    Ok(response)
}

/// `table` as JSON, or as CSV when the client asked for it.
pub fn table<T: Table>(headers: &axum::http::HeaderMap, table: &T) -> ApiResult<Response> {
    if wants_csv(headers) {
        csv(table)
    } else {
        json(StatusCode::OK, table, 256 * table.len() + 2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> axum::http::HeaderMap {
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn csv_is_chosen_only_when_preferred() {
        for (value, csv) in [
            ("text/csv", true),
            ("TEXT/CSV", true),
            ("Text/Csv; charset=utf-8", true),
            ("text/csv;q=0", false),
            ("text/csv; Q=0.000", false),
            ("text/csv;q=0, application/json", false),
            ("application/json, text/csv", false),
            ("application/json;q=0.5, text/csv", true),
            ("text/csv;q=0.5, application/json", false),
            ("*/*", false),
            ("text/*", true),
            ("text/*, text/csv;q=0", false),
            ("application/json;q=0, text/csv", true),
            ("text/csv;q=2", false),
            ("text/csvx", false),
        ] {
            assert_eq!(wants_csv(&accept(value)), csv, "Accept: {value}");
        }
        assert!(!wants_csv(&axum::http::HeaderMap::new()));
    }
}
