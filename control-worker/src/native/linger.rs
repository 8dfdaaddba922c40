//! Lingering close, as nginx does it: a request answered before its body was read (401, 403,
//! 404, 413 from its head, or a body larger than allowed) leaves the client still sending.
//! Closing the socket then would make the kernel answer the unread bytes with a reset, and a
//! client that writes its whole body before reading (Python's urllib, most HTTP libraries) gets
//! `Broken pipe` or `Connection reset` instead of the answer it was sent. So the server half-closes
//! (its answer is complete), then reads and discards what still comes — until the client closes,
//! nothing comes for [`LINGER_IDLE`], or [`LINGER_TOTAL`] has passed — and only then closes.
//! Discarded bytes go through one buffer shared by every lingering connection: memory stays
//! flat however many linger.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// nginx's `lingering_timeout` and `lingering_time`.
pub const LINGER_IDLE: Duration = Duration::from_secs(5);
pub const LINGER_TOTAL: Duration = Duration::from_secs(30);

thread_local! {
    static DISCARD: RefCell<Vec<u8>> = RefCell::new(vec![0; 64 * 1024]);
}

/// Reads and discards until the client closes, goes quiet, the total time is up, or `stop()`
/// says so (the connection was evicted); then drops the socket.
pub async fn linger(mut stream: TcpStream, stop: impl Fn() -> bool) {
    let _ = stream.shutdown().await;
    let until = Instant::now() + LINGER_TOTAL;
    while !stop() {
        let wait = LINGER_IDLE.min(until.saturating_duration_since(Instant::now()));
        if wait.is_zero() || tokio::time::timeout(wait, stream.readable()).await.is_err() {
            return;
        }
        // Borrowed only for this synchronous read: never across an await.
        let read = DISCARD.with(|buffer| stream.try_read(&mut buffer.borrow_mut()));
        match read {
            Ok(0) => return,
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => return,
        }
    }
}
