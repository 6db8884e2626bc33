//! Arena helpers (docs/ARENA.md): local state of the trading streams built from snapshot +
//! events, and a signed REST helper.
