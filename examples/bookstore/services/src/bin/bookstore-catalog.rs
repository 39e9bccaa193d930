//! catalog: books, authors, prices, stock, and stock reservations for orders.
//!
//!   GET    /books?q=&ids=1,2&limit=&offset=   200 {"books": [Book]}  (q: title or author, case-insensitive)
//!   GET    /books/{id}                        200 Book
//!   PUT    /books/{id}        {"title", "author", "price_cents", "stock"?, "description"?}  publish or update
//!   PUT    /books/{id}/stock  {"stock"}       set the available stock
//!   PUT    /reservations/{order_id}  {"items": [{"book_id", "quantity"}]}
//!          200 {"order_id", "state": "reserved", "items": [{"book_id", "quantity", "title", "price_cents"}]};
//!          409 {"error", "reason": "out_of_stock"|"unknown_book", "book_id"}; a repeat is a no-op
//!   DELETE /reservations/{order_id}   release (returns the stock), idempotent
//!   GET    /admin/stock               {"books": [{"id", "total_stock", "stock", "reserved"}]}
//!
//! Stock bookkeeping: `total_stock` counts every unit the shop ever received,
//! so at all times total_stock = stock + units held by unreleased reservations.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use bookstore::db::{Db, Migration};
use bookstore::error::{ApiError, ApiResult};
use bookstore::{config, metrics::Metrics, rules, server};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

const MIGRATIONS: &[Migration] = &["CREATE TABLE authors (
        id bigserial PRIMARY KEY,
        name text NOT NULL UNIQUE);
    CREATE TABLE books (
        id bigint PRIMARY KEY CHECK (id > 0),
        title text NOT NULL,
        author_id bigint NOT NULL REFERENCES authors (id),
        description text NOT NULL DEFAULT '',
        price_cents bigint NOT NULL CHECK (price_cents >= 0),
        stock integer NOT NULL CHECK (stock >= 0),
        total_stock integer NOT NULL CHECK (total_stock >= stock),
        updated_at timestamptz NOT NULL DEFAULT now());
    CREATE TABLE reservations (
        order_id text NOT NULL,
        book_id bigint NOT NULL REFERENCES books (id),
        quantity integer NOT NULL CHECK (quantity > 0),
        title text NOT NULL,
        price_cents bigint NOT NULL,
        released boolean NOT NULL DEFAULT false,
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (order_id, book_id));
    CREATE INDEX reservations_book ON reservations (book_id) WHERE NOT released;"];

#[derive(Serialize)]
struct Book {
    id: i64,
    title: String,
    author: String,
    description: String,
    price_cents: i64,
    stock: i32,
}

const SELECT_BOOK: &str =
    "SELECT b.id, b.title, a.name AS author, b.description, b.price_cents, b.stock
    FROM books b JOIN authors a ON a.id = b.author_id";

fn book_of(r: &tokio_postgres::Row) -> Book {
    Book {
        id: r.get("id"),
        title: r.get("title"),
        author: r.get("author"),
        description: r.get("description"),
        price_cents: r.get("price_cents"),
        stock: r.get("stock"),
    }
}

fn main() -> ExitCode {
    server::main("catalog", run)
}

async fn run() -> anyhow::Result<()> {
    let db = Db::new(&config::DbConfig::from_env()?, "catalog")?;
    let seed_stock: i32 = config::env_or("SEED_STOCK", "1000")
        .parse()
        .map_err(|_| anyhow::anyhow!("SEED_STOCK must be a non-negative integer"))?;
    db.start_migrations("catalog", MIGRATIONS, move |db| seed(db, seed_stock));
    let router = Router::new()
        .route(
            "/healthz",
            get(|State(db): State<Db>| async move { server::db_healthz(&db).await }),
        )
        .route("/books", get(list))
        .route("/books/{id}", get(show).put(publish))
        .route("/books/{id}/stock", put(set_stock))
        .route("/reservations/{order_id}", put(reserve).delete(release))
        .route("/admin/stock", get(admin_stock))
        .layer(axum::middleware::from_fn_with_state(
            admin_token()?,
            guard_writes,
        ))
        .with_state(db);
    server::serve("catalog", router, Metrics::new("catalog")).await
}

