//! Authentication: user JWTs (HS256 with our secret, RS256/ES256 from an identity
//! provider's JWKS), tenant API keys, and the operator token; and the short-lived caches
//! of the request path. Caches only save lookups: the database checks every request's
//! context (`app.assert_principal`), and a refusal clears them and retries the request.

use std::{
    collections::HashMap,
    hash::Hash,
    sync::Mutex,
    time::{Duration, Instant},
};

use frontdesk_core::{
    KeyScope,
    providers::{
        Provider,
        secrets::{self, StoredSecret},
    },
    tenancy::{api_keys, auth},
};
use frontdesk_pg::Db;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, jwk::JwkSet};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::ApiError;

/// A secret that must never reach logs or `Debug` output.
#[derive(Clone)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// How tokens are checked.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// HS256 secret for user JWTs.
    pub jwt_secret: Secret,
    /// RS256/ES256 keys of an identity provider.
    pub jwks_url: Option<String>,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub operator_token: Secret,
    /// Clock skew tolerated on `exp`/`nbf`.
    pub leeway: Duration,
    /// The least time between two fetches of the JWKS (an unknown `kid` triggers one).
    pub jwks_refetch_interval: Duration,
}

/// Who is calling, once their credentials are checked.
#[derive(Debug, Clone)]
pub enum Caller {
    User {
        id: Uuid,
        email: Option<String>,
        name: Option<String>,
    },
    Key {
        tenant: Uuid,
        id: Uuid,
        scope: KeyScope,
    },
    Operator,
}

impl Caller {
    /// The signed-in user's id, if the caller is a person.
    pub fn user_id(&self) -> Option<Uuid> {
        match self {
            Self::User { id, .. } => Some(*id),
            _ => None,
        }
    }
}

#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    name: Option<String>,
    /// OpenID Connect's `email_verified`: a boolean (Cognito sends `"true"`/`"false"`).
    #[serde(default)]
    email_verified: Option<serde_json::Value>,
}

impl Claims {
    /// Whether the identity provider marked the email unverified (`email_verified`
    /// false). Such an email is not the user's: it is not recorded and accepts no
    /// invitation. Tokens without the claim (ours, `frontdesk token`) are taken as they are.
    fn email_unverified(&self) -> bool {
        use serde_json::Value;
        match &self.email_verified {
            Some(Value::Bool(verified)) => !verified,
            Some(Value::String(verified)) => verified != "true",
            _ => false,
        }
    }

    /// The first claim kept from a token that holds a NUL character (PostgreSQL stores no
    /// NUL in text, so such a token is refused before anything reaches it).
    fn holding_nul(&self) -> Option<&'static str> {
        [
            ("sub", Some(&self.sub)),
            ("email", self.email.as_ref()),
            ("name", self.name.as_ref()),
        ]
        .into_iter()
        .find(|(_, value)| value.is_some_and(|v| v.contains('\0')))
        .map(|(claim, _)| claim)
    }
}

/// The user id for a JWT `sub` (the mapping `POST …/members` uses too).
pub use frontdesk_core::tenancy::users::user_id_for_sub;

/// A small map whose entries expire.
pub struct TtlCache<K, V> {
    entries: Mutex<HashMap<K, (V, Instant)>>,
    capacity: usize,
}

impl<K: Eq + Hash, V: Clone> TtlCache<K, V> {
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        let entries = self.entries.lock().expect("cache lock");
        entries
            .get(key)
            .filter(|(_, until)| *until > Instant::now())
            .map(|(v, _)| v.clone())
    }

    pub fn insert(&self, key: K, value: V, ttl: Duration) {
        let mut entries = self.entries.lock().expect("cache lock");
        if entries.len() >= self.capacity {
            let now = Instant::now();
            entries.retain(|_, (_, until)| *until > now);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(key, (value, Instant::now() + ttl));
    }

    pub fn clear(&self) {
        self.entries.lock().expect("cache lock").clear();
    }

    pub fn remove<Q>(&self, key: &Q)
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        self.entries.lock().expect("cache lock").remove(key);
    }
}

pub use frontdesk_core::tenancy::auth::Resolved;

struct Jwks {
    keys: Option<JwkSet>,
    fetched: Option<Instant>,
}

