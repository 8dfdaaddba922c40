//! The object-storage port beside [`super::db::Db`] (SPEC §17): R2 on the Worker, files under
//! the state directory natively. It holds bulk bytes — finished runs' compacted output and
//! large checkpoint contents — while the database keeps their keys, sizes and hashes.
//!
//! Also here: [`MemoryBlobs`], the in-memory store of tests and the simulation, which can be
//! told to fail its next operations (a crash between two steps of compaction, in the core).

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

use thiserror::Error;

/// A byte range of an object: `length` bytes from `offset` (fewer at the object's end).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub offset: u64,
    pub length: u64,
}

/// One object of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobEntry {
    pub key: String,
    pub size: u64,
}

#[derive(Debug, Error)]
pub enum BlobError {
    /// The store refused or failed the operation. The text is for logs only.
    #[error("object storage error: {0}")]
    Backend(String),
}

/// Bulk byte storage. Keys are `/`-separated paths of `[A-Za-z0-9._-]` segments. Writing a key
/// replaces its object whole (readers see the old object or the new one, never a mix).
#[allow(async_fn_in_trait)]
pub trait Blobs {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), BlobError>;

    /// The object's bytes, or the range of them; `None` when there is no such object.
    async fn get(&self, key: &str, range: Option<ByteRange>) -> Result<Option<Vec<u8>>, BlobError>;

    /// Deleting a missing object is no error.
    async fn delete(&self, key: &str) -> Result<(), BlobError>;

    /// Up to `limit` objects whose keys start with `prefix`, in key order.
    async fn list(&self, prefix: &str, limit: usize) -> Result<Vec<BlobEntry>, BlobError>;
}

impl<T: Blobs + ?Sized> Blobs for &T {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), BlobError> {
        (**self).put(key, bytes).await
    }

    async fn get(&self, key: &str, range: Option<ByteRange>) -> Result<Option<Vec<u8>>, BlobError> {
        (**self).get(key, range).await
    }

    async fn delete(&self, key: &str) -> Result<(), BlobError> {
        (**self).delete(key).await
    }

    async fn list(&self, prefix: &str, limit: usize) -> Result<Vec<BlobEntry>, BlobError> {
        (**self).list(prefix, limit).await
    }
}

/// The slice of `bytes` a range selects.
pub fn slice_range(bytes: &[u8], range: Option<ByteRange>) -> &[u8] {
    match range {
        None => bytes,
        Some(range) => {
            let start = (range.offset as usize).min(bytes.len());
            let end = start.saturating_add(range.length as usize).min(bytes.len());
            &bytes[start..end]
        }
    }
}

/// Objects in memory. `fail_after(n)` makes every operation after the next `n` fail, as a store
/// that went away would.
#[derive(Default)]
pub struct MemoryBlobs {
    objects: RefCell<BTreeMap<String, Vec<u8>>>,
    operations_left: Cell<Option<u64>>,
    operations: Cell<u64>,
}

impl MemoryBlobs {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn fail_after(&self, operations: u64) {
        self.operations_left.set(Some(operations));
    }

    pub fn heal(&self) {
        self.operations_left.set(None);
    }

    /// Operations made so far.
    pub fn operations(&self) -> u64 {
        self.operations.get()
    }

    pub fn keys(&self) -> Vec<String> {
        self.objects.borrow().keys().cloned().collect()
    }

    pub fn total_bytes(&self) -> u64 {
        self.objects.borrow().values().map(|bytes| bytes.len() as u64).sum()
    }

    fn admit(&self) -> Result<(), BlobError> {
        self.operations.set(self.operations.get() + 1);
        match self.operations_left.get() {
            Some(0) => Err(BlobError::Backend("the store is unreachable (told to fail)".into())),
            Some(left) => {
                self.operations_left.set(Some(left - 1));
                Ok(())
            }
            None => Ok(()),
        }
    }
}

impl Blobs for MemoryBlobs {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), BlobError> {
        self.admit()?;
        self.objects.borrow_mut().insert(key.to_string(), bytes);
        Ok(())
    }

    async fn get(&self, key: &str, range: Option<ByteRange>) -> Result<Option<Vec<u8>>, BlobError> {
        self.admit()?;
        Ok(self.objects.borrow().get(key).map(|bytes| slice_range(bytes, range).to_vec()))
    }

    async fn delete(&self, key: &str) -> Result<(), BlobError> {
        self.admit()?;
        self.objects.borrow_mut().remove(key);
        Ok(())
    }

    async fn list(&self, prefix: &str, limit: usize) -> Result<Vec<BlobEntry>, BlobError> {
        self.admit()?;
        let objects = self.objects.borrow();
        Ok(objects
            .range(prefix.to_string()..)
            .take_while(|(key, _)| key.starts_with(prefix))
            .take(limit)
            .map(|(key, bytes)| BlobEntry { key: key.clone(), size: bytes.len() as u64 })
            .collect())
    }
}
