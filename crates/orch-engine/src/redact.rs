//! Secret values, and their redaction from everything orch writes or prints:
//! the argv recorded in the store and shown in events, runner artifacts,
//! exit and tail text, and the logs of producers and alerts.
//!
//! A secret is the value of a pipeline variable named in `secret "var.NAME"`,
//! of an environment variable named in `secret "NAME"`, or of any
//! environment variable whose name ends in `_TOKEN`, `_KEY`, `_SECRET` or
//! `_PASSWORD`. Values shorter than [`MIN_LEN`] bytes are not secrets: they
//! would redact everything.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use orch_lang::model::Header;

/// What a secret value is replaced with.
pub(crate) const MASK: &str = "***";

/// Values shorter than this (in bytes) are never redacted.
pub(crate) const MIN_LEN: usize = 4;

/// Environment variables whose name ends in one of these are secret.
pub(crate) const DEFAULT_SUFFIXES: &[&str] = &["_TOKEN", "_KEY", "_SECRET", "_PASSWORD"];

/// Whether the environment variable `name` is secret by its name alone.
pub(crate) fn secret_by_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    DEFAULT_SUFFIXES.iter().any(|s| upper.ends_with(s))
}

/// The pipeline variables the header marks secret (`secret "var.NAME"`).
pub fn secret_vars(header: &Header) -> HashSet<String> {
    header
        .secrets
        .iter()
        .filter_map(|s| s.value.strip_prefix("var.").map(str::to_string))
        .collect()
}

/// The process environment, as strings (a variable that is not Unicode is
/// left out: it cannot appear in anything orch renders from a template).
pub fn env_vars() -> impl Iterator<Item = (String, String)> {
    std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
}

/// The set of secret values, longest first; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    secrets: Arc<Vec<Vec<u8>>>,
}

impl Redactor {
    /// A redactor of `values` (empty and short values are ignored).
    pub fn new(values: impl IntoIterator<Item = String>) -> Self {
        let mut secrets: Vec<Vec<u8>> = values
            .into_iter()
            .filter(|v| v.len() >= MIN_LEN)
            .map(String::into_bytes)
            .collect();
        secrets.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        secrets.dedup();
        Redactor {
            secrets: Arc::new(secrets),
        }
    }

    /// The secrets of a run: the header's `secret` names, resolved in the
    /// bound variables and in `env`, and every variable of `env` secret by
    /// its name.
    pub fn for_run(
        header: Option<&Header>,
        vars: &HashMap<String, String>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Self {
        let listed: HashSet<&str> = header
            .map(|h| h.secrets.iter().map(|s| s.value.as_str()).collect())
            .unwrap_or_default();
        let mut values = Vec::new();
        for name in &listed {
            if let Some(var) = name.strip_prefix("var.") {
                if let Some(v) = vars.get(var) {
                    values.push(v.clone());
                }
            }
        }
        for (k, v) in env {
            if secret_by_name(&k) || listed.contains(k.as_str()) {
                values.push(v);
            }
        }
        Redactor::new(values)
    }

    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// The longest secret's length in bytes (0 when there is none).
    #[cfg(test)]
    pub(crate) fn max_len(&self) -> usize {
        self.secrets.first().map(Vec::len).unwrap_or(0)
    }

    /// The longest secret that starts `bytes`, if any.
    fn match_at(&self, bytes: &[u8]) -> Option<usize> {
        self.secrets
            .iter()
            .find(|s| bytes.starts_with(s))
            .map(Vec::len)
    }

    /// `bytes` with every secret replaced by [`MASK`].
    pub(crate) fn redact_bytes(&self, bytes: &[u8]) -> Vec<u8> {
        if self.is_empty() {
            return bytes.to_vec();
        }
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match self.match_at(&bytes[i..]) {
                Some(n) => {
                    out.extend_from_slice(MASK.as_bytes());
                    i += n;
                }
                None => {
                    out.push(bytes[i]);
                    i += 1;
                }
            }
        }
        out
    }

    /// `s` with every secret replaced by [`MASK`].
    pub fn redact(&self, s: &str) -> String {
        if self.is_empty() {
            return s.to_string();
        }
        // Secrets are whole strings, so a match never splits a character.
        String::from_utf8_lossy(&self.redact_bytes(s.as_bytes())).into_owned()
    }

