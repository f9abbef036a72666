//! Numbers: `decimal := sign? integer ('.' integer)? exponent?` and the
//! `0x`, `0o`, `0b` integers, each with `_` separators. Integers are read
//! into an `i128` digit by digit; a float's text (without `_`) goes to
//! `f64::from_str`, as in the `kdl` crate.

use super::parser::{PResult, Parser};
use super::tree::Value;

impl Parser<'_> {
    /// A number, which the caller has seen starts here (a digit, or a sign
    /// and a digit).
    pub(crate) fn number(&mut self) -> PResult<Value> {
        let start = self.pos;
        let negative = self.peek() == Some(b'-');
        if matches!(self.peek(), Some(b'+' | b'-')) {
            self.pos += 1;
        }
        let radix = match (self.peek(), self.b.get(self.pos + 1)) {
            (Some(b'0'), Some(b'x' | b'X')) => Some((16, "hexadecimal")),
            (Some(b'0'), Some(b'o' | b'O')) => Some((8, "octal")),
            (Some(b'0'), Some(b'b' | b'B')) => Some((2, "binary")),
            _ => None,
        };
        if let Some((radix, kind)) = radix {
            self.pos += 2;
            return self.radix_integer(start, negative, radix, kind);
        }
        let int_start = self.pos;
        self.digits();
        let mut float = false;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if !self.peek().is_some_and(|c| c.is_ascii_digit()) {
                return Err(self.number_error(
                    start,
                    "Non-digit character found after the '.' of a float",
                    "float",
                    None,
                ));
            }
            self.digits();
            float = true;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if !self.peek().is_some_and(|c| c.is_ascii_digit()) {
                return Err(self.number_error(
                    start,
                    "Non-digit character found in the exponent part of a float",
                    "float",
                    Some("Floats with exponent parts should look like '2.0e123', or '43.3E-4'."),
                ));
            }
            self.digits();
            float = true;
        }
        if float {
            self.terminated(start, "float")?;
            let text = &self.text[start..self.pos];
            let parsed = if text.contains('_') {
                text.replace('_', "").parse::<f64>()
            } else {
                text.parse::<f64>()
            };
            return match parsed {
                Ok(f) => Ok(Value::Float(f)),
                Err(e) => Err(self.number_error(start, &e.to_string(), "float", None)),
            };
        }
        self.terminated(start, "integer")?;
        self.accumulate(start, int_start, negative, 10, "integer")
    }

    /// `digit (digit | '_')*`, the first digit already seen.
    fn digits(&mut self) {
        while matches!(self.peek(), Some(b'0'..=b'9' | b'_')) {
            self.pos += 1;
        }
    }

    /// The digits after `0x`, `0o` or `0b`.
    fn radix_integer(
        &mut self,
        start: usize,
        negative: bool,
        radix: u32,
        kind: &str,
    ) -> PResult<Value> {
        let first = self.pos;
        if !self.peek().is_some_and(|c| (c as char).is_digit(radix)) {
            return Err(self.number_error(start, &format!("Expected {kind}"), kind, None));
        }
        while self
            .peek()
            .is_some_and(|c| c == b'_' || (c as char).is_digit(radix))
        {
            self.pos += 1;
        }
        self.terminated(start, kind)?;
        self.accumulate(start, first, negative, radix, kind)
    }

    /// The integer whose digits (and `_`) are `digits..pos`.
    fn accumulate(
        &self,
        start: usize,
        digits: usize,
        negative: bool,
        radix: u32,
        kind: &str,
    ) -> PResult<Value> {
        let mut n: i128 = 0;
        for &c in &self.b[digits..self.pos] {
            if c == b'_' {
                continue;
            }
            let d = (c as char).to_digit(radix).unwrap_or(0);
            n = match n
                .checked_mul(i128::from(radix))
                .and_then(|n| n.checked_add(i128::from(d)))
            {
                Some(n) => n,
                None => {
                    return Err(self.number_error(
                        start,
                        "number too large to fit in target type",
                        kind,
                        None,
                    ))
                }
            };
        }
        Ok(Value::Integer(if negative { -n } else { n }))
    }

    /// An error over the malformed number from `start` to its end.
    fn number_error(
        &self,
        start: usize,
        message: &str,
        kind: &str,
        help: Option<&str>,
    ) -> super::SyntaxError {
        let end = self.bad_token_end().max(self.pos);
        self.error(start, end, message, format!("not {kind}"), help)
    }
}
