//! The control plane as a Cloudflare Worker (wasm32 only).
//!
//! - [`d1`]: the core's `Db` trait on a D1 binding (a batch is one D1 batch).
//! - [`r2`]: the core's `Blobs` on an R2 bucket binding (ranged reads).
//! - [`platform`]: the Worker clock (`worker::Date`) and randomness (`Math.random`).
//! - [`glue`]: `#[event(fetch)]`: Worker request → `Core::handle` → Worker response; and
//!   `#[event(scheduled)]`: the Cron Trigger runs one slice of storage upkeep (SPEC §17).
//! - [`test_clock`]: the opt-in manual clock the black-box suite moves (tests only).
//!
//! The glue is thin on purpose: no business rule lives here, so the Worker answers exactly
//! like `control-local`.
#![cfg(target_arch = "wasm32")]

mod d1;
mod glue;
mod platform;
mod r2;
mod test_clock;
