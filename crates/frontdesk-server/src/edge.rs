//! The request head's limits, answered with problems: a URI longer than [`URI_LIMIT`] is
//! a 414, a header section larger than [`HEADERS_LIMIT`] a 431.
//!
//! Both limits are below those of the HTTP parser (hyper), so a request past them reaches
//! this layer and gets a problem body. What hyper refuses itself, before any of our code
//! runs, it answers without a body, and no layer can add one: more than 100 header fields
//! or a head beyond about 400 KB (431), a request line or header line it cannot parse
//! (400). Header values that parse but are not text (bytes above 0x7F) reach the API and
//! are refused where they are read (an `Authorization` that is not text is a 401 problem).

use axum::{
    extract::Request,
    http::{StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};

use crate::error::{Extensions, ProblemDocument};

/// The longest request target (path and query) accepted, in bytes.
pub const URI_LIMIT: usize = 8 * 1024;
/// The largest header section accepted: names and values, in bytes.
pub const HEADERS_LIMIT: usize = 32 * 1024;

fn problem(status: StatusCode, kind: &str, title: &str, detail: String) -> Response {
    let body = ProblemDocument {
        kind: format!("/problems/{kind}"),
        title: title.to_owned(),
        status: status.as_u16(),
        detail,
        errors: None,
        extensions: Extensions::default(),
    };
    let mut response = (status, axum::Json(body)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/problem+json"),
    );
    response
}

/// Refuse a request whose head is past the limits, before anything else reads it.
pub async fn refuse_oversized_head(request: Request, next: Next) -> Response {
    let uri = request
        .uri()
        .path_and_query()
        .map_or(0, |p| p.as_str().len());
    if uri > URI_LIMIT {
        return problem(
            StatusCode::URI_TOO_LONG,
            "uri-too-long",
            "URI too long",
            format!("request targets (path and query) are limited to {URI_LIMIT} bytes"),
        );
    }
    let headers: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if headers > HEADERS_LIMIT {
        return problem(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers-too-large",
            "Request header fields too large",
            format!("header sections are limited to {HEADERS_LIMIT} bytes of names and values"),
        );
    }
    next.run(request).await
}
