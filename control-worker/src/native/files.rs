//! The core's `Blobs` on files: one file per object under a directory beside the database
//! (`control.db` → `control.blobs/`). A put writes a temporary file, syncs it and renames it
//! over the key's path, so a reader (or a crash) sees the old object or the new one whole.

use std::fs::{self, File};
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::core::blobs::{BlobEntry, BlobError, Blobs, ByteRange};

const TEMP_MARK: &str = ".tmp-";
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

pub struct FileBlobs {
    root: PathBuf,
}

fn backend(action: &str, path: &Path, error: std::io::Error) -> BlobError {
    BlobError::Backend(format!("{action} {}: {error}", path.display()))
}

impl FileBlobs {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        FileBlobs { root: root.into() }
    }

    /// The store that belongs to a database file: `<dir>/<name>.blobs/`.
    pub fn beside(db_path: &Path) -> Self {
        let stem = db_path.file_stem().map(|stem| stem.to_string_lossy().into_owned()).unwrap_or_else(|| "control".into());
        Self::new(db_path.with_file_name(format!("{stem}.blobs")))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path_of(&self, key: &str) -> Result<PathBuf, BlobError> {
        let valid = !key.is_empty()
            && key.split('/').all(|segment| {
                !segment.is_empty()
                    && segment != "."
                    && segment != ".."
                    && !segment.contains(TEMP_MARK)
                    && segment.bytes().all(|byte| byte.is_ascii_alphanumeric() || b"._-".contains(&byte))
            });
        if !valid {
            return Err(BlobError::Backend(format!("invalid object key {key:?}")));
        }
        Ok(self.root.join(key))
    }

    fn put_sync(&self, key: &str, bytes: &[u8]) -> Result<(), BlobError> {
        let path = self.path_of(key)?;
        let parent = path.parent().unwrap_or(&self.root);
        fs::create_dir_all(parent).map_err(|error| backend("creating", parent, error))?;
        let name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
        let temp = parent.join(format!("{name}{TEMP_MARK}{}-{}", std::process::id(), TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)));
        let written = (|| {
            let mut file = File::create(&temp)?;
            file.write_all(bytes)?;
            file.sync_all()?;
            fs::rename(&temp, &path)?;
            // The rename itself must survive a power cut: sync the directory that holds it.
            File::open(parent)?.sync_all()
        })();
        if let Err(error) = written {
            let _ = fs::remove_file(&temp);
            return Err(backend("writing", &path, error));
        }
        Ok(())
    }

    fn get_sync(&self, key: &str, range: Option<ByteRange>) -> Result<Option<Vec<u8>>, BlobError> {
        let path = self.path_of(key)?;
        let mut file = match File::open(&path) {
            Ok(file) => file,
            Err(error) if error.kind() == ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(backend("opening", &path, error)),
        };
        let mut bytes = Vec::new();
        let read = match range {
            None => file.read_to_end(&mut bytes).map(|_| ()),
            Some(range) => {
                file.seek(SeekFrom::Start(range.offset)).and_then(|_| file.take(range.length).read_to_end(&mut bytes)).map(|_| ())
            }
        };
        read.map_err(|error| backend("reading", &path, error))?;
        Ok(Some(bytes))
    }

    fn delete_sync(&self, key: &str) -> Result<(), BlobError> {
        let path = self.path_of(key)?;
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(error) if error.kind() == ErrorKind::NotFound => {}
            Err(error) => return Err(backend("deleting", &path, error)),
        }
        // A run's directory goes with its last object (fails, harmlessly, while others remain).
        if let Some(parent) = path.parent().filter(|parent| *parent != self.root) {
            let _ = fs::remove_dir(parent);
        }
        Ok(())
    }

    fn list_sync(&self, prefix: &str, limit: usize) -> Result<Vec<BlobEntry>, BlobError> {
        let directory = match prefix.rfind('/') {
            Some(end) => self.root.join(&prefix[..end]),
            None => self.root.clone(),
        };
        let mut found = Vec::new();
        let mut pending = vec![directory];
        while let Some(directory) = pending.pop() {
            let entries = match fs::read_dir(&directory) {
                Ok(entries) => entries,
                Err(error) if error.kind() == ErrorKind::NotFound => continue,
                Err(error) => return Err(backend("listing", &directory, error)),
            };
            for entry in entries {
                let entry = entry.map_err(|error| backend("listing", &directory, error))?;
                let path = entry.path();
                let metadata = entry.metadata().map_err(|error| backend("reading", &path, error))?;
                if metadata.is_dir() {
                    pending.push(path);
                    continue;
                }
                let Ok(relative) = path.strip_prefix(&self.root) else { continue };
                let key = relative.to_string_lossy().replace(std::path::MAIN_SEPARATOR, "/");
                if key.starts_with(prefix) && !key.contains(TEMP_MARK) {
                    found.push(BlobEntry { key, size: metadata.len() });
                }
            }
        }
        found.sort_by(|a, b| a.key.cmp(&b.key));
        found.truncate(limit);
        Ok(found)
    }
}