/// ADMIN_TOKEN (or ADMIN_TOKEN_FILE): when set, publishing and stock changes
/// need `Authorization: Bearer <it>`; unset, they are open (a demo shop).
fn admin_token() -> anyhow::Result<Option<Arc<[u8]>>> {
    let token = config::secret("ADMIN_TOKEN")?;
    if token.is_none() {
        tracing::warn!("ADMIN_TOKEN is not set: anyone may publish books and change stock");
    }
    Ok(token.map(|t| Arc::from(Sha256::digest(t.as_bytes()).as_slice())))
}

/// Guards PUT /books/… (publish, stock). Reservations are not guarded: only
/// the orders service reaches them (the gateway does not route them).
async fn guard_writes(
    State(admin): State<Option<Arc<[u8]>>>,
    req: Request,
    next: Next,
) -> Response {
    if let Some(want) = admin {
        if req.method() == Method::PUT && req.uri().path().starts_with("/books") {
            let given = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or("");
            // Digests of equal length: the comparison time says nothing
            // about how much of the token matched.
            if Sha256::digest(given.as_bytes()).as_slice() != &*want {
                return ApiError::unauthorized("publishing and stock changes need the admin token")
                    .into_response();
            }
        }
    }
    next.run(req).await
}

/// 50 books on first start. Idempotent (fixed ids, ON CONFLICT DO NOTHING),
/// so every replica runs it and a restart changes nothing.
async fn seed(db: Db, stock: i32) -> anyhow::Result<()> {
    const AUTHORS: [&str; 10] = [
        "Ada Lovelace",
        "Alan Turing",
        "Grace Hopper",
        "Edsger Dijkstra",
        "Barbara Liskov",
        "Donald Knuth",
        "Margaret Hamilton",
        "Ken Thompson",
        "Frances Allen",
        "Leslie Lamport",
    ];
    const ADJ: [&str; 10] = [
        "Quiet",
        "Distributed",
        "Concurrent",
        "Lost",
        "Eventual",
        "Idempotent",
        "Resilient",
        "Hidden",
        "Elastic",
        "Patient",
    ];
    const NOUN: [&str; 5] = ["Harbor", "Consensus", "Lighthouse", "Flotilla", "Algorithm"];
    let mut c = db.pool.get().await?;
    let tx = c.transaction().await?;
    for a in AUTHORS {
        tx.execute(
            "INSERT INTO authors (name) VALUES ($1) ON CONFLICT (name) DO NOTHING",
            &[&a],
        )
        .await?;
    }
    for i in 0..50i64 {
        let title = format!("The {} {}", ADJ[i as usize % 10], NOUN[i as usize / 10]);
        let author = AUTHORS[(i as usize * 7) % 10];
        let price = 899 + (i * 137) % 3100;
        let description = format!(
            "A seeded book about {} things, number {} of 50.",
            ADJ[i as usize % 10].to_lowercase(),
            i + 1
        );
        tx.execute(
            "INSERT INTO books (id, title, author_id, description, price_cents, stock, total_stock)
             SELECT $1, $2, a.id, $4, $5, $6, $6 FROM authors a WHERE a.name = $3
             ON CONFLICT (id) DO NOTHING",
            &[&(i + 1), &title, &author, &description, &price, &stock],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

#[derive(Deserialize)]
struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    ids: String,
    limit: Option<i64>,
    offset: Option<i64>,
}

async fn list(
    State(db): State<Db>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    let limit = q.limit.unwrap_or(50);
    let offset = q.offset.unwrap_or(0);
    if !(1..=200).contains(&limit) || offset < 0 {
        return Err(ApiError::bad_request(
            "limit must be 1..200 and offset >= 0",
        ));
    }
    if q.q.len() > 100 {
        return Err(ApiError::bad_request("q is at most 100 bytes"));
    }
    let ids: Vec<i64> = if q.ids.is_empty() {
        vec![]
    } else {
        q.ids
            .split(',')
            .map(|s| s.trim().parse::<i64>())
            .collect::<Result<_, _>>()
            .map_err(|_| ApiError::bad_request("ids must be comma-separated integers"))?
    };
    if ids.len() > 200 {
        return Err(ApiError::bad_request("at most 200 ids"));
    }
    // ILIKE pattern: the user's text literally, wildcards escaped.
    let pattern = format!(
        "%{}%",
        q.q.replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    );
    let c = db.client().await?;
    let rows = c
        .query(
            &format!(
                "{SELECT_BOOK}
                 WHERE (b.title ILIKE $1 OR a.name ILIKE $1)
                   AND (cardinality($2::bigint[]) = 0 OR b.id = ANY($2))
                 ORDER BY b.id LIMIT $3 OFFSET $4"
            ),
            &[&pattern, &ids, &limit, &offset],
        )
        .await?;
    let books: Vec<Book> = rows.iter().map(book_of).collect();
    Ok(Json(serde_json::json!({ "books": books })))
}

async fn show(State(db): State<Db>, Path(id): Path<i64>) -> ApiResult<Json<Book>> {
    let c = db.client().await?;
    let row = c
        .query_opt(&format!("{SELECT_BOOK} WHERE b.id = $1"), &[&id])
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no book {id}")))?;
    Ok(Json(book_of(&row)))
}

#[derive(Deserialize)]
struct Publish {
    title: String,
    author: String,
    price_cents: i64,
    stock: Option<i32>,
    #[serde(default)]
    description: String,
}

async fn publish(
    State(db): State<Db>,
    Path(id): Path<i64>,
    Json(p): Json<Publish>,
) -> ApiResult<(StatusCode, Json<Book>)> {
    if id <= 0 {
        return Err(ApiError::bad_request("book id must be positive"));
    }
    let (title, author) = (p.title.trim(), p.author.trim());
    if title.is_empty() || title.len() > 200 || author.is_empty() || author.len() > 100 {
        return Err(ApiError::bad_request(
            "title (1..200) and author (1..100) are required",
        ));
    }
    if p.description.len() > 4000 || p.price_cents < 0 || p.stock.is_some_and(|s| s < 0) {
        return Err(ApiError::bad_request(
            "description is at most 4000 bytes; price_cents and stock are non-negative",
        ));
    }
    let mut c = db.client().await?;
    let tx = c.transaction().await?;
    tx.execute(
        "INSERT INTO authors (name) VALUES ($1) ON CONFLICT (name) DO NOTHING",
        &[&author],
    )
    .await?;
    let author_id: i64 = tx
        .query_one("SELECT id FROM authors WHERE name = $1", &[&author])
        .await?
        .get(0);
    let existed = tx
        .query_opt("SELECT stock FROM books WHERE id = $1 FOR UPDATE", &[&id])
        .await?
        .is_some();
    if existed {
        tx.execute(
            "UPDATE books SET title = $2, author_id = $3, description = $4, price_cents = $5,
                 total_stock = total_stock + (COALESCE($6, stock) - stock),
                 stock = COALESCE($6, stock), updated_at = now()
             WHERE id = $1",
            &[
                &id,
                &title,
                &author_id,
                &p.description,
                &p.price_cents,
                &p.stock,
            ],
        )
        .await?;
    } else {
        let stock = p
            .stock
            .ok_or_else(|| ApiError::bad_request("stock is required for a new book"))?;
        tx.execute(
            "INSERT INTO books (id, title, author_id, description, price_cents, stock, total_stock)
             VALUES ($1, $2, $3, $4, $5, $6, $6)",
            &[
                &id,
                &title,
                &author_id,
                &p.description,
                &p.price_cents,
                &stock,
            ],
        )
        .await?;
    }
    let row = tx
        .query_one(&format!("{SELECT_BOOK} WHERE b.id = $1"), &[&id])
        .await?;
    tx.commit().await?;
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(book_of(&row))))
}

