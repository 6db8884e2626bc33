//! Room authorisation: who may subscribe to and publish in which room, and when repeated
//! refusals end the connection.
//!
//! A connection is a [`Principal`]: its client id, the collective it acts for, the room
//! patterns its token grants (`rooms`, `publish`) and whether it is an admin. A [`Pattern`]
//! is an exact room name or a prefix ending in `*` (`chat:*`; a lone `*` matches every room).
//!
//! [`RoomPolicy`] decides, in this order:
//! 1. **Private rooms.** A room under a private prefix is private to its *owner*: the text
//!    after the prefix up to the first `/` (with prefix `feed:`, `feed:acme` and
//!    `feed:acme/17` both belong to `acme`). Ids cannot contain `/`, so the owner is
//!    unambiguous. The principal's identity for ownership is its collective id if it has
//!    one, else its client id. Non-owners are refused whatever their token says, unless
//!    they are admins. Publishing to a private room is for admins only (and for the server
//!    itself, which does not go through this policy): owners only read their private
//!    streams, unless [`RoomPolicyConfig::owner_may_publish_reserved`] is set.
//!    **Server-only rooms** (under a server-only prefix) are readable as usual but no
//!    principal may publish to them, admins included: only the domain that registered them
//!    writes there, through the hub.
//!
//!    The engine knows no prefixes of its own: a domain built on it (the trading arena)
//!    registers its [`RoomRules`] at start-up ([`RoomPolicyConfig::register`]).
//! 2. **Claims narrow.** If the token lists patterns, the room must match one of them. This
//!    applies to private rooms too (an owner or admin whose token lists `rooms` must list
//!    the private room as well). Without a `publish` claim, publishing uses the `rooms`
//!    claim; without either, the configured default.
//! 3. **Default policy.** Without claims, [`RoomPolicyConfig::default_subscribe`] /
//!    [`RoomPolicyConfig::default_publish`] apply (default `*`: `general` and every room not
//!    under a reserved prefix). The default never hides an owner's own private rooms.
//!
//! A refused subscribe is a `FORBIDDEN` error that keeps the connection; a
//! [`ForbiddenTracker`] per connection closes it (4031) after repeated refusals.

use std::time::{Duration, Instant};

use roomcast_protocol::{ClientId, CloseCode, IdError, RoomName};

use super::collectives::CollectiveId;
use super::jwt::Claims;

/// The most patterns one claim may list.
pub const MAX_PATTERNS: usize = 256;

/// A room pattern: an exact room name, or a prefix followed by `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    text: Box<str>,
    wildcard: bool,
}

/// Why a pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// `*` somewhere other than at the end.
    #[error("`*` may only end a room pattern: {0:?}")]
    InnerWildcard(String),
    /// The name or prefix breaks the room-name rules.
    #[error("room pattern {pattern:?}: {error}")]
    Room {
        /// The pattern as given.
        pattern: String,
        /// What is wrong with it.
        error: IdError,
    },
}

impl Pattern {
    /// Parses `name` or `prefix*` (the prefix may be empty).
    pub fn parse(s: &str) -> Result<Pattern, PatternError> {
        let (text, wildcard) = match s.strip_suffix('*') {
            Some(prefix) => (prefix, true),
            None => (s, false),
        };
        if text.contains('*') {
            return Err(PatternError::InnerWildcard(s.to_owned()));
        }
        if !(wildcard && text.is_empty()) {
            RoomName::parse(text).map_err(|error| PatternError::Room {
                pattern: s.to_owned(),
                error,
            })?;
        }
        Ok(Pattern {
            text: text.into(),
            wildcard,
        })
    }

    /// A pattern matching every room.
    pub fn any() -> Pattern {
        Pattern {
            text: "".into(),
            wildcard: true,
        }
    }

    /// Whether `room` matches.
    pub fn matches(&self, room: &str) -> bool {
        if self.wildcard {
            room.starts_with(&*self.text)
        } else {
            room == &*self.text
        }
    }

