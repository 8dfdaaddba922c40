//! Telling a person (SPEC §13): while this host leads, the event feed is delivered to
//! `BAA_NOTIFY_WEBHOOK` (a JSON POST with a one-line `text`, as chat webhooks expect, and the
//! event itself), at least once and in order, and on a Mac to the desktop when
//! `BAA_NOTIFY_DESKTOP=true`.
//!
//! The events come with the leader's syncs ([`Feed`]: no request of its own); a separate task
//! delivers them ([`deliver`]), retrying a failed POST with backoff and never holding up a sync.
//! How far it got goes back with the next sync and is kept by the control plane, so the next
//! leader goes on from there.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use shared::wire::FeedEvent;
use tokio::sync::mpsc;

use crate::log::log;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct NotifyConfig {
    pub webhook: Option<String>,
    pub desktop: bool,
}

impl NotifyConfig {
    pub fn enabled(&self) -> bool {
        self.webhook.is_some() || self.desktop
    }
}

/// The conductor's side: what to ask the next sync for, and the events handed to [`deliver`].
pub struct Feed {
    sender: mpsc::UnboundedSender<FeedEvent>,
    /// The last event handed over for delivery.
    queued_through: i64,
    /// The last event delivered, as [`deliver`] records it.
    delivered: Rc<Cell<i64>>,
    /// What the control plane says any leader delivered; `None` before the first answer.
    notified_through: Option<i64>,
}

/// A feed and the delivery task's end of it.
pub fn feed() -> (Feed, mpsc::UnboundedReceiver<FeedEvent>, Rc<Cell<i64>>) {
    let (sender, receiver) = mpsc::unbounded_channel();
    let delivered = Rc::new(Cell::new(0));
    (Feed { sender, queued_through: 0, delivered: delivered.clone(), notified_through: None }, receiver, delivered)
}

impl Feed {
    /// `(events_after, events_delivered)` for a sync of the leader: nothing before the control
    /// plane said where delivery stands.
    pub fn ask(&self) -> (Option<i64>, Option<i64>) {
        let Some(notified) = self.notified_through else { return (None, None) };
        let delivered = self.delivered.get();
        (Some(self.queued_through.max(notified)), (delivered > notified).then_some(delivered))
    }

    /// A sync's answer: where delivery stands, and the next events.
    pub fn take(&mut self, notified_through: i64, events: &[FeedEvent]) {
        self.notified_through = Some(self.notified_through.unwrap_or(0).max(notified_through));
        // Another leader may have delivered further meanwhile.
        self.queued_through = self.queued_through.max(notified_through);
        for event in events {
            if event.event_id > self.queued_through {
                self.queued_through = event.event_id;
                let _ = self.sender.send(event.clone());
            }
        }
    }
}

/// How long to wait before the next try of a delivery that failed `failures` times in a row.
pub fn backoff(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.min(5)).min(Duration::from_secs(30))
}

/// Delivers the events in order, each until it is accepted (a 2xx answer), then records it.
pub async fn deliver(config: NotifyConfig, mut events: mpsc::UnboundedReceiver<FeedEvent>, delivered: Rc<Cell<i64>>) {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap_or_default();
    while let Some(event) = events.recv().await {
        if let Some(url) = &config.webhook {
            let body = serde_json::json!({"text": event.text(), "event": event}).to_string();
            let mut failures = 0;
            loop {
                match client.post(url).header("content-type", "application/json").body(body.clone()).send().await {
                    Ok(response) if response.status().is_success() => break,
                    Ok(response) => log!("notify: event {} not taken by the webhook: HTTP {}", event.event_id, response.status()),
                    Err(error) => log!("notify: event {} not delivered: {}", event.event_id, without_url(&error)),
                }
                tokio::time::sleep(backoff(failures)).await;
                failures += 1;
            }
        }
        if config.desktop && !crate::platform::desktop_notification("baa-conductor", &event.text()) {
            log!("notify: no desktop notification on this platform");
        }
        delivered.set(delivered.get().max(event.event_id));
    }
}

/// A client error without its URL: a webhook's URL is a secret of its own.
fn without_url(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    if let Some(url) = error.url() {
        text = text.replace(url.as_str(), "(the webhook)");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(event_id: i64) -> FeedEvent {
        FeedEvent {
            event_id,
            kind: "task_created".into(),
            task_id: Some("t".into()),
            subject: "T".into(),
            message: "created (shell)".into(),
            created_at: 0,
        }
    }

    #[test]
    fn the_feed_asks_from_where_delivery_stands_and_hands_each_event_over_once() {
        let (mut feed, mut receiver, delivered) = feed();
        assert_eq!(feed.ask(), (None, None), "nothing before the control plane said where delivery stands");
        feed.take(5, &[]);
        assert_eq!(feed.ask(), (Some(5), None));
        feed.take(5, &[event(6), event(7)]);
        feed.take(5, &[event(7), event(8)]);
        let handed: Vec<i64> = std::iter::from_fn(|| receiver.try_recv().ok()).map(|event| event.event_id).collect();
        assert_eq!(handed, [6, 7, 8], "in order, once each");
        assert_eq!(feed.ask(), (Some(8), None));
        delivered.set(7);
        assert_eq!(feed.ask(), (Some(8), Some(7)), "delivery goes back with the next sync");
        feed.take(20, &[]);
        assert_eq!(feed.ask(), (Some(20), None), "another leader got further");
    }

    #[test]
    fn retries_back_off_to_half_a_minute() {
        assert_eq!([0, 1, 2, 5, 9].map(|failures| backoff(failures).as_secs()), [1, 2, 4, 30, 30]);
    }
}