const KEY_TTL: Duration = Duration::from_secs(30);
const TENANT_TTL: Duration = Duration::from_secs(30);
const USER_TOUCH_INTERVAL: Duration = Duration::from_secs(60);
/// Seconds a verified JWT is remembered (never beyond its `exp`).
const VERIFIED_TTL: u64 = 60;
const JWKS_TTL: Duration = Duration::from_secs(600);
const SECRET_TTL: Duration = Duration::from_secs(30);

pub struct Auth {
    config: AuthConfig,
    db: Db,
    http: reqwest::Client,
    jwks: tokio::sync::Mutex<Jwks>,
    /// Keys found (a key that is not found is looked up again on its next use).
    keys: TtlCache<Vec<u8>, (Uuid, Uuid, KeyScope)>,
    /// Tenant references found, with the user's role in them (none for a non-member).
    tenants: TtlCache<(String, Option<Uuid>), Resolved>,
    /// Users recently upserted, with a digest of the profile claims then.
    users: TtlCache<Uuid, [u8; 32]>,
    /// JWTs already verified, with the caller and their profile digest.
    verified: TtlCache<String, (Caller, [u8; 32])>,
    /// Providers' secrets by tenant, for verifying callbacks (only those found).
    provider_secrets: TtlCache<(Uuid, Provider), StoredSecret>,
}

impl Auth {
    pub fn new(config: AuthConfig, db: Db) -> Self {
        Self {
            config,
            db,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("HTTP client"),
            jwks: tokio::sync::Mutex::new(Jwks {
                keys: None,
                fetched: None,
            }),
            keys: TtlCache::new(100_000),
            tenants: TtlCache::new(100_000),
            users: TtlCache::new(100_000),
            verified: TtlCache::new(20_000),
            provider_secrets: TtlCache::new(100_000),
        }
    }

    /// Forget everything cached (after the database refused a context built from it).
    pub fn clear_caches(&self) {
        self.keys.clear();
        self.tenants.clear();
        self.provider_secrets.clear();
    }

    /// Forget what is cached about this bearer token's key and about `reference` for
    /// `user`: a request about to be refused on what the cache said is decided again on
    /// fresh lookups, so a refusal is never served from a stale cache (a tenant just
    /// reactivated, a member just added or promoted, a key's scope just widened).
    pub fn forget(&self, token: Option<&str>, reference: &str, user: Option<Uuid>) {
        if let Some(token) = token.filter(|t| api_keys::looks_like_key(t)) {
            self.keys.remove(&api_keys::hash_secret(token));
        }
        self.tenants.remove(&(reference.to_owned(), user));
    }

    /// The tenant's secret for `provider`, for verifying a callback: from the cache unless
    /// `fresh` (a signature that does not verify with a cached secret is tried again with
    /// a fresh one, so a replaced secret works at once). The database checks the
    /// fingerprint of the secret used (`app.assert_callback`), so a stale entry cannot let
    /// a callback in with a secret that was removed or replaced.
    pub async fn provider_secret(
        &self,
        tenant: Uuid,
        provider: Provider,
        fresh: bool,
    ) -> Result<Option<(StoredSecret, bool)>, ApiError> {
        if !fresh && let Some(hit) = self.provider_secrets.get(&(tenant, provider)) {
            return Ok(Some((hit, true)));
        }
        let found = secrets::lookup(&self.db, tenant, provider).await?;
        if let Some(found) = &found {
            self.provider_secrets
                .insert((tenant, provider), found.clone(), SECRET_TTL);
        }
        Ok(found.map(|s| (s, false)))
    }

    /// Check a bearer token.
    pub async fn authenticate(&self, token: &str) -> Result<Caller, ApiError> {
        if constant_time_eq(token.as_bytes(), self.config.operator_token.0.as_bytes()) {
            return Ok(Caller::Operator);
        }
        if api_keys::looks_like_key(token) {
            return self.authenticate_key(token).await;
        }
        // A token verified once is good until its `exp` (at most a minute here, so a key
        // removed from the JWKS stops working soon after).
        let (caller, profile) = match self.verified.get(token) {
            Some(hit) => hit,
            None => {
                let (caller, exp) = self.verify_jwt(token).await?;
                let profile = profile_digest(&caller);
                let ttl = exp
                    .saturating_sub(jsonwebtoken::get_current_timestamp())
                    .min(VERIFIED_TTL);
                if ttl > 0 {
                    self.verified.insert(
                        token.to_owned(),
                        (caller.clone(), profile),
                        Duration::from_secs(ttl),
                    );
                }
                (caller, profile)
            }
        };
        if let Caller::User { id, email, name } = &caller {
            self.touch_user(*id, email.as_deref(), name.as_deref(), profile)
                .await?;
        }
        Ok(caller)
    }

