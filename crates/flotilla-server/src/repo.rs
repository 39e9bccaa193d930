//! Typed access to the store: JSON objects under the keys of
//! `flotilla_core::keys`, and read-modify-write with compare-and-swap retries.

use crate::error::{ApiError, ApiResult};
use flotilla_store::{Expect, KeyValue, Store};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::sync::Arc;

#[derive(Clone)]
pub struct Repo {
    pub store: Arc<dyn Store>,
}

/// What an update closure decided.
pub enum Change<T> {
    Write(T),
    Keep,
}

impl Repo {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Repo { store }
    }

    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> ApiResult<Option<(T, u64)>> {
        match self.store.get(key).await? {
            Some(kv) => Ok(Some((serde_json::from_slice(&kv.value)?, kv.mod_revision))),
            None => Ok(None),
        }
    }

    pub async fn list<T: DeserializeOwned>(&self, prefix: &str) -> ApiResult<Vec<T>> {
        let listing = self.store.list(prefix).await?;
        listing.kvs.iter().map(|kv| decode(kv)).collect()
    }

    /// Create the object; false if the key already exists.
    pub async fn create<T: Serialize>(&self, key: &str, value: &T) -> ApiResult<bool> {
        let bytes = serde_json::to_vec(value)?;
        Ok(self
            .store
            .compare_and_swap(key, Expect::Absent, Some(bytes))
            .await?
            .succeeded)
    }

    /// Read, change, write back; retried on a concurrent write. Returns the
    /// written (or kept) value, or None if the key does not exist.
    pub async fn update<T, F>(&self, key: &str, mut change: F) -> ApiResult<Option<T>>
    where
        T: Serialize + DeserializeOwned + Clone,
        F: FnMut(T) -> ApiResult<Change<T>>,
    {
        for _ in 0..64 {
            let Some((current, rev)) = self.get::<T>(key).await? else {
                return Ok(None);
            };
            let next = match change(current.clone())? {
                Change::Keep => return Ok(Some(current)),
                Change::Write(next) => next,
            };
            let bytes = serde_json::to_vec(&next)?;
            let result = self
                .store
                .compare_and_swap(key, Expect::ModRevision(rev), Some(bytes))
                .await?;
            if result.succeeded {
                return Ok(Some(next));
            }
        }
        Err(ApiError::conflict(format!(
            "{key} is changing too fast; try again"
        )))
    }

    pub async fn delete(&self, key: &str) -> ApiResult<()> {
        self.store.delete(key).await?;
        Ok(())
    }
}

pub fn decode<T: DeserializeOwned>(kv: &KeyValue) -> ApiResult<T> {
    Ok(serde_json::from_slice(&kv.value)?)
}
