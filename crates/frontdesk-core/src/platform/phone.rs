//! Phone numbers as people type them (`0812-3456-7890`, `+62 812-3456-7890`,
//! `6281234567890`), normalized to E.164 with libphonenumber's metadata (the `phonenumber`
//! crate) and the tenant's default country, and the channel ids contacts are found by.
//! docs/API.md, "Phone numbers and channel ids".

use serde::Serialize;

use super::{input::is_e164, values::E164};

/// A country as ISO 3166-1 alpha-2 (`ID`, `US`) that libphonenumber knows: a tenant's
/// default country for numbers typed without a country code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Country(phonenumber::country::Id);

impl Country {
    pub const RULE: &str =
        "must be an ISO 3166-1 alpha-2 country code such as ID or US (upper-case)";

    pub fn parse(s: String) -> Result<Self, String> {
        let shaped = s.len() == 2 && s.bytes().all(|b| b.is_ascii_uppercase());
        match s.parse::<phonenumber::country::Id>() {
            Ok(id) if shaped => Ok(Self(id)),
            _ => Err(Self::RULE.into()),
        }
    }
}

impl Serialize for Country {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0.as_ref())
    }
}

impl std::fmt::Display for Country {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.as_ref())
    }
}

/// A phone number as sent: at most 40 characters of digits, spaces and `+-().`/, with at
/// least one digit. Which number it is depends on the tenant's default country
/// ([`PhoneText::normalize`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneText(String);

impl PhoneText {
    pub const RULE: &str =
        "must be a phone number: digits, spaces and + - ( ) . / only, at most 40 characters";

    pub fn parse(s: String) -> Result<Self, String> {
        let t = s.trim();
        let ok = !t.is_empty()
            && t.chars().count() <= 40
            && t.chars().any(|c| c.is_ascii_digit())
            && t.chars()
                .all(|c| c.is_ascii_digit() || " +-()./".contains(c));
        if ok {
            Ok(Self(t.to_owned()))
        } else {
            Err(Self::RULE.into())
        }
    }

    /// Whether it is already in E.164, so no country is needed to read it.
    pub fn is_e164(&self) -> bool {
        is_e164(&self.0)
    }

    /// The number in E.164. A number in E.164 is taken as given; any other form must be
    /// a valid number by libphonenumber, read with its `+country code` or, without one, in
    /// the tenant's `default` country.
    pub fn normalize(&self, default: Option<Country>) -> Result<E164, String> {
        if self.is_e164() {
            return E164::parse(self.0.clone());
        }
        let international = self.0.starts_with('+');
        if !international && default.is_none() {
            return Err(
                "has no country code: write it as +<country code><number>, or set the tenant's default_country"
                    .into(),
            );
        }
        let country = if international {
            None
        } else {
            default.map(|c| c.0)
        };
        let invalid = || match (international, default) {
            (false, Some(c)) => {
                format!("is not a valid phone number in {c} (the tenant's default_country)")
            }
            _ => "is not a valid phone number".to_owned(),
        };
        // (A client's text goes into a third-party parser: should it panic on some input,
        // that input is refused like any other invalid number, never a 500.)
        let read = std::panic::catch_unwind(|| {
            let number = phonenumber::parse(country, &self.0).ok()?;
            if number.extension().is_some() || !number.is_valid() {
                return None;
            }
            Some(number.format().mode(phonenumber::Mode::E164).to_string())
        });
        match read {
            Ok(Some(e164)) => E164::parse(e164).map_err(|_| invalid()),
            _ => Err(invalid()),
        }
    }
}

/// A channel's name in `channel_ids`: `whatsapp`, `telegram`, `messenger`, `instagram`,
/// `email`, or any other of 1 to 32 lower-case letters, digits and underscores starting with
/// a letter.
pub fn channel_name(s: &str) -> Result<(), String> {
    if crate::platform::input::is_identifier(s, 1, 32) {
        Ok(())
    } else {
        Err("channel names are 1 to 32 lower-case letters, digits and underscores, starting with a letter".into())
    }
}

