//! Strings: identifiers, quoted (`"…"`, `"""` multi-line) and raw
//! (`#"…"#`, `#"""` multi-line). Each is copied out of the input once:
//! a plain run of characters as one slice, escapes and the multi-line
//! dedent applied while copying.

use miette::SourceSpan;

use super::chars::{char_at, ident_char_len, is_disallowed, newline_len, space_len};
use super::parser::{PResult, Parser};

const NEWLINE_HELP: &str = "You can make a string multi-line by wrapping it in '\"\"\"', with a newline immediately after the opening quotes.";
const PREFIX_HELP: &str = "Multi-line string bodies must be prefixed by the exact same whitespace as the leading whitespace before the closing '\"\"\"'";
const CLOSE_HELP: &str =
    "Multiline strings must be closed by '\"\"\"' on a standalone line, only prefixed by whitespace.";

impl Parser<'_> {
    /// `string := identifier-string | quoted-string | raw-string`, which the
    /// caller has seen starts here ([`Parser::at_string`]), and its span.
    pub(crate) fn string(&mut self) -> PResult<(String, SourceSpan)> {
        let start = self.pos;
        let (s, kind) = match self.peek() {
            Some(b'"') => (self.quoted()?, "quoted string"),
            Some(b'#') => (self.raw()?, "raw string"),
            _ => (self.identifier_string()?, "identifier string"),
        };
        self.terminated(start, kind)?;
        Ok((s, self.span_from(start)))
    }

    fn identifier_string(&mut self) -> PResult<String> {
        let start = self.pos;
        loop {
            let n = ident_char_len(self.text, self.pos);
            if n == 0 {
                break;
            }
            self.pos += n;
        }
        let s = &self.text[start..self.pos];
        if matches!(s, "true" | "false" | "null" | "inf" | "-inf" | "nan") {
            return Err(self.error(
                start,
                self.pos,
                format!("`{s}` is a keyword and cannot be a bare string"),
                "not identifier string",
                Some(&format!(
                    "Write #{s} for the keyword, or \"{s}\" for the string."
                )),
            ));
        }
        Ok(s.to_string())
    }

    /// A disallowed code point (or a character that is not allowed) at `i`.
    pub(super) fn bad_char(&self, i: usize, what: &str) -> super::SyntaxError {
        let c = char_at(self.text, i).unwrap_or('\0');
        self.error(
            i,
            i + c.len_utf8(),
            format!("The code point U+{:04X} is not allowed in {what}", c as u32),
            "disallowed code point",
            Some("Write it as an escape, for example \\u{7}."),
        )
    }

    /// The length of the plain (not `\`, not `"`, not newline, allowed)
    /// character at `i`, or 0.
    fn plain_len(&self, i: usize) -> usize {
        match self.b.get(i) {
            None | Some(b'\\' | b'"') => 0,
            Some(&c) if c < 0x80 => usize::from(!matches!(c, 0..=0x08 | 0x0A..=0x1F | 0x7F)),
            Some(_) => {
                if newline_len(self.b, i) > 0 {
                    return 0;
                }
                match char_at(self.text, i) {
                    Some(c) if !is_disallowed(c) => c.len_utf8(),
                    _ => 0,
                }
            }
        }
    }

    /// `'"' single-line-string-body '"'`, or a multi-line string.
    fn quoted(&mut self) -> PResult<String> {
        let start = self.pos;
        if self.at(b"\"\"\"") {
            return self.multiline(start, 0);
        }
        self.pos += 1;
        let run = self.pos;
        loop {
            // Printable ASCII other than `"` and `\` is the common case.
            while matches!(self.peek(), Some(b' ' | b'!' | b'#'..=b'[' | b']'..=b'~')) {
                self.pos += 1;
            }
            let n = self.plain_len(self.pos);
            if n == 0 {
                break;
            }
            self.pos += n;
        }
        if self.peek() == Some(b'"') {
            let s = self.text[run..self.pos].to_string();
            self.pos += 1;
            return Ok(s);
        }
        let mut out = self.text[run..self.pos].to_string();
        loop {
            let n = self.plain_len(self.pos);
            if n > 0 {
                out.push_str(&self.text[self.pos..self.pos + n]);
                self.pos += n;
                continue;
            }
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => self.escape(&mut out)?,
                None => {
                    return Err(self.error(
                        start,
                        self.pos,
                        "missing string closing quote",
                        "not closed",
                        Some("Did you forget to escape something?"),
                    ))
                }
                Some(_) if newline_len(self.b, self.pos) > 0 => {
                    return Err(self.error(
                        start,
                        self.pos,
                        "Unexpected newline in single-line quoted string",
                        "not closed on its line",
                        Some(NEWLINE_HELP),
                    ))
                }
                Some(_) => return Err(self.bad_char(self.pos, "a string")),
            }
        }
    }

    /// An escape at `\`: appends what it stands for (nothing for a
    /// whitespace escape).
    fn escape(&mut self, out: &mut String) -> PResult<()> {
        let start = self.pos;
        let c = match self.b.get(start + 1) {
            Some(b'\\') => '\\',
            Some(b'"') => '"',
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{C}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b's') => ' ',
            Some(b'u') => return self.unicode_escape(out),
            _ => {
                self.pos += 1;
                let mut skipped = false;
                loop {
                    let n = space_len(self.b, self.pos).max(newline_len(self.b, self.pos));
                    if n == 0 {
                        break;
                    }
                    skipped = true;
                    self.pos += n;
                }
                if skipped {
                    return Ok(());
                }
                let end =
                    char_at(self.text, start + 1).map_or(start + 1, |c| start + 1 + c.len_utf8());
                return Err(self.error(
                    start,
                    end,
                    "Invalid escape in a string",
                    "unknown escape",
                    Some("The escapes are \\n \\r \\t \\\\ \\\" \\b \\f \\s \\u{hex}, and '\\' before whitespace, which skips it."),
                ));
            }
        };
        out.push(c);
        self.pos = start + 2;
        Ok(())
    }

    /// `\u{…}`: one to six hex digits naming a Unicode scalar value.
    fn unicode_escape(&mut self, out: &mut String) -> PResult<()> {
        let start = self.pos;
        let digits_at = start + 3;
        let mut end = digits_at;
        while end < self.b.len() && end - digits_at < 7 && self.b[end].is_ascii_hexdigit() {
            end += 1;
        }
        let ok = self.b.get(start + 2) == Some(&b'{')
            && (1..=6).contains(&(end - digits_at))
            && self.b.get(end) == Some(&b'}');
        let c = if ok {
            u32::from_str_radix(&self.text[digits_at..end], 16)
                .ok()
                .and_then(char::from_u32)
        } else {
            None
        };
        match c {
            Some(c) => {
                out.push(c);
                self.pos = end + 1;
                Ok(())
            }
            None => Err(self.error(
                start,
                (end + usize::from(self.b.get(end) == Some(&b'}'))).max(start + 2),
                "Invalid unicode escape",
                "not unicode escape char",
                Some("Write \\u{…} with one to six hex digits naming a Unicode scalar value (not a surrogate, at most 10FFFF)."),
            )),
        }
    }

    /// `raw-string := '#'+ '"' … '"' '#'+` (single- or multi-line).
    fn raw(&mut self) -> PResult<String> {
        let start = self.pos;
        let mut hashes = 0;
        while self.b.get(self.pos + hashes) == Some(&b'#') {
            hashes += 1;
        }
        self.pos += hashes;
        if self.peek() != Some(b'"') {
            let end = self.bad_token_end();
            return Err(self.error(
                start,
                end,
                "Expected raw string",
                "not raw string",
                Some("A raw string is #\"…\"#, with as many '#' after the closing quote as before the opening one."),
            ));
        }
        if self.at(b"\"\"\"") && newline_len(self.b, self.pos + 3) > 0 {
            return self.multiline(start, hashes);
        }
        self.pos += 1;
        let body = self.pos;
        loop {
            match self.peek() {
                None => {
                    return Err(self.error(
                        start,
                        self.pos,
                        "missing raw string closing quotes",
                        "not closed",
                        None,
                    ))
                }
                Some(b'"') if self.closes(self.pos + 1, hashes) => break,
                Some(_) if newline_len(self.b, self.pos) > 0 => {
                    return Err(self.error(
                        start,
                        self.pos,
                        "Unexpected newline in single-line raw string",
                        "not closed on its line",
                        Some(NEWLINE_HELP),
                    ))
                }
                Some(c) => {
                    let n = if c < 0x80 {
                        1
                    } else {
                        char_at(self.text, self.pos).map_or(1, char::len_utf8)
                    };
                    if char_at(self.text, self.pos).is_some_and(is_disallowed) {
                        return Err(self.bad_char(self.pos, "a string"));
                    }
                    self.pos += n;
                }
            }
        }
        let s = &self.text[body..self.pos];
        self.pos += 1 + hashes;
        // `single-line-raw-string-body` may not start with `""` nor be `"`:
        // it would read as the opening of a multi-line string.
        if s == "\"" || s.starts_with("\"\"") {
            return Err(self.error(
                start,
                self.pos,
                "Single-line raw strings cannot look like multi-line ones",
                "triple quotes",
                Some("Consider using a regular escaped string if all you want is a single quote: \"\\\"\""),
            ));
        }
        Ok(s.to_string())
    }

    /// Whether `hashes` `#` follow at `i`.
    fn closes(&self, i: usize, hashes: usize) -> bool {
        self.b.len() >= i + hashes && self.b[i..i + hashes].iter().all(|&c| c == b'#')
    }

    /// A multi-line string from `start` (its `#`s, if raw, then `"""`).
    /// `hashes` is 0 for an escaped string. The closing `"""` sits on a line
    /// of its own after whitespace; that whitespace is removed from every
    /// line, and lines of only whitespace become empty.
    fn multiline(&mut self, start: usize, hashes: usize) -> PResult<String> {
        let raw = hashes > 0;
        self.pos += 3;
        let nl = newline_len(self.b, self.pos);
        if nl == 0 {
            return Err(self.error(
                start,
                self.pos,
                "Multi-line string opening quotes must be immediately followed by a newline",
                "not multi-line string newline",
                Some(NEWLINE_HELP),
            ));
        }
        self.pos += nl;
        let body = self.pos;
        let (close, last_line) = self.find_close(start, body, raw, hashes)?;
        // The prefix: the spaces before the closing quotes, or before a
        // whitespace escape that runs up to them.
        let mut p = last_line;
        while space_len(self.b, p) > 0 {
            p += space_len(self.b, p);
        }
        let prefix = &self.text[last_line..p];
        if p < close && !raw && self.b[p] == b'\\' {
            p = self.skip_escape(p);
        }
        if p != close {
            return Err(self.error(
                close,
                close + 3,
                "Multi-line string closing quotes must be on a line of their own",
                "closing quotes",
                Some(CLOSE_HELP),
            ));
        }
        let out = self.dedent(body, last_line, close, prefix, raw)?;
        self.pos = close + 3 + hashes;
        Ok(out)
    }

    /// The offset of the closing `"""` (and `hashes` `#`) and the start
    /// of its line.
    fn find_close(
        &self,
        start: usize,
        body: usize,
        raw: bool,
        hashes: usize,
    ) -> PResult<(usize, usize)> {
        let mut i = body;
        let mut line = body;
        while i < self.b.len() {
            match self.b[i] {
                b'\\' if !raw => i = self.skip_escape(i),
                b'"' if self.b[i..].starts_with(b"\"\"\"") && self.closes(i + 3, hashes) => {
                    return Ok((i, line));
                }
                _ => {
                    let nl = newline_len(self.b, i);
                    if nl > 0 {
                        i += nl;
                        line = i;
                    } else {
                        i += 1;
                    }
                }
            }
        }
        Err(self.error(
            start,
            body,
            "missing multiline string closing quotes",
            "not closed",
            Some(CLOSE_HELP),
        ))
    }

    /// The offset after the escape at `i` (a `\`): after all the
    /// whitespace of a whitespace escape, else after the next byte.
    fn skip_escape(&self, i: usize) -> usize {
        let mut j = i + 1;
        loop {
            let n = space_len(self.b, j).max(newline_len(self.b, j));
            if n == 0 {
                return if j == i + 1 { i + 2 } else { j };
            }
            j += n;
        }
    }

    /// The body lines between `body` and `last_line`, dedented by `prefix`,
    /// escapes applied unless `raw`, newlines as `\n`, without the last one.
    fn dedent(
        &mut self,
        body: usize,
        last_line: usize,
        close: usize,
        prefix: &str,
        raw: bool,
    ) -> PResult<String> {
        let mut out = String::new();
        let mut p = body;
        'lines: while p < last_line {
            // A line of only whitespace is an empty line, prefix or not.
            let mut q = p;
            while space_len(self.b, q) > 0 {
                q += space_len(self.b, q);
            }
            let nl = newline_len(self.b, q);
            if nl > 0 {
                out.push('\n');
                p = q + nl;
                continue;
            }
            if !self.text[p..].starts_with(prefix) {
                return Err(self.error(
                    p,
                    q.max(p + 1),
                    "matching multiline string prefix",
                    "bad prefix",
                    Some(PREFIX_HELP),
                ));
            }
            self.pos = p + prefix.len();
            loop {
                if self.pos >= close {
                    break 'lines;
                }
                let nl = newline_len(self.b, self.pos);
                if nl > 0 {
                    out.push('\n');
                    self.pos += nl;
                    break;
                }
                if !raw && self.peek() == Some(b'\\') {
                    self.escape(&mut out)?;
                    continue;
                }
                match char_at(self.text, self.pos) {
                    Some(c) if !is_disallowed(c) => {
                        out.push(c);
                        self.pos += c.len_utf8();
                    }
                    _ => return Err(self.bad_char(self.pos, "a string")),
                }
            }
            p = self.pos;
        }
        if out.ends_with('\n') {
            out.pop();
        }
        Ok(out)
    }
}
