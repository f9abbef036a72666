//! Text made safe for XML and HTML (`orch graph`'s SVG, the JUnit report).

/// Escapes text for an XML text node or a quoted attribute; control
/// characters XML 1.0 cannot carry become U+FFFD.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn markup_quotes_and_controls_are_escaped() {
        assert_eq!(
            super::escape("<a href=\"x\">'&'\u{1}</a>\n"),
            "&lt;a href=&quot;x&quot;&gt;&apos;&amp;&apos;\u{FFFD}&lt;/a&gt;\n"
        );
    }
}
