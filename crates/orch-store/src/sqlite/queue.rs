//! The service's durable queue: a row per submitted task, in submission
//! order. Each change is one statement or one transaction under one hold
//! of the connection, so two workers can never take the same task.

use rusqlite::params;

use super::rows::{queued_row, QUEUE_SELECT};
use super::SqliteStore;
use crate::records::*;
use crate::{now_ms, Result, StoreError};

impl SqliteStore {
    pub(super) fn enqueue_tx(&self, t: &NewQueuedTask<'_>) -> Result<Option<i64>> {
        let vars = serde_json::to_string(t.vars).map_err(|source| StoreError::Encode {
            what: "the variables",
            source,
        })?;
        let needs = needs_json(t.needs)?;
        let conn = self.conn();
        // Immediate: the check and the insert see and leave one state.
        let tx =
            rusqlite::Transaction::new_unchecked(&conn, rusqlite::TransactionBehavior::Immediate)
                .map_err(|e| self.err(e))?;
        let exists: bool = tx
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM queue WHERE task = ?1)
                     OR EXISTS (SELECT 1 FROM runs WHERE task = ?1)",
                [t.task],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))?;
        if exists {
            return Ok(None);
        }
        tx.execute(
            "INSERT INTO queue (task, vars, worktree, state, submitted_ms, needs) VALUES (?1, ?2, ?3, 'queued', ?4, ?5)",
            params![t.task, vars, t.worktree, now_ms(), needs],
        )
        .map_err(|e| self.err(e))?;
        let id = tx.last_insert_rowid();
        tx.commit().map_err(|e| self.err(e))?;
        Ok(Some(id))
    }

    pub(super) fn queue_list(&self, state: Option<QueueState>) -> Result<Vec<QueuedTask>> {
        self.all(
            &format!("{QUEUE_SELECT} WHERE (?1 IS NULL OR state = ?1) ORDER BY id"),
            [state.map(QueueState::as_str)],
            queued_row,
        )
    }

    pub(super) fn queue_one(&self, task: &str) -> Result<Option<QueuedTask>> {
        self.one(
            &format!("{QUEUE_SELECT} WHERE task = ?1"),
            [task],
            queued_row,
        )
    }

    /// The oldest queued task whose needs are all among `labels`. The one
    /// service of an SQLite store filters here, as the PostgreSQL claim does
    /// in its statement; the queued rows are read in order until one fits.
    pub(super) fn take_queued_tx(&self, labels: &[String]) -> Result<Option<QueuedTask>> {
        let conn = self.conn();
        let tx =
            rusqlite::Transaction::new_unchecked(&conn, rusqlite::TransactionBehavior::Immediate)
                .map_err(|e| self.err(e))?;
        let next = {
            let mut stmt = tx
                .prepare_cached(&format!(
                    "{QUEUE_SELECT} WHERE state = 'queued' ORDER BY id"
                ))
                .map_err(|e| self.err(e))?;
            let mut rows = stmt.query([]).map_err(|e| self.err(e))?;
            let mut found = None;
            while let Some(row) = rows.next().map_err(|e| self.err(e))? {
                let t = queued_row(row).map_err(|e| self.err(e))?;
                if crate::records::holds_all(labels, &t.needs) {
                    found = Some(t);
                    break;
                }
            }
            found
        };
        let Some(mut next) = next else {
            return Ok(None);
        };
        let at = now_ms();
        tx.execute(
            "UPDATE queue SET state = 'running', started_ms = ?2, needs = NULL WHERE id = ?1",
            params![next.id, at],
        )
        .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        next.state = QueueState::Running;
        next.started_ms = Some(at);
        next.needs = Vec::new();
        Ok(Some(next))
    }

    pub(super) fn release_queued_row(&self, task: &str, needs: &[String]) -> Result<bool> {
        let needs = needs_json(needs)?;
        let changed = self
            .conn()
            .execute(
                "UPDATE queue SET state = 'queued', needs = ?2 WHERE task = ?1 AND state = 'running'",
                params![task, needs],
            )
            .map_err(|e| self.err(e))?;
        Ok(changed == 1)
    }

    pub(super) fn move_queued_row(
        &self,
        task: &str,
        from: QueueState,
        to: QueueState,
        error: Option<&str>,
    ) -> Result<bool> {
        let at = now_ms();
        let (started, finished) = match to {
            QueueState::Queued | QueueState::Waiting => (None, None),
            QueueState::Running => (Some(at), None),
            QueueState::Finished | QueueState::Failed | QueueState::Cancelled => (None, Some(at)),
        };
        let changed = self
            .conn()
            .prepare_cached(
                "UPDATE queue SET state = ?3, error = ?4,
                     started_ms = coalesce(?5, started_ms), finished_ms = coalesce(?6, finished_ms)
                 WHERE task = ?1 AND state = ?2",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![
                    task,
                    from.as_str(),
                    to.as_str(),
                    error,
                    started,
                    finished
                ])
            })
            .map_err(|e| self.err(e))?;
        Ok(changed == 1)
    }
}

/// What a task needs as stored: a JSON list, NULL for none.
fn needs_json(needs: &[String]) -> Result<Option<String>> {
    if needs.is_empty() {
        return Ok(None);
    }
    serde_json::to_string(needs)
        .map(Some)
        .map_err(|source| StoreError::Encode {
            what: "the labels",
            source,
        })
}
