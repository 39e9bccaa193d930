//! orders: turns a user's cart into an order: reserve stock in catalog,
//! simulated payment, status and history.
//!
//!   PUT /orders/{order_id}   {"card_number"}  (Bearer token of the buyer)
//!       201 the order, created now; 200 the same order on a repeat (exactly once).
//!       Final status: "paid", "payment_failed" (card ending in 0000; stock
//!       released) or "rejected" (out of stock / unknown book); 409 empty cart;
//!       503 while a dependency is down (the order stays "pending" and a
//!       repeat, or the background sweeper, finishes it).
//!   GET /orders/{order_id}          the buyer's order
//!   GET /users/{user}/orders        {"orders": [...]} newest first (100)
//!   GET /admin/totals               {"paid": [{"book_id", "quantity"}], "by_status": {...}}
//!
//! An order is a small state machine stored before any side effect, so a
//! retry or a crash at any point resumes it: the reservation is keyed by the
//! order id in catalog (a repeat is a no-op) and the payment outcome depends
//! only on the stored last four digits.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use axum::extract::{FromRef, Path, State};
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Json, Router};
use bookstore::auth::{now_secs, AuthUser, Claims, TokenKey};
use bookstore::client::{describe, http_client, send_idempotent};
use bookstore::config::{self, Upstreams};
use bookstore::db::{Db, Migration};
use bookstore::error::{ApiError, ApiResult};
use bookstore::{metrics::Metrics, rules, server};
use serde::{Deserialize, Serialize};

const MIGRATIONS: &[Migration] = &["CREATE TABLE orders (
        id text PRIMARY KEY,
        username text NOT NULL,
        status text NOT NULL CHECK (status IN ('pending', 'paid', 'payment_failed', 'rejected')),
        reason text NOT NULL DEFAULT '',
        card_last4 text NOT NULL,
        total_cents bigint NOT NULL DEFAULT 0,
        cart_cleared boolean NOT NULL DEFAULT false,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now());
    CREATE INDEX orders_by_user ON orders (username, created_at DESC);
    CREATE INDEX orders_pending ON orders (updated_at) WHERE status = 'pending';
    CREATE TABLE order_items (
        order_id text NOT NULL REFERENCES orders (id),
        book_id bigint NOT NULL,
        quantity integer NOT NULL CHECK (quantity > 0),
        title text NOT NULL DEFAULT '',
        price_cents bigint NOT NULL DEFAULT 0,
        PRIMARY KEY (order_id, book_id));"];

#[derive(Clone, FromRef)]
struct AppState {
    db: Db,
    key: TokenKey,
    http: reqwest::Client,
    up: Upstreams,
}

#[derive(Serialize, Deserialize, Clone)]
struct Item {
    book_id: i64,
    quantity: i32,
    #[serde(default)]
    title: String,
    #[serde(default)]
    price_cents: i64,
}

#[derive(Serialize)]
struct Order {
    id: String,
    username: String,
    status: String,
    reason: String,
    card_last4: String,
    total_cents: i64,
    created_at: String,
    items: Vec<Item>,
}

#[derive(Deserialize)]
struct CartLine {
    book_id: i64,
    quantity: i32,
}

#[derive(Deserialize)]
struct CartBody {
    items: Vec<CartLine>,
}

#[derive(Deserialize)]
struct PlaceOrder {
    card_number: String,
}

fn main() -> ExitCode {
    server::main("orders", run)
}

async fn run() -> anyhow::Result<()> {
    let db = Db::new(&config::DbConfig::from_env()?, "orders")?;
    let key = TokenKey::new(&config::token_secret()?);
    db.start_migrations("orders", MIGRATIONS, |_| async { Ok(()) });
    let state = AppState {
        db,
        key,
        http: http_client(),
        up: Upstreams::from_env(),
    };
    tokio::spawn(sweep_pending(state.clone()));
    let router = Router::new()
        .route(
            "/healthz",
            get(|State(db): State<Db>| async move { server::db_healthz(&db).await }),
        )
        .route("/orders/{order_id}", put(place).get(show))
        .route("/users/{user}/orders", get(history))
        .route("/admin/totals", get(totals))
        .with_state(state);
    server::serve("orders", router, Metrics::new("orders")).await
}

/// A short-lived token of `user`, for calls to cart on the buyer's behalf
/// (also from the sweeper, where no request token exists).
fn token_for(key: &TokenKey, user: &str) -> String {
    key.sign(&Claims {
        sub: user.to_string(),
        exp: now_secs() + 60,
    })
}

