//! The shared queue. A service claims the oldest task that is queued, or
//! running under a lease that has expired (its service died or lost the
//! database), with `FOR UPDATE SKIP LOCKED`: services claiming at once
//! each get a different task without waiting on each other. A task taken
//! over is resumed by the taker at its first unfinished step, as
//! `orch run --resume` would.

use super::rows::{queued_row, QUEUE_SELECT};
use super::{json, PostgresStore};
use crate::records::*;
use crate::{now_ms, Result};

impl PostgresStore {
    pub(super) async fn enqueue_row(&self, t: &NewQueuedTask<'_>) -> Result<Option<i64>> {
        let vars = json(t.vars, "the variables")?;
        let needs = needs_json(t.needs)?;
        let id = self
            .row(
                "INSERT INTO queue (task, vars, worktree, state, submitted_ms, needs)
                 SELECT $1, $2, $3, 'queued', $4, $5 WHERE NOT EXISTS (SELECT 1 FROM runs WHERE task = $1)
                 ON CONFLICT (task) DO NOTHING RETURNING id",
                &[&t.task, &vars, &t.worktree, &now_ms(), &needs],
                |r| r.try_get::<_, i64>(0).map_err(|e| super::rows::Bad(e.to_string())),
            )
            .await?;
        Ok(id)
    }

    pub(super) async fn queue_list(&self, state: Option<QueueState>) -> Result<Vec<QueuedTask>> {
        self.rows(
            &format!("{QUEUE_SELECT} WHERE ($1::text IS NULL OR state = $1::text) ORDER BY id"),
            &[&state.map(QueueState::as_str)],
            queued_row,
        )
        .await
    }

    pub(super) async fn queue_one(&self, task: &str) -> Result<Option<QueuedTask>> {
        self.row(
            &format!("{QUEUE_SELECT} WHERE task = $1"),
            &[&task],
            queued_row,
        )
        .await
    }

    /// Claims the next task under this process's lease: tasks taken over
    /// from a dead service first, then the queue in submission order; only
    /// a task whose `needs` are all among `labels` (this service's). The
    /// claim clears `needs`: a taker that lacks a later stage's labels
    /// releases the task again at that stage.
    pub(super) async fn claim(&self, labels: &[String]) -> Result<Option<QueuedTask>> {
        let me = self.me("the queue")?;
        let labels = json(&labels, "the labels")?;
        // A retry of this claim after its connection broke finds the task
        // it took then (`claim_req`), rather than taking a second one.
        let req = super::lease::new_id();
        self.row(
            "WITH prior AS (SELECT id FROM queue WHERE claim_req = $3),
             taken AS (
             UPDATE queue q SET state = 'running', owner = $1, claim_req = $3, needs = NULL,
                 started_ms = CASE WHEN q.state = 'queued' THEN $2 ELSE q.started_ms END
             WHERE NOT EXISTS (SELECT 1 FROM prior) AND q.id = (
                 SELECT c.id FROM queue c
                 WHERE (c.state = 'queued'
                    OR (c.state = 'running' AND NOT EXISTS (
                        SELECT 1 FROM services s WHERE s.id = c.owner AND s.expires_at > clock_timestamp())))
                   AND (c.needs IS NULL OR c.needs::jsonb <@ $4::text::jsonb)
                 ORDER BY (c.state = 'running') DESC, c.id
                 LIMIT 1 FOR UPDATE SKIP LOCKED)
               AND EXISTS (SELECT 1 FROM services s WHERE s.id = $1 AND s.expires_at > clock_timestamp())
             RETURNING q.id, q.task, q.vars, q.worktree, q.state, q.error, q.submitted_ms, q.started_ms, q.finished_ms, q.needs)
             SELECT * FROM taken
             UNION ALL
             SELECT id, task, vars, worktree, state, error, submitted_ms, started_ms, finished_ms, needs
             FROM queue WHERE claim_req = $3 AND id IN (SELECT id FROM prior)",
            &[&me, &now_ms(), &req, &labels],
            queued_row,
        )
        .await
    }

