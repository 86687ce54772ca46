//! Providers: the outside services that call a tenant back with signed requests (payment
//! notifications, telephony status). Each tenant stores its secret per provider
//! (`secrets`), and every callback whose signature verifies is recorded once (`callbacks`).
//! How a provider signs is the server's business (`frontdesk_server::callbacks`); this
//! domain holds what is stored.

pub mod callbacks;
pub mod secrets;

use serde::Serialize;
use utoipa::ToSchema;

/// A provider that may call a tenant back. The payments and telephony issues add theirs
/// (Midtrans, Stripe, Twilio), each with its verifier and a word in the tables' checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    /// Signs like Standard Webhooks: for tests, and for services that sign that way.
    Test,
}

impl Provider {
    pub const ALL: [Provider; 1] = [Self::Test];

    /// The provider's word in paths, in the database and in the callback's context.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Test => "test",
        }
    }

    /// The provider a path segment names, if any.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }
}
