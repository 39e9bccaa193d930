//! gateway: the public entry. `/api/*` is passed to the services (the JSON
//! API the load generator uses); everything else is a small server-rendered
//! shop (maud templates, no JavaScript) whose session is a cookie holding the
//! signed token.
//!
//! API routes (all idempotent; see the services for bodies):
//!   PUT /api/users/{u}, GET /api/users/{u}, PUT /api/sessions/{u}           → users
//!   GET /api/books, GET|PUT /api/books/{id}, PUT /api/books/{id}/stock      → catalog
//!   GET|DELETE /api/carts/{u}, PUT|DELETE /api/carts/{u}/items/{book}     → cart
//!   PUT|GET /api/orders/{id}, GET /api/users/{u}/orders                     → orders
//!   GET /api/admin/stock → catalog, GET /api/admin/totals → orders

use std::process::ExitCode;

use axum::extract::{FromRef, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{any, get, post};
use axum::{Form, Json, Router};
use bookstore::auth::{now_secs, TokenKey};
use bookstore::client::{describe, http_client, send_idempotent};
use bookstore::config::{self, Upstreams};
use bookstore::error::ApiError;
use bookstore::{metrics::Metrics, rules, server};
use maud::{html, Markup, DOCTYPE};
use serde::Deserialize;
use serde_json::Value;

const COOKIE: &str = "bookstore_token";
const MAX_BODY: usize = 64 * 1024;

#[derive(Clone, FromRef)]
struct AppState {
    key: TokenKey,
    http: reqwest::Client,
    up: Upstreams,
}

fn main() -> ExitCode {
    server::main("gateway", run)
}

async fn run() -> anyhow::Result<()> {
    let state = AppState {
        key: TokenKey::new(&config::token_secret()?),
        http: http_client(),
        up: Upstreams::from_env(),
    };
    let router = Router::new()
        .route(
            "/healthz",
            get(|| async { Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/api/{*rest}", any(api))
        .route("/", get(home))
        .route("/books/{id}", get(book_page))
        .route("/register", get(register_page).post(register_submit))
        .route("/login", get(login_page).post(login_submit))
        .route("/logout", post(logout))
        .route("/cart", get(cart_page))
        .route("/cart/set", post(cart_set))
        .route("/checkout", post(checkout))
        .route("/orders", get(orders_page))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(state);
    server::serve("gateway", router, Metrics::new("gateway")).await
}

// ---------------------------------------------------------------- JSON API

/// The service that owns an API path (without the `/api` prefix).
fn upstream_for<'a>(up: &'a Upstreams, path: &str) -> Option<&'a str> {
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    Some(match segs.as_slice() {
        ["users", _, "orders"] => &up.orders,
        ["users", _] | ["sessions", _] => &up.users,
        ["books"] | ["books", _] | ["books", _, "stock"] => &up.catalog,
        ["carts", _] | ["carts", _, "items", _] => &up.cart,
        ["orders", _] => &up.orders,
        ["admin", "stock"] => &up.catalog,
        ["admin", "totals"] => &up.orders,
        _ => return None,
    })
}

async fn api(State(s): State<AppState>, req: Request) -> Response {
    let method = req.method().clone();
    // The raw (still percent-encoded) path, so an encoded '?' or '/' in an id
    // stays part of that segment when forwarded.
    let rest = req
        .uri()
        .path()
        .strip_prefix("/api/")
        .unwrap_or_default()
        .to_string();
    if rest
        .split('/')
        .any(|seg| seg.is_empty() || seg == "." || seg == "..")
    {
        return ApiError::not_found(format!("no API route /api/{rest}")).into_response();
    }
    // POST is never retried by Flotilla's proxy once sent, so the API has none.
    if !matches!(
        method,
        Method::GET | Method::HEAD | Method::PUT | Method::DELETE
    ) {
        return ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "the API takes GET, HEAD, PUT and DELETE",
        )
        .into_response();
    }
    let Some(base) = upstream_for(&s.up, &rest) else {
        return ApiError::not_found(format!("no API route /api/{rest}")).into_response();
    };
    let query = req
        .uri()
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let url = format!("{base}/{rest}{query}");
    let headers = req.headers().clone();
    let body = match axum::body::to_bytes(req.into_body(), MAX_BODY).await {
        Ok(b) => b,
        Err(e) => {
            return ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, format!("request body: {e}"))
                .into_response()
        }
    };
    let result = send_idempotent(|| {
        let mut rb = s.http.request(method.clone(), &url).body(body.clone());
        for h in [header::AUTHORIZATION, header::CONTENT_TYPE, header::ACCEPT] {
            if let Some(v) = headers.get(&h) {
                rb = rb.header(h, v);
            }
        }
        rb
    })
    .await;
    match result {
        Ok(resp) => {
            let status = resp.status();
            let ctype = resp.headers().get(header::CONTENT_TYPE).cloned();
            match resp.bytes().await {
                Ok(bytes) => {
                    let mut out = (status, bytes).into_response();
                    if let Some(ct) = ctype {
                        out.headers_mut().insert(header::CONTENT_TYPE, ct);
                    }
                    out
                }
                Err(e) => ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    format!("reading the upstream answer: {e}"),
                )
                .into_response(),
            }
        }
        Err(e) => ApiError::new(
            StatusCode::BAD_GATEWAY,
            format!("upstream {base}: {}", describe(&e)),
        )
        .into_response(),
    }
}

