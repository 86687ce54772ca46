//! Request bodies read as they arrive, for routes registered with a streamed body
//! (`BodyMode::Streamed`): large uploads, which must not be held in memory whole before the
//! handler sees them, and bodies that must be seen byte for byte as sent (signed
//! callbacks). The JSON extractor (`extract::Json`) stays the way for ordinary bodies.
//!
//! The limit is `FRONTDESK_MAX_UPLOAD_BYTES` (`AppOptions::max_upload_bytes`) unless the
//! handler sets a smaller one. A body whose `Content-Length` already says it is larger is
//! refused before a byte is read; one that turns out larger while it arrives is refused as
//! soon as it passes the limit. Either way the answer is a 413 problem.

use axum::{
    body::{Body, BodyDataStream, Bytes},
    extract::{FromRef, FromRequest, Request},
    http::{HeaderMap, header},
};
use futures_util::StreamExt;

use crate::{
    error::{ApiError, ApiResult},
    state::AppState,
};

/// The largest body a streamed route accepts, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadLimit(pub usize);

impl FromRef<AppState> for UploadLimit {
    fn from_ref(state: &AppState) -> Self {
        Self(state.options.max_upload_bytes)
    }
}

/// A request body not read yet: take it chunk by chunk (`next_chunk`) or whole
/// (`bytes`), never past the limit.
pub struct StreamedBody {
    stream: BodyDataStream,
    /// What `Content-Length` announced, if anything.
    declared: Option<u64>,
    limit: usize,
    read: usize,
}

impl<S> FromRequest<S> for StreamedBody
where
    S: Send + Sync,
    UploadLimit: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> ApiResult<Self> {
        let (parts, body) = req.into_parts();
        Self::of(&parts.headers, body, UploadLimit::from_ref(state).0)
    }
}

impl StreamedBody {
    /// The body of a request with `headers`, under `limit`: for extractors that need the
    /// request's parts too (a signed callback's headers and path).
    pub(crate) fn of(headers: &HeaderMap, body: Body, limit: usize) -> ApiResult<Self> {
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        Self::new(body, declared, limit)
    }

    fn new(body: Body, declared: Option<u64>, limit: usize) -> ApiResult<Self> {
        let body = Self {
            stream: body.into_data_stream(),
            declared,
            limit,
            read: 0,
        };
        body.check_declared()?;
        Ok(body)
    }

    fn too_large(&self) -> ApiError {
        ApiError::UploadTooLarge { limit: self.limit }
    }

    fn check_declared(&self) -> ApiResult<()> {
        match self.declared {
            Some(length) if length > self.limit as u64 => Err(self.too_large()),
            _ => Ok(()),
        }
    }

    /// The limit this body is read under.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Lower the limit (never raise it past the configured one), e.g. for a route whose
    /// bodies are small by nature.
    pub fn at_most(mut self, limit: usize) -> ApiResult<Self> {
        self.limit = self.limit.min(limit);
        self.check_declared()?;
        if self.read > self.limit {
            return Err(self.too_large());
        }
        Ok(self)
    }

    /// The next chunk as it arrives; `None` at the end. Past the limit: a 413, and the
    /// rest is not read.
    pub async fn next_chunk(&mut self) -> Option<ApiResult<Bytes>> {
        let chunk = match self.stream.next().await? {
            Ok(chunk) => chunk,
            Err(e) => {
                let otherwise = ApiError::BadRequest("could not read the request body".into());
                return Some(Err(ApiError::body_unread(&e, otherwise)));
            }
        };
        self.read += chunk.len();
        if self.read > self.limit {
            return Some(Err(self.too_large()));
        }
        Some(Ok(chunk))
    }

    /// The whole body, for bodies the handler needs in one piece (under the limit).
    pub async fn bytes(mut self) -> ApiResult<Bytes> {
        let mut all = Vec::with_capacity(
            self.declared
                .map_or(0, |d| d.min(self.limit as u64) as usize)
                .min(1024 * 1024),
        );
        while let Some(chunk) = self.next_chunk().await {
            all.extend_from_slice(&chunk?);
        }
        Ok(Bytes::from(all))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };

    use axum::{
        Router,
        http::{Request, StatusCode},
        middleware,
        response::{IntoResponse, Response},
        routing::post,
    };
    use tower::ServiceExt;

    use super::*;

    /// Counts how much of a streamed body a handler read, and how often it ran.
    #[derive(Clone, Default)]
    struct Seen {
        runs: Arc<AtomicUsize>,
        bytes: Arc<AtomicUsize>,
    }

    async fn count(seen: Seen, mut body: StreamedBody) -> Response {
        seen.runs.fetch_add(1, Ordering::SeqCst);
        while let Some(chunk) = body.next_chunk().await {
            match chunk {
                Ok(chunk) => {
                    seen.bytes.fetch_add(chunk.len(), Ordering::SeqCst);
                }
                Err(error) => return error.into_response(),
            }
        }
        StatusCode::NO_CONTENT.into_response()
    }

