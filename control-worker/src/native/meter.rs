//! What a native server handled, for the budget benchmark: requests per route and the table
//! rows its database wrote (SQLite's count of changed rows; D1 also counts each index entry a
//! write touches). Off unless a [`ServerOptions`](super::ServerOptions) carries one.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use shared::routes::{resolve, Resolution};

#[derive(Debug, Default)]
pub struct Meter {
    requests: Mutex<BTreeMap<String, u64>>,
    rows_written: AtomicU64,
}

impl Meter {
    /// Counts one request by its route's action id (`other` for what no route matches).
    pub fn count_request(&self, method: &str, path: &str) {
        let id = match resolve(method, path) {
            Resolution::Found(route, _) => route.id.to_string(),
            _ => "other".to_string(),
        };
        *self.requests.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).entry(id).or_default() += 1;
    }

    pub fn count_rows_written(&self, rows: u64) {
        self.rows_written.fetch_add(rows, Ordering::Relaxed);
    }

    /// Requests so far, by route.
    pub fn requests(&self) -> BTreeMap<String, u64> {
        self.requests.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    pub fn total_requests(&self) -> u64 {
        self.requests().values().sum()
    }

    pub fn rows_written(&self) -> u64 {
        self.rows_written.load(Ordering::Relaxed)
    }

    pub fn reset(&self) {
        self.requests.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clear();
        self.rows_written.store(0, Ordering::Relaxed);
    }
}
