//! Secrets generated once into the data directory when not configured, and dev tokens.

use std::{
    io::Write,
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::Context;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::RngCore;
use serde::Serialize;

use crate::Common;

/// Read `name` from the data dir, or create it with a fresh random value (0600).
/// Returns the value and whether it was created now.
fn load_or_create(data_dir: &Path, name: &str) -> anyhow::Result<(String, bool)> {
    let path = data_dir.join(name);
    if let Ok(value) = std::fs::read_to_string(&path) {
        return Ok((value.trim().to_owned(), false));
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let value = URL_SAFE_NO_PAD.encode(bytes);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(value.as_bytes())?;
    Ok((value, true))
}

/// The embedded cluster's login passwords, generated once into the data dir (0600).
/// (The cluster listens only on a socket only this user may open; the passwords are what
/// a pooler or Citus nodes in front of it would use.)
pub fn embedded_passwords(data_dir: &Path) -> anyhow::Result<frontdesk_pg::roles::Passwords> {
    Ok(frontdesk_pg::roles::Passwords {
        owner: Some(load_or_create(data_dir, "db-owner-password")?.0),
        app: Some(load_or_create(data_dir, "db-app-password")?.0),
        operator: Some(load_or_create(data_dir, "db-operator-password")?.0),
    })
}

pub fn jwt_secret(common: &Common) -> anyhow::Result<String> {
    Ok(jwt_secret_with_source(common)?.0)
}

/// Where the HS256 secret came from.
pub enum SecretSource {
    /// `FRONTDESK_JWT_SECRET`.
    Environment,
    /// The data directory's file; `created` when it was generated just now.
    File { path: PathBuf, created: bool },
}

/// The HS256 secret and where it came from (`frontdesk token` says which it used).
pub fn jwt_secret_with_source(common: &Common) -> anyhow::Result<(String, SecretSource)> {
    match &common.jwt_secret {
        Some(secret) if secret.len() >= 32 => Ok((secret.clone(), SecretSource::Environment)),
        Some(_) => anyhow::bail!("FRONTDESK_JWT_SECRET must be at least 32 characters"),
        None => {
            let (secret, created) = load_or_create(&common.data_dir, "jwt-secret")?;
            let path = std::path::absolute(common.data_dir.join("jwt-secret"))
                .unwrap_or_else(|_| common.data_dir.join("jwt-secret"));
            Ok((secret, SecretSource::File { path, created }))
        }
    }
}

/// The operator token from the data dir; printed once, when it is generated.
pub fn operator_token(data_dir: &Path) -> anyhow::Result<String> {
    let (token, created) = load_or_create(data_dir, "operator-token")?;
    if created {
        eprintln!(
            "\nGenerated the operator token (kept in {}):\n\n    {token}\n",
            data_dir.join("operator-token").display()
        );
    }
    Ok(token)
}

#[derive(Serialize)]
struct Claims<'a> {
    sub: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    iat: u64,
    exp: u64,
}

pub fn mint_token(
    secret: &str,
    sub: &str,
    email: Option<&str>,
    name: Option<&str>,
    ttl: Duration,
) -> anyhow::Result<String> {
    let now = jsonwebtoken::get_current_timestamp();
    let claims = Claims {
        sub,
        email,
        name,
        iat: now,
        exp: now + ttl.as_secs(),
    };
    Ok(jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )?)
}
