//! A tenant's secret per provider: set or replaced by its admins, never shown again.
//! Request roles cannot read the secret column; the server reads it only to verify a
//! callback, through `app.provider_secret()` before any request transaction.

use chrono::{DateTime, Utc};
use frontdesk_pg::RowExt;

use frontdesk_pg::{Db, DbError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio_postgres::Row;
use utoipa::ToSchema;
use uuid::Uuid;

use super::Provider;
use crate::{
    CoreError, Tx,
    platform::input::{Field, Invalid, Unknown},
};

/// `PUT …/provider-secrets/{provider}`.
#[derive(Default, Deserialize, ToSchema)]
#[schema(example = json!({"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}))]
pub struct PutSecret {
    /// The signing secret the provider gave the tenant (for `test`: `whsec_` and the
    /// base64 of 24 to 64 bytes). Never returned.
    #[serde(default)]
    #[schema(value_type = String, required = true)]
    pub secret: Field<String>,
    #[serde(flatten)]
    #[schema(ignore)]
    pub unknown: Unknown,
}

impl std::fmt::Debug for PutSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PutSecret { secret: *** }")
    }
}

/// A secret sent to be stored: present and not blank (its provider's own rules are
/// checked by the provider's verifier). Its `Debug` never shows it.
pub struct NewSecret(pub String);

impl std::fmt::Debug for NewSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewSecret(***)")
    }
}

impl TryFrom<PutSecret> for NewSecret {
    type Error = Invalid;

    fn try_from(w: PutSecret) -> Result<Self, Invalid> {
        let mut e = Invalid::new(w.unknown);
        let secret = e.required("secret", w.secret, |s: String| {
            if s.trim().is_empty() {
                Err("must not be blank".to_owned())
            } else {
                Ok(s)
            }
        });
        match secret {
            Some(secret) => e.finish(Self(secret)),
            None => Err(e),
        }
    }
}

/// A configured provider, without its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct SecretView {
    pub provider: Provider,
    /// The first 16 hex digits of the SHA-256 of the secret: tells secrets apart
    /// without revealing them.
    pub fingerprint: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl SecretView {
    /// None for a provider this build does not know.
    fn from_row(row: &Row) -> Result<Option<Self>, CoreError> {
        let Some(provider) = Provider::parse(row.col("provider")?) else {
            return Ok(None);
        };
        Ok(Some(Self {
            provider,
            fingerprint: row.col("fingerprint")?,
            created_at: row.col("created_at")?,
            updated_at: row.col("updated_at")?,
        }))
    }
}

/// The fingerprint of a secret: the first 8 bytes of its SHA-256.
pub fn fingerprint(secret: &str) -> [u8; 8] {
    let digest = Sha256::digest(secret.as_bytes());
    let mut out = [0u8; 8];
    out.copy_from_slice(&digest[..8]);
    out
}

fn fingerprint_hex(fingerprint: [u8; 8]) -> String {
    fingerprint.iter().map(|b| format!("{b:02x}")).collect()
}

/// Set or replace the tenant's secret for `provider` (the secret's rules were checked by
/// the provider's verifier).
pub async fn put(
    tx: &mut Tx,
    tenant: Uuid,
    provider: Provider,
    secret: &str,
) -> Result<SecretView, CoreError> {
    let fingerprint = fingerprint_hex(fingerprint(secret));
    tx.last();
    // Not `excluded.secret`: reading it would need SELECT on the secret column.
    let row = tx
        .query_one(
            "insert into app.provider_secrets (tenant_id, provider, secret, fingerprint)
             values ($1, $2, $3, $4)
             on conflict (tenant_id, provider) do update set secret = $3, fingerprint = $4
             returning provider, fingerprint, created_at, updated_at",
            &[&tenant, &provider.as_str(), &secret, &fingerprint],
        )
        .await?;
    SecretView::from_row(&row)?.ok_or(CoreError::NotFound)
}

/// The tenant's configured providers, by name.
pub async fn list(tx: &mut Tx, tenant: Uuid) -> Result<Vec<SecretView>, CoreError> {
    tx.last();
    let rows = tx
        .query(
            "select provider, fingerprint, created_at, updated_at from app.provider_secrets
             where tenant_id = $1 order by provider",
            &[&tenant],
        )
        .await?;
    rows.iter()
        .filter_map(|r| SecretView::from_row(r).transpose())
        .collect()
}

/// Remove the tenant's secret for `provider`: its callbacks are refused from then on.
pub async fn delete(tx: &mut Tx, tenant: Uuid, provider: Provider) -> Result<(), CoreError> {
    tx.last();
    let deleted = tx
        .execute(
            "delete from app.provider_secrets where tenant_id = $1 and provider = $2",
            &[&tenant, &provider.as_str()],
        )
        .await?;
    if deleted == 0 {
        return Err(CoreError::NotFound);
    }
    Ok(())
}

/// A stored secret, for verifying a callback. Never logged (`Debug` hides it).
#[derive(Clone)]
pub struct StoredSecret {
    pub secret: String,
    pub fingerprint: [u8; 8],
}

impl std::fmt::Debug for StoredSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "StoredSecret {{ secret: ***, fingerprint: {} }}",
            fingerprint_hex(self.fingerprint)
        )
    }
}

/// The tenant's secret for `provider`, if it has one: one statement as the server's
/// login role (`app.provider_secret`), outside any request transaction.
pub async fn lookup(
    db: &Db,
    tenant: Uuid,
    provider: Provider,
) -> Result<Option<StoredSecret>, DbError> {
    let row = db
        .lookup(
            "select secret from app.provider_secret($1, $2)",
            &[&tenant, &provider.as_str()],
        )
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let secret: String = row.col(0)?;
    Ok(Some(StoredSecret {
        fingerprint: fingerprint(&secret),
        secret,
    }))
}
