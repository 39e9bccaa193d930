//! Shared code of the bookstore services (issue 6): configuration from the
//! environment, the PostgreSQL pool and migrations, JSON errors, Prometheus
//! metrics, signed tokens, the internal HTTP client and the server skeleton
//! (`/healthz`, `/metrics`, `healthcheck` subcommand, graceful shutdown).
//! The pure business rules (payment, pricing, id validation) live in `rules`
//! so they are unit-tested without a database.

pub mod auth;
pub mod client;
pub mod config;
pub mod db;
pub mod dns;
pub mod error;
pub mod metrics;
pub mod rules;
pub mod server;