const SELECT_ORDER: &str =
    "SELECT id, username, status, reason, card_last4, total_cents, cart_cleared,
        created_at::text AS created_at FROM orders WHERE id = $1";

async fn load_order(db: &Db, id: &str) -> ApiResult<Option<(Order, bool)>> {
    let c = db.client().await?;
    let Some(r) = c.query_opt(SELECT_ORDER, &[&id]).await? else {
        return Ok(None);
    };
    let items = c
        .query(
            "SELECT book_id, quantity, title, price_cents FROM order_items WHERE order_id = $1 ORDER BY book_id",
            &[&id],
        )
        .await?
        .iter()
        .map(|i| Item {
            book_id: i.get(0),
            quantity: i.get(1),
            title: i.get(2),
            price_cents: i.get(3),
        })
        .collect();
    Ok(Some((
        Order {
            id: r.get("id"),
            username: r.get("username"),
            status: r.get("status"),
            reason: r.get("reason"),
            card_last4: r.get("card_last4"),
            total_cents: r.get("total_cents"),
            created_at: r.get("created_at"),
            items,
        },
        r.get("cart_cleared"),
    )))
}

async fn place(
    State(s): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    Json(body): Json<PlaceOrder>,
) -> ApiResult<(StatusCode, Json<Order>)> {
    if !rules::valid_order_id(&id) {
        return Err(ApiError::bad_request(
            "order id must be 1..64 of A-Z a-z 0-9 _ -",
        ));
    }
    let last4 = match rules::charge(&body.card_number).map_err(ApiError::bad_request)? {
        rules::Payment::Approved { last4 } | rules::Payment::Declined { last4 } => last4,
    };
    let mut created = false;
    if let Some((order, _)) = load_order(&s.db, &id).await? {
        if order.username != auth.0 {
            return Err(ApiError::conflict("order id already used by another user"));
        }
    } else {
        created = create_from_cart(&s, &auth.0, &id, &last4).await?;
    }
    let order = advance(&s, &id).await?;
    // Another user's concurrent request may have taken this id first.
    if order.username != auth.0 {
        return Err(ApiError::conflict("order id already used by another user"));
    }
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(order)))
}

/// Stores a pending order with the cart's lines. False when a concurrent
/// copy of the same request stored it first.
async fn create_from_cart(s: &AppState, user: &str, id: &str, last4: &str) -> ApiResult<bool> {
    let token = token_for(&s.key, user);
    let url = format!("{}/carts/{user}", s.up.cart);
    let resp = send_idempotent(|| s.http.get(&url).bearer_auth(&token))
        .await
        .map_err(|e| ApiError::unavailable(format!("cart service: {}", describe(&e))))?;
    if !resp.status().is_success() {
        return Err(ApiError::unavailable(format!(
            "cart service answered {}",
            resp.status()
        )));
    }
    let cart: CartBody = resp
        .json()
        .await
        .map_err(|e| ApiError::unavailable(format!("cart service: {e}")))?;
    if cart.items.is_empty() {
        return Err(ApiError::conflict("the cart is empty"));
    }
    let mut c = s.db.client().await?;
    let tx = c.transaction().await?;
    let n = tx
        .execute(
            "INSERT INTO orders (id, username, status, card_last4) VALUES ($1, $2, 'pending', $3)
             ON CONFLICT (id) DO NOTHING",
            &[&id, &user, &last4],
        )
        .await?;
    if n == 0 {
        tx.rollback().await?;
        return Ok(false);
    }
    for line in &cart.items {
        tx.execute(
            "INSERT INTO order_items (order_id, book_id, quantity) VALUES ($1, $2, $3)",
            &[&id, &line.book_id, &line.quantity],
        )
        .await?;
    }
    tx.commit().await?;
    tracing::info!(
        order_id = id,
        user,
        lines = cart.items.len(),
        "order created"
    );
    Ok(true)
}

