//! The one shape of input: each request body has a wire type (what the client sends, with
//! its OpenAPI schema) whose fields are [`Field`]s, so reading it never fails on a field;
//! `TryFrom<Wire>` turns it into the domain's input type, whose fields are already valid
//! (newtypes and enums from [`super::values`]), collecting every field error in one
//! [`Invalid`]. Unknown fields are gathered by [`Unknown`] (a flattened catch-all), so no
//! error depends on serde's error text.

use serde::{
    Deserialize, Deserializer, Serialize, Serializer,
    de::{DeserializeOwned, IgnoredAny, MapAccess, Visitor},
};
use serde_json::{Map, Value};

use crate::{CoreError, FieldError};

/// One field of a request body as sent: absent, null, a value of the wire type, or a value
/// that is not of it (with why). Deserializing a `Field` never fails, so one bad field
/// does not hide the others.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Field<T> {
    #[default]
    Absent,
    Null,
    Value(T),
    Invalid(String),
}

impl<T> Field<T> {
    pub fn is_absent(&self) -> bool {
        matches!(self, Self::Absent)
    }

    /// Whether the body gave the field a value (valid or not).
    pub fn is_sent(&self) -> bool {
        matches!(self, Self::Value(_) | Self::Invalid(_))
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Field<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match Value::deserialize(deserializer)? {
            Value::Null => Self::Null,
            value => {
                T::deserialize(value).map_or_else(|e| Self::Invalid(e.to_string()), Self::Value)
            }
        })
    }
}

/// A decimal as the API takes it (costs, prices, quantities, budgets): a JSON string of
/// digits, optionally a point and at least one more digit — `"0.0008"`, `"12"`, `"007.50"`.
/// Nothing else: no JSON number, sign, exponent (`"1e3"`, `"1e-30"`), digit separator
/// (`"1_0"`), bare point (`".5"`, `"5."`) or space. At most 10 digits after the point and
/// 18 significant digits before it, so every value is exact in the server's decimal type;
/// each field's own rule (range, decimal places) then applies to the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecimalText(pub rust_decimal::Decimal);

impl DecimalText {
    pub const FORMAT: &str = "must be a decimal string such as \"0.0008\": digits, optionally a point and more digits (no sign, exponent or separators)";

    /// `s` read in the API's decimal format, or why not.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (int, frac) = match s.split_once('.') {
            Some((int, frac)) => (int, Some(frac)),
            None => (s, None),
        };
        let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
        if !digits(int) || frac.is_some_and(|f| !digits(f)) {
            return Err(Self::FORMAT.into());
        }
        if frac.is_some_and(|f| f.len() > 10) {
            return Err("must have at most 10 decimal places".into());
        }
        if int.trim_start_matches('0').len() > 18 {
            return Err("is too large".into());
        }
        let int = int.trim_start_matches('0');
        let text = match frac {
            Some(f) => format!("{}.{f}", if int.is_empty() { "0" } else { int }),
            None => (if int.is_empty() { "0" } else { int }).to_owned(),
        };
        rust_decimal::Decimal::from_str_exact(&text)
            .map(Self)
            .map_err(|_| Self::FORMAT.into())
    }
}

impl<'de> Deserialize<'de> for DecimalText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::String(s) => Self::parse(&s).map_err(serde::de::Error::custom),
            _ => Err(serde::de::Error::custom(Self::FORMAT)),
        }
    }
}

impl Field<DecimalText> {
    /// The decimal sent, for the field's own rule.
    pub fn decimal(self) -> Field<rust_decimal::Decimal> {
        match self {
            Self::Absent => Field::Absent,
            Self::Null => Field::Null,
            Self::Value(d) => Field::Value(d.0),
            Self::Invalid(why) => Field::Invalid(why),
        }
    }
}

/// One query parameter as sent: absent, a value, or text that is not one (with why).
/// Query values are text: each is parsed with `FromStr`, and deserializing a `Param`
/// never fails, so a query struct reports every bad parameter at once. (Unknown
/// parameters are refused before the handler, by the router, from the OpenAPI document.)
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Param<T> {
    #[default]
    Absent,
    Value(T),
    Invalid(String),
}

impl<'de, T: std::str::FromStr> Deserialize<'de> for Param<T>
where
    T::Err: std::fmt::Display,
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Ok(text
            .parse()
            .map_or_else(|e: T::Err| Self::Invalid(e.to_string()), Self::Value))
    }
}

impl<T> Param<T> {
    pub fn is_absent(&self) -> bool {
        matches!(self, Self::Absent)
    }
}

/// The fields of a body its wire type does not know, in the order sent. Flattened into
/// every wire type (`#[serde(flatten)] #[schema(ignore)] pub unknown: Unknown`): serde hands
/// it whatever the named fields did not take.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Unknown(pub Vec<String>);

