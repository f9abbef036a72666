//! The bearer token: where it comes from (`--token-file`, `ORCH_TOKEN`, or
//! one made on first start at `STATE/token`, mode 0600), and the check of a
//! request's `Authorization` header in constant time. The token itself is
//! never logged.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::ServeError;

/// The service's token, kept as its digest: requests are compared digest to
/// digest, so the comparison takes the same time whatever was sent.
#[derive(Clone)]
pub(crate) struct Token {
    digest: [u8; 32],
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(…)")
    }
}

/// Where the token came from, for the start-up message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    File(PathBuf),
    Env,
    /// Made now and written to this file.
    Created(PathBuf),
    /// Made on an earlier start.
    Existing(PathBuf),
}

fn digest(text: &[u8]) -> [u8; 32] {
    Sha256::digest(text).into()
}

/// Equal without an early exit.
fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Token {
    pub(crate) fn new(text: &str) -> Token {
        Token {
            digest: digest(text.as_bytes()),
        }
    }

    /// Whether an `Authorization` header value carries this token.
    pub(crate) fn admits(&self, header: Option<&[u8]>) -> bool {
        let Some(value) = header else {
            return false;
        };
        let Some(given) = value.strip_prefix(b"Bearer ") else {
            return false;
        };
        let given = given.trim_ascii();
        !given.is_empty() && same(&self.digest, &digest(given))
    }
}

/// Whether a request's `Host` (or HTTP/2 authority) names this service on
/// loopback: `localhost`, a loopback address (`127.0.0.1`, `[::1]`) or the
/// address it listens on, with or without a port. A read is answered
/// without a token only then: a page a browser loaded from another name
/// (a DNS-rebinding page whose name now points at 127.0.0.1) sends its own
/// name, and is refused. No `Host` at all is refused too.
pub(crate) fn loopback_host(host: Option<&[u8]>, listen: std::net::SocketAddr) -> bool {
    use std::net::{IpAddr, Ipv6Addr};
    let Some(host) = host.and_then(|h| std::str::from_utf8(h).ok()) else {
        return false;
    };
    let port_ok = |p: &str| p.is_empty() || p.strip_prefix(':').is_some_and(is_port);
    let ip_ok = |ip: IpAddr| ip.is_loopback() || ip == listen.ip();
    if let Some(rest) = host.strip_prefix('[') {
        let Some((inside, port)) = rest.split_once(']') else {
            return false;
        };
        return port_ok(port)
            && inside
                .parse::<Ipv6Addr>()
                .is_ok_and(|ip| ip_ok(IpAddr::V6(ip)));
    }
    let name = match host.split_once(':') {
        Some((name, port)) if is_port(port) => name,
        Some(_) => return false,
        None => host,
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip_ok(IpAddr::V4(ip)))
}

fn is_port(p: &str) -> bool {
    !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit())
}

/// The refusal of a read admitted only for listening on loopback, whose
/// `Host` names another host.
pub(crate) const FOREIGN_HOST: &str = "the Host header names no loopback host: this service \
    answers reads without a token only to requests for localhost, 127.0.0.1, [::1] or the \
    address it listens on (a page from another name, as a DNS-rebinding page is, is refused); \
    send the token to read from elsewhere";

/// The `Host` header of a request, else its URI's authority (HTTP/2).
pub(crate) fn host_of(req: &axum::extract::Request) -> Option<Vec<u8>> {
    match req.headers().get(axum::http::header::HOST) {
        Some(h) => Some(h.as_bytes().to_vec()),
        None => req
            .uri()
            .authority()
            .map(|a| a.as_str().as_bytes().to_vec()),
    }
}

/// `STATE/token`.
pub(crate) fn token_path(state_dir: &Path) -> PathBuf {
    state_dir.join("token")
}

