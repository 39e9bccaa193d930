//! users: registration (argon2 password hashes), login (signed tokens), profile.
//!
//!   PUT /users/{username}     {"password", "email"?, "display_name"?}  201 new, 200 same password again, 409 taken
//!   PUT /sessions/{username}  {"password"}  200 {"token", "username", "expires_at"}, 401 otherwise
//!   GET /users/{username}     (Bearer token of that user)  200 profile

use std::process::ExitCode;
use std::sync::Arc;

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use axum::extract::{FromRef, Path, State};
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Json, Router};
use bookstore::auth::{now_secs, AuthUser, Claims, TokenKey};
use bookstore::db::{Db, Migration};
use bookstore::error::{ApiError, ApiResult};
use bookstore::{config, metrics::Metrics, rules, server};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

const MIGRATIONS: &[Migration] = &["CREATE TABLE users (
        username text PRIMARY KEY,
        password_hash text NOT NULL,
        email text NOT NULL DEFAULT '',
        display_name text NOT NULL DEFAULT '',
        created_at timestamptz NOT NULL DEFAULT now())"];

const TOKEN_TTL_SECS: u64 = 24 * 3600;

#[derive(Clone, FromRef)]
struct AppState {
    db: Db,
    key: TokenKey,
    /// Argon2 costs ~19 MiB and tens of ms of CPU per hash: bound how many
    /// run at once so a burst cannot exhaust memory or the blocking pool.
    hashing: Arc<Semaphore>,
    /// A hash of nothing anybody knows, verified when a login names no
    /// existing user: that answer then takes as long as a wrong password,
    /// so response times do not tell which usernames exist.
    unknown_user_hash: Arc<str>,
}

#[derive(Deserialize)]
struct Register {
    password: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    display_name: String,
}

#[derive(Deserialize)]
struct Login {
    password: String,
}

#[derive(Serialize)]
struct Profile {
    username: String,
    email: String,
    display_name: String,
    created_at: String,
}

#[derive(Serialize)]
struct Session {
    token: String,
    username: String,
    expires_at: u64,
}

fn main() -> ExitCode {
    // Each argon2 hash allocates ~19 MiB. glibc raises its mmap threshold
    // after the first such block is freed, so later blocks come from the
    // per-thread heaps and stay mapped: RSS grew to ~800 MB under load. A
    // fixed threshold keeps every large block mmap'd and returned on free.
    // SAFETY: called before any other thread exists; mallopt only sets a
    // malloc parameter.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
    server::main("users", run)
}

async fn run() -> anyhow::Result<()> {
    let db = Db::new(&config::DbConfig::from_env()?, "users")?;
    let key = TokenKey::new(&config::token_secret()?);
    db.start_migrations("users", MIGRATIONS, |_| async { Ok(()) });
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let unknown_user_hash: Arc<str> = Argon2::default()
        .hash_password(&rand_bytes::<32>(), &SaltString::generate(&mut OsRng))
        .map_err(|e| anyhow::anyhow!("hashing the unknown-user stand-in: {e}"))?
        .to_string()
        .into();
    let state = AppState {
        db: db.clone(),
        key,
        hashing: Arc::new(Semaphore::new(workers)),
        unknown_user_hash,
    };
    let router = Router::new()
        .route(
            "/healthz",
            get(|State(db): State<Db>| async move { server::db_healthz(&db).await }),
        )
        .route("/users/{username}", put(register).get(profile))
        .route("/sessions/{username}", put(login))
        .with_state(state);
    server::serve("users", router, Metrics::new("users")).await
}

/// N random bytes from the OS.
fn rand_bytes<const N: usize>() -> [u8; N] {
    use argon2::password_hash::rand_core::RngCore;
    let mut b = [0u8; N];
    OsRng.fill_bytes(&mut b);
    b
}

async fn blocking<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce() -> T + Send + 'static,
) -> ApiResult<T> {
    let _permit = state
        .hashing
        .acquire()
        .await
        .map_err(|_| ApiError::unavailable("shutting down"))?;
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("hashing task failed: {e}")))
}

