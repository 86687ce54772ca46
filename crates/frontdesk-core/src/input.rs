//! Shapes of input shared by resources.

use serde::{Deserialize, Deserializer};

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
