//! The main loop: one message at a time, each request's handler under
//! `catch_unwind`, so that a bug answers that request with an error and
//! the server keeps serving.

use std::collections::{HashMap, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use lsp_server::{Connection, ErrorCode, Message, Notification, Request, Response};
use lsp_types::*;
use serde_json::Value;

use crate::document::Document;
use crate::LspError;
use crate::{complete, diagnostics, hover, navigate, outline};

/// What the server offers.
pub(crate) fn capabilities() -> ServerCapabilities {
    ServerCapabilities {
        position_encoding: Some(PositionEncodingKind::UTF16),
        text_document_sync: Some(TextDocumentSyncCapability::Kind(TextDocumentSyncKind::FULL)),
        definition_provider: Some(OneOf::Left(true)),
        references_provider: Some(OneOf::Left(true)),
        rename_provider: Some(OneOf::Right(RenameOptions {
            prepare_provider: Some(true),
            work_done_progress_options: WorkDoneProgressOptions::default(),
        })),
        hover_provider: Some(HoverProviderCapability::Simple(true)),
        completion_provider: Some(CompletionOptions {
            trigger_characters: Some(vec!["\"".into(), "=".into()]),
            ..CompletionOptions::default()
        }),
        code_action_provider: Some(CodeActionProviderCapability::Simple(true)),
        document_symbol_provider: Some(OneOf::Left(true)),
        document_formatting_provider: Some(OneOf::Left(true)),
        ..ServerCapabilities::default()
    }
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("invalid parameters: {0}")]
    Params(#[from] serde_json::Error),
    #[error("the document {0} is not open")]
    NotOpen(String),
    #[error("{0}")]
    Refused(String),
    #[error("unsupported method {0}")]
    Method(String),
}

impl Failure {
    fn code(&self) -> i32 {
        match self {
            Failure::Params(_) => ErrorCode::InvalidParams as i32,
            Failure::NotOpen(_) | Failure::Refused(_) => ErrorCode::RequestFailed as i32,
            Failure::Method(_) => ErrorCode::MethodNotFound as i32,
        }
    }
}

#[derive(Default)]
pub(crate) struct Server {
    docs: HashMap<String, Document>,
}

impl Server {
    /// Serves until `shutdown` and `exit`, or until the client goes away.
    pub(crate) fn run(&mut self, conn: &Connection) -> Result<(), LspError> {
        let mut backlog: VecDeque<Message> = VecDeque::new();
        loop {
            let msg = match backlog.pop_front() {
                Some(m) => m,
                None => match conn.receiver.recv() {
                    Ok(m) => m,
                    Err(_) => return Ok(()),
                },
            };
            backlog.extend(conn.receiver.try_iter());
            match msg {
                Message::Request(req) => {
                    if req.method == "shutdown" {
                        send(conn, Response::new_ok(req.id, ()).into());
                        return await_exit(conn, backlog);
                    }
                    let resp = self.answer(req);
                    send(conn, resp.into());
                }
                Message::Notification(n) => {
                    if n.method == "exit" {
                        return Ok(());
                    }
                    if superseded(&n, &backlog) {
                        continue;
                    }
                    for m in self.notified_safely(n) {
                        send(conn, m);
                    }
                }
                Message::Response(_) => {}
            }
        }
    }

    /// [`Self::notified`], a panic reported to the client's log.
    fn notified_safely(&mut self, n: Notification) -> Vec<Message> {
        let method = n.method.clone();
        match catch_unwind(AssertUnwindSafe(|| self.notified(n))) {
            Ok(Ok(msgs)) => msgs,
            Ok(Err(e)) => vec![log(MessageType::WARNING, &format!("{method}: {e}"))],
            Err(p) => vec![log(
                MessageType::ERROR,
                &format!("{method}: internal error: {}", panic_text(&p)),
            )],
        }
    }

    /// The response to a request; a panic in its handler is an error response.
    pub(crate) fn answer(&mut self, req: Request) -> Response {
        let id = req.id.clone();
        let method = req.method.clone();
        match catch_unwind(AssertUnwindSafe(|| self.request(&req.method, req.params))) {
            Ok(Ok(v)) => Response::new_ok(id, v),
            Ok(Err(e)) => Response::new_err(id, e.code(), e.to_string()),
            Err(p) => Response::new_err(
                id,
                ErrorCode::InternalError as i32,
                format!("internal error in {method}: {}", panic_text(&p)),
            ),
        }
    }

    fn doc(&mut self, uri: &Uri) -> Result<&mut Document, Failure> {
        self.docs
            .get_mut(uri.as_str())
            .ok_or_else(|| Failure::NotOpen(uri.as_str().to_string()))
    }

    fn request(&mut self, method: &str, params: Value) -> Result<Value, Failure> {
        failpoint(method);
        let json = |v: Result<Value, serde_json::Error>| v.map_err(Failure::from);
        match method {
            "textDocument/definition" => {
                let p: GotoDefinitionParams = serde_json::from_value(params)?;
                let tp = p.text_document_position_params;
                let doc = self.doc(&tp.text_document.uri)?;
                json(serde_json::to_value(navigate::definition(
                    doc,
                    &tp.text_document.uri,
                    tp.position,
                )))
            }
            "textDocument/references" => {
                let p: ReferenceParams = serde_json::from_value(params)?;
                let tp = p.text_document_position;
                let doc = self.doc(&tp.text_document.uri)?;
                let refs = navigate::references(
                    doc,
                    &tp.text_document.uri,
                    tp.position,
                    p.context.include_declaration,
                );
                json(serde_json::to_value(refs))
            }
            "textDocument/prepareRename" => {
                let p: TextDocumentPositionParams = serde_json::from_value(params)?;
                let doc = self.doc(&p.text_document.uri)?;
                json(serde_json::to_value(navigate::prepare_rename(
                    doc, p.position,
                )))
            }
            "textDocument/rename" => {
                let p: RenameParams = serde_json::from_value(params)?;
                let tp = p.text_document_position;
                let doc = self.doc(&tp.text_document.uri)?;
                let edit = navigate::rename(doc, &tp.text_document.uri, tp.position, &p.new_name)
                    .map_err(|e| Failure::Refused(e.to_string()))?;
                json(serde_json::to_value(edit))
            }
            "textDocument/hover" => {
                let p: HoverParams = serde_json::from_value(params)?;
                let tp = p.text_document_position_params;
                let doc = self.doc(&tp.text_document.uri)?;
                json(serde_json::to_value(hover::hover(doc, tp.position)))
            }
            "textDocument/completion" => {
                let p: CompletionParams = serde_json::from_value(params)?;
                let tp = p.text_document_position;
                let doc = self.doc(&tp.text_document.uri)?;
                json(serde_json::to_value(complete::complete(doc, tp.position)))
            }
            "textDocument/codeAction" => {
                let p: CodeActionParams = serde_json::from_value(params)?;
                let doc = self.doc(&p.text_document.uri)?;
                json(serde_json::to_value(diagnostics::code_actions(
                    doc,
                    &p.text_document.uri,
                    p.range,
                )))
            }
            "textDocument/documentSymbol" => {
                let p: DocumentSymbolParams = serde_json::from_value(params)?;
                let doc = self.doc(&p.text_document.uri)?;
                json(serde_json::to_value(outline::symbols(doc)))
            }
            "textDocument/formatting" => {
                let p: DocumentFormattingParams = serde_json::from_value(params)?;
                let doc = self.doc(&p.text_document.uri)?;
                json(serde_json::to_value(outline::format(doc)))
            }
            other => Err(Failure::Method(other.to_string())),
        }
    }

    /// Handles a notification; returns the messages to send.
    fn notified(&mut self, n: Notification) -> Result<Vec<Message>, Failure> {
        failpoint(&n.method);
        match n.method.as_str() {
            "textDocument/didOpen" => {
                let p: DidOpenTextDocumentParams = serde_json::from_value(n.params)?;
                let d = p.text_document;
                Ok(vec![self.update(d.uri, d.version, d.text)])
            }
            "textDocument/didChange" => {
                let p: DidChangeTextDocumentParams = serde_json::from_value(n.params)?;
                // Full sync: the last change is the whole text.
                let Some(last) = p.content_changes.into_iter().last() else {
                    return Ok(Vec::new());
                };
                let d = p.text_document;
                Ok(vec![self.update(d.uri, d.version, last.text)])
            }
            "textDocument/didClose" => {
                let p: DidCloseTextDocumentParams = serde_json::from_value(n.params)?;
                self.docs.remove(p.text_document.uri.as_str());
                Ok(vec![publish(p.text_document.uri, Vec::new(), None)])
            }
            _ => Ok(Vec::new()),
        }
    }

    /// Analyses the new text and publishes its diagnostics.
    fn update(&mut self, uri: Uri, version: i32, text: String) -> Message {
        let mut doc = Document::new(uri.as_str(), text);
        doc.succeed(self.docs.remove(uri.as_str()));
        let diags = diagnostics::of(&mut doc, &uri);
        self.docs.insert(uri.as_str().to_string(), doc);
        publish(uri, diags, Some(version))
    }
}

/// After `shutdown`: waits for `exit`, first among the messages already
/// read (a client may send `shutdown` and `exit` in one write), then from
/// the connection. Requests in between are refused, as the specification
/// says; notifications are ignored. The client going away counts as its
/// `exit`; no `exit` within [`EXIT_WAIT`] is a protocol error.
fn await_exit(conn: &Connection, mut backlog: VecDeque<Message>) -> Result<(), LspError> {
    loop {
        let msg = match backlog.pop_front() {
            Some(m) => m,
            None => match conn.receiver.recv_timeout(EXIT_WAIT) {
                Ok(m) => m,
                Err(e) if e.is_timeout() => return Err(LspError::NoExit(EXIT_WAIT.as_secs())),
                Err(_) => return Ok(()),
            },
        };
        match msg {
            Message::Notification(n) if n.method == "exit" => return Ok(()),
            Message::Request(req) => send(
                conn,
                Response::new_err(
                    req.id,
                    ErrorCode::InvalidRequest as i32,
                    format!("{}: the server is shutting down", req.method),
                )
                .into(),
            ),
            Message::Notification(_) | Message::Response(_) => {}
        }
    }
}

/// How long the server waits for `exit` after `shutdown`.
const EXIT_WAIT: Duration = Duration::from_secs(30);

/// Whether a `didChange` is already replaced by a later one of the same
/// document waiting in the backlog, with no request in between (which must
/// see this version): typing faster than a large file is analysed then
/// costs one analysis, not one per keystroke.
fn superseded(n: &Notification, backlog: &VecDeque<Message>) -> bool {
    if n.method != "textDocument/didChange" {
        return false;
    }
    let uri = |n: &Notification| n.params.pointer("/textDocument/uri").cloned();
    let mine = uri(n);
    for m in backlog {
        match m {
            Message::Request(_) => return false,
            Message::Notification(later) if later.method == n.method && uri(later) == mine => {
                return true;
            }
            Message::Notification(later) if later.method != n.method && uri(later) == mine => {
                return false;
            }
            _ => {}
        }
    }
    false
}

fn publish(uri: Uri, diagnostics: Vec<Diagnostic>, version: Option<i32>) -> Message {
    let params = PublishDiagnosticsParams {
        uri,
        diagnostics,
        version,
    };
    Notification::new("textDocument/publishDiagnostics".into(), params).into()
}

fn log(typ: MessageType, message: &str) -> Message {
    let params = LogMessageParams {
        typ,
        message: message.to_string(),
    };
    Notification::new("window/logMessage".into(), params).into()
}

fn send(conn: &Connection, m: Message) {
    // The client is gone when this fails; the receive loop then ends.
    let _ = conn.sender.send(m);
}

fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_string())
}

/// `ORCH_LSP_PANIC=METHOD` makes that method's handler panic: how the tests
/// prove a panic is answered as an error and the server keeps serving.
fn failpoint(method: &str) {
    if std::env::var("ORCH_LSP_PANIC").is_ok_and(|m| m == method) {
        panic!("failpoint ORCH_LSP_PANIC={method}");
    }
}
