//! The client side, for `orch submit` and `orch cancel`: one HTTP/1.1
//! request to the service over a TCP connection (hyper's client half; the
//! service's own tree already has hyper), and its JSON answer.

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::Value;

/// The service's default address.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:7700";

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0}")]
    Url(String),
    #[error("cannot reach the service at {server}: {detail}")]
    Unreachable { server: String, detail: String },
    #[error("the service at {server} answered {status}: {message}")]
    Refused {
        server: String,
        status: u16,
        message: String,
    },
    #[error("the service at {server} sent an answer that is not JSON: {detail}")]
    Garbled { server: String, detail: String },
}

impl ClientError {
    /// The HTTP status of a refusal.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// `http://HOST:PORT[/PREFIX]`, split.
struct Server {
    authority: String,
    prefix: String,
}

fn parse_server(url: &str) -> Result<Server, ClientError> {
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        ClientError::Url(format!(
            "server {url:?}: expected http://HOST:PORT (https is not served)"
        ))
    })?;
    let (authority, prefix) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
        None => (rest, ""),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err(ClientError::Url(format!(
            "server {url:?}: expected http://HOST:PORT"
        )));
    }
    let authority = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        && !authority.ends_with(']')
    {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    Ok(Server {
        authority,
        prefix: prefix.to_string(),
    })
}

/// Sends one request; the answer's status and JSON body. A refusal (4xx,
/// 5xx) is an error carrying the service's `error` text.
pub async fn request(
    server: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Result<(u16, Value), ClientError> {
    let s = parse_server(server)?;
    let unreachable = |detail: String| ClientError::Unreachable {
        server: server.to_string(),
        detail,
    };
    let stream = tokio::net::TcpStream::connect(&s.authority)
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let bytes = match body {
        Some(v) => serde_json::to_vec(v).map_err(|e| ClientError::Url(e.to_string()))?,
        None => Vec::new(),
    };
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(format!("{}{path}", s.prefix))
        .header(hyper::header::HOST, &s.authority)
        .header(hyper::header::CONTENT_TYPE, "application/json");
    if let Some(t) = token {
        req = req.header(hyper::header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let req = req
        .body(Full::new(Bytes::from(bytes)))
        .map_err(|e| ClientError::Url(e.to_string()))?;
    let res = sender
        .send_request(req)
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let status = res.status().as_u16();
    let body = res
        .into_body()
        .collect()
        .await
        .map_err(|e| unreachable(e.to_string()))?
        .to_bytes();
    let value: Value = serde_json::from_slice(&body).map_err(|e| ClientError::Garbled {
        server: server.to_string(),
        detail: e.to_string(),
    })?;
    if status >= 400 {
        let message = value
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("no reason given")
            .to_string();
        return Err(ClientError::Refused {
            server: server.to_string(),
            status,
            message,
        });
    }
    Ok((status, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls() {
        let s = parse_server("http://127.0.0.1:7700").unwrap();
        assert_eq!(
            (s.authority.as_str(), s.prefix.as_str()),
            ("127.0.0.1:7700", "")
        );
        let s = parse_server("http://orch.local/base/").unwrap();
        assert_eq!(
            (s.authority.as_str(), s.prefix.as_str()),
            ("orch.local:80", "/base")
        );
        let s = parse_server("http://[::1]:9").unwrap();
        assert_eq!(s.authority, "[::1]:9");
        assert!(parse_server("https://x:1").is_err());
        assert!(parse_server("http://").is_err());
        assert!(parse_server("http://u:p@x:1").is_err());
    }
}
