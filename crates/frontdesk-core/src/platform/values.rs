//! Values with rules, each parsed once at the edge (`parse` gives the field error's
//! message) and trusted after: newtypes for checked text and amounts, and Rust enums for
//! the enum-like `text` columns (checked by `check (x in (…))` in the migrations),
//! mapped to the database by [`text_enum!`].
//!
//! Money comes next: the payments domain adds `Currency` (ISO 4217, three upper-case
//! letters) and `Money` (integer minor units and a currency) here, beside [`CostUsd`].

use rust_decimal::Decimal;
use serde::Serialize;
use uuid::Uuid;

use super::input::{
    PROVIDER_RULE, decimal_rule, is_e164, is_email, is_http_url, is_identifier, is_provider,
};

/// A Rust enum stored as `text` (with a CHECK listing its values): serde and the OpenAPI
/// schema use the same lower-case names as the database, `parse` gives the field error's
/// message, and `ToSql`/`FromSql` read and write the column. Name each variant as the
/// CamelCase of its text (`DarkBlue = "dark_blue"`): serde and utoipa spell it in snake
/// case.
#[macro_export]
macro_rules! text_enum {
    ($(#[$meta:meta])* pub enum $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($variant),+
        }

        impl $name {
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text),+
                }
            }

            /// The value named `s`, or the rule it broke.
            pub fn parse(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok(Self::$variant),)+
                    _ => Err(format!("must be one of {}", [$($text),+].join(", "))),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl tokio_postgres::types::ToSql for $name {
            fn to_sql(
                &self,
                ty: &tokio_postgres::types::Type,
                out: &mut tokio_postgres::types::private::BytesMut,
            ) -> Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
                self.as_str().to_sql(ty, out)
            }

            fn accepts(ty: &tokio_postgres::types::Type) -> bool {
                <&str as tokio_postgres::types::ToSql>::accepts(ty)
            }

            tokio_postgres::types::to_sql_checked!();
        }

        impl<'a> tokio_postgres::types::FromSql<'a> for $name {
            fn from_sql(
                ty: &tokio_postgres::types::Type,
                raw: &'a [u8],
            ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
                let s = <&str as tokio_postgres::types::FromSql>::from_sql(ty, raw)?;
                Self::parse(s).map_err(|_| format!("{}: unknown value {s:?}", stringify!($name)).into())
            }

            fn accepts(ty: &tokio_postgres::types::Type) -> bool {
                <&str as tokio_postgres::types::FromSql>::accepts(ty)
            }
        }
    };
}

/// A checked string newtype: serialized as the string, shown as it.
macro_rules! text_newtype {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> {
                Self::parse(s)
            }
        }
    };
}

text_newtype!(
    /// A tenant's slug: 3–63 of `[a-z0-9-]`, not starting or ending with a hyphen, and not
    /// a UUID (a path names a tenant by either).
    TenantSlug
);

impl TenantSlug {
    pub const RULE: &str = "must be 3 to 63 lower-case letters, digits and hyphens, starting and ending with a letter or digit";

    pub fn parse(s: String) -> Result<Self, String> {
        let b = s.as_bytes();
        let ok = (3..=63).contains(&b.len())
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
            && b[0] != b'-'
            && b[b.len() - 1] != b'-'
            && s.parse::<Uuid>().is_err();
        if ok {
            Ok(Self(s))
        } else {
            Err(Self::RULE.into())
        }
    }
}

text_newtype!(
    /// A phone number in E.164: `+`, a non-zero digit, 7 to 15 digits in all.
    E164
);

impl E164 {
    pub const RULE: &str = "must be an E.164 number such as +628111234567";

    pub fn parse(s: String) -> Result<Self, String> {
        if is_e164(&s) {
            Ok(Self(s))
        } else {
            Err(Self::RULE.into())
        }
    }
}

text_newtype!(
    /// A plausible email address (the provider verifies it; we only refuse nonsense).
    Email
);

impl Email {
    pub fn parse(s: String) -> Result<Self, String> {
        if is_email(&s) {
            Ok(Self(s))
        } else {
            Err("must be an email address".into())
        }
    }
}

text_newtype!(
    /// An IANA time zone name (`UTC`, `Asia/Jakarta`, `Etc/GMT+7`) that the database
    /// knows, once the server has learnt the database's list (`learn_time_zones`, at
    /// start), so an unknown zone is named in the same 422 as the body's other errors.
    /// Before that (unit tests, tools), only its shape; `tenants_timezone_check` holds
    /// the rule in the database either way.
    TimeZone
);

/// The database's time zone names (`pg_timezone_names`), learnt once per process.
static KNOWN_TIME_ZONES: std::sync::OnceLock<std::collections::HashSet<String>> =
    std::sync::OnceLock::new();

