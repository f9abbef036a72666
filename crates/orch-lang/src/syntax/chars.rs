//! Character classes of KDL 2.0, read straight off the bytes: each function
//! takes the text and a byte offset and says how many bytes the class takes
//! there (0: not that class). ASCII, which is nearly all of a pipeline, is
//! decided on the first byte without decoding a `char`.

/// The `char` at byte `i` (which must be a character boundary).
pub(crate) fn char_at(text: &str, i: usize) -> Option<char> {
    text.get(i..).and_then(|s| s.chars().next())
}

/// `newline`: CRLF, CR, LF, NEL, VT, FF, LS, PS.
pub(crate) fn newline_len(b: &[u8], i: usize) -> usize {
    match b.get(i) {
        Some(b'\r') => {
            if b.get(i + 1) == Some(&b'\n') {
                2
            } else {
                1
            }
        }
        Some(b'\n' | 0x0B | 0x0C) => 1,
        Some(0xC2) if b.get(i + 1) == Some(&0x85) => 2,
        Some(0xE2) if b.get(i + 1) == Some(&0x80) && matches!(b.get(i + 2), Some(0xA8 | 0xA9)) => 3,
        _ => 0,
    }
}

/// `unicode-space`: tab, space and the Unicode `Zs` spaces.
pub(crate) fn space_len(b: &[u8], i: usize) -> usize {
    match b.get(i) {
        Some(b' ' | b'\t') => 1,
        Some(0xC2) if b.get(i + 1) == Some(&0xA0) => 2,
        Some(0xE1) if b.get(i + 1) == Some(&0x9A) && b.get(i + 2) == Some(&0x80) => 3,
        Some(0xE2) => match (b.get(i + 1), b.get(i + 2)) {
            (Some(0x80), Some(0x80..=0x8A | 0xAF)) | (Some(0x81), Some(0x9F)) => 3,
            _ => 0,
        },
        Some(0xE3) if b.get(i + 1) == Some(&0x80) && b.get(i + 2) == Some(&0x80) => 3,
        _ => 0,
    }
}

/// Code points KDL forbids anywhere outside comments. The `kdl` crate
/// allows U+007F (DELETE); the specification, and this reader, do not.
pub(crate) fn is_disallowed(c: char) -> bool {
    matches!(c,
        '\u{0000}'..='\u{0008}'
        | '\u{000E}'..='\u{001F}'
        | '\u{007F}'
        | '\u{200E}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2066}'..='\u{2069}'
        | '\u{FEFF}'
    )
}

/// Whether a disallowed code point starts at byte `i`, looking only at the
/// bytes that can begin one (C0 controls and DELETE, the lead bytes 0xE2
/// and 0xEF) so that the common bytes cost one comparison.
pub(crate) fn disallowed_at(text: &str, i: usize) -> bool {
    match text.as_bytes().get(i) {
        Some(0x00..=0x08 | 0x0E..=0x1F | 0x7F) => true,
        Some(0xE2 | 0xEF) => char_at(text, i).is_some_and(is_disallowed),
        _ => false,
    }
}

/// The length of the identifier character at `i`, or 0: anything but
/// space, newline, `\/(){};[]"#=` and the disallowed code points.
pub(crate) fn ident_char_len(text: &str, i: usize) -> usize {
    let b = text.as_bytes();
    match b.get(i) {
        None => 0,
        Some(&c) if c < 0x80 => match c {
            b'\\' | b'/' | b'(' | b')' | b'{' | b'}' | b'[' | b']' | b';' | b'"' | b'#' | b'='
            | b' ' | b'\t' | b'\n' | b'\r' | 0x0B | 0x0C => 0,
            0x00..=0x08 | 0x0E..=0x1F | 0x7F => 0,
            _ => 1,
        },
        Some(_) => {
            if space_len(b, i) > 0 || newline_len(b, i) > 0 {
                return 0;
            }
            match char_at(text, i) {
                Some(c) if !is_disallowed(c) => c.len_utf8(),
                _ => 0,
            }
        }
    }
}
