//! Bearer-token authentication. The store keeps only SHA-256 hashes of
//! tokens; the admin token is shown once, at first start, and written to a
//! root-only file in the data dir so the CLI on the same machine can use it
//! (like k3s's server token file).

use crate::error::ApiError;
use crate::repo::Repo;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use flotilla_core::keys;
use sha2::{Digest, Sha256};
use std::path::Path;

pub const TOKEN_FILE: &str = "admin.token";

pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn new_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness for a token: {e}"))?;
    Ok(format!("flt_{}", hex::encode(bytes)))
}

/// Make sure an admin token exists. Returns the token when it was created
/// now (the caller prints it once), None when one existed already.
pub async fn ensure_admin_token(repo: &Repo, data_dir: &Path) -> anyhow::Result<Option<String>> {
    let file = data_dir.join(TOKEN_FILE);
    if let Ok(existing) = std::fs::read_to_string(&file) {
        let existing = existing.trim();
        if repo
            .get::<serde_json::Value>(&keys::token(&hash(existing)))
            .await
            .map_err(|e| anyhow::anyhow!(e.message))?
            .is_some()
        {
            return Ok(None);
        }
    }
    let token = new_token()?;
    let record = serde_json::json!({ "name": "admin", "created_at": crate::now_ms() });
    repo.create(&keys::token(&hash(&token)), &record)
        .await
        .map_err(|e| anyhow::anyhow!(e.message))?;
    write_private(&file, &token)?;
    Ok(Some(token))
}

fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Middleware: every `/v1/` request needs `Authorization: Bearer <token>`.
pub async fn require_token(
    State(repo): State<Repo>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let unauthorized = |msg: &str| {
        ApiError::new(StatusCode::UNAUTHORIZED, msg)
            .with_hint(format!("pass the token printed at first start (also in <data-dir>/{TOKEN_FILE}) as `Authorization: Bearer <token>`"))
    };
    let header = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| unauthorized("missing bearer token"))?;
    let token = header
        .strip_prefix("Bearer ")
        .ok_or_else(|| unauthorized("the Authorization header must be `Bearer <token>`"))?;
    if repo
        .store
        .get(&keys::token(&hash(token.trim())))
        .await?
        .is_none()
    {
        return Err(unauthorized("invalid token"));
    }
    Ok(next.run(request).await)
}
