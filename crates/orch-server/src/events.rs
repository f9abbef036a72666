//! A task's engine events: logged through `tracing`, and kept on the board
//! (stage, attempt, waiting), which frees the task's worker while it waits
//! for a serial stage.

use std::sync::Arc;

use orch_engine::events::{Event, Sink};

use crate::board::Board;

pub struct TaskSink {
    pub task: String,
    pub board: Arc<Board>,
}

impl Sink for TaskSink {
    fn event(&mut self, e: &Event) {
        let task = self.task.as_str();
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
