//! Shapes of input shared by resources.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::{CoreError, FieldError};

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

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Patch<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Option::<T>::deserialize(deserializer).map(|v| v.map_or(Self::Null, Self::Value))
    }
}

/// Collects field errors and the checked fields as a JSON object for the database.
pub struct Checked {
    pub fields: Map<String, Value>,
    pub errors: Vec<FieldError>,
}

impl Checked {
    pub fn new() -> Self {
        Self {
            fields: Map::new(),
            errors: Vec::new(),
        }
    }

    /// Note a required field that is absent.
    pub fn require<T>(&mut self, name: &str, value: &Patch<T>) {
        if value.is_absent() {
            self.errors.push(FieldError::new(name, "is required"));
        }
    }

    /// The checked fields, or every field error found.
    pub fn finish(self) -> Result<Map<String, Value>, CoreError> {
        if self.errors.is_empty() {
            Ok(self.fields)
        } else {
            Err(CoreError::Invalid(self.errors))
        }
    }

    /// Check one field: `rule` returns an error message for a bad value.
    pub fn field<T: Serialize>(
        &mut self,
        name: &str,
        value: &Patch<T>,
        nullable: bool,
        rule: impl Fn(&T) -> Option<String>,
    ) {
        match value {
            Patch::Absent => {}
            Patch::Null if nullable => {
                self.fields.insert(name.to_owned(), Value::Null);
            }
            Patch::Null => self.errors.push(FieldError::new(name, "cannot be null")),
            Patch::Value(v) => match rule(v) {
                Some(message) => self.errors.push(FieldError::new(name, message)),
                None => {
                    self.fields.insert(
                        name.to_owned(),
                        serde_json::to_value(v).expect("plain value"),
                    );
                }
            },
        }
    }
}

/// A rule: non-blank text of at most `max` characters.
pub fn text(max: usize) -> impl Fn(&String) -> Option<String> {
    move |s: &String| {
        if s.trim().is_empty() {
            Some("must not be blank".into())
        } else if s.chars().count() > max {
            Some(format!("must be at most {max} characters"))
        } else {
            None
        }
    }
}

/// A rule: a JSON object.
pub fn object(v: &Value) -> Option<String> {
    (!v.is_object()).then(|| "must be an object".into())
}

impl Default for Checked {
    fn default() -> Self {
        Self::new()
    }
}

/// A rule: a JSON array.
pub fn array(v: &Value) -> Option<String> {
    (!v.is_array()).then(|| "must be an array".into())
}

/// A rule: an integer within `range`.
pub fn within(range: std::ops::RangeInclusive<i64>) -> impl Fn(&i64) -> Option<String> {
    move |n: &i64| {
        (!range.contains(n))
            .then(|| format!("must be between {} and {}", range.start(), range.end()))
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

/// The fields of an LLM call that usage events and limit checks share: token counts
/// (0 to i32::MAX), the provider (stored lower case) and the model.
pub fn check_llm_call(
    errors: &mut Vec<FieldError>,
    prompt_tokens: Option<i64>,
    completion_tokens: Option<i64>,
    provider: Option<&str>,
    model: Option<&str>,
) {
    for (name, n) in [
        ("prompt_tokens", prompt_tokens),
        ("completion_tokens", completion_tokens),
    ] {
        if n.is_some_and(|n| !(0..=i64::from(i32::MAX)).contains(&n)) {
            errors.push(FieldError::new(
                name,
                format!("must be between 0 and {}", i32::MAX),
            ));
        }
    }
    if provider.is_some_and(|p| !is_provider(&p.to_ascii_lowercase())) {
        errors.push(FieldError::new("provider", PROVIDER_RULE));
    }
    if model.is_some_and(|m| m.trim().is_empty() || m.chars().count() > 200) {
        errors.push(FieldError::new(
            "model",
            "must be 1 to 200 characters, not blank",
        ));
    }
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

    #[test]
    fn patch_tells_absent_from_null() {
        #[derive(Deserialize)]
        struct P {
            #[serde(default)]
            a: Patch<String>,
            #[serde(default)]
            b: Patch<String>,
        }
        let p: P = serde_json::from_str(r#"{"a": null}"#).unwrap();
        assert_eq!(p.a, Patch::Null);
        assert_eq!(p.b, Patch::Absent);
    }
}