impl Blobs for FileBlobs {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), BlobError> {
        self.put_sync(key, &bytes)
    }

    async fn get(&self, key: &str, range: Option<ByteRange>) -> Result<Option<Vec<u8>>, BlobError> {
        self.get_sync(key, range)
    }

    async fn delete(&self, key: &str) -> Result<(), BlobError> {
        self.delete_sync(key)
    }

    async fn list(&self, prefix: &str, limit: usize) -> Result<Vec<BlobEntry>, BlobError> {
        self.list_sync(prefix, limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(future)
    }

    #[test]
    fn put_get_range_list_delete() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = FileBlobs::beside(&dir.path().join("control.db"));
        assert_eq!(blobs.root(), dir.path().join("control.blobs"));
        block_on(async {
            blobs.put("runs/run_1/stdout-ab.gz", b"0123456789".to_vec()).await.unwrap();
            blobs.put("runs/run_1/stderr-cd.gz", b"x".to_vec()).await.unwrap();
            blobs.put("runs/run_2/stdout-ef.gz", b"y".to_vec()).await.unwrap();
            let range = ByteRange { offset: 3, length: 4 };
            assert_eq!(blobs.get("runs/run_1/stdout-ab.gz", Some(range)).await.unwrap().unwrap(), b"3456");
            let past_end = ByteRange { offset: 8, length: 100 };
            assert_eq!(blobs.get("runs/run_1/stdout-ab.gz", Some(past_end)).await.unwrap().unwrap(), b"89");
            assert_eq!(blobs.get("runs/run_1/none.gz", None).await.unwrap(), None);
            let keys: Vec<String> = blobs.list("runs/run_1/", 10).await.unwrap().into_iter().map(|entry| entry.key).collect();
            assert_eq!(keys, ["runs/run_1/stderr-cd.gz", "runs/run_1/stdout-ab.gz"]);
            assert_eq!(blobs.list("runs/", 10).await.unwrap().len(), 3);
            blobs.put("runs/run_1/stdout-ab.gz", b"new".to_vec()).await.unwrap();
            assert_eq!(blobs.get("runs/run_1/stdout-ab.gz", None).await.unwrap().unwrap(), b"new");
            blobs.delete("runs/run_1/stdout-ab.gz").await.unwrap();
            blobs.delete("runs/run_1/stdout-ab.gz").await.unwrap();
            blobs.delete("runs/run_1/stderr-cd.gz").await.unwrap();
            assert!(!blobs.root().join("runs/run_1").exists(), "the run's directory goes with its last object");
        });
    }

    #[test]
    fn keys_cannot_leave_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = FileBlobs::new(dir.path());
        for key in ["../x", "runs//x", "/etc/passwd", "runs/a b", "", "runs/x.tmp-1"] {
            assert!(block_on(blobs.put(key, b"x".to_vec())).is_err(), "{key:?} refused");
        }
    }
}
