//! One shutdown signal for every loop and server of the agent: the conductor, the runner, the
//! status server and the embedded control plane all wait on a [`Shutdown`]; whoever holds the
//! [`Trigger`] (SIGINT/SIGTERM in the binary, a test in a test) pulls it once.

use tokio::sync::watch;

/// Waits for the shutdown; cheap to clone, one per loop.
#[derive(Clone, Debug)]
pub struct Shutdown {
    receiver: watch::Receiver<bool>,
}

/// Pulls the shutdown, once, for every [`Shutdown`] of its channel.
#[derive(Debug)]
pub struct Trigger {
    sender: watch::Sender<bool>,
}

pub fn channel() -> (Trigger, Shutdown) {
    let (sender, receiver) = watch::channel(false);
    (Trigger { sender }, Shutdown { receiver })
}

impl Trigger {
    pub fn trigger(&self) {
        let _ = self.sender.send(true);
    }
}

impl Shutdown {
    pub fn is_triggered(&self) -> bool {
        *self.receiver.borrow()
    }

    /// Resolves once the shutdown is triggered (at once if it already was, or if the trigger
    /// is gone).
    pub async fn wait(mut self) {
        let _ = self.receiver.wait_for(|triggered| *triggered).await;
    }
}

/// Pulls `trigger` on SIGINT or SIGTERM, from a small thread of its own (the agent's runtime
/// is single-threaded and busy with the agent).
pub fn on_signal(trigger: Trigger) {
    let spawned = std::thread::Builder::new().name("signals".into()).spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
        runtime.block_on(control_worker::native::shutdown_signal());
        crate::log::log!("shutdown signal received");
        trigger.trigger();
    });
    if let Err(error) = spawned {
        crate::log::log!("warning: no signal handling: {error}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_clone_sees_the_one_trigger() {
        let (trigger, shutdown) = channel();
        let (first, second) = (shutdown.clone(), shutdown.clone());
        assert!(!first.is_triggered());
        trigger.trigger();
        first.wait().await;
        assert!(second.is_triggered());
        second.wait().await;
        drop(trigger);
        shutdown.wait().await;
    }
}
