//! The format of a compacted stream (SPEC §17): one gzip object per run and stream, made of
//! gzip members so that any member can be read alone with a ranged read.
//!
//! - Members `0..blocks` are blocks of chunks, each block ~[`BLOCK_BYTES`] of JSON lines, one
//!   chunk a line: `{"cursor":…,"seq":…,"created_at":…,"text":…}` in cursor order.
//! - The last member is the block index: a JSON array of `[first_cursor, last_cursor, offset,
//!   length]`, one per block (offsets in the object's bytes). The database row keeps where it
//!   is; a one-block object needs no index read at all.
//!
//! `zcat` of an object prints its chunks as JSON lines followed by the index: an operator can
//! read one without the control plane. A checkpoint object is simpler: one member per moved
//! checkpoint's content, its offset and length kept on the checkpoint's row.

use std::io::{Read, Write};

use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::auth::encode_hex;

/// Uncompressed bytes after which a block is closed: a page read decompresses at most a few
/// blocks, whatever the run printed.
pub const BLOCK_BYTES: usize = 256 * 1024;

/// One chunk as a compacted object holds it (the run, task, step and stream are the object's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredChunk {
    pub cursor: i64,
    pub seq: i64,
    pub created_at: i64,
    pub text: String,
}

/// Where one block is: `[first_cursor, last_cursor, offset, length]`.
pub type BlockEntry = (i64, i64, u64, u64);

#[derive(Debug, thiserror::Error)]
#[error("compacted object is unreadable: {0}")]
pub struct ObjectFormatError(pub String);

/// Builds one stream's object from its chunks, in cursor order.
#[derive(Default)]
pub struct ObjectWriter {
    bytes: Vec<u8>,
    block: Vec<u8>,
    block_first: Option<i64>,
    block_last: i64,
    index: Vec<BlockEntry>,
    pub chunk_count: i64,
    pub text_bytes: i64,
    pub first_cursor: Option<i64>,
    pub last_cursor: i64,
}

/// A finished object and what its database row records about it.
#[derive(Debug, Clone)]
pub struct EncodedObject {
    pub bytes: Vec<u8>,
    pub sha256: String,
    pub blocks: i64,
    pub index_offset: u64,
    pub index_length: u64,
    pub chunk_count: i64,
    pub text_bytes: i64,
    pub first_cursor: i64,
    pub last_cursor: i64,
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(bytes.len() / 4 + 64), Compression::default());
    // Writing to a Vec cannot fail.
    encoder.write_all(bytes).expect("gzip into memory");
    encoder.finish().expect("gzip into memory")
}

/// The content of one gzip member (the first, when `bytes` holds more).
pub fn gunzip(bytes: &[u8]) -> Result<Vec<u8>, ObjectFormatError> {
    let mut out = Vec::with_capacity(bytes.len() * 4);
    GzDecoder::new(bytes).read_to_end(&mut out).map_err(|error| ObjectFormatError(format!("gzip: {error}")))?;
    Ok(out)
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    encode_hex(&Sha256::digest(bytes))
}

impl ObjectWriter {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, chunk: &StoredChunk) {
        let line = serde_json::to_string(chunk).expect("a chunk serialises");
        self.block.extend_from_slice(line.as_bytes());
        self.block.push(b'\n');
        self.block_first.get_or_insert(chunk.cursor);
        self.first_cursor.get_or_insert(chunk.cursor);
        self.block_last = chunk.cursor;
        self.last_cursor = chunk.cursor;
        self.chunk_count += 1;
        self.text_bytes += chunk.text.len() as i64;
        if self.block.len() >= BLOCK_BYTES {
            self.close_block();
        }
    }

    pub fn is_empty(&self) -> bool {
        self.chunk_count == 0
    }

    fn close_block(&mut self) {
        let Some(first) = self.block_first.take() else { return };
        let member = gzip(&self.block);
        self.index.push((first, self.block_last, self.bytes.len() as u64, member.len() as u64));
        self.bytes.extend_from_slice(&member);
        self.block.clear();
    }

    pub fn finish(mut self) -> EncodedObject {
        self.close_block();
        let index_offset = self.bytes.len() as u64;
        let index = gzip(serde_json::to_string(&self.index).expect("an index serialises").as_bytes());
        self.bytes.extend_from_slice(&index);
        EncodedObject {
            sha256: sha256_hex(&self.bytes),
            blocks: self.index.len() as i64,
            index_offset,
            index_length: index.len() as u64,
            chunk_count: self.chunk_count,
            text_bytes: self.text_bytes,
            first_cursor: self.first_cursor.unwrap_or(0),
            last_cursor: self.last_cursor,
            bytes: self.bytes,
        }
    }
}

