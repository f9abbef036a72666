//! Approval requests and decisions. A decision is one transaction that
//! checks the request (exists, undecided, not expired) and inserts, so two
//! deciders racing can never both be recorded; the UNIQUE request id holds
//! that even against another process.

use rusqlite::{params, OptionalExtension};

use super::rows::{approval_row, APPROVAL_SELECT};
use super::{json, SqliteStore};
use crate::records::*;
use crate::Result;

impl SqliteStore {
    pub(super) fn request_approval_tx(&self, r: &NewApprovalRequest<'_>) -> Result<i64> {
        let approvers = json(r.approvers, "the approvers")?;
        let show = json(r.show, "the shown artifacts")?;
        self.check_identity()?;
        let conn = self.conn();
        let tx =
            rusqlite::Transaction::new_unchecked(&conn, rusqlite::TransactionBehavior::Immediate)
                .map_err(|e| self.err(e))?;
        tx.execute(
            "INSERT OR IGNORE INTO approval_requests
                 (run_id, attempt_id, task, stage, approval, approvers, show, requested_ms, expires_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                r.run_id,
                r.attempt_id,
                r.task,
                r.stage,
                r.approval,
                approvers,
                show,
                r.requested_ms,
                r.expires_ms
            ],
        )
        .map_err(|e| self.err(e))?;
        let id: i64 = tx
            .query_row(
                "SELECT id FROM approval_requests WHERE attempt_id = ?1",
                [r.attempt_id],
                |row| row.get(0),
            )
            .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(id)
    }

    pub(super) fn approvals_of(&self, task: Option<&str>) -> Result<Vec<Approval>> {
        self.all(
            &format!("{APPROVAL_SELECT} WHERE (?1 IS NULL OR r.task = ?1) ORDER BY r.id"),
            [task],
            approval_row,
        )
    }

    pub(super) fn approval_of_attempt_row(&self, attempt_id: i64) -> Result<Option<Approval>> {
        self.one(
            &format!("{APPROVAL_SELECT} WHERE r.attempt_id = ?1"),
            [attempt_id],
            approval_row,
        )
    }

    pub(super) fn decide_tx(
        &self,
        request_id: i64,
        d: &NewDecision<'_>,
    ) -> Result<DecisionOutcome> {
        self.check_identity()?;
        let conn = self.conn();
        // Immediate: the checks and the insert see and leave one state.
        let tx =
            rusqlite::Transaction::new_unchecked(&conn, rusqlite::TransactionBehavior::Immediate)
                .map_err(|e| self.err(e))?;
        let found = tx
            .query_row(
                &format!("{APPROVAL_SELECT} WHERE r.id = ?1"),
                [request_id],
                approval_row,
            )
            .optional()
            .map_err(|e| self.err(e))?;
        let Some(found) = found else {
            return Ok(DecisionOutcome::NoRequest);
        };
        if let Some(first) = found.decision {
            return Ok(DecisionOutcome::AlreadyDecided(first));
        }
        if d.at_ms >= found.request.expires_ms {
            return Ok(DecisionOutcome::Expired);
        }
        tx.execute(
            "INSERT INTO approval_decisions (request_id, decision, decider, comment, at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                request_id,
                d.decision.as_str(),
                d.decider,
                d.comment,
                d.at_ms
            ],
        )
        .map_err(|e| self.err(e))?;
        let id = tx.last_insert_rowid();
        tx.commit().map_err(|e| self.err(e))?;
        Ok(DecisionOutcome::Recorded(id))
    }
}
