//! The bookstore's load generator and consistency checker (runs on the host).
//!
//!   bookstore-load --url http://127.0.0.1:18000 --rate 5 --duration 30s [--concurrency 64] [--seed 1] [--output json]
//!   bookstore-load check --url http://127.0.0.1:18000 [--wait 60s] [--output json]
//!
//! A journey: register a new user, log in, list + search + view books, put
//! 1–3 books in the cart, check the cart, order them with a valid card, and
//! find the paid order in the history. Journeys start at a fixed rate (open
//! loop, at most --concurrency at once); none starts after --duration and
//! in-flight ones get at most 10 s more. Requests are never retried here:
//! the numbers are what a user would see. Exit status: 0 when every journey
//! succeeded, 1 otherwise (the report is printed either way), 2 on bad usage.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand, ValueEnum};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

#[derive(Parser)]
#[command(
    name = "bookstore-load",
    about = "Drive user journeys against the bookstore and check its consistency"
)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Cmd {
    /// Check stock against paid orders: for every book, total stock = stock + units in paid orders.
    Check(CheckArgs),
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Output {
    Text,
    Json,
}

#[derive(Args)]
struct RunArgs {
    /// The gateway's base URL.
    #[arg(long, default_value = "http://127.0.0.1:18000")]
    url: String,
    /// Journeys started per second.
    #[arg(long, default_value_t = 5.0)]
    rate: f64,
    /// How long to start journeys (e.g. 30s, 2m).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Journeys in flight at most; a start waits for a free slot.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Seed of the random choices (books, quantities).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Card number used to pay (default: one that is approved).
    #[arg(long, default_value = "4111111111111111")]
    card: String,
    #[arg(long, value_enum, default_value = "text")]
    output: Output,
}

#[derive(Args)]
struct CheckArgs {
    #[arg(long, default_value = "http://127.0.0.1:18000")]
    url: String,
    /// How long to wait for pending orders to settle and the API to answer.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    wait: Duration,
    #[arg(long, value_enum, default_value = "text")]
    output: Output,
}

/// The longest wait for journeys in flight after --duration.
const DRAIN: Duration = Duration::from_secs(10);
const MAX_ERRORS: usize = 10;
/// Upper bounds that keep a mistyped command from running away.
const MAX_RATE: f64 = 10_000.0;
const MAX_DURATION: Duration = Duration::from_secs(3600);

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bookstore-load: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.cmd {
        Some(Cmd::Check(a)) => rt.block_on(check(a)),
        None => rt.block_on(run(cli.run)),
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .dns_resolver(bookstore::dns::reqwest_resolver())
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(256)
        .build()
        .expect("building the HTTP client")
}

// ---------------------------------------------------------------- stats

#[derive(Default)]
struct KindStats {
    ok: u64,
    failed: u64,
    latencies_ms: Vec<f64>,
}

#[derive(Default)]
struct Stats {
    journeys_ok: u64,
    journeys_failed: u64,
    journey_ms: Vec<f64>,
    kinds: BTreeMap<&'static str, KindStats>,
    /// By status code, "error" for transport failures.
    statuses: BTreeMap<String, u64>,
    errors: Vec<String>,
    /// Failed journeys by the cause of their first failure: the HTTP status
    /// ("503" is a clean refusal, e.g. while the database restarts),
    /// "error" (no answer: connection or timeout), "check" (a wrong answer).
    failed_by_cause: BTreeMap<String, u64>,
}

/// Why a journey stopped (the message went to `Stats::errors`).
struct Failure {
    cause: String,
}

struct Journey {
    http: reqwest::Client,
    base: String,
    stats: Arc<Mutex<Stats>>,
}

impl Journey {
    /// One request; Ok(body) when the status is one of `want`.
    async fn call(
        &self,
        kind: &'static str,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        want: &[StatusCode],
    ) -> Result<Value, Failure> {
        let url = format!("{}/api{path}", self.base);
        let mut rb = self.http.request(method.clone(), &url);
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        if let Some(b) = &body {
            rb = rb.json(b);
        }
        let start = Instant::now();
        let result = async {
            let resp = rb
                .send()
                .await
                .map_err(|e| ("error".to_string(), bookstore::client::describe(&e)))?;
            let status = resp.status();
            let text = resp
                .text()
                .await
                .map_err(|e| (status.as_u16().to_string(), format!("reading body: {e}")))?;
            Ok::<_, (String, String)>((status, text))
        }
        .await;
        let ms = start.elapsed().as_secs_f64() * 1000.0;
        let mut st = self.stats.lock().expect("stats lock");
        let (status_key, outcome) = match result {
            Ok((status, text)) if want.contains(&status) => (
                status.as_u16().to_string(),
                Ok(serde_json::from_str(&text).unwrap_or(Value::Null)),
            ),
            Ok((status, text)) => {
                let head: String = text.chars().take(200).collect();
                (
                    status.as_u16().to_string(),
                    Err(format!("{kind} {method} {path}: {status}: {head}")),
                )
            }
            Err((key, e)) => (key, Err(format!("{kind} {method} {path}: {e}"))),
        };
        *st.statuses.entry(status_key.clone()).or_default() += 1;
        let k = st.kinds.entry(kind).or_default();
        k.latencies_ms.push(ms);
        match outcome {
            Ok(v) => {
                k.ok += 1;
                Ok(v)
            }
            Err(e) => {
                k.failed += 1;
                if st.errors.len() < MAX_ERRORS {
                    st.errors.push(e.clone());
                }
                Err(Failure { cause: status_key })
            }
        }
    }

    /// A logical failure (right status, wrong content).
    fn fail(&self, msg: String) -> Failure {
        let mut st = self.stats.lock().expect("stats lock");
        if st.errors.len() < MAX_ERRORS {
            st.errors.push(msg);
        }
        Failure {
            cause: "check".into(),
        }
    }

    async fn run(&self, user: String, seed: u64, card: &str) -> Result<(), Failure> {
        use StatusCode as S;
        let mut rng = fastrand::Rng::with_seed(seed);
        let password = format!("pw-{seed:016x}");
        let pw = json!({ "password": password });
        self.call(
            "register",
            Method::PUT,
            &format!("/users/{user}"),
            None,
            Some(pw.clone()),
            &[S::CREATED, S::OK],
        )
        .await?;
        let session = self
            .call(
                "login",
                Method::PUT,
                &format!("/sessions/{user}"),
                None,
                Some(pw),
                &[S::OK],
            )
            .await?;
        let token = session["token"]
            .as_str()
            .ok_or_else(|| self.fail(format!("login of {user}: no token")))?
            .to_string();
        let t = Some(token.as_str());

        let list = self
            .call("list", Method::GET, "/books?limit=50", None, None, &[S::OK])
            .await?;
        let books: Vec<i64> = list["books"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|b| b["stock"].as_i64().unwrap_or(0) > 10)
            .filter_map(|b| b["id"].as_i64())
            .collect();
        if books.is_empty() {
            return Err(self.fail("list: no book in stock".into()));
        }
        let word = [
            "harbor",
            "consensus",
            "lovelace",
            "quiet",
            "turing",
            "flotilla",
        ][rng.usize(..6)];
        self.call(
            "search",
            Method::GET,
            &format!("/books?q={word}"),
            None,
            None,
            &[S::OK],
        )
        .await?;
        let first = books[rng.usize(..books.len())];
        self.call(
            "view",
            Method::GET,
            &format!("/books/{first}"),
            None,
            None,
            &[S::OK],
        )
        .await?;

        let mut chosen = vec![first];
        let n = rng.usize(1..=3);
        while chosen.len() < n.min(books.len()) {
            let b = books[rng.usize(..books.len())];
            if !chosen.contains(&b) {
                chosen.push(b);
            }
        }
        let mut units = 0i64;
        for b in &chosen {
            let q = rng.i64(1..=2);
            units += q;
            self.call(
                "cart_put",
                Method::PUT,
                &format!("/carts/{user}/items/{b}"),
                t,
                Some(json!({ "quantity": q })),
                &[S::OK],
            )
            .await?;
        }
        let cart = self
            .call(
                "cart_get",
                Method::GET,
                &format!("/carts/{user}"),
                t,
                None,
                &[S::OK],
            )
            .await?;
        let in_cart: i64 = cart["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| l["quantity"].as_i64())
            .sum();
        if in_cart != units {
            return Err(self.fail(format!("cart of {user}: {in_cart} units, expected {units}")));
        }

        let order_id = format!("{user}-1");
        let order = self
            .call(
                "order",
                Method::PUT,
                &format!("/orders/{order_id}"),
                t,
                Some(json!({ "card_number": card })),
                &[S::CREATED, S::OK],
            )
            .await?;
        if order["status"] != "paid" {
            return Err(self.fail(format!(
                "order {order_id}: status {} ({})",
                order["status"], order["reason"]
            )));
        }
        let history = self
            .call(
                "history",
                Method::GET,
                &format!("/users/{user}/orders"),
                t,
                None,
                &[S::OK],
            )
            .await?;
        let found = history["orders"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|o| o["id"] == order_id.as_str() && o["status"] == "paid");
        if !found {
            return Err(self.fail(format!("history of {user}: paid order {order_id} missing")));
        }
        Ok(())
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn summary(v: &mut [f64]) -> Value {
    v.sort_by(|a, b| a.total_cmp(b));
    let r = |x: f64| (x * 10.0).round() / 10.0;
    json!({
        "count": v.len(),
        "p50_ms": r(percentile(v, 50.0)),
        "p90_ms": r(percentile(v, 90.0)),
        "p99_ms": r(percentile(v, 99.0)),
        "max_ms": r(v.last().copied().unwrap_or(0.0)),
    })
}

async fn run(a: RunArgs) -> ExitCode {
    if !(a.rate > 0.0 && a.rate <= MAX_RATE)
        || a.duration.is_zero()
        || a.duration > MAX_DURATION
        || !(1..=10_000).contains(&a.concurrency)
    {
        eprintln!("bookstore-load: --rate must be in (0, {MAX_RATE}], --duration in (0, 1h], --concurrency in 1..=10000");
        return ExitCode::from(2);
    }
    let base = a.url.trim_end_matches('/').to_string();
    let stats = Arc::new(Mutex::new(Stats::default()));
    let journey = Arc::new(Journey {
        http: client(),
        base: base.clone(),
        stats: stats.clone(),
    });
    // Usernames unique across runs: the start time in base 36, then the journey number.
    let run_id = {
        let mut n = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let mut s = String::new();
        while n > 0 {
            s.insert(0, std::char::from_digit((n % 36) as u32, 36).unwrap_or('0'));
            n /= 36;
        }
        s
    };
    let slots = Arc::new(tokio::sync::Semaphore::new(a.concurrency));
    let mut tasks = tokio::task::JoinSet::new();
    let start = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / a.rate);
    let mut started = 0u64;
    let mut late_starts = 0u64;
    loop {
        let at = start + interval.mul_f64(started as f64);
        if at.duration_since(start) >= a.duration {
            break;
        }
        tokio::time::sleep_until(at.into()).await;
        let permit = match slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                late_starts += 1;
                let deadline = start + a.duration;
                match tokio::time::timeout_at(deadline.into(), slots.clone().acquire_owned()).await
                {
                    Ok(Ok(p)) => p,
                    _ => break,
                }
            }
        };
        let j = journey.clone();
        let user = format!("l{run_id}-{started}");
        let seed = a.seed.wrapping_mul(1_000_003).wrapping_add(started);
        let card = a.card.clone();
        tasks.spawn(async move {
            let t0 = Instant::now();
            let r = j.run(user, seed, &card).await;
            drop(permit);
            (
                r.err().map(|f| f.cause),
                t0.elapsed().as_secs_f64() * 1000.0,
            )
        });
        started += 1;
    }
    let started_for = start.elapsed();
    let drain_deadline = Instant::now() + DRAIN;
    let mut unfinished = 0u64;
    loop {
        match tokio::time::timeout_at(drain_deadline.into(), tasks.join_next()).await {
            Ok(Some(Ok((failure, ms)))) => {
                let mut st = stats.lock().expect("stats lock");
                match failure {
                    None => st.journeys_ok += 1,
                    Some(cause) => {
                        st.journeys_failed += 1;
                        *st.failed_by_cause.entry(cause).or_default() += 1;
                    }
                }
                st.journey_ms.push(ms);
            }
            Ok(Some(Err(_))) => {
                let mut st = stats.lock().expect("stats lock");
                st.journeys_failed += 1;
                *st.failed_by_cause.entry("panic".into()).or_default() += 1;
            }
            Ok(None) => break,
            Err(_) => {
                unfinished = tasks.len() as u64;
                tasks.abort_all();
                break;
            }
        }
    }
    let mut st = stats.lock().expect("stats lock");
    let elapsed = start.elapsed().as_secs_f64();
    let requests_ok: u64 = st.kinds.values().map(|k| k.ok).sum();
    let requests_failed: u64 = st.kinds.values().map(|k| k.failed).sum();
    let journey_lat = summary(&mut st.journey_ms);
    let kinds: serde_json::Map<String, Value> = st
        .kinds
        .iter_mut()
        .map(|(k, v)| {
            let mut s = summary(&mut v.latencies_ms);
            s["ok"] = json!(v.ok);
            s["failed"] = json!(v.failed);
            (k.to_string(), s)
        })
        .collect();
    let failed = st.journeys_failed + unfinished;
    let report = json!({
        "url": base,
        "rate": a.rate,
        "duration_s": a.duration.as_secs_f64(),
        "started_for_s": started_for.as_secs_f64(),
        "elapsed_s": elapsed,
        "journeys": {
            "started": started,
            "ok": st.journeys_ok,
            "failed": failed,
            "unfinished": unfinished,
            "late_starts": late_starts,
            "failed_by_cause": st.failed_by_cause,
            "per_second": st.journeys_ok as f64 / elapsed.max(1e-9),
            "latency": journey_lat,
        },
        "requests": { "ok": requests_ok, "failed": requests_failed, "by_status": st.statuses, "by_kind": kinds },
        "errors": st.errors,
    });
    match a.output {
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        ),
        Output::Text => print_text(&report),
    }
    if failed == 0 && started > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn print_text(r: &Value) {
    let j = &r["journeys"];
    let l = &j["latency"];
    println!(
        "journeys: {} started, {} ok, {} failed ({} unfinished after the {} s drain), {:.2} ok/s over {:.1} s; {} late starts (concurrency limit)",
        j["started"], j["ok"], j["failed"], j["unfinished"], DRAIN.as_secs(), j["per_second"].as_f64().unwrap_or(0.0), r["elapsed_s"].as_f64().unwrap_or(0.0), j["late_starts"]
    );
    let causes: Vec<String> = j["failed_by_cause"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    if !causes.is_empty() {
        println!("failed journeys by first failure: {}", causes.join(", "));
    }
    println!(
        "journey latency ms: p50 {} p90 {} p99 {} max {}",
        l["p50_ms"], l["p90_ms"], l["p99_ms"], l["max_ms"]
    );
    let q = &r["requests"];
    let by_status: Vec<String> = q["by_status"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    println!(
        "requests: {} ok, {} failed; by status: {}",
        q["ok"],
        q["failed"],
        by_status.join(", ")
    );
    println!(
        "{:<10} {:>7} {:>7} {:>9} {:>9} {:>9} {:>9}",
        "kind", "ok", "failed", "p50 ms", "p90 ms", "p99 ms", "max ms"
    );
    for (k, v) in q["by_kind"].as_object().into_iter().flatten() {
        let f = |key: &str| v[key].to_string();
        println!(
            "{:<10} {:>7} {:>7} {:>9} {:>9} {:>9} {:>9}",
            k,
            f("ok"),
            f("failed"),
            f("p50_ms"),
            f("p90_ms"),
            f("p99_ms"),
            f("max_ms")
        );
    }
    let errors = r["errors"].as_array().cloned().unwrap_or_default();
    if !errors.is_empty() {
        println!("first errors:");
        for e in errors {
            println!("  {}", e.as_str().unwrap_or(""));
        }
    }
}

// ---------------------------------------------------------------- check

async fn get_json(http: &reqwest::Client, url: &str) -> Result<Value, String> {
    let resp = http
        .get(url)
        .send()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    let status = resp.status();
    let text = resp.text().await.map_err(|e| format!("GET {url}: {e}"))?;
    if !status.is_success() {
        return Err(format!(
            "GET {url}: {status}: {}",
            text.chars().take(200).collect::<String>()
        ));
    }
    serde_json::from_str(&text).map_err(|e| format!("GET {url}: not JSON: {e}"))
}

/// One look at the shop: Ok(report) when consistent, Err((report, retry?)).
async fn check_once(http: &reqwest::Client, base: &str) -> Result<Value, (String, bool)> {
    let totals = get_json(http, &format!("{base}/api/admin/totals"))
        .await
        .map_err(|e| (e, true))?;
    let stock = get_json(http, &format!("{base}/api/admin/stock"))
        .await
        .map_err(|e| (e, true))?;
    let pending = totals["by_status"]["pending"].as_i64().unwrap_or(0);
    let paid: BTreeMap<i64, i64> = totals["paid"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| Some((p["book_id"].as_i64()?, p["quantity"].as_i64()?)))
        .collect();
    let mut problems = Vec::new();
    let books = stock["books"].as_array().cloned().unwrap_or_default();
    for b in &books {
        let id = b["id"].as_i64().unwrap_or(0);
        let (total, left, reserved) = (
            b["total_stock"].as_i64().unwrap_or(-1),
            b["stock"].as_i64().unwrap_or(-1),
            b["reserved"].as_i64().unwrap_or(-1),
        );
        let sold = paid.get(&id).copied().unwrap_or(0);
        if left < 0 {
            problems.push(format!("book {id}: negative stock {left}"));
        }
        if total != left + sold {
            problems.push(format!("book {id}: total stock {total} != stock {left} + paid units {sold} (reserved {reserved})"));
        }
    }
    for id in paid.keys() {
        if !books.iter().any(|b| b["id"].as_i64() == Some(*id)) {
            problems.push(format!(
                "paid orders hold book {id}, which the catalog does not know"
            ));
        }
    }
    let report = json!({
        "books": books.len(),
        "paid_units": paid.values().sum::<i64>(),
        "orders_by_status": totals["by_status"],
        "pending_orders": pending,
        "problems": problems,
    });
    if problems.is_empty() {
        Ok(report)
    } else {
        // Pending orders hold reservations that are not paid yet: the
        // sweeper settles them, so wait rather than report a false alarm.
        let msg = problems.join("\n");
        Err((format!("{msg}\n{report}"), pending > 0))
    }
}

async fn check(a: CheckArgs) -> ExitCode {
    let http = client();
    let base = a.url.trim_end_matches('/').to_string();
    let deadline = Instant::now() + a.wait.min(MAX_DURATION);
    loop {
        match check_once(&http, &base).await {
            Ok(report) => {
                match a.output {
                    Output::Json => println!("{}", json!({"consistent": true, "report": report})),
                    Output::Text => println!(
                        "consistent: {} books, {} units in paid orders, orders by status {}",
                        report["books"], report["paid_units"], report["orders_by_status"]
                    ),
                }
                return ExitCode::SUCCESS;
            }
            Err((msg, retry)) => {
                if !retry || Instant::now() >= deadline {
                    match a.output {
                        Output::Json => println!("{}", json!({"consistent": false, "error": msg})),
                        Output::Text => eprintln!("INCONSISTENT or unreachable:\n{msg}"),
                    }
                    return ExitCode::FAILURE;
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
}
