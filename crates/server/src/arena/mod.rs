//! The trading arena on the server: what the arena registers with the engine at start-up
//! (its room rules, its collective profile), its REST API ([`rest`]) and who calls it
//! ([`caller`]). The streams are WebSocket sessions (`crate::ws`).
//!
//! Everything domain-specific is decided by `roomcast-arena`; this module only adapts it
//! to HTTP and to the engine's registration points.

pub(crate) mod caller;
pub mod cluster;
pub(crate) mod rest;

use roomcast_arena::instrument::Instruments;
use roomcast_arena::rooms::{MARKET_PREFIX, PRIVATE_PREFIXES};
use roomcast_arena::{Arena, ArenaError};
use roomcast_engine::auth::{Collectives, Profile, ProfileSchema, RoomRules};

/// The arena's rooms: private streams per collective, and public market rooms only the
/// arena publishes to.
pub fn room_rules() -> RoomRules {
    RoomRules {
        private_prefixes: PRIVATE_PREFIXES.map(String::from).to_vec(),
        server_only_prefixes: vec![MARKET_PREFIX.to_owned()],
    }
}

/// The arena's collective profile: `starting_cash` (integer cents) and
/// `starting_positions` (symbol → decimal string), checked against the instruments.
#[derive(Debug)]
pub struct FundingSchema {
    instruments: Instruments,
}

impl FundingSchema {
    /// The schema of a running arena.
    pub fn new(arena: &Arena) -> FundingSchema {
        FundingSchema::of(arena.instruments().clone())
    }

    /// The schema for `instruments` (a cluster node whose arena runs elsewhere).
    pub fn of(instruments: Instruments) -> FundingSchema {
        FundingSchema { instruments }
    }
}

impl ProfileSchema for FundingSchema {
    fn fields(&self) -> &[&'static str] {
        &["starting_cash", "starting_positions"]
    }

    fn validate(&self, profile: &Profile) -> Result<(), String> {
        roomcast_arena::funding::parse_funding(&self.instruments, profile)
            .map(drop)
            .map_err(|e| e.to_string())
    }
}

/// Opens an account (once; an existing one is left as it is) for every registered
/// collective, funded from its profile.
pub async fn open_accounts(arena: &Arena, collectives: &Collectives) -> Result<(), ArenaError> {
    for collective in collectives.list() {
        let funding = arena.parse_funding(&collective.profile)?;
        arena.open_account(collective.id.clone(), funding).await?;
    }
    Ok(())
}
