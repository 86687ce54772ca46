//! Creating POSTs: the JSON body with its optional `Idempotency-Key`, and the one path
//! every creating handler answers through (`TenantScope::create`), which claims the key,
//! runs the work, stores the response and commits in one transaction.

use axum::{
    extract::{FromRequest, Request},
    http::{HeaderValue, StatusCode},
    response::Response,
};
use frontdesk_core::{CoreError, Tx, platform::idempotency};
use serde::{Serialize, de::DeserializeOwned};
use sha2::{Digest, Sha256};

use crate::{
    error::{ApiError, ApiResult},
    extract::{Json, TenantScope},
};

const HEADER: &str = "idempotency-key";

/// A client's idempotency key and the digest of the request it came with.
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    pub key: String,
    pub digest: [u8; 32],
}

/// The body of a creating POST, and its idempotency key when the client sent one.
pub struct Creating<T> {
    pub body: T,
    pub idempotency: Option<IdempotencyKey>,
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Creating<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> ApiResult<Self> {
        let key = match req.headers().get(HEADER) {
            None => None,
            Some(value) => {
                let key = value
                    .to_str()
                    .ok()
                    .map(str::trim)
                    .filter(|k| (1..=255).contains(&k.len()))
                    .ok_or_else(|| {
                        ApiError::invalid(
                            "Idempotency-Key",
                            "must be 1 to 255 visible ASCII characters",
                        )
                    })?;
                Some(key.to_owned())
            }
        };
        let Some(key) = key else {
            let Json(body) = Json::<T>::from_request(req, state).await?;
            return Ok(Self {
                body,
                idempotency: None,
            });
        };
        // The digest covers what the request asks for: method, path and body bytes.
        let mut hasher = Sha256::new();
        hasher.update(req.method().as_str());
        hasher.update(b" ");
        hasher.update(req.uri().path());
        hasher.update(b"\n");
        let (parts, body) = req.into_parts();
        let bytes = axum::body::to_bytes(body, crate::BODY_LIMIT)
            .await
            .map_err(|_| ApiError::PayloadTooLarge)?;
        hasher.update(&bytes);
        let req = Request::from_parts(parts, axum::body::Body::from(bytes));
        let Json(body) = Json::<T>::from_request(req, state).await?;
        Ok(Self {
            body,
            idempotency: Some(IdempotencyKey {
                key,
                digest: hasher.finalize().into(),
            }),
        })
    }
}

/// How many statements a creation runs: one lets its COMMIT ride along with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Statements {
    One,
    Several,
}

impl TenantScope {
    /// Run a creation in the request transaction and answer `status` with its result.
    /// With an idempotency key: a replay answers the stored response (header
    /// `Idempotent-Replayed: true`), a different request with the same key is 422, and a
    /// concurrent one is 409.
    pub async fn create<T: Serialize>(
        &self,
        idempotency: Option<IdempotencyKey>,
        status: StatusCode,
        statements: Statements,
        work: impl AsyncFnOnce(&mut Tx) -> Result<T, CoreError>,
    ) -> ApiResult<Response> {
        match self
            .create_inner(idempotency, status, statements, work)
            .await
        {
            Err(ApiError::LimitReached(limit)) => {
                self.note_limit_reached(&limit).await;
                Err(ApiError::LimitReached(limit))
            }
            other => other,
        }
    }

    /// Record that a limit was hit (the refused write rolled back): the first time in its
    /// window this emits usage.limit_reached. Best effort: the 429 stands either way.
    async fn note_limit_reached(&self, limit: &frontdesk_core::LimitReached) {
        let detail = serde_json::json!({
            "limit": limit.limit, "used": limit.used,
            "window_start": limit.window_start, "resets_at": limit.resets_at,
        });
        let result = async {
            let mut tx = self.begin().await?;
            tx.execute(
                "select app.note_limit_reached($1, $2, $3)",
                &[&limit.name, &limit.window_start, &detail],
            )
            .await?;
            tx.commit().await?;
            Ok::<_, ApiError>(())
        }
        .await;
        if let Err(error) = result {
            tracing::warn!(?error, "recording a reached limit failed");
        }
    }

    async fn create_inner<T: Serialize>(
        &self,
        idempotency: Option<IdempotencyKey>,
        status: StatusCode,
        statements: Statements,
        work: impl AsyncFnOnce(&mut Tx) -> Result<T, CoreError>,
    ) -> ApiResult<Response> {
        let mut tx = self.begin().await?;
        let Some(idem) = idempotency else {
            if statements == Statements::One {
                tx.commit_with_next();
            }
            let value = work(&mut tx).await?;
            tx.commit().await?;
            return crate::reply::json(status, &value, 1024);
        };
        match idempotency::claim(&mut tx, self.tenant, &idem.key, &idem.digest).await? {
            idempotency::Claim::Fresh => {}
            idempotency::Claim::Replay { status, body } => {
                tx.commit().await?;
                let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
                let mut response = crate::reply::json_bytes(status, body);
                response
                    .headers_mut()
                    .insert("idempotent-replayed", HeaderValue::from_static("true"));
                return Ok(response);
            }
            idempotency::Claim::Mismatch => {
                return Err(ApiError::invalid(
                    "Idempotency-Key",
                    "was already used with a different request; use a new key",
                ));
            }
            idempotency::Claim::InFlight => {
                return Err(ApiError::Conflict {
                    field: Some("Idempotency-Key".into()),
                    message: "a request with this Idempotency-Key is in progress; retry shortly"
                        .into(),
                });
            }
        }
        let value = work(&mut tx).await?;
        let body = crate::reply::to_vec(&value, 1024)?;
        idempotency::store(
            &mut tx,
            self.tenant,
            &idem.key,
            &idem.digest,
            status.as_u16(),
            &body,
        )
        .await?;
        tx.commit().await?;
        Ok(crate::reply::json_bytes(status, body))
    }
}