#[derive(Deserialize)]
struct SetStock {
    stock: i32,
}

async fn set_stock(
    State(db): State<Db>,
    Path(id): Path<i64>,
    Json(s): Json<SetStock>,
) -> ApiResult<Json<Book>> {
    if s.stock < 0 {
        return Err(ApiError::bad_request("stock must be non-negative"));
    }
    let c = db.client().await?;
    // The right-hand sides see the old row: total moves by the same delta.
    let n = c
        .execute(
            "UPDATE books SET total_stock = total_stock + ($2 - stock), stock = $2, updated_at = now() WHERE id = $1",
            &[&id, &s.stock],
        )
        .await?;
    if n == 0 {
        return Err(ApiError::not_found(format!("no book {id}")));
    }
    let row = c
        .query_one(&format!("{SELECT_BOOK} WHERE b.id = $1"), &[&id])
        .await?;
    Ok(Json(book_of(&row)))
}

#[derive(Deserialize, Serialize, Clone)]
struct Want {
    book_id: i64,
    quantity: i32,
}

#[derive(Deserialize)]
struct ReserveBody {
    items: Vec<Want>,
}

#[derive(Serialize)]
struct Reserved {
    book_id: i64,
    quantity: i32,
    title: String,
    price_cents: i64,
}

fn reservation_response(order_id: &str, rows: &[tokio_postgres::Row]) -> Response {
    let released = rows.iter().any(|r| r.get::<_, bool>("released"));
    let items: Vec<Reserved> = rows
        .iter()
        .map(|r| Reserved {
            book_id: r.get("book_id"),
            quantity: r.get("quantity"),
            title: r.get("title"),
            price_cents: r.get("price_cents"),
        })
        .collect();
    let state = if released { "released" } else { "reserved" };
    let status = if released {
        StatusCode::GONE
    } else {
        StatusCode::OK
    };
    (
        status,
        Json(serde_json::json!({ "order_id": order_id, "state": state, "items": items })),
    )
        .into_response()
}