fn read_token(path: &Path) -> Result<String, ServeError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ServeError::Usage(format!("cannot read token file {}: {e}", path.display()))
    })?;
    let token = text.trim().to_string();
    if token.is_empty() {
        return Err(ServeError::Usage(format!(
            "token file {} is empty",
            path.display()
        )));
    }
    Ok(token)
}

/// 32 random bytes from the kernel, as hex.
fn random_token() -> Result<String, ServeError> {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| ServeError::Io(format!("cannot read /dev/urandom for a token: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The token to require: `--token-file`, else `ORCH_TOKEN`, else
/// `STATE/token` (made, mode 0600, when missing).
pub(crate) fn load(
    token_file: Option<&Path>,
    token_env: Option<&str>,
    state_dir: &Path,
) -> Result<(Token, TokenSource), ServeError> {
    if let Some(path) = token_file {
        return Ok((
            Token::new(&read_token(path)?),
            TokenSource::File(path.into()),
        ));
    }
    if let Some(text) = token_env.map(str::trim).filter(|t| !t.is_empty()) {
        return Ok((Token::new(text), TokenSource::Env));
    }
    let path = token_path(state_dir);
    if path.exists() {
        return Ok((Token::new(&read_token(&path)?), TokenSource::Existing(path)));
    }
    let token = random_token()?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| ServeError::Io(format!("cannot create {}: {e}", path.display())))?;
    file.write_all(format!("{token}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| ServeError::Io(format!("cannot write {}: {e}", path.display())))?;
    Ok((Token::new(&token), TokenSource::Created(path)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_bearer_token_is_admitted() {
        let t = Token::new("s3cret");
        assert!(t.admits(Some(b"Bearer s3cret")));
        assert!(!t.admits(Some(b"Bearer s3cret2")));
        assert!(!t.admits(Some(b"Bearer ")));
        assert!(!t.admits(Some(b"s3cret")));
        assert!(!t.admits(Some(b"Basic s3cret")));
        assert!(!t.admits(None));
    }

    #[test]
    fn only_a_loopback_host_or_the_listening_address_is_a_loopback_host() {
        let listen: std::net::SocketAddr = "127.0.0.1:7700".parse().unwrap();
        for ok in [
            "localhost",
            "LOCALHOST:7700",
            "localhost:1",
            "127.0.0.1",
            "127.0.0.1:7700",
            "[::1]",
            "[::1]:7700",
            "127.0.0.2:80",
        ] {
            assert!(loopback_host(Some(ok.as_bytes()), listen), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:7700",
            "localhost.evil.example",
            "localhost:",
            "localhost:77x",
            "localhost:7700:1",
            "127.0.0.1.evil.example",
            "10.0.0.1",
            "[::2]",
            "[::1",
            "[::1]x",
            "",
        ] {
            assert!(!loopback_host(Some(bad.as_bytes()), listen), "{bad}");
        }
        assert!(!loopback_host(None, listen));
        assert!(!loopback_host(Some(b"\xffhost"), listen));
        let v6: std::net::SocketAddr = "[::1]:7700".parse().unwrap();
        assert!(loopback_host(Some(b"[::1]:7700"), v6));
    }

    #[test]
    fn a_token_is_made_once_with_mode_0600_and_kept() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("orch-auth-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (first, source) = load(None, None, &dir).unwrap();
        assert_eq!(source, TokenSource::Created(dir.join("token")));
        let mode = std::fs::metadata(dir.join("token"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let text = std::fs::read_to_string(dir.join("token")).unwrap();
        assert_eq!(text.trim().len(), 64);
        let (again, source) = load(None, None, &dir).unwrap();
        assert_eq!(source, TokenSource::Existing(dir.join("token")));
        let header = format!("Bearer {}", text.trim());
        assert!(first.admits(Some(header.as_bytes())));
        assert!(again.admits(Some(header.as_bytes())));
        // ORCH_TOKEN wins over the file.
        let (env, source) = load(None, Some("other"), &dir).unwrap();
        assert_eq!(source, TokenSource::Env);
        assert!(!env.admits(Some(header.as_bytes())));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