/// Learn the database's time zone names, once per process (`TimeZone::parse` uses them).
pub async fn learn_time_zones(pool: &deadpool_postgres::Pool) -> Result<(), crate::CoreError> {
    if KNOWN_TIME_ZONES.get().is_some() {
        return Ok(());
    }
    let client = pool.get().await.map_err(frontdesk_pg::DbError::from)?;
    // The simple protocol: no statement is prepared (the pool may go through a pooler).
    let rows = client
        .simple_query("select name from pg_catalog.pg_timezone_names")
        .await
        .map_err(frontdesk_pg::DbError::from)?;
    let names = rows.iter().filter_map(|message| match message {
        tokio_postgres::SimpleQueryMessage::Row(row) => {
            row.try_get(0).ok().flatten().map(str::to_owned)
        }
        _ => None,
    });
    let _ = KNOWN_TIME_ZONES.set(names.collect());
    Ok(())
}

impl TimeZone {
    pub const RULE: &str = "must be an IANA time zone name, e.g. Asia/Jakarta";

    pub fn parse(s: String) -> Result<Self, String> {
        if let Some(known) = KNOWN_TIME_ZONES.get() {
            return if known.contains(&s) {
                Ok(Self(s))
            } else {
                Err(Self::RULE.into())
            };
        }
        let ok = (1..=64).contains(&s.len())
            && s.split('/').all(|part| {
                part.as_bytes().first().is_some_and(u8::is_ascii_alphabetic)
                    && part
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'+'))
            });
        if ok {
            Ok(Self(s))
        } else {
            Err(Self::RULE.into())
        }
    }
}

text_newtype!(
    /// A language tag such as `en` or `id-ID`.
    Locale
);

impl Locale {
    pub fn parse(s: String) -> Result<Self, String> {
        let ok = s.split('-').enumerate().all(|(i, part)| {
            if i == 0 {
                (2..=3).contains(&part.len()) && part.bytes().all(|b| b.is_ascii_lowercase())
            } else {
                (2..=8).contains(&part.len()) && part.bytes().all(|b| b.is_ascii_alphanumeric())
            }
        });
        if ok {
            Ok(Self(s))
        } else {
            Err("must be a language tag such as en or id-ID".into())
        }
    }
}

text_newtype!(
    /// An http(s) URL with a host, no whitespace, at most 2048 bytes.
    HttpUrl
);

impl HttpUrl {
    pub fn parse(s: String) -> Result<Self, String> {
        if is_http_url(&s) {
            Ok(Self(s))
        } else {
            Err("must be an http(s) URL".into())
        }
    }
}

text_newtype!(
    /// An LLM provider's name as stored: lower case, 1–63 of `[a-z0-9._-]`.
    LlmProvider
);

impl LlmProvider {
    /// Accepts any case; stores lower case.
    pub fn parse(s: String) -> Result<Self, String> {
        let s = s.to_ascii_lowercase();
        if is_provider(&s) {
            Ok(Self(s))
        } else {
            Err(PROVIDER_RULE.into())
        }
    }
}

text_newtype!(
    /// A key of our own naming (flow keys, state names, usage units): lower-case letters,
    /// digits and underscores, starting with a letter, 1 to 63 long.
    Identifier
);

impl Identifier {
    pub fn parse(s: String) -> Result<Self, String> {
        if is_identifier(&s, 1, 63) {
            Ok(Self(s))
        } else {
            Err("must be 1 to 63 lower-case letters, digits and underscores, starting with a letter".into())
        }
    }
}

/// A cost in USD as the NUMERIC columns hold it: not negative, below 10^10, at most 10
/// decimal places.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct CostUsd(Decimal);

impl CostUsd {
    pub fn parse(d: Decimal) -> Result<Self, String> {
        match decimal_rule(&d, 10) {
            None => Ok(Self(d)),
            Some(message) => Err(message),
        }
    }

    pub fn get(self) -> Decimal {
        self.0
    }
}

/// A monthly budget in USD: not negative, below 10^8, at most 6 decimal places (what its
/// column keeps: more would be rounded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct BudgetUsd(Decimal);

impl BudgetUsd {
    pub fn parse(d: Decimal) -> Result<Self, String> {
        if d.is_sign_negative() {
            Err("must not be negative".into())
        } else if d >= Decimal::from(100_000_000) {
            Err("must be less than 100000000".into())
        } else if d.scale() > 6 {
            Err("must have at most 6 decimal places".into())
        } else {
            Ok(Self(d))
        }
    }

    pub fn get(self) -> Decimal {
        self.0
    }
}

/// Feedback on a message: 1 (good) or -1 (bad).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Rating(i16);

impl Rating {
    pub fn parse(n: i64) -> Result<Self, String> {
        match n {
            1 | -1 => Ok(Self(n as i16)),
            _ => Err("must be 1 or -1".into()),
        }
    }

    pub fn get(self) -> i16 {
        self.0
    }
}

/// A sampling temperature, 0 to 2.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Temperature(f64);