/// Moves an order as far as it can go: pending → reserve → paid or
/// payment_failed (stock released) or rejected; for a paid order, makes sure
/// the cart was emptied. Safe to run any number of times, concurrently.
async fn advance(s: &AppState, id: &str) -> ApiResult<Order> {
    let (order, cart_cleared) = load_order(&s.db, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no order {id}")))?;
    if order.status == "pending" {
        let reserve_url = format!("{}/reservations/{id}", s.up.catalog);
        let lines: Vec<serde_json::Value> = order
            .items
            .iter()
            .map(|i| serde_json::json!({"book_id": i.book_id, "quantity": i.quantity}))
            .collect();
        let body = serde_json::json!({ "items": lines });
        let resp = send_idempotent(|| s.http.put(&reserve_url).json(&body))
            .await
            .map_err(|e| ApiError::unavailable(format!("catalog service: {}", describe(&e))))?;
        let status = resp.status();
        let payload: serde_json::Value = resp.json().await.unwrap_or_default();
        match status {
            StatusCode::OK => {
                let reserved: Vec<Item> = serde_json::from_value(payload["items"].clone())
                    .map_err(|e| {
                        ApiError::unavailable(format!("catalog service: bad reservation: {e}"))
                    })?;
                let approved = rules::approves(&order.card_last4);
                if !approved {
                    let url = reserve_url.clone();
                    let r = send_idempotent(|| s.http.delete(&url)).await.map_err(|e| {
                        ApiError::unavailable(format!("catalog service: {}", describe(&e)))
                    })?;
                    if !r.status().is_success() {
                        return Err(ApiError::unavailable(format!(
                            "catalog service answered {} to the release",
                            r.status()
                        )));
                    }
                }
                finish(s, id, &reserved, approved).await?;
            }
            // Released: only a declined payment releases, and this order's
            // earlier attempt got that far before its status was stored.
            StatusCode::GONE => {
                let reserved: Vec<Item> = serde_json::from_value(payload["items"].clone())
                    .map_err(|e| {
                        ApiError::unavailable(format!("catalog service: bad reservation: {e}"))
                    })?;
                finish(s, id, &reserved, false).await?;
            }
            // Out of stock, unknown book, or a cart catalog refuses (e.g.
            // too many lines): final, or the order would stay pending. (A
            // 404 would mean a misrouted call, not a verdict on the order.)
            StatusCode::CONFLICT | StatusCode::BAD_REQUEST => {
                let reason = payload["error"]
                    .as_str()
                    .unwrap_or("stock unavailable")
                    .to_string();
                let c = s.db.client().await?;
                c.execute(
                    "UPDATE orders SET status = 'rejected', reason = $2, updated_at = now()
                     WHERE id = $1 AND status = 'pending'",
                    &[&id, &reason],
                )
                .await?;
            }
            other => {
                return Err(ApiError::unavailable(format!(
                    "catalog service answered {other}: {}",
                    payload["error"].as_str().unwrap_or("")
                )))
            }
        }
    }
    let (order, _) = load_order(&s.db, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no order {id}")))?;
    if order.status == "paid" && !cart_cleared {
        clear_cart(s, &order.username, id).await;
    }
    Ok(order)
}

async fn finish(s: &AppState, id: &str, reserved: &[Item], approved: bool) -> ApiResult<()> {
    let lines: Vec<(i64, i32)> = reserved
        .iter()
        .map(|i| (i.price_cents, i.quantity))
        .collect();
    let total =
        rules::order_total(&lines).ok_or_else(|| ApiError::internal("order total overflows"))?;
    let (status, reason) = if approved {
        ("paid", "")
    } else {
        ("payment_failed", "card declined")
    };
    let mut c = s.db.client().await?;
    let tx = c.transaction().await?;
    let n = tx
        .execute(
            "UPDATE orders SET status = $2, reason = $3, total_cents = $4, updated_at = now()
             WHERE id = $1 AND status = 'pending'",
            &[&id, &status, &reason, &total],
        )
        .await?;
    if n == 1 {
        for i in reserved {
            tx.execute(
                "UPDATE order_items SET title = $3, price_cents = $4 WHERE order_id = $1 AND book_id = $2",
                &[&id, &i.book_id, &i.title, &i.price_cents],
            )
            .await?;
        }
    }
    tx.commit().await?;
    if n == 1 {
        tracing::info!(order_id = id, status, total, "order finished");
    }
    Ok(())
}

/// Best effort: a failure leaves `cart_cleared` false and the next repeat or
/// sweep tries again; the order itself is already final.
async fn clear_cart(s: &AppState, user: &str, id: &str) {
    let token = token_for(&s.key, user);
    let url = format!("{}/carts/{user}", s.up.cart);
    match send_idempotent(|| s.http.delete(&url).bearer_auth(&token)).await {
        Ok(r) if r.status().is_success() => {
            if let Ok(c) = s.db.client().await {
                let _ = c
                    .execute(
                        "UPDATE orders SET cart_cleared = true WHERE id = $1",
                        &[&id],
                    )
                    .await;
            }
        }
        Ok(r) => tracing::warn!(order_id = id, status = %r.status(), "emptying the cart failed"),
        Err(e) => tracing::warn!(order_id = id, error = %e, "emptying the cart failed"),
    }
}

/// Finishes orders left pending by a client that gave up or a replica that
/// died mid-way, so their stock does not stay reserved forever. Every
/// replica sweeps; `advance` is safe to run concurrently.
async fn sweep_pending(s: AppState) {
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    loop {
        tick.tick().await;
        if !s.db.is_ready() {
            continue;
        }
        let ids: Vec<String> = match s.db.client().await {
            Ok(c) => match c
                .query(
                    "SELECT id FROM orders WHERE (status = 'pending' OR (status = 'paid' AND NOT cart_cleared))
                       AND updated_at < now() - interval '20 seconds' ORDER BY updated_at LIMIT 50",
                    &[],
                )
                .await
            {
                Ok(rows) => rows.iter().map(|r| r.get(0)).collect(),
                Err(_) => continue,
            },
            Err(_) => continue,
        };
        for id in ids {
            match advance(&s, &id).await {
                Ok(o) => tracing::info!(order_id = %id, status = %o.status, "swept a stale order"),
                Err(e) => tracing::debug!(order_id = %id, error = %e, "sweeping an order"),
            }
        }
    }
}

async fn show(
    State(s): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Json<Order>> {
    if !rules::valid_order_id(&id) {
        return Err(ApiError::bad_request(
            "order id must be 1..64 of A-Z a-z 0-9 _ -",
        ));
    }
    match load_order(&s.db, &id).await? {
        Some((o, _)) if o.username == auth.0 => Ok(Json(o)),
        _ => Err(ApiError::not_found(format!("no order {id}"))),
    }
}

async fn history(
    State(s): State<AppState>,
    auth: AuthUser,
    Path(user): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    auth.must_be(&user)?;
    let c = s.db.client().await?;
    let rows = c
        .query(
            "SELECT id, username, status, reason, card_last4, total_cents, created_at::text AS created_at
             FROM orders WHERE username = $1 ORDER BY created_at DESC LIMIT 100",
            &[&user],
        )
        .await?;
    let ids: Vec<String> = rows.iter().map(|r| r.get("id")).collect();
    let mut items: BTreeMap<String, Vec<Item>> = BTreeMap::new();
    for r in c
        .query(
            "SELECT order_id, book_id, quantity, title, price_cents FROM order_items
             WHERE order_id = ANY($1) ORDER BY book_id",
            &[&ids],
        )
        .await?
    {
        items.entry(r.get(0)).or_default().push(Item {
            book_id: r.get(1),
            quantity: r.get(2),
            title: r.get(3),
            price_cents: r.get(4),
        });
    }
    let orders: Vec<Order> = rows
        .iter()
        .map(|r| {
            let id: String = r.get("id");
            Order {
                items: items.remove(&id).unwrap_or_default(),
                id,
                username: r.get("username"),
                status: r.get("status"),
                reason: r.get("reason"),
                card_last4: r.get("card_last4"),
                total_cents: r.get("total_cents"),
                created_at: r.get("created_at"),
            }
        })
        .collect();
    Ok(Json(serde_json::json!({ "orders": orders })))
}

async fn totals(State(s): State<AppState>) -> ApiResult<Json<serde_json::Value>> {
    let c = s.db.client().await?;
    let paid: Vec<serde_json::Value> = c
        .query(
            "SELECT i.book_id, sum(i.quantity)::bigint FROM order_items i JOIN orders o ON o.id = i.order_id
             WHERE o.status = 'paid' GROUP BY i.book_id ORDER BY i.book_id",
            &[],
        )
        .await?
        .iter()
        .map(|r| serde_json::json!({"book_id": r.get::<_, i64>(0), "quantity": r.get::<_, i64>(1)}))
        .collect();
    let mut by_status = serde_json::Map::new();
    for r in c
        .query("SELECT status, count(*) FROM orders GROUP BY status", &[])
        .await?
    {
        by_status.insert(r.get(0), serde_json::json!(r.get::<_, i64>(1)));
    }
    Ok(Json(
        serde_json::json!({ "paid": paid, "by_status": by_status }),
    ))
}