async fn verify_password(state: &AppState, password: String, hash: String) -> ApiResult<bool> {
    blocking(state, move || {
        PasswordHash::new(&hash)
            .map(|h| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &h)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
}

fn check_password(p: &str) -> ApiResult<()> {
    if !(8..=128).contains(&p.len()) {
        return Err(ApiError::bad_request("password must be 8 to 128 bytes"));
    }
    Ok(())
}

fn profile_of(row: &tokio_postgres::Row) -> Profile {
    Profile {
        username: row.get("username"),
        email: row.get("email"),
        display_name: row.get("display_name"),
        created_at: row.get("created_at"),
    }
}

const SELECT_USER: &str = "SELECT username, password_hash, email, display_name, created_at::text AS created_at FROM users WHERE username = $1";

/// Idempotent registration: a repeat with the same password (a retry after a
/// lost response) answers 200 with the profile; another password is 409.
async fn register(
    State(state): State<AppState>,
    Path(username): Path<String>,
    Json(body): Json<Register>,
) -> ApiResult<(StatusCode, Json<Profile>)> {
    if !rules::valid_username(&username) {
        return Err(ApiError::bad_request(
            "username must be 3 to 32 of a-z 0-9 _ . - starting with a letter or digit",
        ));
    }
    check_password(&body.password)?;
    if body.email.len() > 254 || body.display_name.len() > 100 {
        return Err(ApiError::bad_request(
            "email (254) or display_name (100) too long",
        ));
    }
    let existing = {
        let c = state.db.client().await?;
        c.query_opt(SELECT_USER, &[&username]).await?
    };
    if let Some(row) = existing {
        return same_password_or_conflict(&state, row, body.password).await;
    }
    let password = body.password.clone();
    let hash = blocking(&state, move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
    })
    .await?
    .map_err(|e| ApiError::internal(format!("hashing: {e}")))?;
    let c = state.db.client().await?;
    let inserted = c
        .query_opt(
            "INSERT INTO users (username, password_hash, email, display_name) VALUES ($1, $2, $3, $4)
             ON CONFLICT (username) DO NOTHING
             RETURNING username, email, display_name, created_at::text AS created_at",
            &[&username, &hash, &body.email, &body.display_name],
        )
        .await?;
    match inserted {
        Some(row) => {
            tracing::info!(%username, "registered");
            Ok((StatusCode::CREATED, Json(profile_of(&row))))
        }
        None => {
            // A concurrent registration of the same name won the race.
            let row = c
                .query_opt(SELECT_USER, &[&username])
                .await?
                .ok_or_else(|| ApiError::unavailable("user vanished; retry"))?;
            drop(c);
            same_password_or_conflict(&state, row, body.password).await
        }
    }
}

async fn same_password_or_conflict(
    state: &AppState,
    row: tokio_postgres::Row,
    password: String,
) -> ApiResult<(StatusCode, Json<Profile>)> {
    if verify_password(state, password, row.get("password_hash")).await? {
        Ok((StatusCode::OK, Json(profile_of(&row))))
    } else {
        Err(ApiError::conflict("username already taken"))
    }
}

async fn login(
    State(state): State<AppState>,
    Path(username): Path<String>,
    Json(body): Json<Login>,
) -> ApiResult<Json<Session>> {
    let denied = || ApiError::unauthorized("wrong username or password");
    if !rules::valid_username(&username) || body.password.len() > 128 {
        return Err(denied());
    }
    let row = {
        let c = state.db.client().await?;
        c.query_opt(
            "SELECT password_hash FROM users WHERE username = $1",
            &[&username],
        )
        .await?
    };
    let Some(row) = row else {
        // As slow as a wrong password (see `unknown_user_hash`).
        verify_password(&state, body.password, state.unknown_user_hash.to_string()).await?;
        return Err(denied());
    };
    if !verify_password(&state, body.password, row.get(0)).await? {
        return Err(denied());
    }
    let expires_at = now_secs() + TOKEN_TTL_SECS;
    let token = state.key.sign(&Claims {
        sub: username.clone(),
        exp: expires_at,
    });
    Ok(Json(Session {
        token,
        username,
        expires_at,
    }))
}

async fn profile(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(username): Path<String>,
) -> ApiResult<Json<Profile>> {
    auth.must_be(&username)?;
    let c = state.db.client().await?;
    let row = c
        .query_opt(SELECT_USER, &[&username])
        .await?
        .ok_or_else(|| ApiError::not_found("no such user"))?;
    Ok(Json(profile_of(&row)))
}
