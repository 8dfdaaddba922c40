//! Shipping a run's log files to the control plane in ordered, idempotent chunks.
//!
//! The files are the spool: the child appends to `stdout.log` / `stderr.log`, the runner to
//! `worker.log`, and nothing is ever rewritten. A chunk is therefore fully described by its
//! byte range, and the cursor in `ship.json` records the ranges of the batch in flight before
//! it is sent. Whatever happens next — an outage, a timeout, an agent killed mid-request — the
//! same ranges are read again and sent again with the same `seq`s, which the control plane
//! stores once: every line arrives exactly once, in order.
//!
//! [`plan_batch`] is pure (bytes in, ranges out); the driver reads the files and sends.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use serde::{Deserialize, Serialize};
use shared::status::LogStream;
use shared::wire::LogChunkUpload;

/// One chunk's largest raw size.
pub const MAX_CHUNK_BYTES: usize = 256 * 1024;
/// One request's text, under the control plane's 1,000,000-byte cap even when invalid UTF-8
/// bytes grow into replacement characters.
pub const MAX_BATCH_TEXT_BYTES: usize = 600_000;
/// One request's text once escaped as JSON, under the 2 MiB body limit.
pub const MAX_BATCH_JSON_BYTES: usize = 1_800_000;
pub const MAX_CHUNKS_PER_BATCH: usize = 500;

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChunkRange {
    pub seq: i64,
    pub stream: LogStream,
    pub from: u64,
    pub to: u64,
}

/// `ship.json`: how far each file has been taken into chunks, and the batch in flight.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ShipCursor {
    pub next_seq: i64,
    pub stdout: u64,
    pub stderr: u64,
    pub worker: u64,
    /// Taken into chunks but not yet acknowledged by the control plane.
    pub in_flight: Vec<ChunkRange>,
    /// Bytes of stdout and stderr taken so far, counted against the per-run limit.
    pub output_bytes: u64,
    /// The per-run limit stopped stdout/stderr shipping (the files keep everything).
    pub limit_reached: bool,
}

impl Default for ShipCursor {
    fn default() -> Self {
        ShipCursor { next_seq: 1, stdout: 0, stderr: 0, worker: 0, in_flight: Vec::new(), output_bytes: 0, limit_reached: false }
    }
}

impl ShipCursor {
    pub fn offset(&self, stream: LogStream) -> u64 {
        match stream {
            LogStream::Stdout => self.stdout,
            LogStream::Stderr => self.stderr,
            LogStream::Worker => self.worker,
        }
    }

    fn offset_mut(&mut self, stream: LogStream) -> &mut u64 {
        match stream {
            LogStream::Stdout => &mut self.stdout,
            LogStream::Stderr => &mut self.stderr,
            LogStream::Worker => &mut self.worker,
        }
    }

    /// Takes a planned batch into the cursor: offsets and seq move past it.
    pub fn take(&mut self, batch: Vec<ChunkRange>, limit_reached: bool) {
        for chunk in &batch {
            *self.offset_mut(chunk.stream) = chunk.to;
            if chunk.stream != LogStream::Worker {
                self.output_bytes += chunk.to - chunk.from;
            }
            self.next_seq = self.next_seq.max(chunk.seq + 1);
        }
        self.limit_reached |= limit_reached;
        self.in_flight = batch;
    }
}

/// What one file offers after the cursor.
pub struct StreamInput<'a> {
    pub stream: LogStream,
    pub offset: u64,
    pub bytes: &'a [u8],
    /// Ship a trailing partial line too: the writer has exited, or has been quiet a while.
    pub flush_partial: bool,
}

/// Lengths of the chunks `bytes` splits into: each at most `max_chunk` bytes, ending at a
/// newline where there is one, else at a UTF-8 character boundary; a trailing partial line is
/// held back (its writer is probably mid-line) unless `flush_partial` or it fills a chunk.
pub fn cut_chunks(bytes: &[u8], flush_partial: bool, max_chunk: usize) -> Vec<usize> {
    let mut lengths = Vec::new();
    let mut start = 0;
    while start < bytes.len() {
        let rest = &bytes[start..];
        let window = &rest[..rest.len().min(max_chunk)];
        let length = match window.iter().rposition(|byte| *byte == b'\n') {
            Some(newline) if window.len() < rest.len() || !flush_partial => newline + 1,
            _ if window.len() == rest.len() && !flush_partial => break,
            _ if window.len() == rest.len() => window.len(),
            _ => char_boundary_at_or_before(rest, window.len()),
        };
        lengths.push(length);
        start += length;
    }
    lengths
}

