//! Who decides an approval through the API: `--tokens-file` maps tokens to
//! names, one `NAME TOKEN-SHA256` a line (the SHA-256 of the token, in hex;
//! `#` starts a comment). The decider's name comes from the token, never
//! from the request, so nobody can decide as somebody else. Tokens are
//! compared digest to digest in constant time and never logged.

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::ServeError;

/// The names of the tokens allowed to decide.
#[derive(Clone, Default)]
pub(crate) struct Deciders {
    entries: Vec<(String, [u8; 32])>,
}

impl std::fmt::Debug for Deciders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Deciders({} names)", self.entries.len())
    }
}

fn parse_hex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

impl Deciders {
    /// Reads a tokens file; an error names the file and the line.
    pub(crate) fn load(path: &Path) -> Result<Deciders, ServeError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ServeError::Usage(format!("cannot read tokens file {}: {e}", path.display()))
        })?;
        Deciders::parse(&text).map_err(|(line, why)| {
            ServeError::Usage(format!("tokens file {}:{line}: {why}", path.display()))
        })
    }

    /// Parses `NAME TOKEN-SHA256` lines; the error is (line number, why).
    pub(crate) fn parse(text: &str) -> Result<Deciders, (usize, String)> {
        let mut entries: Vec<(String, [u8; 32])> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let mut words = line.split_whitespace();
            let (Some(name), Some(hex), None) = (words.next(), words.next(), words.next()) else {
                return Err((i + 1, "expected `NAME TOKEN-SHA256`".into()));
            };
            let Some(digest) = parse_hex(&hex.to_ascii_lowercase()) else {
                return Err((
                    i + 1,
                    "the token's SHA-256 must be 64 hexadecimal digits".into(),
                ));
            };
            if entries.iter().any(|(_, d)| *d == digest) {
                return Err((i + 1, "this token is given to two names".into()));
            }
            entries.push((name.to_string(), digest));
        }
        Ok(Deciders { entries })
    }

    /// The name whose token an `Authorization: Bearer …` header carries.
    pub(crate) fn who(&self, header: Option<&[u8]>) -> Option<&str> {
        let given = header?.strip_prefix(b"Bearer ")?.trim_ascii();
        if given.is_empty() {
            return None;
        }
        let d: [u8; 32] = Sha256::digest(given).into();
        // Every entry is compared, so the time does not say which matched.
        let mut found = None;
        for (name, digest) in &self.entries {
            let same = digest.iter().zip(&d).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0;
            if same && found.is_none() {
                found = Some(name.as_str());
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(token: &str) -> String {
        Sha256::digest(token.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    #[test]
    fn a_token_names_its_decider_and_nothing_else_does() {
        let text = format!(
            "# approvers\nalice {}\nbob {}  # the release manager\n",
            hex("a-secret"),
            hex("b-secret")
        );
        let d = Deciders::parse(&text).unwrap();
        assert_eq!(d.who(Some(b"Bearer a-secret")), Some("alice"));
        assert_eq!(d.who(Some(b"Bearer b-secret")), Some("bob"));
        assert_eq!(d.who(Some(b"Bearer alice")), None);
        assert_eq!(d.who(Some(b"a-secret")), None);
        assert_eq!(d.who(None), None);
    }

    #[test]
    fn a_malformed_line_is_refused_with_its_number() {
        assert_eq!(Deciders::parse("alice\n").unwrap_err().0, 1);
        assert_eq!(Deciders::parse("\nalice xyz\n").unwrap_err().0, 2);
        let h = hex("t");
        assert!(Deciders::parse(&format!("a {h}\nb {h}\n"))
            .unwrap_err()
            .1
            .contains("two names"));
    }
}
