//! The reader's errors on the mistakes people make, each pinned to the
//! token at fault (the tree itself is tested against the `kdl` crate in
//! `tests/kdl_reader.rs`).

use super::*;

/// The error's message, label and the text its span covers.
fn err(text: &str) -> (String, String, &str) {
    let e = parse(text).expect_err("invalid");
    let (s, l) = (e.span.offset(), e.span.len());
    (e.message, e.label, &text[s..s + l])
}

#[test]
fn a_value_running_into_text_is_the_whole_token() {
    let (m, l, at) = err("runner \"r\" {\n    timeout 1m\n}\n");
    assert_eq!(
        (m.as_str(), l.as_str(), at),
        ("Expected integer", "not integer", "1m")
    );
    let (m, _, at) = err("a \"x\"y z");
    assert_eq!((m.as_str(), at), ("Expected quoted string", "\"x\"y"));
    let (m, _, at) = err("a 1.5.2");
    assert_eq!((m.as_str(), at), ("Expected float", "1.5.2"));
}

#[test]
fn kdl1_keywords_say_how_to_write_them() {
    let e = parse("a enabled=true").expect_err("KDL 1 boolean");
    assert_eq!(e.message, "`true` is a keyword and cannot be a bare string");
    assert_eq!(e.span, (10, 4).into());
    assert!(e.help.unwrap().contains("#true"));
    let (m, _, at) = err("a #yes");
    assert_eq!((m.as_str(), at), ("Expected keyword", "#yes"));
}

#[test]
fn unclosed_things_point_at_their_opening() {
    let (m, _, at) = err("a {\n  b 1\n");
    assert_eq!((m.as_str(), at), ("No closing '}' for child block", "{"));
    let (m, _, at) = err("a \"abc\nb");
    assert_eq!(
        (m.as_str(), at),
        ("Unexpected newline in single-line quoted string", "\"abc")
    );
    let (m, _, at) = err("a /* b");
    assert_eq!(
        (m.as_str(), at),
        ("Expected closing of multi-line comment", "/*")
    );
    let (m, _, _) = err("a \"\"\"\n  x\n");
    assert_eq!(m, "missing multiline string closing quotes");
}

#[test]
fn misplaced_braces_and_entries() {
    let (m, _, at) = err("a 1 }\n");
    assert_eq!(
        (m.as_str(), at),
        ("Found a closing '}' with no child block open", "}")
    );
    let (m, _, at) = err("a { } b\n");
    assert_eq!(
        (m.as_str(), at),
        (
            "Found an argument or property after the node's child block",
            "b"
        )
    );
    let (m, _, at) = err("{ a }");
    assert_eq!(
        (m.as_str(), at),
        ("Found child block instead of node name", "{")
    );
    let (m, _, at) = err("a \\ b");
    assert_eq!(
        (m.as_str(), at),
        ("Expected a newline after the line continuation '\\'", "\\")
    );
}

#[test]
fn spans_follow_the_kdl_crate() {
    let doc = parse("(t)node  \"arg\" key = (u8)1 { child; }  // c\n").unwrap();
    let n = &doc.nodes()[0];
    assert_eq!(
        n.span(),
        (0, 39).into(),
        "up to the comment, spaces included"
    );
    assert_eq!(n.name().span(), (3, 4).into());
    assert_eq!(n.ty().map(Ident::value), Some("t"));
    assert_eq!(n.entries()[0].span(), (9, 5).into());
    assert_eq!(n.entries()[1].span(), (15, 11).into());
    assert_eq!(n.entries()[1].value(), &Value::Integer(1));
    assert_eq!(n.children().map(|c| c.nodes().len()), Some(1));
}

#[test]
fn strings_decode_escapes_and_dedent() {
    let doc =
        parse("a \"t\\tx\\u{e9}\\\n    y\" #\"r\\n\"# \"\"\"\n    one\n      two\n    \"\"\"")
            .unwrap();
    let v: Vec<_> = doc.nodes()[0]
        .entries()
        .iter()
        .map(|e| e.value().clone())
        .collect();
    assert_eq!(
        v,
        [
            Value::String("t\txéy".into()),
            Value::String("r\\n".into()),
            Value::String("one\n  two".into())
        ]
    );
}

#[test]
fn nesting_is_bounded() {
    let deep = "a {".repeat(MAX_DEPTH + 1);
    let (m, _, _) = err(&deep);
    assert!(m.contains("nested more than"), "{m}");
}

#[test]
fn a_disallowed_code_point_in_a_comment_is_refused_where_it_stands() {
    for text in [
        "a // x\u{e}y\n",
        "a /* x\u{7f} */ b",
        "a\n/* /* \u{200e} */ */\n",
    ] {
        let (m, l, at) = err(text);
        assert!(m.ends_with("is not allowed in a comment"), "{text:?}: {m}");
        assert_eq!(l, "disallowed code point");
        assert!(
            at.chars().all(crate::syntax::chars::is_disallowed),
            "{at:?}"
        );
    }
    // Everywhere else in a comment is fine, a byte-order mark at the start too.
    assert!(parse("\u{feff}a // é ✓ \u{2028}ok\n/* ⟶ */ b").is_ok());
}
