//! Creating POSTs: the JSON body with its optional `Idempotency-Key`, and the one path
//! every creating handler answers through (`TenantScope::create`), which claims the key,
//! runs the work and stores the response, all in one transaction.

use axum::{
    extract::{FromRequest, Request},
    http::{HeaderValue, StatusCode},
    response::Response,
};
use frontdesk_core::{CoreError, Tx, platform::idempotency, usage::limits};
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
            .map_err(|e| ApiError::body_unread(&e, ApiError::PayloadTooLarge))?;
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

impl TenantScope {
    /// Run a creation in a request transaction and answer `status` with its result.
    /// With an idempotency key: a replay answers the stored response (header
    /// `Idempotent-Replayed: true`), a different request with the same key is 422, and a
    /// concurrent one is 409.
    pub async fn create<T: Serialize>(
        &self,
        idempotency: Option<IdempotencyKey>,
        status: StatusCode,
        work: impl AsyncFnOnce(&mut Tx) -> Result<T, CoreError>,
    ) -> ApiResult<Response> {
        let result = match idempotency {
            None => self
                .write(work)
                .await
                .and_then(|value| crate::reply::json(status, &value, 1024)),
            Some(key) => self.create_once(key, status, work).await,
        };
        if let Err(ApiError::LimitReached(limit)) = &result {
            // Best effort: the 429 stands either way.
            if let Err(error) = self
                .write(async |tx| limits::note_reached(tx, limit).await)
                .await
            {
                tracing::warn!(?error, "recording a reached limit failed");
            }
        }
        result
    }

    /// A creation under an idempotency key: claim the key, run the work (as a part: the
    /// stored response follows it), store the response.
    async fn create_once<T: Serialize>(
        &self,
        idem: IdempotencyKey,
        status: StatusCode,
        work: impl AsyncFnOnce(&mut Tx) -> Result<T, CoreError>,
    ) -> ApiResult<Response> {
        self.write(async |tx| {
            match idempotency::claim(tx, self.tenant, &idem.key, &idem.digest).await? {
                idempotency::Claim::Fresh => {}
                idempotency::Claim::Replay { status, body } => {
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
                        message:
                            "a request with this Idempotency-Key is in progress; retry shortly"
                                .into(),
                    });
                }
            }
            let value = tx.part(work).await?;
            let body = crate::reply::to_vec(&value, 1024)?;
            idempotency::store(
                tx,
                self.tenant,
                &idem.key,
                &idem.digest,
                status.as_u16(),
                &body,
            )
            .await?;
            Ok(crate::reply::json_bytes(status, body))
        })
        .await
    }
}
