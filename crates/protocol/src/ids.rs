//! Validated identifiers. A value of these types has passed the protocol's character and
//! length rules, so nothing downstream re-checks or has to escape them: they are safe to
//! splice into JSON strings, log lines and storage keys as they are.

use std::borrow::Borrow;
use std::fmt;
use std::sync::Arc;

use serde::{Serialize, Serializer};

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Empty or longer than the limit.
    #[error("{what} must be 1-{max} characters long")]
    Length {
        /// Which identifier.
        what: &'static str,
        /// The maximum length.
        max: usize,
    },
    /// A character outside the allowed set.
    #[error("{what} may only contain {allowed}")]
    Charset {
        /// Which identifier.
        what: &'static str,
        /// The allowed characters, for the message.
        allowed: &'static str,
    },
}

fn check(
    s: &str,
    what: &'static str,
    max: usize,
    allowed: &'static str,
    extra: &[u8],
) -> Result<(), IdError> {
    if s.is_empty() || s.len() > max {
        return Err(IdError::Length { what, max });
    }
    if s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || extra.contains(&b))
    {
        Ok(())
    } else {
        Err(IdError::Charset { what, allowed })
    }
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $what:literal, $max:literal, $allowed:literal, $extra:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Arc<str>);

        impl $name {
            /// The longest accepted value, in bytes (all allowed characters are ASCII).
            pub const MAX_LEN: usize = $max;

            /// Validates and wraps a string.
            pub fn parse(s: &str) -> Result<Self, IdError> {
                check(s, $what, $max, $allowed, $extra)?;
                Ok(Self(Arc::from(s)))
            }

            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The identifier's shared text, without copying it (for map keys that
            /// outlive a borrow).
            pub fn to_shared(&self) -> Arc<str> {
                Arc::clone(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&*self.0, f)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }
    };
}

string_id!(
    /// A client's chosen identity: 1-128 characters of `[A-Za-z0-9_.:-]`. One live session
    /// per client id; a new connection supersedes the old one.
    ClientId,
    "client_id",
    128,
    "letters, digits and _ . : -",
    b"_.:-"
);

string_id!(
    /// A room (channel) name: 1-200 characters of `[A-Za-z0-9_.:@/-]`.
    RoomName,
    "room",
    200,
    "letters, digits and _ . : @ / -",
    b"_.:@/-"
);

impl RoomName {
    /// The room every connection joins on accept.
    /// One shared allocation for the whole process: every session lists it.
    pub fn general() -> RoomName {
        static GENERAL: std::sync::OnceLock<RoomName> = std::sync::OnceLock::new();
        GENERAL
            .get_or_init(|| RoomName(Arc::from("general")))
            .clone()
    }
}

/// A room's event sequence number: 1 for the first event, strictly increasing by one.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(transparent)]
pub struct Sequence(pub u64);

impl Sequence {
    /// The sequence after this one.
    pub const fn next(self) -> Sequence {
        Sequence(self.0 + 1)
    }
}

impl fmt::Display for Sequence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Identifies one continuous history of a room. If a room's history is lost or reset, its
/// epoch changes, and sequences from the old epoch mean nothing in the new one.
#[derive(Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Epoch(Arc<str>);

impl Epoch {
    /// Wraps an epoch string (as read from storage or a client).
    pub fn new(s: &str) -> Epoch {
        Epoch(Arc::from(s))
    }

    /// The epoch as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_id_rules() {
        assert!(ClientId::parse("alice-1_2.3:x").is_ok());
        assert!(ClientId::parse(&"a".repeat(128)).is_ok());
        assert!(ClientId::parse(&"a".repeat(129)).is_err());
        assert!(ClientId::parse("").is_err());
        assert!(ClientId::parse("a b").is_err());
        assert!(ClientId::parse("a/b").is_err());
        assert!(ClientId::parse("é").is_err());
    }

    #[test]
    fn room_rules() {
        assert!(RoomName::parse("chat:lobby/a@b-c_d.e").is_ok());
        assert!(RoomName::parse(&"r".repeat(200)).is_ok());
        assert!(RoomName::parse(&"r".repeat(201)).is_err());
        assert!(RoomName::parse("").is_err());
        assert!(RoomName::parse("a\"b").is_err());
        assert!(RoomName::parse("a b").is_err());
    }
}