    pub(crate) fn redact_all(&self, v: &[String]) -> Vec<String> {
        v.iter().map(|s| self.redact(s)).collect()
    }

    /// A redactor of one byte stream read in chunks.
    pub fn stream(&self) -> Stream {
        Stream {
            redactor: self.clone(),
            pending: Vec::new(),
        }
    }
}

/// Redacts a stream chunk by chunk: bytes that could be the start of a
/// secret completed by the next chunk (fewer than the longest secret's
/// length) are held back until it comes, or until [`Stream::finish`].
pub struct Stream {
    redactor: Redactor,
    pending: Vec<u8>,
}

impl Stream {
    /// The redacted bytes that can be written now.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<u8> {
        if self.redactor.is_empty() {
            return chunk.to_vec();
        }
        self.pending.extend_from_slice(chunk);
        let bytes = std::mem::take(&mut self.pending);
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            let rest = &bytes[i..];
            // A secret longer than what is left may still begin here.
            if self
                .redactor
                .secrets
                .iter()
                .any(|s| s.len() > rest.len() && s.starts_with(rest))
            {
                self.pending = rest.to_vec();
                return out;
            }
            match self.redactor.match_at(rest) {
                Some(n) => {
                    out.extend_from_slice(MASK.as_bytes());
                    i += n;
                }
                None => {
                    out.push(bytes[i]);
                    i += 1;
                }
            }
        }
        out
    }

    /// Whatever was held back, redacted: the stream ended.
    pub(crate) fn finish(&mut self) -> Vec<u8> {
        let rest = std::mem::take(&mut self.pending);
        self.redactor.redact_bytes(&rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(values: &[&str]) -> Redactor {
        Redactor::new(values.iter().map(|s| s.to_string()))
    }

    #[test]
    fn every_occurrence_is_masked_and_short_values_are_not_secrets() {
        let red = r(&["s3cr3t-value", "abc", ""]);
        assert_eq!(
            red.redact("a s3cr3t-value b s3cr3t-value-s3cr3t-value abc"),
            "a *** b ***-*** abc"
        );
        assert_eq!(red.max_len(), 12);
        assert_eq!(Redactor::default().redact("abc"), "abc");
    }

    #[test]
    fn the_longest_secret_wins() {
        let red = r(&["tokn", "tokn-and-more"]);
        assert_eq!(red.redact("x tokn-and-more tokn-"), "x *** ***-");
    }

    #[test]
    fn a_secret_split_across_chunks_is_still_masked() {
        let red = r(&["hunter22", "hunter22-long-one"]);
        let text = b"one hunter22 two hunter22-long-one three hunte";
        // Every way of cutting the stream in two, and in single bytes.
        for cut in 0..=text.len() {
            let mut s = red.stream();
            let mut out = s.push(&text[..cut]);
            out.extend(s.push(&text[cut..]));
            out.extend(s.finish());
            assert_eq!(
                String::from_utf8_lossy(&out),
                "one *** two *** three hunte",
                "cut at {cut}"
            );
        }
        let mut s = red.stream();
        let mut out = Vec::new();
        for b in text {
            let flushed = s.push(&[*b]);
            assert!(s.pending.len() < red.max_len());
            out.extend(flushed);
        }
        out.extend(s.finish());
        assert_eq!(String::from_utf8_lossy(&out), "one *** two *** three hunte");
    }

    #[test]
    fn default_names() {
        assert!(secret_by_name("DEPLOY_TOKEN"));
        assert!(secret_by_name("aws_secret"));
        assert!(secret_by_name("DB_PASSWORD"));
        assert!(secret_by_name("API_KEY"));
        assert!(!secret_by_name("TOKEN"));
        assert!(!secret_by_name("KEYBOARD"));
    }

    #[test]
    fn run_secrets_come_from_the_header_vars_and_env() {
        let vars: HashMap<String, String> = [("api-key".to_string(), "var-secret-1".to_string())]
            .into_iter()
            .collect();
        let env = vec![
            ("DEPLOY_TOKEN".to_string(), "env-secret-2".to_string()),
            ("HOME".to_string(), "/home/x".to_string()),
        ];
        let red = Redactor::for_run(None, &vars, env);
        assert_eq!(
            red.redact("env-secret-2 var-secret-1 /home/x"),
            "*** var-secret-1 /home/x"
        );
    }
}
