//! Who may see the pages: the API's rule (reads are open while the service
//! listens on loopback, else they need the token). The Cancel form is a
//! browser's POST, which cannot carry an `Authorization` header: its
//! handler checks the token typed into the form instead, and refuses
//! without it.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use crate::scheduler::App;
use crate::Store;

use super::layout;

pub(crate) async fn guard<S: Store>(
    State(app): State<Arc<App<S>>>,
    req: Request,
    next: Next,
) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let read = method == Method::GET || method == Method::HEAD;
    let token = app.token.admits(
        req.headers()
            .get(header::AUTHORIZATION)
            .map(|v| v.as_bytes()),
    );
    // Open reads only for a request meant for this machine (see the API's
    // guard): a DNS-rebinding page names its own host.
    let local = app.open_reads
        && crate::auth::loopback_host(crate::auth::host_of(&req).as_deref(), app.listen);
    if read && !token && app.open_reads && !local {
        tracing::warn!(%method, path, "refused: a read without a token for a foreign Host");
        return layout::refusal(StatusCode::FORBIDDEN, crate::auth::FOREIGN_HOST);
    }
    let admitted = token || local;
    if read && !admitted {
        tracing::warn!(%method, path, "refused: no or wrong token");
        return layout::refusal(
            StatusCode::UNAUTHORIZED,
            "This service listens beyond loopback: its pages need the token \
             (Authorization: Bearer TOKEN), as the API's reads do.",
        );
    }
    let response = next.run(req).await;
    tracing::info!(%method, path, status = response.status().as_u16(), "request");
    response
}

/// Whether a token typed into a form is the service's.
pub(crate) fn form_token_admitted<S: Store>(app: &App<S>, token: Option<&str>) -> bool {
    match token.map(str::trim).filter(|t| !t.is_empty()) {
        Some(t) => app.token.admits(Some(format!("Bearer {t}").as_bytes())),
        None => false,
    }
}
