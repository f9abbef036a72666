//! Approval requests and decisions. A request is written by the service
//! holding the task (under its fence); a decision by whoever a person asked
//! (any service, `orch approve`), unfenced: the UNIQUE request id lets only
//! the first decision in, and expiry is checked in the same statement.

use super::rows::{approval_row, Bad, APPROVAL_SELECT};
use super::{fenced_or, json, lease, PostgresStore, RUN_TASK};
use crate::records::*;
use crate::Result;

impl PostgresStore {
    pub(super) async fn request_approval_row(&self, r: &NewApprovalRequest<'_>) -> Result<i64> {
        let me = self.me(r.task)?;
        let approvers = json(r.approvers, "the approvers")?;
        let show = json(r.show, "the shown artifacts")?;
        // A second request for the same attempt (a resumed run asks again,
        // or a retry after a broken connection) finds the first.
        let sql = fenced_or(
            RUN_TASK,
            "$10::text",
            "INSERT INTO approval_requests
                 (run_id, attempt_id, task, stage, approval, approvers, show, requested_ms, expires_ms)
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9 WHERE (SELECT ok FROM ok)
             ON CONFLICT (attempt_id) DO NOTHING RETURNING id",
            "(SELECT id FROM approval_requests WHERE attempt_id = $2)",
        );
        let id = self
            .write(
                r.task,
                &sql,
                &[
                    &r.run_id,
                    &r.attempt_id,
                    &r.task,
                    &r.stage,
                    &r.approval,
                    &approvers,
                    &show,
                    &r.requested_ms,
                    &r.expires_ms,
                    &me,
                ],
            )
            .await?;
        id.ok_or_else(|| {
            self.inner
                .fenced(r.task, "the approval request was not recorded")
        })
    }

    pub(super) async fn approvals_of(&self, task: Option<&str>) -> Result<Vec<Approval>> {
        self.rows(
            &format!(
                "{APPROVAL_SELECT} WHERE ($1::text IS NULL OR r.task = $1::text) ORDER BY r.id"
            ),
            &[&task],
            approval_row,
        )
        .await
    }

    pub(super) async fn approval_of_attempt_row(
        &self,
        attempt_id: i64,
    ) -> Result<Option<Approval>> {
        self.row(
            &format!("{APPROVAL_SELECT} WHERE r.attempt_id = $1"),
            &[&attempt_id],
            approval_row,
        )
        .await
    }

    pub(super) async fn decide_row(
        &self,
        request_id: i64,
        d: &NewDecision<'_>,
    ) -> Result<DecisionOutcome> {
        // `req` tells a retry of this statement (its connection broke after
        // the commit) that the decision it finds is its own.
        let req = lease::new_id();
        let written = self
            .row(
                "WITH r AS (SELECT id, expires_ms FROM approval_requests WHERE id = $1),
                 ins AS (
                     INSERT INTO approval_decisions (request_id, decision, decider, comment, at_ms, req)
                     SELECT r.id, $2, $3, $4, $5, $6 FROM r WHERE $5 < r.expires_ms
                     ON CONFLICT (request_id) DO NOTHING RETURNING id)
                 SELECT (SELECT count(*) FROM r),
                        coalesce((SELECT id FROM ins),
                                 (SELECT id FROM approval_decisions WHERE req = $6))",
                &[
                    &request_id,
                    &d.decision.as_str(),
                    &d.decider,
                    &d.comment,
                    &d.at_ms,
                    &req,
                ],
                |row| {
                    let bad = |e: tokio_postgres::Error| Bad(e.to_string());
                    let found: i64 = row.try_get(0).map_err(bad)?;
                    let id: Option<i64> = row.try_get(1).map_err(bad)?;
                    Ok((found, id))
                },
            )
            .await?;
        match written {
            None | Some((0, _)) => Ok(DecisionOutcome::NoRequest),
            Some((_, Some(id))) => Ok(DecisionOutcome::Recorded(id)),
            Some((_, None)) => {
                // Nothing written: decided before, or too late.
                let found = self
                    .row(
                        &format!("{APPROVAL_SELECT} WHERE r.id = $1"),
                        &[&request_id],
                        approval_row,
                    )
                    .await?;
                Ok(match found.and_then(|a| a.decision) {
                    Some(first) => DecisionOutcome::AlreadyDecided(first),
                    None => DecisionOutcome::Expired,
                })
            }
        }
    }
}
