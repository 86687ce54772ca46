//! API keys: a tenant's credentials for its backend services. The secret is shown once,
//! at creation; only its SHA-256 is stored.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use frontdesk_pg::RowExt;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio_postgres::Row;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    CoreError, KeyScope, Tx,
    platform::input::{Field, Invalid, Unknown},
    platform::page::{Page, Paged},
};

/// Every key secret starts with this, so leaked keys are easy to recognise.
pub const SECRET_PREFIX: &str = "fd_";
/// How much of the secret is kept (and shown) as the key's prefix.
const SHOWN_PREFIX_LEN: usize = 11;

/// An API key as listed: never the secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKey {
    pub id: Uuid,
    pub name: String,
    /// The first characters of the secret.
    pub prefix: String,
    /// full or read.
    pub scopes: Vec<String>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    /// Updated at most once a minute.
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A key just created: the only time its secret is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedApiKey {
    #[serde(flatten)]
    pub key: ApiKey,
    /// The key itself: send it as `Authorization: Bearer <secret>`. Shown only now.
    pub secret: String,
}

impl ApiKey {
    fn from_row(row: &Row) -> Result<Self, CoreError> {
        Ok(Self {
            id: row.col("id")?,
            name: row.col("name")?,
            prefix: row.col("prefix")?,
            scopes: row.col("scopes")?,
            created_by: row.col("created_by")?,
            created_at: row.col("created_at")?,
            last_used_at: row.col("last_used_at")?,
            revoked_at: row.col("revoked_at")?,
        })
    }
}

/// `POST …/api-keys`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(example = json!({"name": "whatsapp-bot", "scopes": ["full"]}))]
pub struct NewApiKey {
    #[serde(default)]
    #[schema(value_type = String, required = true)]
    pub name: Field<String>,
    /// full (read and write) or read (read only). Default: full.
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>)]
    pub scopes: Field<Vec<String>>,
    #[serde(flatten)]
    #[schema(ignore)]
    pub unknown: Unknown,
}

/// A checked new key: its name and its scopes (sorted, no repeats).
#[derive(Debug)]
pub struct NewKey {
    pub name: String,
    pub scopes: Vec<KeyScope>,
}

impl TryFrom<NewApiKey> for NewKey {
    type Error = Invalid;

    fn try_from(w: NewApiKey) -> Result<Self, Invalid> {
        let mut e = Invalid::new(w.unknown);
        let name = e.required("name", w.name, |s: String| {
            if s.trim().is_empty() || s.chars().count() > 100 {
                Err("must be 1 to 100 characters, not blank".to_owned())
            } else {
                Ok(s.trim().to_owned())
            }
        });
        let scopes = e
            .optional("scopes", w.scopes, |names| {
                let mut scopes = names
                    .iter()
                    .map(|s| KeyScope::parse(s))
                    .collect::<Option<Vec<_>>>()
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| "must be a non-empty subset of full, read".to_owned())?;
                scopes.sort_by_key(|s| s.as_str());
                scopes.dedup();
                Ok(scopes)
            })
            .unwrap_or_else(|| vec![KeyScope::Full]);
        match name {
            Some(name) => e.finish(Self { name, scopes }),
            None => Err(e),
        }
    }
}

/// SHA-256 of a presented secret: what the database stores and looks up.
pub fn hash_secret(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// Whether a bearer token looks like one of our API keys (rather than a JWT).
pub fn looks_like_key(token: &str) -> bool {
    token.starts_with(SECRET_PREFIX) && !token.contains('.')
}

const COLUMNS: &str = "id, name, prefix, scopes, created_by, created_at, last_used_at, revoked_at";

pub async fn create(
    tx: &mut Tx,
    tenant: Uuid,
    new: &NewKey,
    created_by: Option<Uuid>,
) -> Result<CreatedApiKey, CoreError> {
    let scopes: Vec<&str> = new.scopes.iter().map(|s| s.as_str()).collect();
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret = format!("{SECRET_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    let prefix = &secret[..SHOWN_PREFIX_LEN];
    let id = Uuid::now_v7();
    let hash = hash_secret(&secret);
    // The hash in the global lookup first, then the key's row.
    tx.execute("select app.claim_key_hash($1, $2)", &[&id, &hash])
        .await?;
    let row = tx
        .query_one(
            &format!(
                "insert into app.api_keys (tenant_id, id, name, prefix, secret_hash, scopes, created_by) \
                 values ($1, $2, $3, $4, $5, $6, $7) returning {COLUMNS}"
            ),
            &[&tenant, &id, &new.name, &prefix, &hash, &scopes, &created_by],
        )
        .await?;
    Ok(CreatedApiKey {
        key: ApiKey::from_row(&row)?,
        secret,
    })
}

pub async fn list(
    tx: &mut Tx,
    tenant: Uuid,
    page: &Page<Uuid>,
) -> Result<Paged<ApiKey>, CoreError> {
    let rows = tx
        .query(
            &format!(
                "select {COLUMNS} from app.api_keys where tenant_id = $1 and ($2::uuid is null or id < $2) \
                 order by id desc limit $3"
            ),
            &[&tenant, &page.after, &(page.limit + 1)],
        )
        .await?;
    Ok(Paged::from_rows(
        rows.iter()
            .map(ApiKey::from_row)
            .collect::<Result<_, _>>()?,
        page.limit,
        |k: &ApiKey| k.id,
    ))
}

pub async fn get(tx: &mut Tx, tenant: Uuid, id: Uuid) -> Result<ApiKey, CoreError> {
    let row = tx
        .query_opt(
            &format!("select {COLUMNS} from app.api_keys where tenant_id = $1 and id = $2"),
            &[&tenant, &id],
        )
        .await?
        .ok_or(CoreError::NotFound)?;
    ApiKey::from_row(&row)
}

/// Revoke a key (again is fine). The database refuses it from the next request on.
pub async fn revoke(tx: &mut Tx, tenant: Uuid, id: Uuid) -> Result<(), CoreError> {
    let n = tx
        .execute(
            "update app.api_keys set revoked_at = coalesce(revoked_at, now()) where tenant_id = $1 and id = $2",
            &[&tenant, &id],
        )
        .await?;
    if n == 0 {
        Err(CoreError::NotFound)
    } else {
        Ok(())
    }
}