impl<'de> Deserialize<'de> for Unknown {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Names;
        impl<'de> Visitor<'de> for Names {
            type Value = Unknown;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Unknown, A::Error> {
                let mut names = Vec::new();
                while let Some((name, IgnoredAny)) = map.next_entry::<String, IgnoredAny>()? {
                    names.push(name);
                }
                Ok(Unknown(names))
            }
        }
        deserializer.deserialize_map(Names)
    }
}

/// Every invalid field of one input: the error of each `TryFrom<Wire>`, and the collector
/// its conversion fills field by field.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Invalid(pub Vec<FieldError>);

impl From<Invalid> for CoreError {
    fn from(invalid: Invalid) -> Self {
        Self::Invalid(invalid.0)
    }
}

impl Invalid {
    /// Start with the body's unknown fields.
    pub fn new(unknown: Unknown) -> Self {
        Self(
            unknown
                .0
                .into_iter()
                .map(|name| FieldError::new(name, "unknown field"))
                .collect(),
        )
    }

    pub fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `value` if no field was invalid, else every field error.
    pub fn finish<T>(self, value: T) -> Result<T, Self> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }

    /// Read a present field with `parse`, noting a wire type error or a broken rule.
    fn value<W, T>(
        &mut self,
        name: &str,
        field: Field<W>,
        parse: impl FnOnce(W) -> Result<T, String>,
    ) -> Field<T> {
        match field {
            Field::Absent => Field::Absent,
            Field::Null => Field::Null,
            Field::Invalid(message) => {
                self.push(name, message);
                Field::Invalid(String::new())
            }
            Field::Value(w) => match parse(w) {
                Ok(v) => Field::Value(v),
                Err(message) => {
                    self.push(name, message);
                    Field::Invalid(String::new())
                }
            },
        }
    }

    /// A query parameter that may be left out, read with `parse`.
    pub fn param<W: Clone, T>(
        &mut self,
        name: &str,
        param: &Param<W>,
        parse: impl FnOnce(W) -> Result<T, String>,
    ) -> Option<T> {
        let field = match param {
            Param::Absent => Field::Absent,
            Param::Value(v) => Field::Value(v.clone()),
            Param::Invalid(message) => Field::Invalid(message.clone()),
        };
        self.optional(name, field, parse)
    }

    /// A query parameter that must be given.
    pub fn required_param<W: Clone, T>(
        &mut self,
        name: &str,
        param: &Param<W>,
        parse: impl FnOnce(W) -> Result<T, String>,
    ) -> Option<T> {
        if param.is_absent() {
            self.push(name, "is required");
            return None;
        }
        self.param(name, param, parse)
    }

    /// A field that must be sent, not null.
    pub fn required<W, T>(
        &mut self,
        name: &str,
        field: Field<W>,
        parse: impl FnOnce(W) -> Result<T, String>,
    ) -> Option<T> {
        match self.value(name, field, parse) {
            Field::Value(v) => Some(v),
            Field::Absent => {
                self.push(name, "is required");
                None
            }
            Field::Null => {
                self.push(name, "cannot be null");
                None
            }
            Field::Invalid(_) => None,
        }
    }

    /// A field that may be left out or null.
    pub fn optional<W, T>(
        &mut self,
        name: &str,
        field: Field<W>,
        parse: impl FnOnce(W) -> Result<T, String>,
    ) -> Option<T> {
        match self.value(name, field, parse) {
            Field::Value(v) => Some(v),
            _ => None,
        }
    }

    /// A field of a patch that may be cleared: absent = unchanged, null = cleared.
    pub fn patch<W, T>(
        &mut self,
        name: &str,
        field: Field<W>,
        parse: impl FnOnce(W) -> Result<T, String>,
    ) -> Patch<T> {
        match self.value(name, field, parse) {
            Field::Value(v) => Patch::Value(v),
            Field::Null => Patch::Null,
            Field::Absent | Field::Invalid(_) => Patch::Absent,
        }
    }

    /// A field of a patch that cannot be cleared: absent = unchanged, null refused.
    pub fn patch_not_null<W, T>(
        &mut self,
        name: &str,
        field: Field<W>,
        parse: impl FnOnce(W) -> Result<T, String>,
    ) -> Patch<T> {
        match self.value(name, field, parse) {
            Field::Value(v) => Patch::Value(v),
            Field::Null => {
                self.push(name, "cannot be null");
                Patch::Absent
            }
            Field::Absent | Field::Invalid(_) => Patch::Absent,
        }
    }
}

/// A checked input of a row stored by `store`: serialized, the columns it sets.
pub trait Columns: Serialize {
    fn columns(&self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(map)) => map,
            _ => unreachable!("a checked input serializes to a JSON object"),
        }
    }
}

/// A rule that accepts any value of the wire type.
pub fn any<T>(v: T) -> Result<T, String> {
    Ok(v)
}

