//! The page shell (header, navigation, the embedded stylesheet and script)
//! and the small helpers every page uses: durations, query strings, links.

use std::time::Duration;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup, PreEscaped, DOCTYPE};

/// The stylesheet and the script, compiled into the binary.
const CSS: &str = include_str!("assets/dashboard.css");
const JS: &str = include_str!("assets/dashboard.js");

/// Which page of the navigation is shown.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Nav {
    Queue,
    Task,
    Pipeline,
}

pub(crate) async fn css() -> Response {
    asset("text/css; charset=utf-8", CSS)
}

pub(crate) async fn js() -> Response {
    asset("text/javascript; charset=utf-8", JS)
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// A whole page. `live` names what the script keeps current (`queue`,
/// `task`), if anything.
pub(super) fn page(title: &str, nav: Nav, live: Option<(&str, &str)>, body: Markup) -> Markup {
    let (live_kind, live_of) = live.unwrap_or(("", ""));
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                title { (title) " · orch" }
                link rel="stylesheet" href="/assets/dashboard.css";
                @if !live_kind.is_empty() {
                    script src="/assets/dashboard.js" defer {}
                }
            }
            body data-live=(live_kind) data-task=(live_of) {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    span.brand { "orch" }
                    nav aria-label="pages" {
                        a href="/" aria-current=[(nav == Nav::Queue).then_some("page")] { "Queue" }
                        a href="/pipeline" aria-current=[(nav == Nav::Pipeline).then_some("page")] { "Pipeline" }
                    }
                    @if !live_kind.is_empty() {
                        span #live role="status" aria-live="polite" { "live updates off (no JavaScript)" }
                    }
                }
                main #main tabindex="-1" { (body) }
            }
        }
    }
}

/// An HTML answer.
pub(crate) fn respond(status: StatusCode, markup: Markup) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        markup.into_string(),
    )
        .into_response()
}

/// A refusal or an error, as a page.
pub(crate) fn refusal(status: StatusCode, message: &str) -> Response {
    let title = status.canonical_reason().unwrap_or("refused");
    respond(
        status,
        page(
            title,
            Nav::Task,
            None,
            html! {
                h1 { (status.as_u16()) " " (title) }
                p.refusal role="alert" { (message) }
                p { a href="/" { "Back to the queue" } }
            },
        ),
    )
}

/// `12.3s`, `4m 2s`: how long, for people.
pub(crate) fn elapsed(ms: i64) -> String {
    let ms = ms.max(0);
    if ms < 1000 {
        return format!("{ms} ms");
    }
    orch_lang::duration::human(Duration::from_millis(ms as u64))
}

/// The value of `key` in a query string or a form body, decoded.
pub(crate) fn param(query: Option<&str>, key: &str) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (decode(k) == key).then(|| decode(v))
    })
}

/// `application/x-www-form-urlencoded` decoding; a malformed escape is kept
/// as it is.
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// A path segment, percent-encoded (stage names may hold anything).
pub(crate) fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Marks text that is already HTML (an SVG drawn by orch-lang, which
/// escapes every name it writes).
pub(crate) fn trusted(s: String) -> PreEscaped<String> {
    PreEscaped(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_and_queries_decode() {
        assert_eq!(
            param(Some("a=1&token=x%2By+z"), "token").as_deref(),
            Some("x+y z")
        );
        assert_eq!(
            param(Some("token=%zz%4"), "token").as_deref(),
            Some("%zz%4")
        );
        assert_eq!(param(Some("outcome"), "outcome").as_deref(), Some(""));
        assert_eq!(param(None, "x"), None);
        assert_eq!(segment("a b/<c>"), "a%20b%2F%3Cc%3E");
    }
}