    async fn authenticate_key(&self, token: &str) -> Result<Caller, ApiError> {
        let hash = api_keys::hash_secret(token);
        // Only keys found are cached: an unknown, revoked or deactivated tenant's key is
        // looked up on every use, so one that becomes valid works at once.
        let found = match self.keys.get(&hash) {
            Some(found) => Some(found),
            None => {
                let found = auth::authenticate_key(&self.db, &hash)
                    .await?
                    .map(|k| (k.tenant, k.id, k.scope));
                if let Some(found) = found {
                    self.keys.insert(hash, found, KEY_TTL);
                }
                found
            }
        };
        match found {
            Some((tenant, id, scope)) => Ok(Caller::Key { tenant, id, scope }),
            None => Err(ApiError::Unauthorized("unknown or revoked API key".into())),
        }
    }

    /// Verify a JWT; the caller and the token's `exp`.
    async fn verify_jwt(&self, token: &str) -> Result<(Caller, u64), ApiError> {
        let invalid = |why: &str| ApiError::Unauthorized(format!("invalid token: {why}"));
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid("not a JWT"))?;
        let key = match header.alg {
            Algorithm::HS256 => DecodingKey::from_secret(self.config.jwt_secret.0.as_bytes()),
            Algorithm::RS256 | Algorithm::ES256 => {
                let kid = header
                    .kid
                    .as_deref()
                    .ok_or_else(|| invalid("no kid in header"))?;
                self.jwks_key(kid, header.alg).await?
            }
            _ => return Err(invalid("unsupported algorithm")),
        };
        let mut validation = Validation::new(header.alg);
        validation.leeway = self.config.leeway.as_secs();
        // A token is not used before its `nbf` (when it has one), with the leeway of `exp`.
        validation.validate_nbf = true;
        let mut required = vec!["exp", "sub"];
        match &self.config.audience {
            Some(aud) => {
                validation.set_audience(&[aud]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        if let Some(iss) = &self.config.issuer {
            validation.set_issuer(&[iss]);
            required.push("iss");
        }
        validation.set_required_spec_claims(&required);
        let data = jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            invalid(match e.kind() {
                K::ExpiredSignature => "expired",
                K::ImmatureSignature => "not valid yet",
                // HS256: minted with another secret, e.g. `frontdesk token` run against
                // another data directory than the server's.
                K::InvalidSignature if header.alg == Algorithm::HS256 => {
                    "signed with another secret than this server's"
                }
                K::InvalidSignature => "bad signature",
                K::InvalidIssuer => "wrong issuer",
                K::InvalidAudience => "wrong audience",
                K::MissingRequiredClaim(_) => "a required claim (exp, sub, iss, aud) is missing",
                _ => "malformed",
            })
        })?;
        let claims = data.claims;
        if let Some(claim) = claims.holding_nul() {
            return Err(ApiError::Unauthorized(format!(
                "invalid token: the {claim} claim contains the NUL character"
            )));
        }
        if claims.sub.is_empty() {
            return Err(invalid("empty sub"));
        }
        let unverified = claims.email_unverified();
        let clip = |s: Option<String>| s.filter(|s| !s.is_empty() && s.len() <= 320);
        let caller = Caller::User {
            id: user_id_for_sub(&claims.sub),
            email: clip(claims.email).filter(|_| !unverified),
            name: clip(claims.name),
        };
        Ok((caller, claims.exp))
    }