    /// Parses a list of patterns (at most [`MAX_PATTERNS`]).
    pub fn parse_list<S: AsRef<str>>(list: &[S]) -> Result<Vec<Pattern>, PrincipalError> {
        if list.len() > MAX_PATTERNS {
            return Err(PrincipalError::TooManyPatterns(list.len()));
        }
        list.iter()
            .map(|s| Pattern::parse(s.as_ref()).map_err(PrincipalError::Pattern))
            .collect()
    }
}

impl std::fmt::Display for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)?;
        if self.wildcard {
            f.write_str("*")?;
        }
        Ok(())
    }
}

/// Who a connection is, for authorisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The connection's client id.
    pub client_id: ClientId,
    /// The collective it acts for, if any.
    pub collective_id: Option<CollectiveId>,
    /// Subscribe patterns from the token; `None` = the default policy.
    pub rooms: Option<Vec<Pattern>>,
    /// Publish patterns from the token; `None` = `rooms`, then the default policy.
    pub publish: Option<Vec<Pattern>>,
    /// Admins may enter other collectives' reserved rooms.
    pub admin: bool,
    /// Whether the identity was proven (a token or a signature). An anonymous connection's
    /// client id is only a claim, so it owns no private room: otherwise `--dev` would let
    /// anyone read `orders:acme` by connecting as `/ws/acme`.
    pub verified: bool,
}

/// Why a token's claims cannot make a [`Principal`]. Close with [`PrincipalError::close_code`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrincipalError {
    /// The token's `sub` is not the connection's client id.
    #[error("token subject {sub:?} does not match client id {client_id}")]
    SubjectMismatch {
        /// The token's subject.
        sub: String,
        /// The connection's client id.
        client_id: ClientId,
    },
    /// A `rooms`/`publish` pattern is invalid.
    #[error("{0}")]
    Pattern(PatternError),
    /// A claim lists more than [`MAX_PATTERNS`] patterns.
    #[error("a room claim lists {0} patterns (limit {MAX_PATTERNS})")]
    TooManyPatterns(usize),
    /// `collective_id` breaks the id rules.
    #[error("collective_id: {0}")]
    CollectiveId(IdError),
}

impl PrincipalError {
    /// A token for someone else is 4001 `UNAUTHORIZED` ("not authenticated as this client");
    /// a token whose claims are unusable is 4002 `INVALID_TOKEN`.
    pub const fn close_code(&self) -> CloseCode {
        match self {
            PrincipalError::SubjectMismatch { .. } => CloseCode::Unauthorized,
            PrincipalError::Pattern(_)
            | PrincipalError::TooManyPatterns(_)
            | PrincipalError::CollectiveId(_) => CloseCode::InvalidToken,
        }
    }
}

impl Principal {
    /// A connection without a token (`--dev`, `auth.required = false`): the default policy.
    pub fn anonymous(client_id: ClientId) -> Principal {
        Principal {
            client_id,
            collective_id: None,
            rooms: None,
            publish: None,
            admin: false,
            verified: false,
        }
    }

    /// A collective authenticated by challenge-response: the default policy, owning its
    /// reserved rooms.
    pub fn collective(client_id: ClientId, collective_id: CollectiveId) -> Principal {
        Principal {
            collective_id: Some(collective_id),
            verified: true,
            ..Principal::anonymous(client_id)
        }
    }

    /// The principal a verified token makes for the connection `client_id`. Checks that
    /// the token's `sub` is `client_id`, so a token for one client never opens another's
    /// connection.
    pub fn from_claims(client_id: ClientId, claims: &Claims) -> Result<Principal, PrincipalError> {
        if claims.sub != client_id.as_str() {
            return Err(PrincipalError::SubjectMismatch {
                sub: claims.sub.clone(),
                client_id,
            });
        }
        let collective_id = match &claims.collective_id {
            Some(id) => Some(CollectiveId::parse(id).map_err(PrincipalError::CollectiveId)?),
            None => None,
        };
        let rooms = claims
            .rooms
            .as_deref()
            .map(Pattern::parse_list)
            .transpose()?;
        let publish = claims
            .publish
            .as_deref()
            .map(Pattern::parse_list)
            .transpose()?;
        Ok(Principal {
            client_id,
            collective_id,
            rooms,
            publish,
            admin: claims.is_admin(),
            verified: true,
        })
    }

