//! The native counterpart of the Worker's Cron Trigger: a timer that runs the core's storage
//! upkeep ([`crate::core::maintenance::run_slice`]) every interval, slice after slice while
//! work remains (bounded per tick), beside the server it belongs to.

use std::rc::Rc;
use std::time::Duration;

use crate::core::blobs::Blobs;
use crate::core::clock::{Clock, Random};
use crate::core::db::Db;
use crate::core::maintenance::run_slice;
use crate::core::Core;

/// Slices one tick may run back to back before it waits for the next tick.
const SLICES_PER_TICK: usize = 50;

/// Runs until dropped (the server aborts it when it stops).
pub async fn run_timer<D, C, R, B>(core: Rc<Core<D, C, R, B>>, interval: Duration, log: bool)
where
    D: Db,
    C: Clock,
    R: Random,
    B: Blobs,
{
    loop {
        tokio::time::sleep(interval).await;
        for _ in 0..SLICES_PER_TICK {
            match run_slice(&core).await {
                Ok(report) => {
                    if log && report.did_something() {
                        eprintln!("{}", report.summary());
                    }
                    if !report.more {
                        break;
                    }
                }
                Err(error) => {
                    // Nothing is lost: the rows stay until an object is verified. Next tick retries.
                    eprintln!("storage upkeep failed: {} ({})", error.message, error.internal.unwrap_or_default());
                    break;
                }
            }
            tokio::task::yield_now().await;
        }
    }
}