/// The chunks of one block member.
pub fn read_block(member: &[u8]) -> Result<Vec<StoredChunk>, ObjectFormatError> {
    let text = gunzip(member)?;
    text.split(|byte| *byte == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| serde_json::from_slice(line).map_err(|error| ObjectFormatError(format!("chunk line: {error}"))))
        .collect()
}

pub fn read_index(member: &[u8]) -> Result<Vec<BlockEntry>, ObjectFormatError> {
    serde_json::from_slice(&gunzip(member)?).map_err(|error| ObjectFormatError(format!("index: {error}")))
}

/// Seqs as sorted, merged `[first, last]` ranges: what a run's compactions took (one range
/// for a run whose chunks were all compacted, whatever its streams).
pub fn merge_seq_ranges(mut ranges: Vec<(i64, i64)>, seqs: impl IntoIterator<Item = i64>) -> Vec<(i64, i64)> {
    ranges.extend(seqs.into_iter().map(|seq| (seq, seq)));
    ranges.sort_unstable();
    let mut merged: Vec<(i64, i64)> = Vec::with_capacity(ranges.len());
    for (first, last) in ranges {
        match merged.last_mut() {
            Some(previous) if first <= previous.1.saturating_add(1) => previous.1 = previous.1.max(last),
            _ => merged.push((first, last)),
        }
    }
    merged
}

/// The key of a stream's object. Named by its content's digest, so two compactions of the same
/// rows write the same object and a compaction of other rows never overwrites a referenced one.
pub fn stream_key(run_id: &str, stream: &str, sha256: &str) -> String {
    format!("runs/{run_id}/{stream}-{}.gz", &sha256[..16])
}

pub fn checkpoints_key(run_id: &str, sha256: &str) -> String {
    format!("runs/{run_id}/checkpoints-{}.gz", &sha256[..16])
}

/// Every object of a run starts with this.
pub fn run_prefix(run_id: &str) -> String {
    format!("runs/{run_id}/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(cursor: i64, text: &str) -> StoredChunk {
        StoredChunk { cursor, seq: cursor * 2, created_at: 1_800_000_000 + cursor, text: text.to_string() }
    }

    #[test]
    fn blocks_and_index_read_back_what_was_written() {
        let mut writer = ObjectWriter::new();
        let big = "x".repeat(100_000);
        let chunks: Vec<StoredChunk> = (1..=10).map(|cursor| chunk(cursor * 3, &format!("{cursor}:{big}\n"))).collect();
        for chunk in &chunks {
            writer.push(chunk);
        }
        let object = writer.finish();
        assert!(object.blocks >= 3, "about 1 MB in 256 KB blocks: {}", object.blocks);
        assert_eq!((object.first_cursor, object.last_cursor, object.chunk_count), (3, 30, 10));
        let index_end = (object.index_offset + object.index_length) as usize;
        assert_eq!(index_end, object.bytes.len());
        let index = read_index(&object.bytes[object.index_offset as usize..]).unwrap();
        let mut read = Vec::new();
        for (first, last, offset, length) in &index {
            let block = read_block(&object.bytes[*offset as usize..(*offset + *length) as usize]).unwrap();
            assert_eq!((block[0].cursor, block.last().unwrap().cursor), (*first, *last));
            read.extend(block);
        }
        assert_eq!(read, chunks);
        assert!(object.bytes.len() < 20_000, "repetitive text compresses: {}", object.bytes.len());
        assert_eq!(object.sha256, sha256_hex(&object.bytes));
    }

    #[test]
    fn the_whole_object_is_one_gzip_stream_of_json_lines() {
        let mut writer = ObjectWriter::new();
        writer.push(&chunk(1, "héllo\n"));
        writer.push(&chunk(2, "\u{1b}[31mred\u{1b}[0m"));
        let object = writer.finish();
        let mut all = String::new();
        flate2::read::MultiGzDecoder::new(&object.bytes[..]).read_to_string(&mut all).unwrap();
        let lines: Vec<&str> = all.lines().collect();
        assert_eq!(lines.len(), 3, "two chunks and the index: {all}");
        assert!(lines[0].contains(r#""text":"héllo\n""#), "{}", lines[0]);
    }

    #[test]
    fn seq_ranges_merge_into_the_fewest() {
        assert_eq!(merge_seq_ranges(vec![], [3, 1, 2, 0, 7, 9, 8]), vec![(0, 3), (7, 9)]);
        assert_eq!(merge_seq_ranges(vec![(0, 3), (7, 9)], [4, 5, 6]), vec![(0, 9)]);
        assert_eq!(merge_seq_ranges(vec![(0, 5)], [2, 3]), vec![(0, 5)]);
    }

    #[test]
    fn a_damaged_member_is_an_error_not_a_panic() {
        assert!(read_block(b"not gzip").is_err());
        assert!(read_index(&gzip(b"[[1,2]")).is_err());
    }
}
