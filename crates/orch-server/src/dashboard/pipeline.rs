//! `/pipeline`: the stage graph drawn on the server (the graph `orch graph`
//! draws, as SVG), the call-site map with its classification, and the
//! roadmap ranked by the LLM attempts the store recorded: where a team sees
//! which control-path decisions an LLM still makes.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;

use orch_lang::map::{self, Class};
use orch_lang::roadmap;

use crate::scheduler::App;
use crate::Store;

use super::layout::{self, trusted, Nav};

fn class_name(c: Class) -> &'static str {
    match c {
        Class::AvoidableLlmControlPath => "avoidable",
        Class::Deterministic => "deterministic",
        Class::KeepLlm => "keep-llm",
        Class::NotOnControlPath => "not-control",
        Class::PersonDecides => "person",
        Class::Invalid => "invalid",
    }
}

pub(super) async fn page<S: Store>(State(app): State<Arc<App<S>>>) -> Response {
    let served = app.served();
    let p = &served.pipeline;
    let name = p
        .header
        .as_ref()
        .map(|h| h.name.value.clone())
        .unwrap_or_default();
    let attempts = match app.store.llm_attempts(&name).await {
        Ok(a) => a,
        Err(e) => return layout::refusal(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let pairs: Vec<(String, i64)> = attempts
        .into_iter()
        .map(|a| (a.call_site, a.duration_ms))
        .collect();
    let m = map::build(p);
    let r = roadmap::build(p, &pairs);
    let body = html! {
        h1 { "Pipeline " (name) }
        p.muted { code { (served.path.display()) } }
        section aria-label="stage graph" {
            h2 { "Stages" }
            p.legend {
                span.key.llm { "LLM" } " " span.key.runner { "runner" } " "
                span.key.hybrid { "hybrid" } " " span.key.human { "person" } " "
                span.key.end { "end" }
                " · solid: pass, dashed: fail (rollback), bold: exhausted"
            }
            div.graph { (trusted(orch_lang::svg::render(p))) }
        }
        section aria-label="call-site map" {
            h2 { "Call-sites" }
            div.scroll { table #map {
                thead { tr {
                    th scope="col" { "call-site" } th scope="col" { "stages" }
                    th scope="col" { "axis" } th scope="col" { "verdict" }
                    th scope="col" { "mode" } th scope="col" { "classification" }
                } }
                tbody { @for c in &m.call_sites {
                    tr data-call-site=(c.name) {
                        th scope="row" { (c.name) }
                        td { (c.stages.join(", ")) }
                        td { (c.axis) } td { (c.verdict) }
                        td { span class={ "producer " (c.mode) } { (c.mode) } }
                        td { span class={ "class " (class_name(c.classification)) } { (c.classification.describe()) } }
                    }
                } }
            } }
        }
        section aria-label="roadmap" {
            h2 { "Roadmap" }
            p { "Control-path decisions still made by an LLM, ranked by the "
                (pairs.len()) " LLM attempt(s) recorded for pipeline " code { (name) } "." }
            @if r.entries.is_empty() {
                p { "Nothing to replace: no avoidable LLM control path, and no hybrid fallback has fired." }
            } @else {
                ol #roadmap { @for e in &r.entries {
                    li data-call-site=(e.call_site) {
                        strong { (e.call_site) } " (" (e.stages.join(", ")) ") — "
                        @if e.kind == "avoidable" { "avoidable LLM control path" } @else { "hybrid whose LLM fallback fired" }
                        br;
                        @if e.llm_attempts > 0 {
                            (e.llm_attempts) " LLM attempt(s), "
                            (orch_lang::duration::human(Duration::from_millis(e.total_ms.max(0) as u64))) " in all"
                            @if let Some(c) = e.cost { ", cost " (format!("{c:.2}")) }
                        } @else { "no LLM attempts recorded" }
                    }
                } }
            }
        }
    };
    layout::respond(
        StatusCode::OK,
        layout::page("Pipeline", Nav::Pipeline, None, body),
    )
}
