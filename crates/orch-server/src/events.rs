//! A task's engine events: logged through `tracing`, and kept on the board
//! (stage, attempt, waiting), which frees the task's worker while it waits
//! for a serial stage; and published, as `orch run --json` prints them
//! with the task's name, to the clients of `GET /api/v1/events`.

use std::sync::Arc;

use orch_engine::events::{Event, Sink};
use tokio::sync::{broadcast, watch};

use crate::board::Board;

/// How many events the broadcast keeps for a slow client before it lags.
pub(crate) const EVENT_BUFFER: usize = 4096;

/// The events of every task, as JSON objects (one line each).
pub(crate) type Feed = broadcast::Sender<Arc<str>>;

/// What a client of the event stream reads next.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Item {
    /// An event, as [`event_json`] wrote it.
    Event(Arc<str>),
    /// The client fell behind by more than [`EVENT_BUFFER`] events: this
    /// many of the oldest were dropped for it.
    Lagged(u64),
}

/// The feed as one client reads it: every event in order, a [`Item::Lagged`]
/// where events were lost to its slowness, the rest after it; it ends when
/// the service closes (`closing` turns true) or the feed does.
pub(crate) fn client_stream(
    rx: broadcast::Receiver<Arc<str>>,
    closing: watch::Receiver<bool>,
) -> impl futures_util::Stream<Item = Item> {
    use broadcast::error::RecvError;
    futures_util::stream::unfold((rx, closing), |(mut rx, mut closing)| async move {
        let received = tokio::select! {
            r = rx.recv() => r,
            _ = closing.wait_for(|c| *c) => return None,
        };
        let item = match received {
            Ok(line) => Item::Event(line),
            Err(RecvError::Lagged(n)) => Item::Lagged(n),
            Err(RecvError::Closed) => return None,
        };
        Some((item, (rx, closing)))
    })
}

pub(crate) struct TaskSink {
    pub(crate) task: String,
    pub(crate) board: Arc<Board>,
    pub(crate) feed: Feed,
}

/// Every engine event of a task in the service's log (`tracing`).
fn log(task: &str, e: &Event) {
    match e {
        Event::RunStarted {
            run_id, resumed, ..
        } => tracing::info!(task, run_id, resumed, "run started"),
        Event::AttemptStarted {
            stage,
            attempt,
            producer,
            name,
            ..
        } => tracing::info!(task, stage, attempt, producer, name, "attempt started"),
        Event::AttemptFinished {
            stage,
            attempt,
            verdict,
            exit,
            duration_ms,
            ..
        } => tracing::info!(
            task,
            stage,
            attempt,
            verdict,
            exit,
            duration_ms,
            "attempt finished"
        ),
        Event::Deferred {
            stage,
            attempt,
            reason,
            delay_ms,
            ..
        } => tracing::info!(task, stage, attempt, reason, delay_ms, "deferred"),
        Event::Gate {
            stage,
            pass,
            reason,
            ..
        } => tracing::info!(task, stage, pass, reason, "gate"),
        Event::Transition { from, kind, to, .. } => {
            tracing::info!(task, from, kind, to, "transition")
        }
        Event::Alert {
            stage, alert, ok, ..
        } => tracing::info!(task, stage, alert, ok, "alert"),
        Event::Waiting { stage, reason } => tracing::info!(task, stage, reason, "waiting"),
        Event::Acquired { stage } => tracing::info!(task, stage, "took serial stage"),
        Event::Note { message } => tracing::info!(task, message, "note"),
        Event::RunFinished {
            outcome,
            end,
            duration_ms,
            ..
        } => tracing::info!(task, outcome, end, duration_ms, "run finished"),
        Event::AlreadyFinished { outcome, end, .. } => {
            tracing::info!(task, outcome, end, "already finished")
        }
    }
}

/// The event as `orch run --json` prints it, with `task` added.
pub(crate) fn event_json(task: &str, e: &Event) -> Option<String> {
    let mut v = serde_json::to_value(e).ok()?;
    if let serde_json::Value::Object(map) = &mut v {
        map.entry("task")
            .or_insert_with(|| serde_json::Value::String(task.to_string()));
    }
    serde_json::to_string(&v).ok()
}

impl Sink for TaskSink {
    fn event(&mut self, e: &Event) {
        let task = self.task.as_str();
        // Never blocks: with no client the event is dropped, and a client
        // that falls behind lags.
        if self.feed.receiver_count() > 0 {
            if let Some(line) = event_json(task, e) {
                let _ = self.feed.send(line.into());
            }
        }
        log(task, e);
        self.update_board(e);
    }
}

impl TaskSink {
    /// What the service's board knows of a running task, from its events.
    fn update_board(&mut self, e: &Event) {
        let task = self.task.as_str();
        let mut b = self.board.lock();
        let draining = b.draining;
        let Some(live) = b.running.get_mut(task) else {
            return;
        };
        match e {
            Event::AttemptStarted { stage, attempt, .. } => {
                live.stage = Some(stage.clone());
                live.attempt = Some(*attempt);
                live.attempt_running = true;
                live.waiting = None;
            }
            Event::AttemptFinished { .. } => {
                live.attempt_running = false;
                // Draining: the attempt finished; the task stops at the
                // next step, resumable.
                if draining {
                    let _ = live.cancel.send(true);
                }
            }
            Event::Waiting { stage, reason } => {
                live.stage = Some(stage.clone());
                live.attempt = None;
                live.waiting = Some((stage.clone(), reason.clone()));
                // A draining service starts nothing new: a task that would
                // wait is stopped here, resumable.
                if draining {
                    let _ = live.cancel.send(true);
                }
                drop(b);
                self.board.wake();
            }
            Event::Acquired { stage } => {
                live.stage = Some(stage.clone());
                live.waiting = None;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    fn line(s: &str) -> Item {
        Item::Event(Arc::from(s))
    }

    #[tokio::test]
    async fn a_client_that_falls_behind_reads_how_many_it_lost_then_the_rest() {
        let (feed, rx) = broadcast::channel(2);
        let (close, closing) = watch::channel(false);
        let mut stream = std::pin::pin!(client_stream(rx, closing));
        for i in 0..5 {
            feed.send(Arc::from(format!("e{i}"))).unwrap();
        }
        assert_eq!(stream.next().await, Some(Item::Lagged(3)));
        assert_eq!(stream.next().await, Some(line("e3")));
        assert_eq!(stream.next().await, Some(line("e4")));
        // Caught up: it reads new events as they come.
        feed.send(Arc::from("e5")).unwrap();
        assert_eq!(stream.next().await, Some(line("e5")));
        close.send_replace(true);
        assert_eq!(
            stream.next().await,
            None,
            "the stream ends with the service"
        );
    }

    #[tokio::test]
    async fn the_stream_ends_when_the_feed_does() {
        let (feed, rx) = broadcast::channel::<Arc<str>>(2);
        let (_close, closing) = watch::channel(false);
        let mut stream = std::pin::pin!(client_stream(rx, closing));
        feed.send(Arc::from("last")).unwrap();
        drop(feed);
        assert_eq!(stream.next().await, Some(line("last")));
        assert_eq!(stream.next().await, None);
    }
}