    /// A streamed route (no retry layer) and a buffered one (with it), each answering
    /// "context refused" the first time it runs; and a plain streamed route.
    fn app(limit: usize, seen: &Seen) -> Router {
        let refusing = |seen: Seen| {
            move |body: StreamedBody| {
                let seen = seen.clone();
                async move {
                    let first = seen.runs.load(Ordering::SeqCst) == 0;
                    let response = count(seen, body).await;
                    if first {
                        ApiError::ContextRefused.into_response()
                    } else {
                        response
                    }
                }
            }
        };
        let plain = seen.clone();
        Router::new()
            .route(
                "/plain",
                post(move |body: StreamedBody| count(plain.clone(), body)),
            )
            .route("/streamed", post(refusing(seen.clone())))
            .route(
                "/buffered",
                post(refusing(seen.clone()))
                    .layer(middleware::from_fn(crate::retry_refused_context)),
            )
            .with_state(UploadLimit(limit))
    }

    /// A body of `n` bytes sent in 64 KiB chunks, without a Content-Length.
    fn chunked(n: usize) -> Body {
        let chunks = (0..n.div_ceil(65536)).map(move |i| {
            Ok::<_, std::io::Error>(Bytes::from(vec![b'x'; 65536.min(n - i * 65536)]))
        });
        Body::from_stream(futures_util::stream::iter(chunks))
    }

    async fn send(app: Router, path: &str, body: Body, length: Option<usize>) -> Response {
        let mut request = Request::post(path);
        if let Some(length) = length {
            request = request.header("content-length", length);
        }
        app.oneshot(request.body(body).unwrap()).await.unwrap()
    }

    async fn problem(response: Response) -> serde_json::Value {
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn a_streamed_route_is_neither_buffered_nor_retried() {
        // 3 MiB: more than the buffered routes' limit, within this upload limit.
        let seen = Seen::default();
        let response = send(app(4 << 20, &seen), "/streamed", chunked(3 << 20), None).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert_eq!(seen.runs.load(Ordering::SeqCst), 1, "not retried");
        assert_eq!(
            seen.bytes.load(Ordering::SeqCst),
            3 << 20,
            "the handler read it all"
        );
        // The same refusal on a buffered route runs it once more, with the same body.
        let seen = Seen::default();
        let response = send(app(4 << 20, &seen), "/buffered", chunked(1000), None).await;
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        assert_eq!(seen.runs.load(Ordering::SeqCst), 2, "retried once");
        assert_eq!(seen.bytes.load(Ordering::SeqCst), 2000);
        // And a buffered route cannot take the 3 MiB at all: it is held whole first.
        let seen = Seen::default();
        let response = send(app(4 << 20, &seen), "/buffered", chunked(3 << 20), None).await;
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(seen.runs.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_body_over_the_upload_limit_is_a_413_problem_without_reading_it_all() {
        let limit = 200_000;
        // Announced too large: refused before the handler runs or a byte is read.
        let seen = Seen::default();
        let response = send(
            app(limit, &seen),
            "/plain",
            chunked(10 << 20),
            Some(10 << 20),
        )
        .await;
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(seen.runs.load(Ordering::SeqCst), 0);
        let refused = problem(response).await;
        assert_eq!(refused["type"], "/problems/payload-too-large");
        assert_eq!(refused["status"], 413);
        assert!(refused["detail"].as_str().unwrap().contains("200000"));
        // Not announced: refused once it passes the limit, the rest left unread.
        let seen = Seen::default();
        let response = send(app(limit, &seen), "/plain", chunked(10 << 20), None).await;
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let read = seen.bytes.load(Ordering::SeqCst);
        assert!(read <= limit, "read {read} bytes of 10 MiB");
        assert_eq!(
            problem(response).await["type"],
            "/problems/payload-too-large"
        );
        // Exactly at the limit is fine.
        let seen = Seen::default();
        let body = StreamedBody::new(chunked(limit), None, limit).unwrap();
        assert_eq!(body.bytes().await.unwrap().len(), limit);
        assert_eq!(seen.runs.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_lower_limit_applies_to_what_was_announced_and_what_arrives() {
        let body = StreamedBody::new(chunked(10), Some(10), 100).unwrap();
        assert!(matches!(
            body.at_most(5),
            Err(ApiError::UploadTooLarge { limit: 5 })
        ));
        let body = StreamedBody::new(chunked(10), None, 100)
            .unwrap()
            .at_most(5)
            .unwrap();
        assert!(matches!(
            body.bytes().await,
            Err(ApiError::UploadTooLarge { limit: 5 })
        ));
    }
}
