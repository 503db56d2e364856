//! Strict RFC 8259 recursive-descent parser into a value that keeps what JavaScript keeps.
//!
//! Strings without escapes and safe integer literals borrow from the input, so a typical
//! payload allocates little more than its arrays and objects.
//!
//! Syntax errors take precedence over refusals (unsafe numbers, unpaired surrogates), so a
//! client fixes its JSON first: the first pass notes a refusal and parses on. Only when the
//! text is valid JSON does a second, strict pass stop at that refusal, building its path one
//! segment per level while the error unwinds; valid input pays for neither. Nesting deeper
//! than [`MAX_DEPTH`] stops either pass at once, to bound the recursion.

use std::borrow::Cow;

use indexmap::IndexMap;

use super::failure::{Failure, Refusal, Segment};
use super::{CanonicalError, MAX_DEPTH, MAX_SAFE_INTEGER};

/// A parsed JSON value, as JavaScript's `JSON.parse` would hold it.
#[derive(Debug)]
pub(super) enum Value<'a> {
    Null,
    Bool(bool),
    /// An integer literal within ±(2^53−1), already in `Number#toString` form.
    Int(&'a str),
    /// Any other finite number.
    Float(f64),
    Str(Cow<'a, str>),
    Array(Vec<Value<'a>>),
    /// Members in first-insertion order; a repeated key replaced the value in place.
    Object(IndexMap<Cow<'a, str>, Value<'a>>),
}

/// Parses a whole JSON text: one value, optionally surrounded by whitespace.
pub(super) fn parse(text: &str) -> Result<Value<'_>, CanonicalError> {
    let mut lenient = Parser::new(text, true);
    let value = lenient.document().map_err(Failure::into_error)?;
    if !lenient.refused {
        return Ok(value);
    }
    // The strict pass meets the same refusal first, now as an error that collects its path.
    Parser::new(text, false)
        .document()
        .map_err(Failure::into_error)
}

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    /// Note refusals in `refused` and parse on, instead of failing at the first one.
    defer_refusals: bool,
    refused: bool,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str, defer_refusals: bool) -> Self {
        Self {
            text,
            bytes: text.as_bytes(),
            pos: 0,
            defer_refusals,
            refused: false,
        }
    }

    fn document(&mut self) -> Result<Value<'a>, Failure> {
        let value = self.value(0)?;
        self.skip_whitespace();
        if self.pos < self.bytes.len() {
            return Err(Failure::syntax(
                self.pos,
                "unexpected characters after the JSON value; send exactly one value",
            ));
        }
        Ok(value)
    }

    /// Fails with `refusal`, or only notes it when refusals are deferred.
    fn refuse(&mut self, refusal: Refusal) -> Result<(), Failure> {
        if self.defer_refusals {
            self.refused = true;
            Ok(())
        } else {
            Err(Failure::refused(refusal))
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// Parses the value after optional whitespace; `depth` counts the enclosing containers.
    fn value(&mut self, depth: usize) -> Result<Value<'a>, Failure> {
        self.skip_whitespace();
        match self.peek() {
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(b'"') => self.string(false).map(Value::Str),
            Some(b't') => self.literal("true", Value::Bool(true)),
            Some(b'f') => self.literal("false", Value::Bool(false)),
            Some(b'n') => self.literal("null", Value::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.unexpected("a value")),
            None => Err(Failure::syntax(
                self.pos,
                "unexpected end of input; expected a value",
            )),
        }
    }

    /// A syntax error for the character at the cursor (or the end of input).
    fn unexpected(&self, expected: &str) -> Failure {
        let found = match self.text[self.pos..].chars().next() {
            Some(c) => format!("unexpected character {c:?}"),
            None => "unexpected end of input".to_owned(),
        };
        Failure::syntax(self.pos, format!("{found}; expected {expected}"))
    }

    fn literal(&mut self, word: &str, value: Value<'a>) -> Result<Value<'a>, Failure> {
        if self.bytes[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(value)
        } else {
            Err(self.unexpected("a value (true, false and null are lowercase)"))
        }
    }

    fn enter(&self, depth: usize) -> Result<(), Failure> {
        if depth > MAX_DEPTH {
            Err(Failure::refused(Refusal::TooDeep))
        } else {
            Ok(())
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value<'a>, Failure> {
        self.enter(depth)?;
        self.pos += 1;
        let mut items = Vec::new();
        self.skip_whitespace();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Value::Array(items));
        }
        loop {
            let index = items.len();
            items.push(
                self.value(depth)
                    .map_err(|f| f.under(|| Segment::Index(index)))?,
            );
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Value::Array(items));
                }
                _ => return Err(self.unexpected("',' or ']' after an array element")),
            }
            self.reject_trailing_comma(b']')?;
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value<'a>, Failure> {
        self.enter(depth)?;
        self.pos += 1;
        let mut members = IndexMap::new();
        self.skip_whitespace();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Value::Object(members));
        }
        loop {
            let (key, value) = self.member(depth)?;
            members.insert(key, value);
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Value::Object(members));
                }
                _ => return Err(self.unexpected("',' or '}' after an object member")),
            }
            self.reject_trailing_comma(b'}')?;
        }
    }

    /// Parses `"key": value` after optional whitespace.
    fn member(&mut self, depth: usize) -> Result<(Cow<'a, str>, Value<'a>), Failure> {
        self.skip_whitespace();
        if self.peek() != Some(b'"') {
            return Err(self.unexpected("a member name in double quotes"));
        }
        let key = self.string(true)?;
        self.skip_whitespace();
        if self.peek() != Some(b':') {
            return Err(self.unexpected("':' after a member name"));
        }
        self.pos += 1;
        let value = self
            .value(depth)
            .map_err(|f| f.under(|| Segment::Key(key.to_string())))?;
        Ok((key, value))
    }

    /// After a comma: a closing bracket here means a trailing comma, which JSON forbids.
    fn reject_trailing_comma(&mut self, close: u8) -> Result<(), Failure> {
        self.skip_whitespace();
        if self.peek() == Some(close) {
            return Err(Failure::syntax(
                self.pos,
                format!("trailing comma before '{}'; remove it", close as char),
            ));
        }
        Ok(())
    }

    fn number(&mut self) -> Result<Value<'a>, Failure> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => {
                self.pos += 1;
                if self.peek().is_some_and(|b| b.is_ascii_digit()) {
                    return Err(Failure::syntax(
                        start,
                        "numbers must not have leading zeros",
                    ));
                }
            }
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(self.unexpected("a digit")),
        }
        let mut integer = true;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            self.required_digits("a digit after the decimal point")?;
            integer = false;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            self.required_digits("a digit in the exponent")?;
            integer = false;
        }
        let literal = &self.text[start..self.pos];
        let value = if integer {
            integer_value(literal)
        } else {
            float_value(literal, start)?
        };
        value.or_else(|refusal| self.refuse(refusal).map(|()| Value::Null))
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
        }
    }

    fn required_digits(&mut self, expected: &str) -> Result<(), Failure> {
        if !self.peek().is_some_and(|b| b.is_ascii_digit()) {
            return Err(self.unexpected(expected));
        }
        self.digits();
        Ok(())
    }

    /// Parses the string at the cursor (which is on its opening quote).
    fn string(&mut self, member_name: bool) -> Result<Cow<'a, str>, Failure> {
        let start = self.pos + 1;
        let mut end = start;
        loop {
            match self.bytes.get(end) {
                Some(b'"') => {
                    self.pos = end + 1;
                    return Ok(Cow::Borrowed(&self.text[start..end]));
                }
                Some(b'\\') => break,
                Some(&b) if b < 0x20 => return Err(control_character(end, b)),
                Some(_) => end += 1,
                None => return Err(unterminated(start)),
            }
        }
        self.pos = end;
        let mut decoded = String::with_capacity(end - start + 16);
        decoded.push_str(&self.text[start..end]);
        self.escaped_string(&mut decoded, start, member_name)?;
        Ok(Cow::Owned(decoded))
    }

    /// Decodes the rest of a string from the cursor, which is on a backslash or after one.
    fn escaped_string(
        &mut self,
        out: &mut String,
        start: usize,
        member_name: bool,
    ) -> Result<(), Failure> {
        let mut run = self.pos;
        loop {
            match self.bytes.get(self.pos) {
                Some(b'"') => {
                    out.push_str(&self.text[run..self.pos]);
                    self.pos += 1;
                    return Ok(());
                }
                Some(b'\\') => {
                    out.push_str(&self.text[run..self.pos]);
                    self.escape(out, member_name)?;
                    run = self.pos;
                }
                Some(&b) if b < 0x20 => return Err(control_character(self.pos, b)),
                Some(_) => self.pos += 1,
                None => return Err(unterminated(start)),
            }
        }
    }

    /// Decodes one escape sequence at the cursor (on its backslash).
    fn escape(&mut self, out: &mut String, member_name: bool) -> Result<(), Failure> {
        let at = self.pos;
        let decoded = match self.bytes.get(at + 1) {
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'/') => '/',
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b'u') => return self.unicode_escape(out, member_name),
            _ => {
                return Err(Failure::syntax(
                    at,
                    "invalid escape; JSON allows \\\" \\\\ \\/ \\b \\f \\n \\r \\t and \\uXXXX",
                ));
            }
        };
        out.push(decoded);
        self.pos += 2;
        Ok(())
    }

    /// Decodes `\uXXXX`, or a `\uD8xx\uDCxx` surrogate pair, at the cursor.
    /// An unpaired surrogate is refused; when refusals are deferred it decodes as U+FFFD.
    fn unicode_escape(&mut self, out: &mut String, member_name: bool) -> Result<(), Failure> {
        let at = self.pos;
        let first = self.hex4(at + 2)?;
        self.pos = at + 6;
        let low = match first {
            0xD800..=0xDBFF => self.low_surrogate_escape(),
            _ => None,
        };
        let decoded = match low {
            Some(low) => char::from_u32(0x10000 + ((first - 0xD800) << 10) + (low - 0xDC00)),
            None => char::from_u32(first),
        };
        if let Some(c) = decoded {
            out.push(c);
            return Ok(());
        }
        self.refuse(Refusal::LoneSurrogate {
            offset: at,
            in_member_name: member_name,
        })?;
        out.push(char::REPLACEMENT_CHARACTER);
        Ok(())
    }

    /// Consumes a `\uDC00`–`\uDFFF` escape at the cursor, if there is one.
    fn low_surrogate_escape(&mut self) -> Option<u32> {
        if !self.bytes[self.pos..].starts_with(b"\\u") {
            return None;
        }
        let low = self
            .hex4(self.pos + 2)
            .ok()
            .filter(|u| (0xDC00..=0xDFFF).contains(u))?;
        self.pos += 6;
        Some(low)
    }

    fn hex4(&self, at: usize) -> Result<u32, Failure> {
        let digits = self.bytes.get(at..at + 4).unwrap_or_default();
        let mut value = 0;
        for &b in digits {
            let digit = (b as char)
                .to_digit(16)
                .ok_or_else(|| bad_unicode_escape(at))?;
            value = value * 16 + digit;
        }
        if digits.len() == 4 {
            Ok(value)
        } else {
            Err(bad_unicode_escape(at))
        }
    }
}