const SELECT_RESERVATION: &str =
    "SELECT book_id, quantity, title, price_cents, released FROM reservations WHERE order_id = $1 ORDER BY book_id";

/// Takes stock for every line of an order, all or nothing. Each line is one
/// `UPDATE … WHERE stock >= n` (the row lock serialises concurrent orders, so
/// stock never goes below zero), and the reservation rows are keyed by
/// (order_id, book_id): a retried reservation finds them and changes nothing.
/// An advisory lock on the order id serialises two copies of the same call.
async fn reserve(
    State(db): State<Db>,
    Path(order_id): Path<String>,
    Json(body): Json<ReserveBody>,
) -> ApiResult<Response> {
    if !rules::valid_order_id(&order_id) {
        return Err(ApiError::bad_request(
            "order id must be 1..64 of A-Z a-z 0-9 _ -",
        ));
    }
    if body.items.is_empty() || body.items.len() > 100 {
        return Err(ApiError::bad_request("items must hold 1 to 100 lines"));
    }
    // Merge duplicate lines; BTreeMap orders by book id, which is also the
    // lock order (no deadlocks between orders sharing books).
    let mut wanted: BTreeMap<i64, i32> = BTreeMap::new();
    for w in &body.items {
        if w.quantity <= 0 || w.quantity > rules::MAX_QUANTITY {
            return Err(ApiError::bad_request(format!(
                "quantity must be 1 to {}",
                rules::MAX_QUANTITY
            )));
        }
        *wanted.entry(w.book_id).or_default() += w.quantity;
    }
    let mut c = db.client().await?;
    let tx = c.transaction().await?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
        &[&order_id],
    )
    .await?;
    let existing = tx.query(SELECT_RESERVATION, &[&order_id]).await?;
    if !existing.is_empty() {
        tx.commit().await?;
        return Ok(reservation_response(&order_id, &existing));
    }
    for (&book_id, &quantity) in &wanted {
        let taken = tx
            .query_opt(
                "UPDATE books SET stock = stock - $2, updated_at = now()
                 WHERE id = $1 AND stock >= $2 RETURNING title, price_cents",
                &[&book_id, &quantity],
            )
            .await?;
        let Some(row) = taken else {
            let exists = tx
                .query_opt("SELECT 1 FROM books WHERE id = $1", &[&book_id])
                .await?
                .is_some();
            tx.rollback().await?;
            let (reason, msg) = if exists {
                (
                    "out_of_stock",
                    format!("not enough stock of book {book_id}"),
                )
            } else {
                ("unknown_book", format!("no book {book_id}"))
            };
            return Ok((
                StatusCode::CONFLICT,
                Json(serde_json::json!({ "error": msg, "reason": reason, "book_id": book_id })),
            )
                .into_response());
        };
        let title: String = row.get(0);
        let price: i64 = row.get(1);
        tx.execute(
            "INSERT INTO reservations (order_id, book_id, quantity, title, price_cents) VALUES ($1, $2, $3, $4, $5)",
            &[&order_id, &book_id, &quantity, &title, &price],
        )
        .await?;
    }
    let rows = tx.query(SELECT_RESERVATION, &[&order_id]).await?;
    tx.commit().await?;
    tracing::info!(%order_id, lines = rows.len(), "reserved");
    Ok(reservation_response(&order_id, &rows))
}

