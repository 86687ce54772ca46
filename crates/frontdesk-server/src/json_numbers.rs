//! Numbers in client JSON that would not read back as sent: refused at the edge (a 422
//! naming the field), so that every JSON value stored reads back with the value it had.
//!
//! A JSON value is stored in a `jsonb` column, which holds numbers as `numeric` and prints
//! them in plain notation (`1e300` comes back as a 1 followed by 300 zeros); it is read
//! back with `serde_json`, which parses a number into an `i64`, a `u64` or an `f64` (the
//! build has no `arbitrary_precision`). Two kinds of number do not survive that:
//! - integer literals outside `i64`/`u64`: `serde_json` turns them into a float while
//!   parsing the body, so they are found in the body's text;
//! - floats that are not the number sent, or whose plain rendering `serde_json` cannot
//!   parse back to the same double: `1e400` is beyond the double's range, `1e-400` is
//!   already 0 when the body is read.
//!
//! `serde_json` is built with `float_roundtrip` (correctly rounded parsing): without it,
//! about one random double in six came back one ulp off, and the plain rendering of
//! `1.7976931348623157e308` overflowed to an error, which is what made reading such a row
//! panic. With it every finite double reads back unchanged; the check for a float is
//! still the round trip itself (the double as `serde_json` writes it, rendered as
//! PostgreSQL's `numeric` prints it, parsed again by `serde_json`), so the rule holds
//! whatever the parser. docs/API.md, "JSON values", states the rule for clients.

use serde_json::Value;

/// Why a number is refused, as a field error's message.
pub const OUT_OF_RANGE_INTEGER: &str = "is an integer outside the 64-bit range \
    (-9223372036854775808 to 18446744073709551615); send larger integers as strings";
pub const OUT_OF_RANGE_FLOAT: &str = "is a number too large to store (its magnitude must be \
    below about 1.7e308, and it must read back as the same double)";
pub const UNDERFLOW: &str = "is a number too small to store: it would read back as 0";
pub const NOT_STORABLE: &str = "is a number that would not read back as the same value once stored";

/// Whether `value` holds a float anywhere: only then can a number in its text be one
/// that does not survive (a body of in-range integers parses to integers only).
pub fn has_float(value: &Value) -> bool {
    match value {
        Value::Number(n) => n.is_f64(),
        Value::Array(items) => items.iter().any(has_float),
        Value::Object(map) => map.values().any(has_float),
        _ => false,
    }
}

/// Whether a `serde_json` error is its refusal of a number out of the double's range.
pub fn is_out_of_range(error: &serde_json::Error) -> bool {
    error.to_string().starts_with("number out of range")
}