    /// The identity that owns reserved rooms: the collective id, else the client id of a
    /// verified principal; an anonymous connection owns none.
    pub fn owner_id(&self) -> Option<&str> {
        match &self.collective_id {
            Some(id) => Some(id.as_str()),
            None if self.verified => Some(self.client_id.as_str()),
            None => None,
        }
    }

    /// [`Principal::owner_id`] as shared text (no copy).
    pub fn owner_key(&self) -> std::sync::Arc<str> {
        match &self.collective_id {
            Some(id) => id.to_shared(),
            None => self.client_id.to_shared(),
        }
    }
}

/// Room prefixes a domain registers with the policy at start-up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoomRules {
    /// Prefixes whose rooms are private to the owner named after the prefix.
    pub private_prefixes: Vec<String>,
    /// Prefixes whose rooms only the registering domain publishes to.
    pub server_only_prefixes: Vec<String>,
}

/// The room policy's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomPolicyConfig {
    /// Prefixes whose rooms are private to their owner (none by default).
    pub reserved_prefixes: Vec<String>,
    /// Prefixes whose rooms no principal may publish to (none by default).
    pub server_only_prefixes: Vec<String>,
    /// What a principal without a `rooms` claim may subscribe to (reserved rooms excepted).
    pub default_subscribe: Vec<Pattern>,
    /// What a principal without `publish`/`rooms` claims may publish to.
    pub default_publish: Vec<Pattern>,
    /// Whether owners may publish into their own reserved rooms.
    pub owner_may_publish_reserved: bool,
}

impl Default for RoomPolicyConfig {
    fn default() -> Self {
        RoomPolicyConfig {
            reserved_prefixes: Vec::new(),
            server_only_prefixes: Vec::new(),
            default_subscribe: vec![Pattern::any()],
            default_publish: vec![Pattern::any()],
            owner_may_publish_reserved: false,
        }
    }
}

impl RoomPolicyConfig {
    /// Adds a domain's prefixes (validated by [`RoomPolicy::new`]).
    pub fn register(&mut self, rules: &RoomRules) {
        self.reserved_prefixes
            .extend(rules.private_prefixes.iter().cloned());
        self.server_only_prefixes
            .extend(rules.server_only_prefixes.iter().cloned());
    }
}

/// Why a policy configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// A reserved prefix that is empty or not made of room-name characters.
    #[error("reserved prefix {0:?} must be non-empty room-name characters")]
    BadPrefix(String),
}

/// The room policy. Immutable after construction; share it behind an `Arc`.
#[derive(Debug, Clone, Default)]
pub struct RoomPolicy {
    config: RoomPolicyConfig,
}

/// Whether a principal is allowed into a reserved room.
enum Reserved {
    /// The room is under no reserved prefix.
    No,
    /// The principal owns the room or is an admin.
    Allowed,
    /// Someone else's private room.
    Refused,
}

impl RoomPolicy {
    /// Validates a configuration.
    pub fn new(config: RoomPolicyConfig) -> Result<RoomPolicy, PolicyError> {
        for prefix in config
            .reserved_prefixes
            .iter()
            .chain(&config.server_only_prefixes)
        {
            if RoomName::parse(prefix).is_err() {
                return Err(PolicyError::BadPrefix(prefix.clone()));
            }
        }
        Ok(RoomPolicy { config })
    }

    /// The settings in force.
    pub fn config(&self) -> &RoomPolicyConfig {
        &self.config
    }

    /// Whether `room` is under a reserved prefix.
    pub fn is_reserved(&self, room: &str) -> bool {
        self.config
            .reserved_prefixes
            .iter()
            .any(|p| room.starts_with(p.as_str()))
    }