// ---------------------------------------------------------------- shop pages

/// The logged-in user and their token, from the cookie.
struct Session {
    user: String,
    token: String,
}

fn session(s: &AppState, headers: &HeaderMap) -> Option<Session> {
    let token = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| kv.trim().strip_prefix(COOKIE)?.strip_prefix('='))?
        .to_string();
    let claims = s.key.verify(&token, now_secs()).ok()?;
    Some(Session {
        user: claims.sub,
        token,
    })
}

fn page(title: &str, user: Option<&str>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Flotilla Books" }
                style { (maud::PreEscaped(CSS)) }
            }
            body {
                header {
                    a.brand href="/" { "Flotilla Books" }
                    form.search action="/" method="get" {
                        input type="search" name="q" placeholder="Search titles or authors";
                        button { "Search" }
                    }
                    nav {
                        @if let Some(u) = user {
                            a href="/cart" { "Cart" } " "
                            a href="/orders" { "Orders" } " "
                            form.inline action="/logout" method="post" { button { "Log out " (u) } }
                        } @else {
                            a href="/login" { "Log in" } " "
                            a href="/register" { "Register" }
                        }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
}

const CSS: &str = "body{font-family:system-ui,sans-serif;margin:0;color:#222}header{display:flex;gap:1em;align-items:center;padding:.6em 1em;background:#1d3557;color:#fff}header a{color:#fff}.brand{font-weight:bold;text-decoration:none}.search{flex:1}main{padding:1em;max-width:60em}table{border-collapse:collapse}td,th{padding:.3em .8em;border-bottom:1px solid #ddd;text-align:left}.inline{display:inline}.error{color:#b00020}.muted{color:#666}";

fn message(status: StatusCode, title: &str, user: Option<&str>, text: &str) -> Response {
    (
        status,
        page(
            title,
            user,
            html! { p.error { (text) } p { a href="/" { "Back to the shop" } } },
        ),
    )
        .into_response()
}

/// GET a JSON document from a service (with the user's token when given).
async fn fetch_json(
    s: &AppState,
    url: &str,
    token: Option<&str>,
) -> Result<Value, (StatusCode, String)> {
    let resp = send_idempotent(|| {
        let rb = s.http.get(url);
        match token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    })
    .await
    .map_err(|e| {
        (
            StatusCode::BAD_GATEWAY,
            format!("a service is unreachable: {}", describe(&e)),
        )
    })?;
    answer_json(resp).await
}

async fn answer_json(resp: reqwest::Response) -> Result<Value, (StatusCode, String)> {
    let status = resp.status();
    let v: Value = resp.json().await.unwrap_or_default();
    if status.is_success() {
        Ok(v)
    } else {
        let code = StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
        Err((
            code,
            v["error"].as_str().unwrap_or("request failed").to_string(),
        ))
    }
}

/// PUT/DELETE a JSON document to a service.
async fn send_json(
    s: &AppState,
    method: Method,
    url: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Result<Value, (StatusCode, String)> {
    let resp = send_idempotent(|| {
        let mut rb = s.http.request(method.clone(), url);
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        if let Some(b) = &body {
            rb = rb.json(b);
        }
        rb
    })
    .await
    .map_err(|e| {
        (
            StatusCode::BAD_GATEWAY,
            format!("a service is unreachable: {}", describe(&e)),
        )
    })?;
    answer_json(resp).await
}

fn price(v: &Value) -> String {
    rules::format_price(v.as_i64().unwrap_or(0))
}

#[derive(Deserialize)]
struct Search {
    #[serde(default)]
    q: String,
}

async fn home(State(s): State<AppState>, headers: HeaderMap, Query(q): Query<Search>) -> Response {
    let sess = session(&s, &headers);
    let user = sess.as_ref().map(|x| x.user.as_str());
    let mut url =
        reqwest::Url::parse(&format!("{}/books", s.up.catalog)).expect("CATALOG_URL is a URL");
    url.query_pairs_mut()
        .append_pair("q", &q.q)
        .append_pair("limit", "100");
    let books = match fetch_json(&s, url.as_str(), None).await {
        Ok(v) => v,
        Err((code, e)) => return message(code, "Books", user, &e),
    };
    let title = if q.q.is_empty() {
        "Books".to_string()
    } else {
        format!("Books matching “{}”", q.q)
    };
    let body = html! {
        table {
            tr { th { "Title" } th { "Author" } th { "Price" } th { "In stock" } }
            @for b in books["books"].as_array().into_iter().flatten() {
                tr {
                    td { a href={ "/books/" (b["id"]) } { (b["title"].as_str().unwrap_or("")) } }
                    td { (b["author"].as_str().unwrap_or("")) }
                    td { (price(&b["price_cents"])) }
                    td { (b["stock"]) }
                }
            }
        }
    };
    page(&title, user, body).into_response()
}

async fn book_page(State(s): State<AppState>, headers: HeaderMap, Path(id): Path<i64>) -> Response {
    let sess = session(&s, &headers);
    let user = sess.as_ref().map(|x| x.user.as_str());
    let b = match fetch_json(&s, &format!("{}/books/{id}", s.up.catalog), None).await {
        Ok(v) => v,
        Err((code, e)) => return message(code, "Book", user, &e),
    };
    let body = html! {
        p { "by " (b["author"].as_str().unwrap_or("")) }
        p { (b["description"].as_str().unwrap_or("")) }
        p { "Price: " strong { (price(&b["price_cents"])) } " · in stock: " (b["stock"]) }
        @if user.is_some() {
            form action="/cart/set" method="post" {
                input type="hidden" name="book_id" value=(id);
                input type="hidden" name="add" value="1";
                label { "Quantity " input type="number" name="quantity" value="1" min="1" max="100"; }
                " " button { "Add to cart" }
            }
        } @else {
            p { a href="/login" { "Log in" } " to buy." }
        }
    };
    page(b["title"].as_str().unwrap_or("Book"), user, body).into_response()
}

#[derive(Deserialize)]
struct Credentials {
    username: String,
    password: String,
}

fn credentials_form(action: &str, button: &str, error: Option<&str>) -> Markup {
    html! {
        @if let Some(e) = error { p.error { (e) } }
        form action=(action) method="post" {
            p { label { "Username " input name="username" required minlength="3" maxlength="32" autocomplete="username"; } }
            p { label { "Password " input type="password" name="password" required minlength="8" maxlength="128"; } }
            button { (button) }
        }
    }
}

async fn register_page() -> Markup {
    page(
        "Register",
        None,
        credentials_form("/register", "Create account", None),
    )
}

async fn login_page() -> Markup {
    page("Log in", None, credentials_form("/login", "Log in", None))
}

async fn register_submit(State(s): State<AppState>, Form(c): Form<Credentials>) -> Response {
    let url = format!("{}/users/{}", s.up.users, c.username);
    if !rules::valid_username(&c.username) {
        let m = "Usernames are 3 to 32 of a-z 0-9 _ . - starting with a letter or digit.";
        return (
            StatusCode::BAD_REQUEST,
            page(
                "Register",
                None,
                credentials_form("/register", "Create account", Some(m)),
            ),
        )
            .into_response();
    }
    match send_json(
        &s,
        Method::PUT,
        &url,
        None,
        Some(serde_json::json!({"password": c.password})),
    )
    .await
    {
        Ok(_) => log_in(&s, &c).await,
        Err((code, e)) => (
            code,
            page(
                "Register",
                None,
                credentials_form("/register", "Create account", Some(&e)),
            ),
        )
            .into_response(),
    }
}

async fn login_submit(State(s): State<AppState>, Form(c): Form<Credentials>) -> Response {
    log_in(&s, &c).await
}

async fn log_in(s: &AppState, c: &Credentials) -> Response {
    if !rules::valid_username(&c.username) {
        return (
            StatusCode::UNAUTHORIZED,
            page(
                "Log in",
                None,
                credentials_form("/login", "Log in", Some("wrong username or password")),
            ),
        )
            .into_response();
    }
    let url = format!("{}/sessions/{}", s.up.users, c.username);
    match send_json(
        s,
        Method::PUT,
        &url,
        None,
        Some(serde_json::json!({"password": c.password})),
    )
    .await
    {
        Ok(v) => {
            let token = v["token"].as_str().unwrap_or_default();
            let cookie = format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age=86400");
            let mut r = Redirect::to("/").into_response();
            if let Ok(h) = HeaderValue::from_str(&cookie) {
                r.headers_mut().insert(header::SET_COOKIE, h);
            }
            r
        }
        Err((code, e)) => (
            code,
            page(
                "Log in",
                None,
                credentials_form("/login", "Log in", Some(&e)),
            ),
        )
            .into_response(),
    }
}

async fn logout() -> Response {
    let mut r = Redirect::to("/").into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("bookstore_token=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"),
    );
    r
}

#[derive(Deserialize)]
struct SetForm {
    book_id: i64,
    quantity: i32,
    /// Present: add to the current quantity (book page); absent: set it (cart page).
    add: Option<String>,
}

async fn cart_set(
    State(s): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<SetForm>,
) -> Response {
    let Some(sess) = session(&s, &headers) else {
        return Redirect::to("/login").into_response();
    };
    let user = Some(sess.user.as_str());
    let mut quantity = f.quantity;
    if f.add.is_some() {
        let cart = match fetch_json(
            &s,
            &format!("{}/carts/{}", s.up.cart, sess.user),
            Some(&sess.token),
        )
        .await
        {
            Ok(v) => v,
            Err((code, e)) => return message(code, "Cart", user, &e),
        };
        let current = cart["items"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|l| l["book_id"].as_i64() == Some(f.book_id))
            .and_then(|l| l["quantity"].as_i64())
            .unwrap_or(0);
        quantity = quantity.saturating_add(current as i32);
    }
    let url = format!("{}/carts/{}/items/{}", s.up.cart, sess.user, f.book_id);
    match send_json(
        &s,
        Method::PUT,
        &url,
        Some(&sess.token),
        Some(serde_json::json!({"quantity": quantity})),
    )
    .await
    {
        Ok(_) => Redirect::to("/cart").into_response(),
        Err((code, e)) => message(code, "Cart", user, &e),
    }
}

async fn cart_page(State(s): State<AppState>, headers: HeaderMap) -> Response {
    let Some(sess) = session(&s, &headers) else {
        return Redirect::to("/login").into_response();
    };
    let user = Some(sess.user.as_str());
    let cart = match fetch_json(
        &s,
        &format!("{}/carts/{}", s.up.cart, sess.user),
        Some(&sess.token),
    )
    .await
    {
        Ok(v) => v,
        Err((code, e)) => return message(code, "Cart", user, &e),
    };
    let lines: Vec<&Value> = cart["items"].as_array().into_iter().flatten().collect();
    let ids: Vec<String> = lines.iter().map(|l| l["book_id"].to_string()).collect();
    let books = if ids.is_empty() {
        Value::Null
    } else {
        match fetch_json(
            &s,
            &format!("{}/books?ids={}&limit=200", s.up.catalog, ids.join(",")),
            None,
        )
        .await
        {
            Ok(v) => v,
            Err((code, e)) => return message(code, "Cart", user, &e),
        }
    };
    let book = |id: &Value| {
        books["books"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|b| b["id"] == *id)
            .cloned()
            .unwrap_or(Value::Null)
    };
    let rows: Vec<(&Value, Value)> = lines.iter().map(|l| (*l, book(&l["book_id"]))).collect();
    let priced: Vec<(i64, i32)> = rows
        .iter()
        .map(|(l, b)| {
            (
                b["price_cents"].as_i64().unwrap_or(0),
                l["quantity"].as_i64().unwrap_or(0) as i32,
            )
        })
        .collect();
    let total = rules::order_total(&priced).unwrap_or(0);
    let body = html! {
        @if lines.is_empty() {
            p { "Your cart is empty. " a href="/" { "Browse books" } }
        } @else {
            table {
                tr { th { "Book" } th { "Price" } th { "Quantity" } }
                @for (l, b) in &rows {
                    tr {
                        td { a href={ "/books/" (l["book_id"]) } { (b["title"].as_str().unwrap_or("(unknown book)")) } }
                        td { (price(&b["price_cents"])) }
                        td {
                            form.inline action="/cart/set" method="post" {
                                input type="hidden" name="book_id" value=(l["book_id"]);
                                input type="number" name="quantity" value=(l["quantity"]) min="0" max="100";
                                " " button { "Update" }
                            }
                        }
                    }
                }
            }
            p { "Total: " strong { (rules::format_price(total)) } }
            h2 { "Checkout" }
            form action="/checkout" method="post" {
                label { "Card number " input name="card_number" required placeholder="4111 1111 1111 1111"; }
                " " button { "Place order" }
                p.muted { "Simulated payment: any 12–19 digit number works, except one ending in 0000." }
            }
        }
    };
    page("Cart", user, body).into_response()
}

#[derive(Deserialize)]
struct CheckoutForm {
    card_number: String,
}

async fn checkout(
    State(s): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<CheckoutForm>,
) -> Response {
    let Some(sess) = session(&s, &headers) else {
        return Redirect::to("/login").into_response();
    };
    let user = Some(sess.user.as_str());
    // The order id is chosen here, so the PUT can safely be repeated.
    let id = uuid::Uuid::new_v4().to_string();
    let url = format!("{}/orders/{id}", s.up.orders);
    match send_json(
        &s,
        Method::PUT,
        &url,
        Some(&sess.token),
        Some(serde_json::json!({"card_number": f.card_number})),
    )
    .await
    {
        Ok(_) => Redirect::to("/orders").into_response(),
        Err((code, e)) => message(code, "Checkout", user, &e),
    }
}

async fn orders_page(State(s): State<AppState>, headers: HeaderMap) -> Response {
    let Some(sess) = session(&s, &headers) else {
        return Redirect::to("/login").into_response();
    };
    let user = Some(sess.user.as_str());
    let v = match fetch_json(
        &s,
        &format!("{}/users/{}/orders", s.up.orders, sess.user),
        Some(&sess.token),
    )
    .await
    {
        Ok(v) => v,
        Err((code, e)) => return message(code, "Orders", user, &e),
    };
    let body = html! {
        @let orders: Vec<&Value> = v["orders"].as_array().into_iter().flatten().collect();
        @if orders.is_empty() { p { "No orders yet." } }
        @for o in orders {
            h3 { "Order " (o["id"].as_str().unwrap_or("")) }
            p {
                "Status: " strong { (o["status"].as_str().unwrap_or("")) }
                @if let Some(r) = o["reason"].as_str().filter(|r| !r.is_empty()) { " (" (r) ")" }
                " · total " (price(&o["total_cents"])) " · card …" (o["card_last4"].as_str().unwrap_or(""))
                " · " span.muted { (o["created_at"].as_str().unwrap_or("")) }
            }
            ul {
                @for i in o["items"].as_array().into_iter().flatten() {
                    li { (i["quantity"]) " × " (i["title"].as_str().unwrap_or("")) " at " (price(&i["price_cents"])) }
                }
            }
        }
    };
    page("Your orders", user, body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_paths_go_to_their_service() {
        let up = Upstreams {
            users: "U".into(),
            catalog: "C".into(),
            cart: "K".into(),
            orders: "O".into(),
        };
        let cases = [
            ("users/alice", Some("U")),
            ("sessions/alice", Some("U")),
            ("users/alice/orders", Some("O")),
            ("books", Some("C")),
            ("books/7", Some("C")),
            ("books/7/stock", Some("C")),
            ("carts/alice", Some("K")),
            ("carts/alice/items/7", Some("K")),
            ("orders/o-1", Some("O")),
            ("admin/stock", Some("C")),
            ("admin/totals", Some("O")),
            ("reservations/o-1", None),
            ("books/7/other", None),
            ("", None),
            ("metrics", None),
        ];
        for (path, want) in cases {
            assert_eq!(upstream_for(&up, path), want, "{path}");
        }
    }
}
