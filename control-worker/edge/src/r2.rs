//! The core's `Blobs` on an R2 bucket binding (`CONTROL_BLOBS` in `wrangler.toml`; `wrangler
//! dev` emulates it locally). A ranged get is R2's own range read: a page of a large compacted
//! run reads a few blocks, never the whole object.

use control_worker::core::blobs::{BlobEntry, BlobError, Blobs, ByteRange};
use worker::{Bucket, Range};

pub struct R2Blobs {
    bucket: Bucket,
}

impl R2Blobs {
    pub fn new(bucket: Bucket) -> Self {
        R2Blobs { bucket }
    }
}

fn backend(action: &str, key: &str, error: worker::Error) -> BlobError {
    BlobError::Backend(format!("R2 {action} {key}: {error}"))
}

impl Blobs for R2Blobs {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), BlobError> {
        self.bucket.put(key, bytes).execute().await.map_err(|error| backend("put", key, error))?;
        Ok(())
    }

    async fn get(&self, key: &str, range: Option<ByteRange>) -> Result<Option<Vec<u8>>, BlobError> {
        let mut request = self.bucket.get(key);
        if let Some(range) = range {
            request = request.range(Range::OffsetWithLength { offset: range.offset, length: range.length });
        }
        let Some(object) = request.execute().await.map_err(|error| backend("get", key, error))? else { return Ok(None) };
        match object.body() {
            Some(body) => Ok(Some(body.bytes().await.map_err(|error| backend("read", key, error))?)),
            None => Ok(Some(Vec::new())),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), BlobError> {
        self.bucket.delete(key).await.map_err(|error| backend("delete", key, error))
    }

    async fn list(&self, prefix: &str, limit: usize) -> Result<Vec<BlobEntry>, BlobError> {
        let listing = self
            .bucket
            .list()
            .prefix(prefix)
            .limit(limit.min(1000) as u32)
            .execute()
            .await
            .map_err(|error| backend("list", prefix, error))?;
        Ok(listing.objects().iter().map(|object| BlobEntry { key: object.key(), size: object.size() }).collect())
    }
}