/// A rule: non-blank text of at most `max` characters.
pub fn text_of(max: usize) -> impl Fn(String) -> Result<String, String> {
    move |s| {
        if s.trim().is_empty() {
            Err("must not be blank".into())
        } else if s.chars().count() > max {
            Err(format!("must be at most {max} characters"))
        } else {
            Ok(s)
        }
    }
}

/// The largest value a free-form JSON field (`metadata`, `context`, `settings`,
/// `attributes`, `features`, …) accepts, in bytes of compact JSON. It bounds what one row
/// holds and so, with the page bound (`page::MAX_PAGE_BYTES`), what a list returns.
/// docs/API.md, "Free-form JSON fields".
pub const MAX_JSON_FIELD_BYTES: usize = 64 * 1024;

/// Whether `v` serializes to at most `MAX_JSON_FIELD_BYTES` of compact JSON (counted
/// without building the text, and only up to the bound).
fn json_fits(v: &Value) -> bool {
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            if self.0 > MAX_JSON_FIELD_BYTES {
                return Err(std::io::Error::other("too large"));
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    serde_json::to_writer(&mut Counter(0), v).is_ok()
}

fn too_large() -> String {
    format!("must be at most {MAX_JSON_FIELD_BYTES} bytes as JSON")
}

/// A rule: any JSON value of at most `MAX_JSON_FIELD_BYTES`.
pub fn json_value(v: Value) -> Result<Value, String> {
    if json_fits(&v) {
        Ok(v)
    } else {
        Err(too_large())
    }
}

/// A rule: a JSON object of at most `MAX_JSON_FIELD_BYTES`.
pub fn json_object(v: Value) -> Result<Map<String, Value>, String> {
    match v {
        Value::Object(_) if !json_fits(&v) => Err(too_large()),
        Value::Object(map) => Ok(map),
        _ => Err("must be an object".into()),
    }
}

/// A rule: a time in years 1 to 9999 (UTC), what RFC 3339 and the API's responses can
/// write; anything outside is refused rather than stored as a time no client could read.
pub fn timestamp(
    t: chrono::DateTime<chrono::Utc>,
) -> Result<chrono::DateTime<chrono::Utc>, String> {
    use chrono::Datelike;
    if (1..=9999).contains(&t.year()) {
        Ok(t)
    } else {
        Err("must be a time between the years 1 and 9999 (UTC)".into())
    }
}

/// A rule: a JSON array of at most `MAX_JSON_FIELD_BYTES`.
pub fn json_array(v: Value) -> Result<Vec<Value>, String> {
    match v {
        Value::Array(_) if !json_fits(&v) => Err(too_large()),
        Value::Array(items) => Ok(items),
        _ => Err("must be an array".into()),
    }
}

/// A rule: an integer within `range`, as an `i32`.
pub fn int32_within(range: std::ops::RangeInclusive<i32>) -> impl Fn(i64) -> Result<i32, String> {
    move |n| {
        i32::try_from(n)
            .ok()
            .filter(|n| range.contains(n))
            .ok_or_else(|| format!("must be between {} and {}", range.start(), range.end()))
    }
}

/// A field of a PATCH (or create) body: absent, explicitly null, or a value.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Patch<T> {
    #[default]
    Absent,
    Null,
    Value(T),
}

impl<T> Patch<T> {
    pub fn is_absent(&self) -> bool {
        matches!(self, Self::Absent)
    }

    pub fn value(&self) -> Option<&T> {
        match self {
            Self::Value(v) => Some(v),
            _ => None,
        }
    }
}

/// A patch serializes as the value it sets (null clears); skip absent fields with
/// `#[serde(skip_serializing_if = "Patch::is_absent")]`.
impl<T: Serialize> Serialize for Patch<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Value(v) => v.serialize(serializer),
            _ => serializer.serialize_none(),
        }
    }
}

/// Whether `s` is `min` to `max` lower-case letters, digits and underscores, starting with
/// a letter (flow keys, state names, usage units).
pub fn is_identifier(s: &str, min: usize, max: usize) -> bool {
    let b = s.as_bytes();
    (min..=max).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
}

pub const PROVIDER_RULE: &str =
    "must be 1 to 63 lower-case letters, digits, dots, underscores or hyphens";

/// A provider name as stored (lower case): 1–63 of `[a-z0-9._-]`, starting alphanumeric.
pub fn is_provider(s: &str) -> bool {
    let b = s.as_bytes();
    (1..=63).contains(&b.len())
        && b[0].is_ascii_alphanumeric()
        && b.iter().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'_' | b'-')
        })
}

