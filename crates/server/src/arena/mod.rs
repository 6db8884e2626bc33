//! The trading arena on the server: the room rules and collective profile the arena
//! registers with the engine at start-up.

use roomcast_engine::auth::{Profile, ProfileSchema, RoomRules};

/// The arena's rooms: private streams per collective, and public market rooms only the
/// arena publishes to.
pub fn room_rules() -> RoomRules {
    RoomRules {
        private_prefixes: vec!["portfolio:".into(), "orders:".into(), "order:".into()],
        server_only_prefixes: vec!["market:".into()],
    }
}

/// The arena's collective profile: `starting_cash` (integer cents) and
/// `starting_positions` (symbol → decimal string).
#[derive(Debug, Default)]
pub struct FundingSchema;

impl ProfileSchema for FundingSchema {
    fn fields(&self) -> &[&'static str] {
        &["starting_cash", "starting_positions"]
    }

    fn validate(&self, profile: &Profile) -> Result<(), String> {
        if let Some(cash) = profile.get("starting_cash") {
            if cash.as_i64().is_none_or(|c| c < 0) {
                return Err(format!(
                    "starting_cash must be a whole number of cents >= 0 (got {cash})"
                ));
            }
        }
        if let Some(positions) = profile.get("starting_positions") {
            if !positions.is_object() {
                return Err("starting_positions must be a table of symbol = \"quantity\"".into());
            }
        }
        Ok(())
    }
}