/// The largest cut ≤ `at` that does not split a UTF-8 sequence (never 0 for `at` > 0).
fn char_boundary_at_or_before(bytes: &[u8], at: usize) -> usize {
    let mut cut = at;
    while cut > 0 && cut > at.saturating_sub(3) && cut < bytes.len() && (bytes[cut] & 0b1100_0000) == 0b1000_0000 {
        cut -= 1;
    }
    if cut == 0 {
        at
    } else {
        cut
    }
}

/// Bytes `text` takes as a JSON string, quotes included.
pub fn json_string_len(text: &str) -> usize {
    2 + text
        .bytes()
        .map(|byte| match byte {
            b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 2,
            0..=0x1f => 6,
            _ => 1,
        })
        .sum::<usize>()
}

/// The next batch: chunks taken from the streams in turn (so a flood on stdout does not hold
/// stderr back), within one request's budget. `allowance` is how many more stdout/stderr bytes
/// this run may ship; the second value says the allowance cut output off.
pub fn plan_batch(next_seq: i64, inputs: &[StreamInput<'_>], allowance: u64) -> (Vec<ChunkRange>, bool) {
    let mut allowance = allowance;
    let mut limited = false;
    // Per stream: its offset and its chunks' byte ranges, the next one last.
    type Queue = (LogStream, u64, Vec<(u64, u64)>);
    let mut queues: Vec<Queue> = Vec::new();
    for input in inputs {
        let mut bytes = input.bytes;
        let mut flush = input.flush_partial;
        if input.stream != LogStream::Worker && (bytes.len() as u64) > allowance {
            bytes = &bytes[..char_boundary_at_or_before(bytes, allowance as usize).min(allowance as usize)];
            limited = true;
            flush = true;
        }
        let mut at = input.offset;
        let mut ranges = Vec::new();
        for length in cut_chunks(bytes, flush, MAX_CHUNK_BYTES) {
            ranges.push((at, at + length as u64));
            at += length as u64;
        }
        if input.stream != LogStream::Worker {
            allowance -= at - input.offset;
        }
        ranges.reverse();
        queues.push((input.stream, input.offset, ranges));
    }
    let mut batch = Vec::new();
    let (mut text_bytes, mut json_bytes) = (0usize, 0usize);
    let mut seq = next_seq;
    'rounds: loop {
        let mut took_any = false;
        for (stream, base, ranges) in queues.iter_mut() {
            let Some(&(from, to)) = ranges.last() else { continue };
            let input = inputs.iter().find(|input| input.stream == *stream).map(|input| input.bytes).unwrap_or_default();
            let raw = &input[(from - *base) as usize..(to - *base) as usize];
            let text = String::from_utf8_lossy(raw);
            let (text_len, json_len) = (text.len(), json_string_len(&text) + 48);
            let over = text_bytes + text_len > MAX_BATCH_TEXT_BYTES || json_bytes + json_len > MAX_BATCH_JSON_BYTES;
            if (over && !batch.is_empty()) || batch.len() == MAX_CHUNKS_PER_BATCH {
                break 'rounds;
            }
            text_bytes += text_len;
            json_bytes += json_len;
            batch.push(ChunkRange { seq, stream: *stream, from, to });
            seq += 1;
            ranges.pop();
            took_any = true;
        }
        if !took_any {
            break;
        }
    }
    // A limit that cut output off counts only once the cut-off part is really behind us.
    let limited = limited && queues.iter().all(|(stream, _, ranges)| *stream == LogStream::Worker || ranges.is_empty());
    (batch, limited)
}

/// Reads `len` bytes at `from` (fewer if the file is shorter).
pub fn read_range(path: &Path, from: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error),
    };
    let available = file.metadata()?.len().saturating_sub(from);
    file.seek(SeekFrom::Start(from))?;
    let mut bytes = Vec::with_capacity(len.min(available as usize));
    file.take(len as u64).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// The chunks of `ranges` as uploads, read back from the files.