/// A rule for money and quantities: not negative, below 10^10, at most `scale` decimal
/// places (what the NUMERIC columns hold).
pub fn decimal_rule(d: &rust_decimal::Decimal, scale: u32) -> Option<String> {
    (d.is_sign_negative()
        || d.scale() > scale
        || *d >= rust_decimal::Decimal::from(10_000_000_000i64))
    .then(|| {
        format!(
            "must be a non-negative decimal below 10000000000 with at most {scale} decimal places"
        )
    })
}

/// Whether `s` is an http(s) URL with a host and no whitespace.
pub fn is_http_url(s: &str) -> bool {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"));
    rest.is_some_and(|r| {
        !r.is_empty() && !r.starts_with('/') && !r.chars().any(char::is_whitespace)
    }) && s.len() <= 2048
}

/// Whether `s` is an E.164 phone number: `+`, a non-zero digit, 7 to 15 digits in all.
pub fn is_e164(s: &str) -> bool {
    let Some(digits) = s.strip_prefix('+') else {
        return false;
    };
    (7..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

/// A plausible email address (the provider verifies it; we only refuse nonsense).
pub fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s.chars().any(|c| c.is_whitespace())
        && !domain.contains('@')
        && s.len() <= 254
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e164_numbers() {
        assert!(is_e164("+628111234567"));
        assert!(!is_e164("628111234567"));
        assert!(!is_e164("+0811"));
        assert!(!is_e164("+62 811"));
    }

    #[derive(Deserialize)]
    struct Wire {
        #[serde(default)]
        a: Field<i64>,
        #[serde(default)]
        b: Field<i64>,
        #[serde(default)]
        c: Field<i64>,
        #[serde(default)]
        d: Field<i64>,
        #[serde(flatten)]
        unknown: Unknown,
    }

    #[test]
    fn fields_tell_absent_null_value_and_wrong_type_apart() {
        let w: Wire =
            serde_json::from_str(r#"{"a": null, "b": 5, "c": "five", "x": 1, "y": []}"#).unwrap();
        assert_eq!(w.a, Field::Null);
        assert_eq!(w.b, Field::Value(5));
        assert!(matches!(w.c, Field::Invalid(_)));
        assert_eq!(w.d, Field::Absent);
        assert_eq!(w.unknown, Unknown(vec!["x".into(), "y".into()]));
    }

    #[test]
    fn free_form_json_fields_are_bounded_in_size() {
        // {"k":"…"} is 8 bytes around the text.
        let fits = serde_json::json!({"k": "x".repeat(MAX_JSON_FIELD_BYTES - 8)});
        let over = serde_json::json!({"k": "x".repeat(MAX_JSON_FIELD_BYTES - 7)});
        assert!(json_object(fits).is_ok());
        assert_eq!(json_object(over.clone()), Err(too_large()));
        assert_eq!(json_value(over), Err(too_large()));
        let items = serde_json::json!(["x".repeat(MAX_JSON_FIELD_BYTES)]);
        assert_eq!(json_array(items), Err(too_large()));
        assert!(json_array(serde_json::json!([1, 2])).is_ok());
    }

    #[test]
    fn invalid_collects_every_field_error() {
        let w: Wire = serde_json::from_str(r#"{"a": null, "b": 50, "c": "five", "x": 1}"#).unwrap();
        let mut e = Invalid::new(w.unknown);
        assert_eq!(e.required("a", w.a, any), None);
        assert_eq!(e.patch("b", w.b, int32_within(0..=10)), Patch::Absent);
        assert_eq!(e.optional("c", w.c, any), None);
        assert_eq!(e.patch_not_null("d", w.d, any), Patch::Absent);
        let fields: Vec<_> = e.0.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(fields, ["x", "a", "b", "c"]);
        assert_eq!(e.0[1].message, "cannot be null");
        assert_eq!(e.0[2].message, "must be between 0 and 10");
        assert!(e.finish(()).is_err());
    }
}

#[cfg(test)]
mod decimal_text_tests {
    use super::DecimalText;

    #[test]
    fn only_digits_with_an_optional_point_and_more_digits_are_a_decimal() {
        for good in ["0", "0.0008", "12", "007.50", "9999999999.9999999999"] {
            assert!(DecimalText::parse(good).is_ok(), "{good}");
        }
        assert_eq!(DecimalText::parse("007.50").unwrap().0.to_string(), "7.50");
        for bad in [
            "", "1e3", "1e-30", "1_0", "+1", "-1", ".5", "5.", " 1", "1 ", "1,5", "0x10", "NaN",
            "１",
        ] {
            assert_eq!(
                DecimalText::parse(bad),
                Err(DecimalText::FORMAT.to_owned()),
                "{bad}"
            );
        }
        assert!(DecimalText::parse("0.00000000001").is_err());
        assert!(DecimalText::parse(&"9".repeat(19)).is_err());
        assert!(DecimalText::parse(&format!("{}1", "0".repeat(100))).is_ok());
    }
}
