//! Identifiers as parse-only newtypes: the only way to hold one is to have checked it.

use std::fmt;

use rand::distr::{Alphanumeric, SampleString};

/// The longest id the contract accepts, in bytes of UTF-8.
pub const MAX_ID_BYTES: usize = 256;

/// Why a string is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {MAX_ID_BYTES} bytes")]
    TooLong,
    #[error("must not contain control characters")]
    ControlCharacter,
    #[error("must be 20 characters from A-Z, a-z and 0-9")]
    MalformedJobId,
}

fn check_id(raw: &str) -> Result<(), IdError> {
    if raw.is_empty() {
        return Err(IdError::Empty);
    }
    if raw.len() > MAX_ID_BYTES {
        return Err(IdError::TooLong);
    }
    if raw.chars().any(char::is_control) {
        return Err(IdError::ControlCharacter);
    }
    Ok(())
}

macro_rules! data_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Accepts 1 to 256 bytes of UTF-8 without control characters; every other
            /// character, `#` and `/` included, is data.
            pub fn parse(raw: impl Into<String>) -> Result<Self, IdError> {
                let raw = raw.into();
                check_id(&raw)?;
                Ok(Self(raw))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            // Ids may be personal data: debug output shows only a short fingerprint.
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), crate::keys::fingerprint(&self.0))
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(deserializer)?;
                Self::parse(raw).map_err(serde::de::Error::custom)
            }
        }
    };
}

data_id!(
    /// A user of the tenant's product.
    UserId
);
data_id!(
    /// An organization of the tenant's product.
    OrganizationId
);
data_id!(
    /// Any other entity id of the data store (document, folder, comment, …).
    EntityId
);

/// A deletion job's id: 20 characters from `[A-Za-z0-9]`, from a secure generator.
#[derive(Clone, PartialEq, Eq, Hash, Debug, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct JobId(String);

impl JobId {
    const LEN: usize = 20;

    /// A new random id (`rand`'s thread RNG is a CSPRNG seeded from the OS).
    pub fn generate() -> Self {
        Self(Alphanumeric.sample_string(&mut rand::rng(), Self::LEN))
    }

    pub fn parse(raw: &str) -> Result<Self, IdError> {
        if raw.len() == Self::LEN && raw.bytes().all(|b| b.is_ascii_alphanumeric()) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(IdError::MalformedJobId)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for JobId {
    type Error = IdError;
    fn try_from(raw: String) -> Result<Self, IdError> {
        Self::parse(&raw)
    }
}

impl From<JobId> for String {
    fn from(id: JobId) -> String {
        id.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A tenant's API key, as sent in `x-velt-api-key`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn parse(raw: &str) -> Option<Self> {
        (!raw.is_empty() && raw.len() <= 512 && raw.bytes().all(|b| b.is_ascii_graphic()))
            .then(|| Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKey({})", crate::keys::fingerprint(&self.0))
    }
}

/// An `Idempotency-Key` header: 1–255 printable ASCII characters.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(raw: &str) -> Option<Self> {
        (!raw.is_empty() && raw.len() <= 255 && raw.bytes().all(|b| (0x20..0x7f).contains(&b)))
            .then(|| Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_accept_separators_spaces_and_emoji() {
        for raw in ["a#b", "a/b", "100%", "with space", "🎉", "T#x#U#y"] {
            assert_eq!(UserId::parse(raw).unwrap().as_str(), raw);
        }
    }

    #[test]
    fn ids_refuse_empty_long_and_control_characters() {
        assert_eq!(UserId::parse(""), Err(IdError::Empty));
        assert_eq!(UserId::parse("x".repeat(257)), Err(IdError::TooLong));
        assert!(UserId::parse("é".repeat(128)).is_ok());
        assert_eq!(UserId::parse("é".repeat(129)), Err(IdError::TooLong));
        assert_eq!(UserId::parse("a\nb"), Err(IdError::ControlCharacter));
        assert_eq!(UserId::parse("a\u{7f}"), Err(IdError::ControlCharacter));
    }

    #[test]
    fn job_ids_are_twenty_alphanumerics_and_differ() {
        let a = JobId::generate();
        let b = JobId::generate();
        assert_eq!(a.as_str().len(), 20);
        assert!(a.as_str().bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(a, b);
        assert!(JobId::parse(a.as_str()).is_ok());
        assert!(JobId::parse("short").is_err());
        assert!(JobId::parse("AAAAAAAAAAAAAAAAAAA-").is_err());
    }

    #[test]
    fn debug_output_never_shows_the_raw_id() {
        let id = UserId::parse("alice@example.com").unwrap();
        assert!(!format!("{id:?}").contains("alice"));
    }

    #[test]
    fn idempotency_keys_are_printable_ascii() {
        assert!(IdempotencyKey::parse("abc-123 x").is_some());
        assert!(IdempotencyKey::parse("").is_none());
        assert!(IdempotencyKey::parse(&"k".repeat(256)).is_none());
        assert!(IdempotencyKey::parse("é").is_none());
    }
}