fn bad_unicode_escape(at: usize) -> Failure {
    Failure::syntax(at - 2, "\\u must be followed by four hexadecimal digits")
}

fn control_character(at: usize, b: u8) -> Failure {
    Failure::syntax(
        at,
        format!("raw control character U+{b:04X} in a string; escape it (e.g. \\n or \\u{b:04x})"),
    )
}

fn unterminated(start: usize) -> Failure {
    Failure::syntax(start - 1, "unterminated string; add the closing '\"'")
}

/// An integer literal (no fraction, no exponent): kept as written when exactly representable.
fn integer_value(literal: &str) -> Result<Value<'_>, Refusal> {
    let digits = literal.strip_prefix('-').unwrap_or(literal);
    // Seventeen or more digits without a leading zero is at least 10^16 > 2^53−1.
    let safe = digits.len() <= 16 && digits.parse::<u64>().is_ok_and(|n| n <= MAX_SAFE_INTEGER);
    if !safe {
        return Err(Refusal::UnsafeInteger(literal.to_owned()));
    }
    Ok(Value::Int(if literal == "-0" { "0" } else { literal }))
}

/// Any other number literal, rounded to the nearest `f64` as JavaScript does.
///
/// A value JavaScript prints as an unsafe integer (`1e20` → `100000000000000000000`) is
/// refused too: sending it would break the integer rule, and our output would not be a
/// fixed point.
fn float_value(literal: &str, start: usize) -> Result<Result<Value<'_>, Refusal>, Failure> {
    let x = literal
        .parse::<f64>()
        .map_err(|e| Failure::syntax(start, format!("number {literal} does not parse: {e}")))?;
    if !x.is_finite() {
        return Ok(Err(Refusal::NumberOutOfRange(literal.to_owned())));
    }
    if x.fract() == 0.0 && x.abs() > MAX_SAFE_INTEGER as f64 && x.abs() < 1e21 {
        let javascript = ryu_js::Buffer::new().format_finite(x).to_owned();
        return Ok(Err(Refusal::UnsafeIntegerValue {
            literal: literal.to_owned(),
            javascript,
        }));
    }
    Ok(Ok(Value::Float(x)))
}
