//! Signed callbacks from providers: the access level `Callback`.
//!
//! A callback (`POST /v1/hooks/{provider}/{tenant}`) carries no bearer token. The
//! `CallbackScope` extractor reads the body's exact bytes (streamed, under `BODY_LIMIT`),
//! resolves `{tenant}` (id or slug), takes the tenant's secret for the provider
//! (`app.provider_secret`, cached briefly) and has the provider's verifier check the
//! signature. Only then does a request transaction open, as the callback caller kind with
//! the tenant, the provider and the fingerprint of the secret in its context, checked by
//! `app.assert_callback()`. Every refusal — unknown provider, unknown tenant, no secret, bad
//! or missing signature, stale timestamp — is the same 401, so a caller cannot tell which
//! tenants exist, and nothing is written.
//!
//! One verifier per provider (`Verifier`): the `test` provider signs like Standard
//! Webhooks. The payments and telephony issues add theirs (Midtrans' signature key,
//! Stripe's `Stripe-Signature`, Twilio's `X-Twilio-Signature` over the public URL) as a
//! variant of `Provider` and an arm in `verifier`.

use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, RawPathParams, Request},
    http::HeaderMap,
};
use frontdesk_core::{Principal, RequestContext, Tx, providers::Provider};
use frontdesk_pg::DbError;
use uuid::Uuid;

use crate::{
    error::{ApiError, ApiResult},
    state::AppState,
    streamed::StreamedBody,
    webhooks::signature,
};

/// What a verified callback says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The provider's id of this delivery: a redelivery carries the same one.
    pub external_id: String,
}

/// How one provider signs its callbacks.
pub trait Verifier: Send + Sync {
    /// Whether `secret` is a secret this provider issues (checked when an admin stores
    /// one); the reason when not.
    fn check_secret(&self, secret: &str) -> Result<(), &'static str>;

    /// Verify a callback's signature over its exact `body`, at `now` (Unix seconds); the
    /// delivery it describes, or why it is refused (never naming the secret).
    fn verify(
        &self,
        secret: &str,
        headers: &HeaderMap,
        body: &[u8],
        now: i64,
    ) -> Result<Delivery, &'static str>;
}

/// The verifier of `provider`.
pub fn verifier(provider: Provider) -> &'static dyn Verifier {
    match provider {
        Provider::Test => &StandardWebhooks,
    }
}

/// Standard Webhooks (the `test` provider): `webhook-id`, `webhook-timestamp` (Unix
/// seconds, at most 5 minutes from now either way) and `webhook-signature` (space-separated
/// `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, one of which must match), keyed
/// with the base64-decoded part of a `whsec_` secret.
pub struct StandardWebhooks;

/// How far a callback's timestamp may be from now, in seconds, either way.
pub const TIMESTAMP_TOLERANCE: i64 = 5 * 60;