/// The first number of the JSON text `body` that would not read back as sent: its field
/// path (`metadata.x`, `items[2]`; `body` for the root) and why. Never panics, on any
/// input; linear in the length of `body`.
pub fn unstorable_number(body: &[u8]) -> Option<(String, &'static str)> {
    enum Frame {
        Object {
            key: Option<String>,
            expect_key: bool,
        },
        Array {
            index: usize,
        },
    }
    let mut stack: Vec<Frame> = Vec::new();
    let path = |stack: &[Frame]| {
        let mut path = String::new();
        for frame in stack {
            match frame {
                Frame::Object { key: Some(key), .. } => {
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(key);
                }
                Frame::Object { key: None, .. } => {}
                Frame::Array { index } => {
                    if path.is_empty() {
                        path.push_str("body");
                    }
                    path.push_str(&format!("[{index}]"));
                }
            }
        }
        if path.is_empty() {
            "body".to_owned()
        } else {
            path
        }
    };
    let mut i = 0;
    while i < body.len() {
        match body[i] {
            b'{' => stack.push(Frame::Object {
                key: None,
                expect_key: true,
            }),
            b'[' => stack.push(Frame::Array { index: 0 }),
            b'}' | b']' => {
                stack.pop();
            }
            b',' => match stack.last_mut() {
                Some(Frame::Array { index }) => *index += 1,
                Some(Frame::Object { expect_key, .. }) => *expect_key = true,
                None => {}
            },
            b':' => {
                if let Some(Frame::Object { expect_key, .. }) = stack.last_mut() {
                    *expect_key = false;
                }
            }
            b'"' => {
                let start = i;
                i += 1;
                while i < body.len() && body[i] != b'"' {
                    if body[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                let end = (i + 1).min(body.len());
                if let Some(Frame::Object {
                    key,
                    expect_key: true,
                }) = stack.last_mut()
                {
                    let raw = &body[start..end];
                    *key = Some(serde_json::from_slice::<String>(raw).unwrap_or_else(|_| {
                        String::from_utf8_lossy(raw).trim_matches('"').to_owned()
                    }));
                }
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i + 1 < body.len()
                    && matches!(body[i + 1], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
                {
                    i += 1;
                }
                let token = std::str::from_utf8(&body[start..=i]).unwrap_or_default();
                if let Some(why) = unstorable(token) {
                    return Some((path(&stack), why));
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// Why the number literal `token` would not read back as sent, if it would not.
pub fn unstorable(token: &str) -> Option<&'static str> {
    let is_integer = !token.contains(['.', 'e', 'E']);
    if is_integer {
        let fits = if token.starts_with('-') {
            token.parse::<i64>().is_ok()
        } else {
            token.parse::<u64>().is_ok()
        };
        return (!fits).then_some(OUT_OF_RANGE_INTEGER);
    }
    // The double the body's parse made of it (serde_json parses a literal the same way
    // wherever it stands).
    let Ok(double) = serde_json::from_str::<f64>(token) else {
        return Some(OUT_OF_RANGE_FLOAT);
    };
    let mantissa = token.split(['e', 'E']).next().unwrap_or_default();
    if double == 0.0 && mantissa.bytes().any(|b| matches!(b, b'1'..=b'9')) {
        return Some(UNDERFLOW);
    }
    (!survives_storage(double)).then_some(NOT_STORABLE)
}

/// Whether `double`, written as `serde_json` writes it into a query, stored as `jsonb`
/// and printed by PostgreSQL, parses back with `serde_json` to the same double.
pub fn survives_storage(double: f64) -> bool {
    if !double.is_finite() {
        return false;
    }
    let Ok(sent) = serde_json::to_string(&double) else {
        return false;
    };
    let Some(printed) = numeric_text(&sent) else {
        return false;
    };
    match serde_json::from_str::<serde_json::Number>(&printed) {
        Ok(back) => back.as_f64() == Some(double),
        Err(_) => false,
    }
}

/// How PostgreSQL prints a JSON number literal stored in `jsonb` (a `numeric`): plain
/// notation, no exponent, with as many decimals as the literal had after its exponent is
/// applied (`1.50e1` → `15.0`, `1e3` → `1000`, `-0.0` → `0.0`). None for text that is not
/// a JSON number.
pub fn numeric_text(literal: &str) -> Option<String> {
    let (negative, rest) = match literal.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, literal),
    };
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(at) => (&rest[..at], rest[at + 1..].parse::<i64>().ok()?),
        None => (rest, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if whole.is_empty()
        || !whole
            .bytes()
            .chain(fraction.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    // numeric_in: the display scale is the decimals written less the exponent, never below 0.
    let scale = (fraction.len() as i64 - exponent).max(0);
    let digits: String = [whole, fraction].concat();
    // The position of the decimal point in `digits`, after the exponent.
    let point = whole.len() as i64 + exponent;
    let digit_at = |k: i64| -> char {
        if k >= 0 && (k as usize) < digits.len() {
            digits.as_bytes()[k as usize] as char
        } else {
            '0'
        }
    };
    let mut integer: String = (0..point.max(0)).map(digit_at).collect();
    let integer_trimmed = integer.trim_start_matches('0');
    integer = if integer_trimmed.is_empty() {
        "0".to_owned()
    } else {
        integer_trimmed.to_owned()
    };
    let decimals: String = (point..point + scale).map(digit_at).collect();
    let zero = integer == "0" && decimals.bytes().all(|b| b == b'0');
    let mut out = String::with_capacity(integer.len() + decimals.len() + 2);
    if negative && !zero {
        out.push('-');
    }
    out.push_str(&integer);
    if scale > 0 {
        out.push('.');
        out.push_str(&decimals);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_print_as_postgresql_prints_numeric() {
        for (literal, printed) in [
            ("1e3", "1000"),
            ("1.50e1", "15.0"),
            ("1.5", "1.5"),
            ("-0.0", "0.0"),
            ("-0", "0"),
            ("0.001", "0.001"),
            ("1e-3", "0.001"),
            ("-2.5e-2", "-0.025"),
            ("123.456e1", "1234.56"),
            ("100.0", "100.0"),
            ("12", "12"),
        ] {
            assert_eq!(numeric_text(literal).as_deref(), Some(printed), "{literal}");
        }
        assert_eq!(
            numeric_text("1e300").unwrap(),
            format!("1{}", "0".repeat(300))
        );
        assert_eq!(
            numeric_text("5e-324").unwrap(),
            format!("0.{}5", "0".repeat(323))
        );
        assert_eq!(numeric_text("x"), None);
    }

    #[test]
    fn integers_outside_64_bits_are_found_with_their_field() {
        for (body, field) in [
            (r#"{"metadata": {"x": 18446744073709551616}}"#, "metadata.x"),
            (
                r#"{"a": [1, 2, {"b": 123456789012345678901234567890}]}"#,
                "a[2].b",
            ),
            (r#"{"a": -9223372036854775809}"#, "a"),
            (r#"[0, 99999999999999999999]"#, "body[1]"),
            (
                r#"{"we\"ird": {"k": 1, "n": 18446744073709551616}}"#,
                "we\"ird.n",
            ),
        ] {
            assert_eq!(
                unstorable_number(body.as_bytes()),
                Some((field.to_owned(), OUT_OF_RANGE_INTEGER)),
                "{body}"
            );
        }
        for body in [
            r#"{"a": 18446744073709551615, "b": -9223372036854775808, "c": "18446744073709551616"}"#,
            r#"{"a": "1e400", "b": [1.5, -0.0, 0, 100]}"#,
        ] {
            assert_eq!(unstorable_number(body.as_bytes()), None, "{body}");
        }
    }

    #[test]
    fn floats_are_refused_exactly_when_they_would_not_read_back() {
        // The issue's number: the largest double, stored and read back exactly.
        assert_eq!(unstorable("1.7976931348623157e308"), None);
        assert!(survives_storage(f64::MAX) && survives_storage(f64::MIN_POSITIVE));
        assert_eq!(unstorable("1e400"), Some(OUT_OF_RANGE_FLOAT));
        assert_eq!(unstorable("1e-400"), Some(UNDERFLOW));
        for ok in ["1.5", "0.1", "-0.0", "1e3", "6.02214076e23", "0.0"] {
            assert_eq!(unstorable(ok), None, "{ok}");
        }
        // The rule is the round trip: whatever is accepted comes back as the same double.
        for literal in [
            "1.7976931348623157e308",
            "1e308",
            "1e300",
            "-1e-320",
            "5e-324",
            "2.2250738585072014e-308",
            "1e22",
            "1e23",
            "9007199254740993.0",
        ] {
            let double: f64 = serde_json::from_str(literal).unwrap();
            let printed = numeric_text(&serde_json::to_string(&double).unwrap()).unwrap();
            let back = serde_json::from_str::<serde_json::Number>(&printed)
                .ok()
                .and_then(|n| n.as_f64());
            assert_eq!(
                unstorable(literal).is_none(),
                back == Some(double),
                "{literal}"
            );
        }
    }

    #[test]
    fn doubles_read_back_unchanged_with_a_correctly_rounding_parser() {
        // Without serde_json's float_roundtrip, about one in six of these came back one
        // ulp off and would have been refused.
        let mut x = 0.123_456_789_012_345_67_f64;
        for i in 0..20_000 {
            x = (x * 7.123_456_789_1 + 0.271_828_459_045_123_4).fract();
            let scaled = x * 10f64.powi(i % 600 - 300);
            assert!(survives_storage(scaled), "{scaled:e}");
        }
    }

    #[test]
    fn scanning_malformed_text_never_panics() {
        for body in [
            "",
            "{",
            "\"",
            "\"\\",
            "[-",
            "{\"a\":1e",
            "}}]]",
            "-e-",
            "[\"\\\"]",
        ] {
            let _ = unstorable_number(body.as_bytes());
        }
    }
}
