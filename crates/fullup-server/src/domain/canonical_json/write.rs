//! Serializer producing exactly what V8's `JSON.stringify` prints for a parsed value.

use std::borrow::Cow;

use indexmap::IndexMap;

use super::parse::Value;

/// Largest array index: JavaScript orders keys `"0"` to `"4294967294"` numerically first.
const MAX_ARRAY_INDEX: u64 = 4_294_967_294;

/// Writes `value` in canonical form to `out`.
pub(super) fn write_value(out: &mut String, value: &Value<'_>) {
    write(out, value, &mut ryu_js::Buffer::new());
}

fn write(out: &mut String, value: &Value<'_>, numbers: &mut ryu_js::Buffer) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Int(literal) => out.push_str(literal),
        Value::Float(x) => out.push_str(numbers.format_finite(*x)),
        Value::Str(s) => write_js_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(out, item, numbers);
            }
            out.push(']');
        }
        Value::Object(members) => write_object(out, members, numbers),
    }
}

/// Writes members in JavaScript property order: array-index keys ascending, then the rest
/// in insertion order.
fn write_object(
    out: &mut String,
    members: &IndexMap<Cow<'_, str>, Value<'_>>,
    numbers: &mut ryu_js::Buffer,
) {
    out.push('{');
    let mut first = true;
    let mut member = |out: &mut String, key: &str, value: &Value<'_>| {
        if !std::mem::take(&mut first) {
            out.push(',');
        }
        write_js_string(out, key);
        out.push(':');
        write(out, value, numbers);
    };
    if members.keys().any(|key| array_index(key).is_some()) {
        let mut indexed: Vec<_> = members
            .iter()
            .filter_map(|(key, value)| Some((array_index(key)?, key, value)))
            .collect();
        indexed.sort_unstable_by_key(|&(index, _, _)| index);
        for (_, key, value) in indexed {
            member(out, key, value);
        }
        for (key, value) in members.iter().filter(|(key, _)| array_index(key).is_none()) {
            member(out, key, value);
        }
    } else {
        for (key, value) in members {
            member(out, key, value);
        }
    }
    out.push('}');
}

/// The array index a key denotes: its canonical decimal form within `0..=2^32−2`.
fn array_index(key: &str) -> Option<u32> {
    let bytes = key.as_bytes();
    let canonical = matches!(bytes, [b'0'] | [b'1'..=b'9', ..])
        && bytes.len() <= 10
        && bytes.iter().all(u8::is_ascii_digit);
    if !canonical {
        return None;
    }
    let n = key.parse::<u64>().ok().filter(|&n| n <= MAX_ARRAY_INDEX)?;
    u32::try_from(n).ok()
}

/// How [`write_js_string`] writes each byte: 0 = as is, `u` = `\u00xx`, else `\` + that byte.
const ESCAPES: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = b'u';
        b += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0a] = b'n';
    table[0x0c] = b'f';
    table[0x0d] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

/// Appends `s` as a JSON string literal exactly as JavaScript's `JSON.stringify` writes it.
///
/// Only `"`, `\` and U+0000–U+001F are escaped (`\b \t \n \f \r`, else lowercase
/// `\u00xx`); everything else, including `/`, DEL and U+2028/U+2029, is written as raw
/// UTF-8. Use it to build documents around [`super::CanonicalJson`] values, such as the
/// delivery envelope, that must stay canonical.
pub fn write_js_string(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    let mut run = 0;
    for (i, &b) in s.as_bytes().iter().enumerate() {
        let escape = ESCAPES[usize::from(b)];
        if escape == 0 {
            continue;
        }
        out.push_str(&s[run..i]);
        out.push('\\');
        if escape == b'u' {
            out.push_str("u00");
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        } else {
            out.push(char::from(escape));
        }
        run = i + 1;
    }
    out.push_str(&s[run..]);
    out.push('"');
}
