//! Per-server and per-view state the socket tasks read on every query.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, RwLock};

use crate::metrics::Metrics;
use crate::records::RecordTable;

/// The records a listener answers from; swapped in place by `apply`.
#[derive(Debug)]
pub struct ViewSlot {
    current: RwLock<Arc<ViewData>>,
}

#[derive(Debug)]
pub struct ViewData {
    pub name: String,
    pub table: RecordTable,
    /// The records `table` was built from, so an unchanged apply (the common, level-triggered
    /// case) keeps the table and its rotation instead of rebuilding it.
    pub source: BTreeMap<String, Vec<IpAddr>>,
    /// Per-client tables (the view's records plus the client's extra names).
    pub clients: std::collections::HashMap<IpAddr, RecordTable>,
    pub clients_source: BTreeMap<IpAddr, BTreeMap<String, Vec<IpAddr>>>,
}

impl ViewData {
    /// The table a query from `client` is answered from.
    pub fn table_for(&self, client: IpAddr) -> &RecordTable {
        self.clients.get(&client).unwrap_or(&self.table)
    }
}

impl ViewSlot {
    pub fn new(data: ViewData) -> ViewSlot {
        ViewSlot {
            current: RwLock::new(Arc::new(data)),
        }
    }

    pub fn set(&self, data: ViewData) {
        let data = Arc::new(data);
        match self.current.write() {
            Ok(mut guard) => *guard = data,
            Err(poisoned) => *poisoned.into_inner() = data,
        }
    }

    pub fn get(&self) -> Arc<ViewData> {
        match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

/// State shared by every listener of one server.
#[derive(Debug, Default)]
pub struct Shared {
    pub upstreams: RwLock<Arc<Vec<SocketAddr>>>,
    /// Index into `upstreams` of the last resolver that answered; tried first.
    pub preferred_upstream: AtomicUsize,
    pub metrics: Metrics,
}

impl Shared {
    pub fn upstreams(&self) -> Arc<Vec<SocketAddr>> {
        match self.upstreams.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}
