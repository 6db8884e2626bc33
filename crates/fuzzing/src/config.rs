//! The server's configuration file: TOML into `RawConfig`, then `validate`.
//!
//! Asserts: whatever parses writes back to TOML that parses to the same configuration
//! (serialize ∘ parse round-trips); validation never panics; validating the file alone
//! and validating it overlaid on an empty configuration (how flags and file are merged)
//! agree, so no setting is lost in the overlay; an accepted configuration holds its
//! documented bounds. Settings that name files are cleared before validating: the
//! target exercises the checks, not the disk.

use roomcast_server::config::RawConfig;

/// The target body.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(mut raw) = toml::from_str::<RawConfig>(text) else {
        return;
    };
    round_trip(&raw, text);
    raw.server.api_key_file = None;
    raw.server.static_dir = None;
    raw.auth.jwt_secret_file = None;
    raw.auth.jwt_public_key = None;
    raw.auth.admin_key_file = None;
    raw.auth.collectives = None;
    let direct = raw.clone().validate();
    let overlaid = RawConfig::default().overlay(raw).validate();
    match (&direct, &overlaid) {
        (Ok(a), Ok(b)) => assert_eq!(format!("{a:?}"), format!("{b:?}"), "{text:?}"),
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{text:?}"),
        _ => panic!("{text:?}: validate {direct:?} but overlaid {overlaid:?}"),
    }
    if let Ok(config) = direct {
        assert!((16..=64 * 1024 * 1024).contains(&config.max_message_bytes));
        assert!(config.hub.outbox_capacity >= 1);
        assert!(!config.hub.heartbeat_interval.is_zero());
        assert!(
            config.auth.jwt.is_some() || !config.auth.required,
            "{text:?}"
        );
    }
}

fn round_trip(raw: &RawConfig, text: &str) {
    let written = match toml::to_string(raw) {
        Ok(w) => w,
        // A value TOML cannot write (none known) is not this target's concern.
        Err(_) => return,
    };
    match toml::from_str::<RawConfig>(&written) {
        Ok(again) => assert_eq!(
            toml::to_string(&again).ok().as_deref(),
            Some(written.as_str()),
            "{text:?}"
        ),
        Err(e) => panic!("{text:?} parsed, but its own serialisation {written:?} did not: {e}"),
    }
}