    /// Gives a task this service holds back to the queue, needing `needs`:
    /// only under a live lease, as every move out of `running`.
    pub(super) async fn release_row(&self, task: &str, needs: &[String]) -> Result<bool> {
        let me = self.me(task)?;
        let needs = needs_json(needs)?;
        let changed = self
            .rows(
                "UPDATE queue SET state = 'queued', needs = $2, owner = NULL
                 WHERE task = $1 AND state = 'running' AND owner = $3
                   AND EXISTS (SELECT 1 FROM services s WHERE s.id = $3 AND s.expires_at > clock_timestamp())
                 RETURNING id",
                &[&task, &needs, &me],
                |r| r.try_get::<_, i64>(0).map_err(|e| super::rows::Bad(e.to_string())),
            )
            .await?;
        Ok(changed.len() == 1)
    }

    /// Marks a running task's cancel for its holder, whichever service
    /// that is (any service may ask; the holder settles the task).
    pub(super) async fn request_cancel_row(&self, task: &str) -> Result<bool> {
        let changed = self
            .rows(
                "UPDATE queue SET cancel_requested_ms = coalesce(cancel_requested_ms, $2)
                 WHERE task = $1 AND state = 'running' RETURNING id",
                &[&task, &now_ms()],
                |r| {
                    r.try_get::<_, i64>(0)
                        .map_err(|e| super::rows::Bad(e.to_string()))
                },
            )
            .await?;
        Ok(changed.len() == 1)
    }

    /// The running tasks this service holds whose cancel was asked for.
    pub(super) async fn cancel_request_rows(&self) -> Result<Vec<String>> {
        let me = self.me("the cancel requests")?;
        self.rows(
            "SELECT task FROM queue
             WHERE owner = $1 AND state = 'running' AND cancel_requested_ms IS NOT NULL
             ORDER BY id",
            &[&me],
            |r| {
                r.try_get::<_, String>(0)
                    .map_err(|e| super::rows::Bad(e.to_string()))
            },
        )
        .await
    }

    /// Moves a task between states. Out of `running` only by the service
    /// that holds it under a live lease: a stale service cannot settle a
    /// task another took over.
    pub(super) async fn move_queued_row(
        &self,
        task: &str,
        from: QueueState,
        to: QueueState,
        error: Option<&str>,
    ) -> Result<bool> {
        let me = self.me(task)?;
        let at = now_ms();
        let (started, finished) = match to {
            QueueState::Queued | QueueState::Waiting => (None, None),
            QueueState::Running => (Some(at), None),
            QueueState::Finished | QueueState::Failed | QueueState::Cancelled => (None, Some(at)),
        };
        let changed = self
            .rows(
                "UPDATE queue SET state = $3, error = $4,
                     started_ms = coalesce($5, started_ms), finished_ms = coalesce($6, finished_ms),
                     owner = CASE WHEN $3 = 'running' THEN $7 WHEN $3 = 'queued' THEN NULL ELSE owner END
                 WHERE task = $1 AND state = $2
                   AND ($2 <> 'running' OR owner = $7)
                   AND EXISTS (SELECT 1 FROM services s WHERE s.id = $7 AND s.expires_at > clock_timestamp())
                 RETURNING id",
                &[
                    &task,
                    &from.as_str(),
                    &to.as_str(),
                    &error,
                    &started,
                    &finished,
                    &me,
                ],
                |r| r.try_get::<_, i64>(0).map_err(|e| super::rows::Bad(e.to_string())),
            )
            .await?;
        Ok(changed.len() == 1)
    }
}

/// What a task needs as stored: a JSON list, NULL for none.
fn needs_json(needs: &[String]) -> Result<Option<String>> {
    if needs.is_empty() {
        return Ok(None);
    }
    json(needs, "the labels").map(Some)
}