/// A contact's id on `channel` as stored and looked up:
/// - `whatsapp`: WhatsApp's own form (`wa_id`), the E.164 digits without `+`. Digits only
///   and no leading 0 are taken as that form already (what WhatsApp's webhooks send);
///   anything else is read as a phone number ([`PhoneText::normalize`]).
/// - `email`: trimmed and lower-cased.
/// - any other channel: trimmed, compared exactly.
///
/// Every id is 1 to 200 characters without control characters.
pub fn channel_id(channel: &str, id: &str, default: Option<Country>) -> Result<String, String> {
    let id = id.trim();
    if id.is_empty() || id.chars().count() > 200 || id.chars().any(char::is_control) {
        return Err("must be 1 to 200 characters, without control characters".into());
    }
    match channel {
        "whatsapp" => {
            if in_whatsapp_form(id) {
                return if is_e164(&format!("+{id}")) {
                    Ok(id.to_owned())
                } else {
                    Err("must be a WhatsApp id: the international number's 7 to 15 digits".into())
                };
            }
            let phone = PhoneText::parse(id.to_owned())?;
            let e164 = phone.normalize(default)?;
            Ok(e164.as_str().trim_start_matches('+').to_owned())
        }
        "email" => Ok(id.to_lowercase()),
        _ => Ok(id.to_owned()),
    }
}

/// Whether `id` is written as WhatsApp writes its ids: digits only, no leading 0.
fn in_whatsapp_form(id: &str) -> bool {
    id.bytes().all(|b| b.is_ascii_digit()) && !id.starts_with('0')
}

/// Whether reading `id` on `channel` may need the tenant's default country.
pub fn channel_id_needs_country(channel: &str, id: &str) -> bool {
    let id = id.trim();
    let international = in_whatsapp_form(id) || is_e164(id);
    channel == "whatsapp" && !international
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> Option<Country> {
        Some(Country::parse("ID".into()).unwrap())
    }

    #[test]
    fn numbers_as_people_type_them_become_e164_with_the_default_country() {
        for typed in [
            "0812-3456-7890",
            "+62 812-3456-7890",
            "6281234567890",
            "(0812) 3456 7890",
            "+6281234567890",
        ] {
            let phone = PhoneText::parse(typed.into()).unwrap();
            assert_eq!(
                phone.normalize(id()).unwrap().as_str(),
                "+6281234567890",
                "{typed}"
            );
        }
    }

    #[test]
    fn without_a_default_country_only_international_numbers_are_read() {
        let local = PhoneText::parse("0812-3456-7890".into()).unwrap();
        assert!(
            local
                .normalize(None)
                .unwrap_err()
                .contains("default_country")
        );
        let international = PhoneText::parse("+62 812-3456-7890".into()).unwrap();
        assert_eq!(
            international.normalize(None).unwrap().as_str(),
            "+6281234567890"
        );
    }

    #[test]
    fn invalid_numbers_and_text_are_refused() {
        assert!(PhoneText::parse("call me".into()).is_err());
        assert!(PhoneText::parse("   ".into()).is_err());
        let short = PhoneText::parse("0811".into()).unwrap();
        assert!(short.normalize(id()).is_err());
        assert!(short.normalize(None).is_err());
    }

    #[test]
    fn countries_are_upper_case_codes_libphonenumber_knows() {
        assert_eq!(Country::parse("ID".into()).unwrap().to_string(), "ID");
        for bad in ["id", "IDN", "XX", "", "Indonesia"] {
            assert!(Country::parse(bad.into()).is_err(), "{bad}");
        }
    }

    #[test]
    fn whatsapp_ids_are_the_international_digits() {
        assert_eq!(
            channel_id("whatsapp", "6281234567890", None).unwrap(),
            "6281234567890"
        );
        assert_eq!(
            channel_id("whatsapp", "0812-3456-7890", id()).unwrap(),
            "6281234567890"
        );
        assert_eq!(
            channel_id("whatsapp", "+62 812 3456 7890", None).unwrap(),
            "6281234567890"
        );
        assert!(channel_id("whatsapp", "0812-3456-7890", None).is_err());
        assert!(channel_id("whatsapp", "12", None).is_err());
        assert_eq!(
            channel_id("email", " Ana@Warung.ID ", None).unwrap(),
            "ana@warung.id"
        );
        assert_eq!(channel_id("telegram", " @budi ", None).unwrap(), "@budi");
        assert!(channel_id("telegram", " ", None).is_err());
        assert!(channel_name("whatsapp").is_ok());
        assert!(channel_name("WhatsApp").is_err());
        assert!(channel_name("").is_err());
    }
}
