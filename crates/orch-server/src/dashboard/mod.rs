//! The dashboard: HTML pages served at `/`, rendered on the server from
//! templates compiled into the binary ([maud], which escapes every value it
//! interpolates: task names, logs and artifacts are untrusted), with every
//! asset embedded, so it works with no network at all.
//!
//! [`queue`] is `/`, [`task`] is `/tasks/{task}` (and the Cancel form),
//! [`pipeline`] is `/pipeline`; [`layout`] is the page shell and the
//! embedded assets; [`access`] applies the API's token rule to the pages.
//! JavaScript only keeps the pages current from `GET /api/v1/events`.

mod access;
mod layout;
mod pipeline;
mod queue;
mod task;

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;

use crate::scheduler::App;
use crate::Store;

/// The dashboard's routes, guarded by [`access::guard`]; the API's router
/// merges them.
pub(crate) fn routes<S: Store>(app: Arc<App<S>>) -> Router<Arc<App<S>>> {
    Router::new()
        .route("/", get(queue::page::<S>))
        .route("/rows/{task}", get(queue::row::<S>))
        .route("/tasks/{task}", get(task::page::<S>))
        .route("/tasks/{task}/cancel", post(task::cancel::<S>))
        .route("/tasks/{task}/approval", post(task::approval::<S>))
        .route("/tasks/{task}/logs/{stage}/{attempt}", get(task::log::<S>))
        .route("/pipeline", get(pipeline::page::<S>))
        .route("/assets/dashboard.css", get(layout::css))
        .route("/assets/dashboard.js", get(layout::js))
        .layer(axum::middleware::from_fn_with_state(
            app,
            access::guard::<S>,
        ))
}

/// A one-line JSON event for the stream when the queue changes without an
/// engine event (a submission, a queued task cancelled), so that open
/// dashboards show it at once.
pub(crate) fn queue_event<S: Store>(app: &App<S>, task: &str, state: orch_store::QueueState) {
    if app.feed.receiver_count() > 0 {
        let line = serde_json::json!({ "event": "queued", "task": task, "state": state.as_str() });
        let _ = app.feed.send(line.to_string().into());
    }
}