impl Verifier for StandardWebhooks {
    fn check_secret(&self, secret: &str) -> Result<(), &'static str> {
        match secret.strip_prefix("whsec_").and_then(signature::key_of) {
            Some(key) if (24..=64).contains(&key.len()) => Ok(()),
            _ => Err("must be whsec_ followed by the base64 of 24 to 64 bytes"),
        }
    }

    fn verify(
        &self,
        secret: &str,
        headers: &HeaderMap,
        body: &[u8],
        now: i64,
    ) -> Result<Delivery, &'static str> {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let (Some(id), Some(timestamp), Some(signatures)) = (
            header("webhook-id"),
            header("webhook-timestamp"),
            header("webhook-signature"),
        ) else {
            return Err("send webhook-id, webhook-timestamp and webhook-signature");
        };
        if !(1..=255).contains(&id.len()) {
            return Err("webhook-id must be 1 to 255 characters");
        }
        let Ok(timestamp) = timestamp.parse::<i64>() else {
            return Err("webhook-timestamp must be Unix seconds");
        };
        if now.abs_diff(timestamp) > TIMESTAMP_TOLERANCE as u64 {
            return Err("webhook-timestamp is more than 5 minutes from now");
        }
        let key = signature::key_of(secret).ok_or("the signature does not verify")?;
        let expected = signature::sign(&key, id, timestamp, body);
        if signatures
            .split(' ')
            .any(|candidate| constant_time_eq(candidate.as_bytes(), expected.as_bytes()))
        {
            Ok(Delivery {
                external_id: id.to_owned(),
            })
        } else {
            Err("the signature does not verify")
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A verified callback, ready to be recorded in a transaction of the callback caller kind.
pub struct CallbackScope {
    pub tenant: Uuid,
    pub provider: Provider,
    pub delivery: Delivery,
    /// The body exactly as it was signed.
    pub body: Bytes,
    context: RequestContext,
    state: AppState,
}

impl CallbackScope {
    /// Run `work` in a request transaction of the callback caller kind.
    pub async fn write<T, E>(&self, work: impl AsyncFnOnce(&mut Tx) -> Result<T, E>) -> ApiResult<T>
    where
        E: From<DbError>,
        ApiError: From<E>,
    {
        crate::extract::run(&self.state, &self.context, false, work).await
    }
}

fn refused(why: &str) -> ApiError {
    ApiError::Unauthorized(format!("callback refused: {why}"))
}

impl FromRequest<AppState> for CallbackScope {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> ApiResult<Self> {
        // The same answer for every reason a tenant or its secret is not there.
        let unverified = || refused("the signature does not verify");
        let (mut parts, body) = req.into_parts();
        let params = RawPathParams::from_request_parts(&mut parts, state)
            .await
            .map_err(|_| unverified())?;
        let param = |name: &str| {
            params
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_owned())
        };
        let (Some(provider), Some(reference)) = (param("provider"), param("tenant")) else {
            return Err(ApiError::Internal(
                "callback route without its parameters".into(),
            ));
        };
        // The signature covers the exact bytes: read them as they arrive, never past the
        // JSON body limit (callbacks are small).
        let body = StreamedBody::of(&parts.headers, body, crate::BODY_LIMIT)?
            .bytes()
            .await?;
        let provider = Provider::parse(&provider).ok_or_else(unverified)?;
        if reference.contains('\0') {
            return Err(unverified());
        }
        let tenant = state
            .auth
            .resolve(&reference, None)
            .await?
            .ok_or_else(unverified)?
            .tenant;
        tracing::Span::current().record("tenant.id", tracing::field::display(tenant));
        let verifier = verifier(provider);
        let now = chrono::Utc::now().timestamp();
        let (mut secret, cached) = state
            .auth
            .provider_secret(tenant, provider, false)
            .await?
            .ok_or_else(unverified)?;
        let mut verified = verifier.verify(&secret.secret, &parts.headers, &body, now);
        if verified.is_err() && cached {
            // Perhaps the secret was replaced since it was cached.
            if let Some((fresh, _)) = state.auth.provider_secret(tenant, provider, true).await? {
                verified = verifier.verify(&fresh.secret, &parts.headers, &body, now);
                secret = fresh;
            }
        }
        let delivery = verified.map_err(refused)?;
        let context = RequestContext {
            tenant: Some(tenant),
            tenant_version: None,
            principal: Principal::Callback {
                provider: provider.as_str(),
                secret_fingerprint: secret.fingerprint,
            },
            read_only: false,
        };
        Ok(Self {
            tenant,
            provider,
            delivery,
            body,
            context,
            state: state.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    /// The Standard Webhooks specification's published example.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TIMESTAMP: i64 = 1614265330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn headers(id: &str, timestamp: &str, signature: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("webhook-id", id),
            ("webhook-timestamp", timestamp),
            ("webhook-signature", signature),
        ] {
            headers.insert(name, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    fn verify(headers: &HeaderMap, body: &[u8], now: i64) -> Result<Delivery, &'static str> {
        StandardWebhooks.verify(SECRET, headers, body, now)
    }

    #[test]
    fn the_standard_webhooks_test_vector_verifies() {
        let h = headers(ID, &TIMESTAMP.to_string(), SIGNATURE);
        assert_eq!(
            verify(&h, BODY, TIMESTAMP),
            Ok(Delivery {
                external_id: ID.into()
            })
        );
        // One of several signatures (a rotation's grace period) is enough.
        let h = headers(
            ID,
            &TIMESTAMP.to_string(),
            &format!("v1,bm90IGl0 {SIGNATURE}"),
        );
        assert!(verify(&h, BODY, TIMESTAMP + 300).is_ok());
    }

    #[test]
    fn a_changed_body_id_timestamp_or_secret_does_not_verify() {
        let ts = TIMESTAMP.to_string();
        assert!(
            verify(
                &headers(ID, &ts, SIGNATURE),
                br#"{"test": 2432232315}"#,
                TIMESTAMP
            )
            .is_err()
        );
        assert!(verify(&headers("msg_other", &ts, SIGNATURE), BODY, TIMESTAMP).is_err());
        let later = (TIMESTAMP + 1).to_string();
        assert!(verify(&headers(ID, &later, SIGNATURE), BODY, TIMESTAMP).is_err());
        assert!(
            StandardWebhooks
                .verify(
                    "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                    &headers(ID, &ts, SIGNATURE),
                    BODY,
                    TIMESTAMP
                )
                .is_err()
        );
        assert!(verify(&headers(ID, &ts, "v1,"), BODY, TIMESTAMP).is_err());
        assert!(verify(&HeaderMap::new(), BODY, TIMESTAMP).is_err());
    }

    #[test]
    fn a_timestamp_more_than_five_minutes_away_is_refused() {
        let h = headers(ID, &TIMESTAMP.to_string(), SIGNATURE);
        assert!(verify(&h, BODY, TIMESTAMP + 301).is_err());
        assert!(verify(&h, BODY, TIMESTAMP - 301).is_err());
        assert!(verify(&h, BODY, TIMESTAMP - 300).is_ok());
    }

    #[test]
    fn only_whsec_secrets_of_24_to_64_bytes_are_accepted() {
        assert!(StandardWebhooks.check_secret(SECRET).is_ok());
        assert!(
            StandardWebhooks
                .check_secret("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
                .is_err()
        );
        assert!(StandardWebhooks.check_secret("whsec_c2hvcnQ=").is_err());
        assert!(StandardWebhooks.check_secret("whsec_not base64!").is_err());
    }
}