    /// The owner a reserved room belongs to (`None` for unreserved rooms).
    pub fn owner_of<'r>(&self, room: &'r str) -> Option<&'r str> {
        self.config
            .reserved_prefixes
            .iter()
            .find_map(|p| room.strip_prefix(p.as_str()))
            .map(|rest| rest.split('/').next().unwrap_or(rest))
    }

    fn reserved(&self, principal: &Principal, room: &str) -> Reserved {
        let mut reserved = false;
        for prefix in &self.config.reserved_prefixes {
            if let Some(rest) = room.strip_prefix(prefix.as_str()) {
                reserved = true;
                let owner = rest.split('/').next().unwrap_or(rest);
                // Every matching prefix must agree that the principal owns the room.
                if !principal.admin && Some(owner) != principal.owner_id() {
                    return Reserved::Refused;
                }
            }
        }
        if reserved {
            Reserved::Allowed
        } else {
            Reserved::No
        }
    }

    /// Whether `principal` may subscribe to `room`.
    pub fn can_subscribe(&self, principal: &Principal, room: &RoomName) -> bool {
        let room = room.as_str();
        match (self.reserved(principal, room), &principal.rooms) {
            (Reserved::Refused, _) => false,
            (_, Some(patterns)) => matches_any(patterns, room),
            (Reserved::Allowed, None) => true,
            (Reserved::No, None) => matches_any(&self.config.default_subscribe, room),
        }
    }

    /// Whether `room` is under a server-only prefix.
    pub fn is_server_only(&self, room: &str) -> bool {
        self.config
            .server_only_prefixes
            .iter()
            .any(|p| room.starts_with(p.as_str()))
    }

    /// Whether `principal` may publish to `room`.
    pub fn can_publish(&self, principal: &Principal, room: &RoomName) -> bool {
        let room = room.as_str();
        if self.is_server_only(room) {
            return false;
        }
        let patterns = principal.publish.as_ref().or(principal.rooms.as_ref());
        match self.reserved(principal, room) {
            Reserved::Refused => false,
            Reserved::Allowed => {
                let may = principal.admin || self.config.owner_may_publish_reserved;
                may && patterns.is_none_or(|p| matches_any(p, room))
            }
            Reserved::No => matches_any(
                patterns.map_or(&self.config.default_publish[..], |p| &p[..]),
                room,
            ),
        }
    }
}

fn matches_any(patterns: &[Pattern], room: &str) -> bool {
    patterns.iter().any(|p| p.matches(room))
}

/// How many refusals in how long close a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForbiddenLimit {
    /// The refusal that closes the connection (0 = never close).
    pub max_attempts: u32,
    /// The window the refusals are counted in.
    pub window: Duration,
}

impl Default for ForbiddenLimit {
    fn default() -> Self {
        ForbiddenLimit {
            max_attempts: 5,
            window: Duration::from_secs(60),
        }
    }
}

/// What to do after a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForbiddenVerdict {
    /// Reply `FORBIDDEN` and keep the connection.
    Keep,
    /// Close with [`ForbiddenVerdict::CLOSE_CODE`] (4031).
    Close,
}

impl ForbiddenVerdict {
    /// The close code for [`ForbiddenVerdict::Close`].
    pub const CLOSE_CODE: CloseCode = CloseCode::InvalidSubscription;
}

/// Counts one connection's refused subscribes in a fixed window that opens at the first
/// refusal: the `max_attempts`-th refusal within `window` of it closes the connection; a
/// refusal after the window opens a new one. (A fixed window keeps the tracker to a few
/// words per connection with no allocation; it can let up to `2 × max − 2` refusals
/// straddle two windows, which is harmless: each is cheap to refuse.)
#[derive(Debug, Clone)]
pub struct ForbiddenTracker {
    limit: ForbiddenLimit,
    window_start: Option<Instant>,
    count: u32,
}

impl ForbiddenTracker {
    /// A tracker with no refusals yet.
    pub fn new(limit: ForbiddenLimit) -> ForbiddenTracker {
        ForbiddenTracker {
            limit,
            window_start: None,
            count: 0,
        }
    }