impl Temperature {
    pub fn parse(t: f64) -> Result<Self, String> {
        if (0.0..=2.0).contains(&t) {
            Ok(Self(t))
        } else {
            Err("must be between 0 and 2".into())
        }
    }

    pub fn get(self) -> f64 {
        self.0
    }
}

/// A positive count that fits an `integer` column (1 to 2^31−1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct PositiveI32(i32);

impl PositiveI32 {
    pub fn parse(n: i64) -> Result<Self, String> {
        i32::try_from(n)
            .ok()
            .filter(|n| *n >= 1)
            .map(Self)
            .ok_or_else(|| "must be a positive integer".into())
    }

    pub fn get(self) -> i32 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> String {
        v.to_owned()
    }

    #[test]
    fn slugs() {
        assert!(TenantSlug::parse(s("warung-ana")).is_ok());
        assert!(TenantSlug::parse(s("a1b")).is_ok());
        for bad in [
            "ab",
            "No Spaces!",
            "-lead",
            "trail-",
            "UPPER",
            "0190f5e2-7c3a-7d2e-9b1a-3c4d5e6f7a8b",
        ] {
            assert_eq!(
                TenantSlug::parse(s(bad)),
                Err(TenantSlug::RULE.to_owned()),
                "{bad}"
            );
        }
        assert!(TenantSlug::parse("x".repeat(64)).is_err());
    }

    #[test]
    fn phone_numbers_are_e164() {
        assert_eq!(
            E164::parse(s("+628111234567")).unwrap().as_str(),
            "+628111234567"
        );
        for bad in [
            "628111234567",
            "+0811",
            "+62 811",
            "+123456",
            "+1234567890123456",
        ] {
            assert_eq!(E164::parse(s(bad)), Err(E164::RULE.to_owned()), "{bad}");
        }
    }

    #[test]
    fn emails() {
        assert!(Email::parse(s("ana@warung.id")).is_ok());
        for bad in [
            "ana",
            "@warung.id",
            "ana@warung",
            "ana@.id",
            "a na@warung.id",
            "a@b@c.id",
        ] {
            assert!(Email::parse(s(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn time_zones_are_checked_for_shape() {
        for good in [
            "UTC",
            "Asia/Jakarta",
            "America/Argentina/Buenos_Aires",
            "Etc/GMT+7",
            "America/Port-au-Prince",
        ] {
            assert!(TimeZone::parse(s(good)).is_ok(), "{good}");
        }
        for bad in [
            "",
            "not a zone",
            "/Asia",
            "Asia//Jakarta",
            "Asia/",
            "+07:00",
        ] {
            assert_eq!(
                TimeZone::parse(s(bad)),
                Err(TimeZone::RULE.to_owned()),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn providers_are_stored_lower_case() {
        assert_eq!(LlmProvider::parse(s("OpenAI")).unwrap().as_str(), "openai");
        assert!(LlmProvider::parse(s("")).is_err());
        assert!(LlmProvider::parse(s("-x")).is_err());
        assert!(LlmProvider::parse(s("open ai")).is_err());
    }

    #[test]
    fn costs_are_non_negative_with_bounded_scale() {
        let d = |v: &str| v.parse::<Decimal>().unwrap();
        assert!(CostUsd::parse(d("0.0008")).is_ok());
        assert!(CostUsd::parse(d("0.00000000001")).is_err());
        assert!(CostUsd::parse(d("-1")).is_err());
        assert!(CostUsd::parse(d("10000000000")).is_err());
        assert!(BudgetUsd::parse(d("250.00")).is_ok());
        assert!(BudgetUsd::parse(d("1.1234567")).is_err());
        assert_eq!(
            BudgetUsd::parse(d("-1")),
            Err("must not be negative".to_owned())
        );
    }

    #[test]
    fn ratings_temperatures_and_counts() {
        assert_eq!(Rating::parse(-1).unwrap().get(), -1);
        assert!(Rating::parse(0).is_err());
        assert!(Rating::parse(2).is_err());
        assert!(Temperature::parse(2.0).is_ok());
        assert!(Temperature::parse(2.5).is_err());
        assert!(Temperature::parse(-0.1).is_err());
        assert_eq!(PositiveI32::parse(1).unwrap().get(), 1);
        assert!(PositiveI32::parse(0).is_err());
        assert!(PositiveI32::parse(i64::from(i32::MAX) + 1).is_err());
    }

    text_enum!(
        /// For the test.
        pub enum Colour {
            Red = "red",
            DarkBlue = "dark_blue",
        }
    );

    #[test]
    fn text_enums_name_their_values() {
        assert_eq!(Colour::parse("dark_blue"), Ok(Colour::DarkBlue));
        assert_eq!(
            Colour::parse("green"),
            Err("must be one of red, dark_blue".to_owned())
        );
        for c in Colour::ALL {
            assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
        }
        assert_eq!(Colour::Red.to_string(), "red");
    }
}
