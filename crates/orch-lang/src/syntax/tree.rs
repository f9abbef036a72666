//! The tree the reader builds: nodes, their entries and children, each with
//! the byte span it was read from. Accessor names follow the `kdl` crate's
//! (`name()`, `entries()`, `children()`, `value()`, `ty()`, `span()`), so
//! that code written against that crate reads the same against this one.

use miette::SourceSpan;

/// A byte span in 8 bytes (`SourceSpan` takes 16): the tree holds one per
/// node, name and entry, and the reader refuses texts over 4 GiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    start: u32,
    len: u32,
}

impl From<(usize, usize)> for Span {
    fn from((start, len): (usize, usize)) -> Self {
        Span {
            start: u32::try_from(start).unwrap_or(u32::MAX),
            len: u32::try_from(len).unwrap_or(u32::MAX),
        }
    }
}

impl From<SourceSpan> for Span {
    fn from(s: SourceSpan) -> Self {
        (s.offset(), s.len()).into()
    }
}

impl From<Span> for SourceSpan {
    fn from(s: Span) -> Self {
        (s.start as usize, s.len as usize).into()
    }
}

/// A sequence of nodes: the file, or a node's `{ … }` block.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Document {
    pub(crate) nodes: Vec<Node>,
}

impl Document {
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }
}

/// A node: `(type)name entries… { children }`.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Boxed: type annotations are rare, and a node takes 16 bytes less.
    pub(crate) ty: Option<Box<Ident>>,
    pub(crate) name: Ident,
    pub(crate) entries: Vec<Entry>,
    pub(crate) children: Option<Document>,
    /// From the type annotation (or the name) to the end of the node's last
    /// element and the space after it, before its terminator: the span the
    /// `kdl` crate gives a node.
    pub(crate) span: Span,
}

impl Node {
    pub fn name(&self) -> &Ident {
        &self.name
    }
    pub fn ty(&self) -> Option<&Ident> {
        self.ty.as_deref()
    }
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }
    /// The `{ … }` block, if the node has one (even an empty one).
    pub fn children(&self) -> Option<&Document> {
        self.children.as_ref()
    }
    pub fn span(&self) -> SourceSpan {
        self.span.into()
    }
}

/// A string in the position of a name: a node's name, a property's key or
/// a type annotation. The span covers its source form (quotes included).
#[derive(Debug, Clone, PartialEq)]
pub struct Ident {
    pub(crate) value: Box<str>,
    pub(crate) span: Span,
}

impl Ident {
    pub fn value(&self) -> &str {
        &self.value
    }
    pub fn span(&self) -> SourceSpan {
        self.span.into()
    }
}

/// An argument (`name()` is `None`) or a property.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub(crate) name: Option<Ident>,
    pub(crate) ty: Option<Box<Ident>>,
    pub(crate) value: Value,
    /// From the key (or the type annotation, or the value) to the value's end.
    pub(crate) span: Span,
}

impl Entry {
    /// The property's key; `None` for an argument.
    pub fn name(&self) -> Option<&Ident> {
        self.name.as_ref()
    }
    pub fn ty(&self) -> Option<&Ident> {
        self.ty.as_deref()
    }
    pub fn value(&self) -> &Value {
        &self.value
    }
    pub fn span(&self) -> SourceSpan {
        self.span.into()
    }
}

/// A value, as the `kdl` crate types them: integers are `i128`, numbers
/// with a fraction or an exponent (and `#inf`, `#-inf`, `#nan`) are `f64`.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    String(String),
    Integer(i128),
    Float(f64),
    Bool(bool),
    Null,
}

impl Value {
    pub(crate) fn as_string(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
}
