//! Authentication and authorisation: who a connection is, and where it may read and write.
//!
//! - [`jwt`]: bearer tokens (HS256, EdDSA, RS256), verified once per handshake against keys
//!   parsed at start-up; minting of development tokens.
//! - [`challenge`]: Ed25519 challenge-response, a step any endpoint can run after accepting
//!   a connection; parsing of Ed25519 public keys.
//! - [`collectives`]: the registry of collectives (accounts) and their public keys, loaded
//!   from a TOML/JSON file and changed by the admin API.
//! - [`signed`]: HTTP requests signed with a collective's Ed25519 key (timestamp window,
//!   single-use signatures in bounded memory).
//! - [`policy`]: room authorisation from token claims and the private/server-only prefixes a
//!   domain registers, and the
//!   per-connection tracker that closes after repeated refusals.
//!
//! This module decides; it never touches a socket. Every failure type says which
//! [`roomcast_protocol::CloseCode`] it ends the connection with, so the transport maps
//! errors to close frames in one place without re-deciding policy.
//!
//! Invariant: no state here grows with connection attempts. Challenges live in their
//! connection's task, verifiers and policies are immutable, and the only shared map (the
//! collectives registry) is keyed by admin-registered ids and bounded.

pub mod challenge;
pub mod collectives;
pub mod jwt;
pub mod policy;
pub mod signed;

pub use challenge::{parse_public_key, Challenge, ChallengeError, EntropyError, KeyError};
pub use collectives::{
    Collective, CollectiveError, CollectiveId, Collectives, LoadError, Profile, ProfileSchema,
    RegistryError,
};
pub use jwt::{
    mint_hs256, Claims, JwtConfig, JwtConfigError, JwtError, JwtVerifier, MintError, MintRequest,
};
pub use policy::{
    ForbiddenLimit, ForbiddenTracker, ForbiddenVerdict, Pattern, PatternError, PolicyError,
    Principal, PrincipalError, RoomPolicy, RoomPolicyConfig, RoomRules,
};
pub use signed::{
    SignedError, SignedHeaders, SignedMessage, SignedRequestVerifier, SIGNATURE_WINDOW,
};
