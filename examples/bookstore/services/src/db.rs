//! PostgreSQL: the pool, startup migrations and readiness.
//!
//! A service starts listening at once and brings its schema up in the
//! background, retrying until the database answers, so it can start before
//! PostgreSQL does; until then `/healthz` and every DB-backed request answer
//! 503. The pool drops connections that died (database restart) and opens new
//! ones on demand, so a service recovers without restarting.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use deadpool_postgres::{
    Connect, Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime,
};
use tokio_postgres::NoTls;

use crate::config::DbConfig;
use crate::error::{ApiError, ApiResult};

type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// Resolves the database host with hickory (see dns.rs) before every new
/// connection, so a replaced database container is found again.
struct HickoryConnect;

impl Connect for HickoryConnect {
    fn connect(
        &self,
        pg_config: &tokio_postgres::Config,
    ) -> BoxFuture<
        '_,
        Result<(tokio_postgres::Client, tokio::task::JoinHandle<()>), tokio_postgres::Error>,
    > {
        let mut cfg = pg_config.clone();
        Box::pin(async move {
            if let Some(tokio_postgres::config::Host::Tcp(host)) = cfg.get_hosts().first().cloned()
            {
                match crate::dns::lookup(&host).await {
                    Ok(ips) => {
                        cfg.hostaddr(ips[0]);
                    }
                    // Fall through to tokio-postgres's own lookup: it yields
                    // the error value (or works where NSS does).
                    Err(e) => tracing::debug!(error = %e, "resolving the database host"),
                }
            }
            let (client, connection) = cfg.connect(NoTls).await?;
            let handle = tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::warn!(error = %e, "database connection closed");
                }
            });
            Ok((client, handle))
        })
    }
}

/// How long a request waits for the database to accept connections.
const CONNECT_PATIENCE: Duration = Duration::from_millis(2500);
const RETRY_PAUSE: Duration = Duration::from_millis(250);

#[derive(Clone)]
pub struct Db {
    pub pool: Pool,
    ready: Arc<AtomicBool>,
}

/// One step of a schema: applied once, in order, recorded in
/// `<schema>.schema_migrations`.
pub type Migration = &'static str;

impl Db {
    /// A pool whose connections use `schema` as their search path.
    pub fn new(cfg: &DbConfig, schema: &str) -> anyhow::Result<Db> {
        let mut pg = tokio_postgres::Config::new();
        pg.host(&cfg.host)
            .port(cfg.port)
            .dbname(&cfg.name)
            .user(&cfg.user)
            .application_name(format!("bookstore-{schema}"))
            .connect_timeout(Duration::from_secs(2))
            .keepalives_idle(Duration::from_secs(10))
            // A statement never holds a request longer than the 5 s budget.
            .options(format!("-c statement_timeout=4000 -c search_path={schema}"));
        if let Some(p) = &cfg.password {
            pg.password(p);
        }
        let mgr = Manager::from_connect(
            pg,
            HickoryConnect,
            ManagerConfig {
                // A connection whose socket died is dropped on checkout
                // (is_closed); a query on one that dies mid-way fails with 503.
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(mgr)
            .max_size(cfg.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(2)))
            .create_timeout(Some(Duration::from_secs(3)))
            .recycle_timeout(Some(Duration::from_secs(1)))
            .build()
            .context("building the database pool")?;
        Ok(Db {
            pool,
            ready: Arc::new(AtomicBool::new(false)),
        })
    }

    /// A connection for a request: 503 while the schema is not ready or the
    /// database is unreachable.
    pub async fn client(&self) -> ApiResult<deadpool_postgres::Object> {
        if !self.ready.load(Ordering::Acquire) {
            return Err(ApiError::unavailable(
                "starting: the database schema is not ready yet",
            ));
        }
        // A database restart takes a few seconds: keep trying to connect
        // for up to CONNECT_PATIENCE, so a short outage costs latency instead
        // of failed requests; past it, answer 503 (within the 5 s budget).
        let start = std::time::Instant::now();
        loop {
            match self.pool.get().await {
                Ok(c) => return Ok(c),
                Err(e) => {
                    let retryable = matches!(e, PoolError::Backend(_) | PoolError::Timeout(_));
                    if !retryable || start.elapsed() + RETRY_PAUSE >= CONNECT_PATIENCE {
                        return Err(e.into());
                    }
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
            }
        }
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// True when the schema is migrated and a `SELECT 1` answers within 1 s.
    pub async fn healthy(&self) -> bool {
        if !self.is_ready() {
            return false;
        }
        let probe = async {
            let c = self.pool.get().await.ok()?;
            c.simple_query("SELECT 1").await.ok()
        };
        matches!(
            tokio::time::timeout(Duration::from_secs(1), probe).await,
            Ok(Some(_))
        )
    }

    /// Runs the migrations (then `after`, e.g. seeding) in the background,
    /// retrying every second until they succeed, then marks the pool ready.
    pub fn start_migrations<F, Fut>(
        &self,
        schema: &'static str,
        migrations: &'static [Migration],
        after: F,
    ) where
        F: Fn(Db) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
    {
        let db = self.clone();
        tokio::spawn(async move {
            let mut attempt = 0u32;
            loop {
                attempt += 1;
                let result = async {
                    migrate(&db.pool, schema, migrations).await?;
                    after(db.clone()).await
                }
                .await;
                match result {
                    Ok(()) => {
                        db.ready.store(true, Ordering::Release);
                        tracing::info!(schema, attempt, "database schema ready");
                        return;
                    }
                    Err(e) => {
                        if attempt == 1 || attempt.is_multiple_of(10) {
                            tracing::warn!(
                                schema,
                                attempt,
                                error = format!("{e:#}"),
                                "database not ready; retrying every second"
                            );
                        }
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        });
    }
}

/// Applies the missing steps of `migrations` to `schema`. Replicas starting
/// together serialise on a session advisory lock keyed by the schema name, so
/// exactly one applies each step; the others then see it recorded.
pub async fn migrate(pool: &Pool, schema: &str, migrations: &[Migration]) -> anyhow::Result<()> {
    let mut client = pool.get().await.context("connecting to the database")?;
    let key = format!("bookstore-migrations:{schema}");
    client
        .execute("SELECT pg_advisory_lock(hashtext($1)::bigint)", &[&key])
        .await
        .context("taking the migration lock")?;
    let result = async {
        // `schema` comes from the binary, never from input.
        client
            .batch_execute(&format!(
                "CREATE SCHEMA IF NOT EXISTS {schema};
                 CREATE TABLE IF NOT EXISTS {schema}.schema_migrations (
                     version integer PRIMARY KEY,
                     applied_at timestamptz NOT NULL DEFAULT now());"
            ))
            .await
            .context("creating the schema")?;
        let applied: Vec<i32> = client
            .query(
                &format!("SELECT version FROM {schema}.schema_migrations"),
                &[],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        for (i, sql) in migrations.iter().enumerate() {
            let version = i as i32 + 1;
            if applied.contains(&version) {
                continue;
            }
            let tx = client.transaction().await?;
            tx.batch_execute(sql)
                .await
                .with_context(|| format!("migration {schema} v{version}"))?;
            tx.execute(
                &format!("INSERT INTO {schema}.schema_migrations (version) VALUES ($1)"),
                &[&version],
            )
            .await?;
            tx.commit().await?;
            tracing::info!(schema, version, "applied migration");
        }
        anyhow::Ok(())
    }
    .await;
    // Unlock even on failure; if the session died the lock went with it.
    let _ = client
        .execute("SELECT pg_advisory_unlock(hashtext($1)::bigint)", &[&key])
        .await;
    result
}