pub fn load_chunks(ranges: &[ChunkRange], path_of: impl Fn(LogStream) -> std::path::PathBuf) -> io::Result<Vec<LogChunkUpload>> {
    ranges
        .iter()
        .map(|range| {
            let bytes = read_range(&path_of(range.stream), range.from, (range.to - range.from) as usize)?;
            if bytes.len() as u64 != range.to - range.from {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, format!("{} shrank below byte {}", range.stream, range.to)));
            }
            Ok(LogChunkUpload { seq: range.seq, stream: range.stream, text: String::from_utf8_lossy(&bytes).into_owned() })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(stream: LogStream, bytes: &[u8], flush_partial: bool) -> StreamInput<'_> {
        StreamInput { stream, offset: 0, bytes, flush_partial }
    }

    #[test]
    fn chunks_end_at_newlines_and_hold_a_partial_line_back() {
        assert_eq!(cut_chunks(b"one\ntwo\nthr", false, 1024), vec![8]);
        assert_eq!(cut_chunks(b"one\ntwo\nthr", true, 1024), vec![11]);
        assert_eq!(cut_chunks(b"partial", false, 1024), Vec::<usize>::new());
        assert_eq!(cut_chunks(b"", true, 1024), Vec::<usize>::new());
        assert_eq!(cut_chunks(b"aa\nbb\ncc\n", false, 4), vec![3, 3, 3]);
    }

    #[test]
    fn a_long_line_is_cut_at_a_character_boundary() {
        let text = "é".repeat(10); // two bytes each
        let lengths = cut_chunks(text.as_bytes(), false, 5);
        // Four characters per chunk; the last four are a partial line, held back.
        assert_eq!(lengths, vec![4, 4, 4, 4]);
        let mut at = 0;
        for length in lengths {
            assert!(text.is_char_boundary(at) && text.is_char_boundary(at + length));
            at += length;
        }
    }

    #[test]
    fn batches_take_streams_in_turn_and_number_chunks_in_order() {
        let stdout = b"a\n".repeat(10);
        let stderr = b"e\n".to_vec();
        let (batch, limited) =
            plan_batch(7, &[input(LogStream::Stdout, &stdout, false), input(LogStream::Stderr, &stderr, false)], u64::MAX);
        assert!(!limited);
        assert_eq!(batch.len(), 2);
        assert_eq!((batch[0].seq, batch[0].stream, batch[0].from, batch[0].to), (7, LogStream::Stdout, 0, 20));
        assert_eq!((batch[1].seq, batch[1].stream, batch[1].from, batch[1].to), (8, LogStream::Stderr, 0, 2));
    }

    #[test]
    fn a_batch_stays_within_one_request() {
        let big = b"x".repeat(MAX_CHUNK_BYTES - 1).into_iter().chain(*b"\n").collect::<Vec<u8>>().repeat(6);
        let (batch, _) = plan_batch(1, &[input(LogStream::Stdout, &big, false)], u64::MAX);
        let total: u64 = batch.iter().map(|chunk| chunk.to - chunk.from).sum();
        assert!(total as usize <= MAX_BATCH_TEXT_BYTES && !batch.is_empty(), "{total}");
        // Control characters count six times once escaped.
        let controls = vec![1u8; 400_000];
        let (batch, _) = plan_batch(1, &[input(LogStream::Stdout, &controls, true)], u64::MAX);
        let total: usize = batch.iter().map(|chunk| (chunk.to - chunk.from) as usize * 6).sum();
        assert!(total <= MAX_BATCH_JSON_BYTES, "{total}");
    }

    #[test]
    fn the_allowance_caps_output_but_not_the_worker_log() {
        let stdout = b"12345\n".repeat(3);
        let worker = b"{\"event\":\"x\"}\n".to_vec();
        let (batch, limited) = plan_batch(1, &[input(LogStream::Stdout, &stdout, false), input(LogStream::Worker, &worker, false)], 8);
        assert!(limited);
        let stdout_bytes: u64 = batch.iter().filter(|chunk| chunk.stream == LogStream::Stdout).map(|chunk| chunk.to - chunk.from).sum();
        assert_eq!(stdout_bytes, 8);
        assert!(batch.iter().any(|chunk| chunk.stream == LogStream::Worker));
    }

    #[test]
    fn the_cursor_moves_past_a_taken_batch() {
        let mut cursor = ShipCursor::default();
        let stdout = b"one\ntwo\n";
        let (batch, _) = plan_batch(cursor.next_seq, &[input(LogStream::Stdout, stdout, false)], u64::MAX);
        cursor.take(batch, false);
        assert_eq!((cursor.next_seq, cursor.stdout, cursor.output_bytes, cursor.in_flight.len()), (2, 8, 8, 1));
    }
}