    /// Records a refusal at `now`.
    pub fn record(&mut self, now: Instant) -> ForbiddenVerdict {
        match self.window_start {
            Some(start) if now.saturating_duration_since(start) < self.limit.window => {
                self.count = self.count.saturating_add(1);
            }
            _ => {
                self.window_start = Some(now);
                self.count = 1;
            }
        }
        if self.limit.max_attempts != 0 && self.count >= self.limit.max_attempts {
            ForbiddenVerdict::Close
        } else {
            ForbiddenVerdict::Keep
        }
    }

    /// Refusals counted in the current window.
    pub fn count(&self) -> u32 {
        self.count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(s: &str) -> RoomName {
        RoomName::parse(s).expect("room")
    }

    fn client(s: &str) -> ClientId {
        ClientId::parse(s).expect("client")
    }

    fn patterns(list: &[&str]) -> Option<Vec<Pattern>> {
        Some(Pattern::parse_list(list).expect("patterns"))
    }

    fn claims(sub: &str) -> Claims {
        Claims {
            sub: sub.to_owned(),
            exp: 0,
            nbf: None,
            rooms: None,
            publish: None,
            roles: Vec::new(),
            collective_id: None,
        }
    }

    #[test]
    fn patterns_parse_and_match() {
        let p = Pattern::parse("chat:*").expect("wildcard");
        assert!(p.matches("chat:lobby"));
        assert!(p.matches("chat:"));
        assert!(!p.matches("chat"));
        assert!(!p.matches("news:chat:x"));
        let exact = Pattern::parse("general").expect("exact");
        assert!(exact.matches("general"));
        assert!(!exact.matches("general2"));
        assert!(Pattern::parse("*").expect("any").matches("anything"));
        assert_eq!(Pattern::parse("chat:*").expect("p").to_string(), "chat:*");
        assert!(matches!(
            Pattern::parse("a*b"),
            Err(PatternError::InnerWildcard(_))
        ));
        assert!(matches!(
            Pattern::parse("**"),
            Err(PatternError::InnerWildcard(_))
        ));
        assert!(matches!(
            Pattern::parse("a b*"),
            Err(PatternError::Room { .. })
        ));
        assert!(matches!(Pattern::parse(""), Err(PatternError::Room { .. })));
        let many: Vec<String> = (0..=MAX_PATTERNS).map(|i| format!("r{i}")).collect();
        assert_eq!(
            Pattern::parse_list(&many),
            Err(PrincipalError::TooManyPatterns(MAX_PATTERNS + 1))
        );
    }

    /// A domain's rules, as the arena registers them.
    fn with_private_streams() -> RoomPolicy {
        let mut config = RoomPolicyConfig::default();
        config.register(&RoomRules {
            private_prefixes: vec!["portfolio:".into(), "orders:".into(), "order:".into()],
            server_only_prefixes: vec!["market:".into()],
        });
        RoomPolicy::new(config).expect("policy")
    }

    #[test]
    fn server_only_rooms_are_read_only_for_everyone() {
        let policy = with_private_streams();
        let mut claims = claims("ops");
        claims.roles = vec!["admin".to_owned()];
        let admin = Principal::from_claims(client("ops"), &claims).expect("principal");
        let anon = Principal::anonymous(client("alice"));
        for p in [&admin, &anon] {
            assert!(policy.can_subscribe(p, &room("market:BTC-USD")));
            assert!(!policy.can_publish(p, &room("market:BTC-USD")));
        }
        // The engine alone reserves nothing.
        let plain = RoomPolicy::default();
        assert!(plain.can_publish(&anon, &room("market:BTC-USD")));
        assert!(plain.can_subscribe(&anon, &room("portfolio:bob")));
    }

    #[test]
    fn default_policy_allows_unreserved_rooms() {
        let policy = RoomPolicy::default();
        let anon = Principal::anonymous(client("alice"));
        for r in ["general", "chat:lobby", "news", "Portfolio:bob"] {
            assert!(policy.can_subscribe(&anon, &room(r)), "{r}");
            assert!(policy.can_publish(&anon, &room(r)), "{r}");
        }
    }

    #[test]
    fn reserved_rooms_belong_to_their_owner() {
        let policy = with_private_streams();
        let acme =
            Principal::collective(client("trader-1"), CollectiveId::parse("acme").expect("id"));
        for r in ["portfolio:acme", "orders:acme", "order:acme/42"] {
            assert!(policy.can_subscribe(&acme, &room(r)), "{r}");
            // Private streams are read-only for their owner.
            assert!(!policy.can_publish(&acme, &room(r)), "{r}");
        }
        for r in [
            "portfolio:globex",
            "orders:globex",
            "order:globex/42",
            "order:42",
            "portfolio:acme:x",
            "portfolio:",
            "portfolio:acme@x",
        ] {
            assert!(!policy.can_subscribe(&acme, &room(r)), "{r}");
            assert!(!policy.can_publish(&acme, &room(r)), "{r}");
        }
        // Without a collective, a verified client id is the owner; an anonymous one owns
        // nothing (its id is only a claim).
        let mut alice = Principal::anonymous(client("alice"));
        assert!(!policy.can_subscribe(&alice, &room("portfolio:alice")));
        alice.verified = true;
        assert!(policy.can_subscribe(&alice, &room("portfolio:alice")));
        assert!(!policy.can_subscribe(&alice, &room("portfolio:acme")));
        assert_eq!(policy.owner_of("order:acme/42"), Some("acme"));
        assert_eq!(policy.owner_of("chat:acme"), None);
        assert!(policy.is_reserved("orders:x"));
    }

    #[test]
    fn claims_cannot_grant_other_collectives_rooms() {
        let policy = with_private_streams();
        let mut mallory = Principal::anonymous(client("mallory"));
        mallory.rooms = patterns(&["*", "portfolio:acme"]);
        mallory.publish = patterns(&["*"]);
        assert!(!policy.can_subscribe(&mallory, &room("portfolio:acme")));
        assert!(!policy.can_publish(&mallory, &room("portfolio:acme")));
        assert!(policy.can_subscribe(&mallory, &room("chat:x")));
    }

    #[test]
    fn admins_may_enter_reserved_rooms() {
        let policy = with_private_streams();
        let mut claims = claims("ops");
        claims.roles = vec!["admin".to_owned()];
        let admin = Principal::from_claims(client("ops"), &claims).expect("principal");
        assert!(admin.admin);
        assert!(policy.can_subscribe(&admin, &room("portfolio:acme")));
        assert!(policy.can_publish(&admin, &room("orders:acme")));
        // Claims still narrow an admin.
        let mut narrowed = admin.clone();
        narrowed.rooms = patterns(&["chat:*"]);
        assert!(!policy.can_subscribe(&narrowed, &room("portfolio:acme")));
        assert!(policy.can_subscribe(&narrowed, &room("chat:a")));
    }

    #[test]
    fn wildcard_claims_are_honoured() {
        let policy = with_private_streams();
        let mut c = claims("alice");
        c.rooms = Some(vec!["chat:*".to_owned(), "general".to_owned()]);
        let alice = Principal::from_claims(client("alice"), &c).expect("principal");
        assert!(policy.can_subscribe(&alice, &room("chat:lobby")));
        assert!(policy.can_subscribe(&alice, &room("general")));
        assert!(!policy.can_subscribe(&alice, &room("news")));
        // Own private room, but not in the claim: refused (claims narrow).
        assert!(!policy.can_subscribe(&alice, &room("portfolio:alice")));
        // No publish claim: publishing follows `rooms`.
        assert!(policy.can_publish(&alice, &room("chat:lobby")));
        assert!(!policy.can_publish(&alice, &room("news")));

        c.publish = Some(vec!["chat:lobby".to_owned()]);
        let alice = Principal::from_claims(client("alice"), &c).expect("principal");
        assert!(policy.can_publish(&alice, &room("chat:lobby")));
        assert!(!policy.can_publish(&alice, &room("chat:other")));
    }

    #[test]
    fn configured_defaults_and_owner_publishing() {
        let policy = RoomPolicy::new(RoomPolicyConfig {
            reserved_prefixes: vec!["private:".to_owned()],
            server_only_prefixes: Vec::new(),
            default_subscribe: Pattern::parse_list(&["general", "chat:*"]).expect("p"),
            default_publish: Pattern::parse_list(&["chat:*"]).expect("p"),
            owner_may_publish_reserved: true,
        })
        .expect("policy");
        // A verified client without a collective (a token whose subject is bob).
        let bob = Principal {
            verified: true,
            ..Principal::anonymous(client("bob"))
        };
        assert!(policy.can_subscribe(&bob, &room("general")));
        assert!(!policy.can_subscribe(&bob, &room("news")));
        assert!(!policy.can_publish(&bob, &room("general")));
        assert!(policy.can_publish(&bob, &room("chat:x")));
        // The default never hides the owner's own private rooms.
        assert!(policy.can_subscribe(&bob, &room("private:bob")));
        assert!(policy.can_publish(&bob, &room("private:bob")));
        assert!(!policy.can_subscribe(&bob, &room("private:eve")));
        // portfolio: is not reserved in this configuration.
        assert!(!policy.is_reserved("portfolio:eve"));

        assert_eq!(
            RoomPolicy::new(RoomPolicyConfig {
                reserved_prefixes: vec![String::new()],
                ..RoomPolicyConfig::default()
            })
            .err(),
            Some(PolicyError::BadPrefix(String::new()))
        );
    }

    #[test]
    fn principal_from_claims_checks_subject_and_claims() {
        let err = Principal::from_claims(client("alice"), &claims("bob")).expect_err("sub");
        assert_eq!(err.close_code(), CloseCode::Unauthorized);
        let mut bad = claims("alice");
        bad.rooms = Some(vec!["a*b".to_owned()]);
        let err = Principal::from_claims(client("alice"), &bad).expect_err("pattern");
        assert_eq!(err.close_code(), CloseCode::InvalidToken);
        let mut bad = claims("alice");
        bad.collective_id = Some("no spaces".to_owned());
        let err = Principal::from_claims(client("alice"), &bad).expect_err("collective");
        assert_eq!(err.close_code(), CloseCode::InvalidToken);
        let mut ok = claims("alice");
        ok.collective_id = Some("acme".to_owned());
        let p = Principal::from_claims(client("alice"), &ok).expect("ok");
        assert_eq!(p.owner_id(), Some("acme"));
        assert!(!p.admin);
    }

    #[test]
    fn forbidden_tracker_closes_at_the_fifth_refusal_in_a_minute() {
        let t0 = Instant::now();
        let mut tracker = ForbiddenTracker::new(ForbiddenLimit::default());
        for i in 0..4 {
            assert_eq!(
                tracker.record(t0 + Duration::from_secs(i * 10)),
                ForbiddenVerdict::Keep
            );
        }
        assert_eq!(
            tracker.record(t0 + Duration::from_secs(59)),
            ForbiddenVerdict::Close
        );
        assert_eq!(ForbiddenVerdict::CLOSE_CODE.as_u16(), 4031);

        // Spread out over more than a minute: never closes.
        let mut slow = ForbiddenTracker::new(ForbiddenLimit::default());
        for i in 0..20 {
            assert_eq!(
                slow.record(t0 + Duration::from_secs(i * 16)),
                ForbiddenVerdict::Keep
            );
        }
        // The window restarts after it ends.
        let mut tracker = ForbiddenTracker::new(ForbiddenLimit::default());
        for i in 0..4 {
            tracker.record(t0 + Duration::from_secs(i));
        }
        assert_eq!(
            tracker.record(t0 + Duration::from_secs(60)),
            ForbiddenVerdict::Keep
        );
        assert_eq!(tracker.count(), 1);

        // Configurable, and 0 never closes.
        let mut two = ForbiddenTracker::new(ForbiddenLimit {
            max_attempts: 2,
            window: Duration::from_secs(1),
        });
        assert_eq!(two.record(t0), ForbiddenVerdict::Keep);
        assert_eq!(two.record(t0), ForbiddenVerdict::Close);
        let mut never = ForbiddenTracker::new(ForbiddenLimit {
            max_attempts: 0,
            window: Duration::from_secs(60),
        });
        for _ in 0..100 {
            assert_eq!(never.record(t0), ForbiddenVerdict::Keep);
        }
    }
}
