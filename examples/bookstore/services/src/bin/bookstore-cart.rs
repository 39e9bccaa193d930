//! cart: one cart per user, lines of (book id, quantity). Every write is a
//! PUT or DELETE that states the end result, so a retried request is harmless.
//!
//!   GET    /carts/{user}                   200 {"username", "items": [{"book_id", "quantity"}]}
//!   PUT    /carts/{user}/items/{book_id}   {"quantity": 1..100} (0 removes the line)
//!   DELETE /carts/{user}/items/{book_id}
//!   DELETE /carts/{user}                   empties the cart
//! All need the Bearer token of {user}.

use std::process::ExitCode;

use axum::extract::{FromRef, Path, State};
use axum::routing::{delete, get};
use axum::{Json, Router};
use bookstore::auth::{AuthUser, TokenKey};
use bookstore::db::{Db, Migration};
use bookstore::error::{ApiError, ApiResult};
use bookstore::{config, metrics::Metrics, rules, server};
use serde::{Deserialize, Serialize};

const MIGRATIONS: &[Migration] = &["CREATE TABLE items (
        username text NOT NULL,
        book_id bigint NOT NULL CHECK (book_id > 0),
        quantity integer NOT NULL CHECK (quantity > 0 AND quantity <= 100),
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (username, book_id))"];

#[derive(Clone, FromRef)]
struct AppState {
    db: Db,
    key: TokenKey,
}

#[derive(Serialize, Deserialize)]
struct Line {
    book_id: i64,
    quantity: i32,
}

#[derive(Serialize)]
struct Cart {
    username: String,
    items: Vec<Line>,
}

#[derive(Deserialize)]
struct SetQuantity {
    quantity: i32,
}

fn main() -> ExitCode {
    server::main("cart", run)
}

async fn run() -> anyhow::Result<()> {
    let db = Db::new(&config::DbConfig::from_env()?, "cart")?;
    let key = TokenKey::new(&config::token_secret()?);
    db.start_migrations("cart", MIGRATIONS, |_| async { Ok(()) });
    let state = AppState { db, key };
    let router = Router::new()
        .route(
            "/healthz",
            get(|State(db): State<Db>| async move { server::db_healthz(&db).await }),
        )
        .route("/carts/{user}", get(get_cart).delete(clear))
        .route("/carts/{user}/items/{book_id}", delete(remove).put(set))
        .with_state(state);
    server::serve("cart", router, Metrics::new("cart")).await
}

async fn load(db: &Db, user: &str) -> ApiResult<Cart> {
    let c = db.client().await?;
    let rows = c
        .query(
            "SELECT book_id, quantity FROM items WHERE username = $1 ORDER BY book_id",
            &[&user],
        )
        .await?;
    Ok(Cart {
        username: user.to_string(),
        items: rows
            .iter()
            .map(|r| Line {
                book_id: r.get(0),
                quantity: r.get(1),
            })
            .collect(),
    })
}

async fn get_cart(
    State(s): State<AppState>,
    auth: AuthUser,
    Path(user): Path<String>,
) -> ApiResult<Json<Cart>> {
    auth.must_be(&user)?;
    Ok(Json(load(&s.db, &user).await?))
}

async fn set(
    State(s): State<AppState>,
    auth: AuthUser,
    Path((user, book_id)): Path<(String, i64)>,
    Json(body): Json<SetQuantity>,
) -> ApiResult<Json<Cart>> {
    auth.must_be(&user)?;
    if book_id <= 0 {
        return Err(ApiError::bad_request("book_id must be positive"));
    }
    if !(0..=rules::MAX_QUANTITY).contains(&body.quantity) {
        return Err(ApiError::bad_request(format!(
            "quantity must be 0 to {}",
            rules::MAX_QUANTITY
        )));
    }
    {
        let c = s.db.client().await?;
        if body.quantity == 0 {
            c.execute(
                "DELETE FROM items WHERE username = $1 AND book_id = $2",
                &[&user, &book_id],
            )
            .await?;
        } else {
            c.execute(
                "INSERT INTO items (username, book_id, quantity) VALUES ($1, $2, $3)
                 ON CONFLICT (username, book_id) DO UPDATE SET quantity = EXCLUDED.quantity, updated_at = now()",
                &[&user, &book_id, &body.quantity],
            )
            .await?;
        }
    }
    Ok(Json(load(&s.db, &user).await?))
}

async fn remove(
    State(s): State<AppState>,
    auth: AuthUser,
    Path((user, book_id)): Path<(String, i64)>,
) -> ApiResult<Json<Cart>> {
    auth.must_be(&user)?;
    {
        let c = s.db.client().await?;
        c.execute(
            "DELETE FROM items WHERE username = $1 AND book_id = $2",
            &[&user, &book_id],
        )
        .await?;
    }
    Ok(Json(load(&s.db, &user).await?))
}

async fn clear(
    State(s): State<AppState>,
    auth: AuthUser,
    Path(user): Path<String>,
) -> ApiResult<Json<Cart>> {
    auth.must_be(&user)?;
    {
        let c = s.db.client().await?;
        c.execute("DELETE FROM items WHERE username = $1", &[&user])
            .await?;
    }
    Ok(Json(Cart {
        username: user,
        items: vec![],
    }))
}