    /// The JWKS key `kid`, fetching the set when it is stale or the kid is unknown (at
    /// most once every 30 s, so unknown kids cannot make us hammer the provider).
    async fn jwks_key(&self, kid: &str, alg: Algorithm) -> Result<DecodingKey, ApiError> {
        let Some(url) = &self.config.jwks_url else {
            return Err(ApiError::Unauthorized(
                "invalid token: asymmetric tokens need FRONTDESK_JWKS_URL".into(),
            ));
        };
        let mut jwks = self.jwks.lock().await;
        let stale = jwks.fetched.is_none_or(|t| t.elapsed() > JWKS_TTL);
        let unknown = jwks.keys.as_ref().is_none_or(|set| set.find(kid).is_none());
        let may_fetch = jwks
            .fetched
            .is_none_or(|t| t.elapsed() > self.config.jwks_refetch_interval);
        if (stale || unknown) && may_fetch {
            jwks.fetched = Some(Instant::now());
            match self.fetch_jwks(url).await {
                Ok(set) => jwks.keys = Some(set),
                Err(error) => tracing::warn!(%error, "fetching the JWKS failed"),
            }
        }
        let jwk = jwks
            .keys
            .as_ref()
            .and_then(|set| set.find(kid))
            .ok_or_else(|| ApiError::Unauthorized("invalid token: unknown signing key".into()))?;
        let key = DecodingKey::from_jwk(jwk)
            .map_err(|_| ApiError::Unauthorized("invalid token: unusable signing key".into()))?;
        let family_ok = match alg {
            Algorithm::RS256 => matches!(key.family(), jsonwebtoken::AlgorithmFamily::Rsa),
            _ => matches!(key.family(), jsonwebtoken::AlgorithmFamily::Ec),
        };
        if !family_ok {
            return Err(ApiError::Unauthorized(
                "invalid token: key does not match algorithm".into(),
            ));
        }
        Ok(key)
    }

    async fn fetch_jwks(&self, url: &str) -> anyhow::Result<JwkSet> {
        Ok(self
            .http
            .get(url)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }

    /// Upsert the user when first seen for a while, or when their profile claims changed.
    async fn touch_user(
        &self,
        id: Uuid,
        email: Option<&str>,
        name: Option<&str>,
        digest: [u8; 32],
    ) -> Result<(), ApiError> {
        if self.users.get(&id) == Some(digest) {
            return Ok(());
        }
        auth::touch_user(&self.db, id, email, name).await?;
        self.users.insert(id, digest, USER_TOUCH_INTERVAL);
        Ok(())
    }

    /// Resolve `{tenant}` (id or slug) and the user's role in it.
    pub async fn resolve(
        &self,
        reference: &str,
        user: Option<Uuid>,
    ) -> Result<Option<Resolved>, ApiError> {
        let key = (reference.to_owned(), user);
        if let Some(found) = self.tenants.get(&key) {
            return Ok(Some(found));
        }
        // Only tenants found are cached (a reference naming none is looked up again); what
        // is cached is checked by the database on every transaction (the access version,
        // the exact role), and a refusal built from it is decided again on fresh lookups.
        let found = auth::resolve_tenant(&self.db, reference, user).await?;
        if let Some(found) = found {
            self.tenants.insert(key, found, TENANT_TTL);
        }
        Ok(found)
    }
}

/// A digest of the profile claims: the user's row is updated when they change.
fn profile_digest(caller: &Caller) -> [u8; 32] {
    let mut digest = Sha256::new();
    if let Caller::User { email, name, .. } = caller {
        digest.update(email.as_deref().unwrap_or("\0").as_bytes());
        digest.update([0xff]);
        digest.update(name.as_deref().unwrap_or("\0").as_bytes());
    }
    digest.finalize().into()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    // Compare digests so neither length nor content leaks through timing.
    let (a, b) = (Sha256::digest(a), Sha256::digest(b));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_email_the_provider_marks_unverified_is_not_taken_in_either_form() {
        let claims = |verified: Option<serde_json::Value>| -> Claims {
            let mut value = serde_json::json!({"sub": "auth0|1", "exp": 1, "email": "a@b.co"});
            if let Some(verified) = verified {
                value["email_verified"] = verified;
            }
            serde_json::from_value(value).unwrap()
        };
        use serde_json::json;
        for (verified, unverified) in [
            (None, false),
            (Some(json!(true)), false),
            (Some(json!("true")), false),
            (Some(json!(null)), false),
            (Some(json!(false)), true),
            (Some(json!("false")), true),
            (Some(json!("no")), true),
        ] {
            assert_eq!(
                claims(verified.clone()).email_unverified(),
                unverified,
                "{verified:?}"
            );
        }
    }
}
