//! The recursive descent: document, nodes, entries, and the space between
//! them (whitespace, comments, line continuations, `/-` slashdashes).
//! Strings are in `strings.rs`, numbers in `number.rs`.

use miette::SourceSpan;

use super::chars::{char_at, disallowed_at, ident_char_len, newline_len, space_len};
use super::tree::{Document, Entry, Ident, Node, Value};
use super::{SyntaxError, MAX_DEPTH};

pub(crate) type PResult<T> = Result<T, SyntaxError>;

const TERMINATOR_HELP: &str = "A valid value was partially parsed, but was not followed by a value terminator. Did you want a space here?";

pub(crate) struct Parser<'a> {
    pub(crate) text: &'a str,
    pub(crate) b: &'a [u8],
    pub(crate) pos: usize,
    depth: usize,
}

impl<'a> Parser<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        Parser {
            text,
            b: text.as_bytes(),
            pos: 0,
            depth: 0,
        }
    }

    pub(crate) fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    pub(crate) fn at(&self, s: &[u8]) -> bool {
        self.b[self.pos.min(self.b.len())..].starts_with(s)
    }

    pub(crate) fn error(
        &self,
        start: usize,
        end: usize,
        message: impl Into<String>,
        label: impl Into<String>,
        help: Option<&str>,
    ) -> SyntaxError {
        let mut end = end.max(start).min(self.b.len());
        let mut start = start.min(end);
        // A span always covers whole characters, however it was counted.
        while !self.text.is_char_boundary(end) {
            end += 1;
        }
        while !self.text.is_char_boundary(start) {
            start -= 1;
        }
        SyntaxError {
            span: (start, end - start).into(),
            message: message.into(),
            label: label.into(),
            help: help.map(str::to_string),
        }
    }

    /// `document := bom? nodes`
    pub(crate) fn document(mut self) -> PResult<Document> {
        if self.at("\u{FEFF}".as_bytes()) {
            self.pos += 3;
        }
        let nodes = self.nodes(false)?;
        Ok(Document { nodes })
    }

    /// As [`Self::document`], handing each top-level node to `each` as soon
    /// as it is read and keeping none: a large file is decoded without its
    /// whole tree in memory. Reading stops, with no error, when `each` says
    /// [`ControlFlow::Break`](std::ops::ControlFlow::Break).
    pub(crate) fn each_node(
        mut self,
        mut each: impl FnMut(Node) -> std::ops::ControlFlow<()>,
    ) -> PResult<()> {
        if self.at("\u{FEFF}".as_bytes()) {
            self.pos += 3;
        }
        loop {
            self.between_nodes()?;
            if self.peek().is_none() {
                return Ok(());
            }
            let node = self.base_node()?;
            self.node_terminator(false)?;
            if each(node).is_break() {
                return Ok(());
            }
        }
    }

    /// `nodes := (line-space* node)* line-space*`, up to the end of the text
    /// or, in a block, the `}` that closes it (left for the caller).
    fn nodes(&mut self, in_block: bool) -> PResult<Vec<Node>> {
        let mut out = Vec::new();
        loop {
            self.between_nodes()?;
            match self.peek() {
                None => return Ok(out),
                Some(b'}') if in_block => return Ok(out),
                _ => {}
            }
            out.push(self.base_node()?);
            self.node_terminator(in_block)?;
        }
    }

    /// After a node: `;`, a newline, a `//` comment, the end, or (in a
    /// block) the closing `}`. `base_node` stops only before one of these.
    fn node_terminator(&mut self, in_block: bool) -> PResult<()> {
        match self.peek() {
            None => {}
            Some(b';') => self.pos += 1,
            Some(b'}') if in_block => {}
            Some(b'}') => {
                return Err(self.error(
                    self.pos,
                    self.pos + 1,
                    "Found a closing '}' with no child block open",
                    "unmatched '}'",
                    Some("Remove it, or add the '{' it was meant to close."),
                ))
            }
            Some(_) if self.at(b"//") => self.line_comment()?,
            Some(_) => {
                let nl = newline_len(self.b, self.pos);
                if nl == 0 {
                    return Err(self.unexpected("node terminator"));
                }
                self.pos += nl;
            }
        }
        Ok(())
    }

    /// line-space*, and nodes commented out with `/-`.
    fn between_nodes(&mut self) -> PResult<()> {
        loop {
            if self.node_space()? {
                continue;
            }
            let nl = newline_len(self.b, self.pos);
            if nl > 0 {
                self.pos += nl;
            } else if self.at(b"//") {
                self.line_comment()?;
            } else if self.at(b"/-") {
                self.slashdash()?;
                self.base_node()?;
                if self.peek() == Some(b';') {
                    self.pos += 1;
                }
            } else {
                return Ok(());
            }
        }
    }

    /// `base-node := type? node-space* string (entries) (children)? node-space*`
    fn base_node(&mut self) -> PResult<Node> {
        let start = self.pos;
        if self.peek() == Some(b'{') {
            return Err(self.error(
                start,
                start + 1,
                "Found child block instead of node name",
                "not node name",
                Some("Did you forget to add the node name itself? Or perhaps terminated the node before its child block?"),
            ));
        }
        let ty = if self.peek() == Some(b'(') {
            let t = self.type_annotation()?;
            self.node_space()?;
            Some(Box::new(t))
        } else {
            None
        };
        if !self.at_string() {
            let end = self.bad_token_end();
            return Err(self.error(
                self.pos,
                end.max(self.pos + 1),
                "Found invalid node name",
                "not node name",
                Some("This can be any string type, including a quoted, raw, or multiline string, as well as a plain identifier string."),
            ));
        }
        let name = self.ident()?;
        let mut node = Node {
            ty,
            name,
            entries: Vec::new(),
            children: None,
            span: (start, 0).into(),
        };
        self.node_body(&mut node)?;
        node.span = (start, self.pos - start).into();
        Ok(node)
    }

    /// The entries and child blocks after a node's name, and the space
    /// after them, up to (not including) the node's terminator.
    fn node_body(&mut self, node: &mut Node) -> PResult<()> {
        // Whether a block (`{…}` or `/- {…}`) has been read: entries may not follow.
        let mut block_seen = false;
        loop {
            let spaced = self.node_space()?;
            match self.peek() {
                None | Some(b';') | Some(b'}') => return Ok(()),
                Some(b'{') => {
                    if node.children.is_some() {
                        return Err(self.error(
                            self.pos,
                            self.pos + 1,
                            "A node has at most one child block",
                            "second child block",
                            Some("Merge the blocks, or comment one out with `/-`."),
                        ));
                    }
                    node.children = Some(self.children_block()?);
                    block_seen = true;
                }
                Some(_) if self.at(b"//") || newline_len(self.b, self.pos) > 0 => return Ok(()),
                Some(_) if self.at(b"/-") => {
                    let sd = self.pos;
                    self.slashdash()?;
                    if self.peek() == Some(b'{') {
                        self.children_block()?;
                        block_seen = true;
                    } else if block_seen {
                        return Err(self.after_block(sd));
                    } else {
                        self.entry()?;
                    }
                }
                Some(_) if block_seen => return Err(self.after_block(self.pos)),
                Some(_) if !spaced => return Err(self.unexpected("space before the next entry")),
                Some(_) => {
                    let e = self.entry()?;
                    node.entries.push(e);
                }
            }
        }
    }

    fn after_block(&self, at: usize) -> SyntaxError {
        let end = self.bad_token_end().max(at + 1);
        self.error(
            at,
            end,
            "Found an argument or property after the node's child block",
            "after the child block",
            Some("Arguments and properties come before the `{ … }` block; did you forget a newline or `;` after the `}`?"),
        )
    }

    /// An error for the token at the current position, which is not `what`.
    fn unexpected(&self, what: &str) -> SyntaxError {
        let end = self.bad_token_end().max(self.pos + 1);
        let found = &self.text[self.pos..self.char_end(end)];
        self.error(
            self.pos,
            self.char_end(end),
            format!("Expected {what}, found `{found}`"),
            format!("not {what}"),
            None,
        )
    }

    /// `end` moved forward to a character boundary.
    fn char_end(&self, mut end: usize) -> usize {
        end = end.min(self.b.len());
        while !self.text.is_char_boundary(end) {
            end += 1;
        }
        end
    }

    /// `node-children := '{' nodes final-node? '}'`
    fn children_block(&mut self) -> PResult<Document> {
        let open = self.pos;
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error(
                open,
                open + 1,
                format!("Blocks are nested more than {MAX_DEPTH} levels deep"),
                "too deep",
                None,
            ));
        }
        self.pos += 1;
        let nodes = self.nodes(true)?;
        if self.peek() != Some(b'}') {
            return Err(self.error(
                open,
                open + 1,
                "No closing '}' for child block",
                "not closed",
                None,
            ));
        }
        self.pos += 1;
        self.depth -= 1;
        Ok(Document { nodes })
    }

    /// `node-prop-or-arg := prop | value`, `prop := string node-space* '=' node-space* value`
    fn entry(&mut self) -> PResult<Entry> {
        let start = self.pos;
        if self.at_string() {
            let key = self.ident()?;
            let after_key = self.pos;
            self.node_space()?;
            if self.peek() == Some(b'=') {
                self.pos += 1;
                self.node_space()?;
                let (ty, value) = self.typed_value()?;
                return Ok(Entry {
                    name: Some(key),
                    ty,
                    value,
                    span: (start, self.pos - start).into(),
                });
            }
            self.pos = after_key;
            return Ok(Entry {
                name: None,
                ty: None,
                value: Value::String(key.value.into_string()),
                span: key.span,
            });
        }
        let (ty, value) = self.typed_value()?;
        Ok(Entry {
            name: None,
            ty,
            value,
            span: (start, self.pos - start).into(),
        })
    }

    /// `value := type? node-space* (string | number | keyword)`
    fn typed_value(&mut self) -> PResult<(Option<Box<Ident>>, Value)> {
        let ty = if self.peek() == Some(b'(') {
            let t = self.type_annotation()?;
            self.node_space()?;
            Some(Box::new(t))
        } else {
            None
        };
        Ok((ty, self.value()?))
    }

    fn value(&mut self) -> PResult<Value> {
        let c = self.peek();
        let next = self.b.get(self.pos + 1).copied();
        match c {
            Some(b'#') if !matches!(next, Some(b'#' | b'"')) => self.keyword(),
            Some(b'0'..=b'9') => self.number(),
            Some(b'+' | b'-') if next.is_some_and(|n| n.is_ascii_digit()) => self.number(),
            _ if self.at_string() => Ok(Value::String(self.string()?.0)),
            _ => {
                let end = self.bad_token_end().max(self.pos + 1);
                let end = self.char_end(end);
                let what = if self.pos >= self.b.len() {
                    "the end of the text".to_string()
                } else {
                    format!("`{}`", &self.text[self.pos..end])
                };
                Err(self.error(
                    self.pos,
                    end,
                    format!("Expected a value, found {what}"),
                    "not a value",
                    Some("A value is a string, a number, #true, #false, #null, #inf, #-inf or #nan. Numbers start with a digit (0.5, not .5)."),
                ))
            }
        }
    }

    /// `keyword := '#true' | '#false' | '#null' | '#inf' | '#-inf' | '#nan'`
    fn keyword(&mut self) -> PResult<Value> {
        let start = self.pos;
        let rest = &self.b[start + 1..];
        let (len, v) = if rest.starts_with(b"true") {
            (4, Value::Bool(true))
        } else if rest.starts_with(b"false") {
            (5, Value::Bool(false))
        } else if rest.starts_with(b"null") {
            (4, Value::Null)
        } else if rest.starts_with(b"nan") {
            (3, Value::Float(f64::NAN))
        } else if rest.starts_with(b"inf") {
            (3, Value::Float(f64::INFINITY))
        } else if rest.starts_with(b"-inf") {
            (4, Value::Float(f64::NEG_INFINITY))
        } else {
            (0, Value::Null)
        };
        self.pos = start + 1 + len;
        if len == 0 || !self.at_value_terminator() {
            let end = self.bad_token_end().max(start + 1);
            return Err(self.error(
                start,
                end,
                "Expected keyword",
                "not keyword",
                Some("Available keywords in KDL are '#true', '#false', '#null', '#nan', '#inf', and '#-inf'; they are case-sensitive."),
            ));
        }
        Ok(v)
    }

    /// `type := '(' node-space* string node-space* ')'`
    fn type_annotation(&mut self) -> PResult<Ident> {
        let open = self.pos;
        self.pos += 1;
        self.node_space()?;
        if !self.at_string() {
            let end = self.bad_token_end().max(self.pos + 1);
            return Err(self.error(
                self.pos,
                end,
                "invalid contents inside type annotation",
                "not type name",
                None,
            ));
        }
        let ty = self.ident()?;
        self.node_space()?;
        if self.peek() != Some(b')') {
            return Err(self.error(
                open,
                self.pos,
                "No closing ')' for type annotation",
                "not closed",
                Some("A type annotation is one string in parentheses: (name)"),
            ));
        }
        self.pos += 1;
        Ok(ty)
    }

    /// A string in a name's position, with its span.
    fn ident(&mut self) -> PResult<Ident> {
        let (value, span) = self.string()?;
        Ok(Ident {
            value: value.into_boxed_str(),
            span: span.into(),
        })
    }

    /// Whether a string (identifier, quoted or raw) starts here.
    pub(crate) fn at_string(&self) -> bool {
        let b = self.b;
        let i = self.pos;
        match b.get(i) {
            Some(b'"') => true,
            Some(b'#') => matches!(b.get(i + 1), Some(b'#' | b'"')),
            Some(b'0'..=b'9') => false,
            Some(b'+' | b'-') => match b.get(i + 1) {
                Some(b'0'..=b'9') => false,
                Some(b'.') => !matches!(b.get(i + 2), Some(b'0'..=b'9')),
                _ => true,
            },
            Some(b'.') => !matches!(b.get(i + 1), Some(b'0'..=b'9')),
            Some(_) => ident_char_len(self.text, i) > 0,
            None => false,
        }
    }

    /// Whether the value just read is properly ended: by the end, `=`, `)`,
    /// `{`, `}`, space, a line continuation or a node terminator.
    pub(crate) fn at_value_terminator(&self) -> bool {
        match self.peek() {
            None => true,
            Some(b'=' | b')' | b'{' | b'}' | b';' | b'\\' | b' ' | b'\t' | b'\n' | b'\r') => true,
            Some(b'/') => matches!(self.b.get(self.pos + 1), Some(b'/' | b'*')),
            Some(_) => space_len(self.b, self.pos) > 0 || newline_len(self.b, self.pos) > 0,
        }
    }

    /// Fails unless a value terminator follows the `kind` read from `start`;
    /// the error spans the whole malformed token.
    pub(crate) fn terminated(&self, start: usize, kind: &str) -> PResult<()> {
        if self.at_value_terminator() {
            return Ok(());
        }
        let end = self.bad_token_end();
        Err(self.error(
            start,
            end,
            format!("Expected {kind}"),
            format!("not {kind}"),
            Some(TERMINATOR_HELP),
        ))
    }

    /// The end of a malformed token starting here: the next value terminator.
    pub(crate) fn bad_token_end(&self) -> usize {
        let mut p = Parser {
            text: self.text,
            b: self.b,
            pos: self.pos,
            depth: 0,
        };
        while p.pos < p.b.len() {
            if p.at_value_terminator() {
                break;
            }
            p.pos += char_at(p.text, p.pos).map_or(1, char::len_utf8);
        }
        p.pos
    }

    /// One `ws` (a unicode space or a `/* */` comment); false if none here.
    fn ws(&mut self) -> PResult<bool> {
        let n = space_len(self.b, self.pos);
        if n > 0 {
            self.pos += n;
            return Ok(true);
        }
        if self.at(b"/*") {
            self.block_comment()?;
            return Ok(true);
        }
        Ok(false)
    }

    /// `multi-line-comment := '/*' commented-block`, nested.
    fn block_comment(&mut self) -> PResult<()> {
        let start = self.pos;
        self.pos += 2;
        let mut depth = 1usize;
        while depth > 0 {
            match self.b.get(self.pos) {
                None => {
                    return Err(self.error(
                        start,
                        start + 2,
                        "Expected closing of multi-line comment",
                        "not closed",
                        Some("Close the comment with `*/`."),
                    ))
                }
                Some(b'*') if self.b.get(self.pos + 1) == Some(&b'/') => {
                    depth -= 1;
                    self.pos += 2;
                }
                Some(b'/') if self.b.get(self.pos + 1) == Some(&b'*') => {
                    depth += 1;
                    self.pos += 2;
                }
                Some(_) => self.comment_byte()?,
            }
        }
        Ok(())
    }

    /// `node-space*` (`ws` and `\` line continuations); whether any was read.
    pub(crate) fn node_space(&mut self) -> PResult<bool> {
        let start = self.pos;
        loop {
            if self.ws()? {
                continue;
            }
            if self.peek() == Some(b'\\') {
                self.escline()?;
                continue;
            }
            return Ok(self.pos > start);
        }
    }

    /// `escline := '\\' ws* (single-line-comment | newline | eof)`
    fn escline(&mut self) -> PResult<()> {
        let start = self.pos;
        self.pos += 1;
        while self.ws()? {}
        if self.at(b"//") {
            return self.line_comment();
        }
        let nl = newline_len(self.b, self.pos);
        if nl > 0 {
            self.pos += nl;
            return Ok(());
        }
        if self.pos >= self.b.len() {
            return Ok(());
        }
        Err(self.error(
            start,
            start + 1,
            "Expected a newline after the line continuation '\\'",
            "line continuation",
            Some("Outside a string, '\\' continues a node on the next line; only spaces or a comment may follow it."),
        ))
    }

    /// `single-line-comment := '//' ^newline* (newline | eof)`
    fn line_comment(&mut self) -> PResult<()> {
        self.pos += 2;
        while self.pos < self.b.len() {
            let nl = newline_len(self.b, self.pos);
            if nl > 0 {
                self.pos += nl;
                return Ok(());
            }
            self.comment_byte()?;
        }
        Ok(())
    }

    /// Steps over one byte of a comment. The specification forbids its
    /// disallowed code points anywhere in a document, comments included.
    fn comment_byte(&mut self) -> PResult<()> {
        if disallowed_at(self.text, self.pos) {
            return Err(self.bad_char(self.pos, "a comment"));
        }
        self.pos += 1;
        Ok(())
    }

    /// `slashdash := '/-' line-space*`
    fn slashdash(&mut self) -> PResult<()> {
        self.pos += 2;
        loop {
            if self.node_space()? {
                continue;
            }
            let nl = newline_len(self.b, self.pos);
            if nl > 0 {
                self.pos += nl;
            } else if self.at(b"//") {
                self.line_comment()?;
            } else {
                return Ok(());
            }
        }
    }

    /// A span from `start` to the current position.
    pub(crate) fn span_from(&self, start: usize) -> SourceSpan {
        (start, self.pos - start).into()
    }
}