/// Gives an order's stock back (payment failed). Idempotent: released rows
/// are marked and never returned twice.
async fn release(
    State(db): State<Db>,
    Path(order_id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    if !rules::valid_order_id(&order_id) {
        return Err(ApiError::bad_request(
            "order id must be 1..64 of A-Z a-z 0-9 _ -",
        ));
    }
    let mut c = db.client().await?;
    let tx = c.transaction().await?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
        &[&order_id],
    )
    .await?;
    let rows = tx
        .query(
            "UPDATE reservations SET released = true WHERE order_id = $1 AND NOT released RETURNING book_id, quantity",
            &[&order_id],
        )
        .await?;
    for r in &rows {
        let (book_id, quantity): (i64, i32) = (r.get(0), r.get(1));
        tx.execute(
            "UPDATE books SET stock = stock + $2, updated_at = now() WHERE id = $1",
            &[&book_id, &quantity],
        )
        .await?;
    }
    tx.commit().await?;
    if !rows.is_empty() {
        tracing::info!(%order_id, lines = rows.len(), "released");
    }
    Ok(Json(
        serde_json::json!({ "order_id": order_id, "state": "released", "lines_released": rows.len() }),
    ))
}

async fn admin_stock(State(db): State<Db>) -> ApiResult<Json<serde_json::Value>> {
    let c = db.client().await?;
    let rows = c
        .query(
            "SELECT b.id, b.total_stock, b.stock,
                    COALESCE((SELECT sum(quantity) FROM reservations r WHERE r.book_id = b.id AND NOT r.released), 0)::bigint AS reserved
             FROM books b ORDER BY b.id",
            &[],
        )
        .await?;
    let books: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            serde_json::json!({
                "id": r.get::<_, i64>("id"),
                "total_stock": r.get::<_, i32>("total_stock"),
                "stock": r.get::<_, i32>("stock"),
                "reserved": r.get::<_, i64>("reserved"),
            })
        })
        .collect();
    Ok(Json(serde_json::json!({ "books": books })))
}
