//! Configuration from the environment (the stack file sets it). Defaults match
//! the service names of the stack, so a service runs unconfigured there.

use anyhow::{bail, Context};

/// `name` from the environment, or `default` when unset or empty.
pub fn env_or(name: &str, default: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v.trim().to_string(),
        _ => default.to_string(),
    }
}

/// The port every service listens on (all addresses): `$PORT`, default 8080.
pub fn port() -> anyhow::Result<u16> {
    let raw = env_or("PORT", "8080");
    raw.parse()
        .with_context(|| format!("PORT must be a port number, got {raw:?}"))
}

/// A secret from `<NAME>_FILE` (wins; Compose secrets land in /run/secrets)
/// or `<NAME>`. Trailing newlines of a file are not part of the secret.
pub fn secret(name: &str) -> anyhow::Result<Option<String>> {
    let file_var = format!("{name}_FILE");
    if let Ok(path) = std::env::var(&file_var) {
        if !path.is_empty() {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {file_var}={path}"))?;
            return Ok(Some(text.trim_end_matches(['\n', '\r']).to_string()));
        }
    }
    Ok(std::env::var(name).ok().filter(|v| !v.is_empty()))
}

/// The HMAC key shared by all services (`TOKEN_SECRET` or `TOKEN_SECRET_FILE`).
pub fn token_secret() -> anyhow::Result<Vec<u8>> {
    match secret("TOKEN_SECRET")? {
        Some(s) if s.len() >= 16 => Ok(s.into_bytes()),
        Some(_) => bail!("TOKEN_SECRET must be at least 16 bytes"),
        None => bail!(
            "TOKEN_SECRET (or TOKEN_SECRET_FILE) must be set: the HMAC key shared by all services"
        ),
    }
}

#[derive(Clone, Debug)]
pub struct DbConfig {
    pub host: String,
    pub port: u16,
    pub name: String,
    pub user: String,
    pub password: Option<String>,
    /// Connections per replica at most (DATABASE_POOL_SIZE, default 6): four
    /// services × 3 replicas × 6 = 72 stays under PostgreSQL's default
    /// max_connections of 100.
    pub pool_size: usize,
}

impl DbConfig {
    pub fn from_env() -> anyhow::Result<Self> {
        let port_raw = env_or("DATABASE_PORT", "5432");
        Ok(DbConfig {
            host: env_or("DATABASE_HOST", "db"),
            port: port_raw.parse().with_context(|| {
                format!("DATABASE_PORT must be a port number, got {port_raw:?}")
            })?,
            name: env_or("DATABASE_NAME", "bookstore"),
            user: env_or("DATABASE_USER", "bookstore"),
            password: secret("DATABASE_PASSWORD")?,
            pool_size: match env_or("DATABASE_POOL_SIZE", "6").parse() {
                Ok(n) if (1..=100).contains(&n) => n,
                _ => bail!("DATABASE_POOL_SIZE must be 1 to 100"),
            },
        })
    }
}

/// Base URLs of the other services (no trailing slash).
#[derive(Clone, Debug)]
pub struct Upstreams {
    pub users: String,
    pub catalog: String,
    pub cart: String,
    pub orders: String,
}

impl Upstreams {
    pub fn from_env() -> Self {
        let url = |name, default| env_or(name, default).trim_end_matches('/').to_string();
        Upstreams {
            users: url("USERS_URL", "http://users:8080"),
            catalog: url("CATALOG_URL", "http://catalog:8080"),
            cart: url("CART_URL", "http://cart:8080"),
            orders: url("ORDERS_URL", "http://orders:8080"),
        }
    }
}
