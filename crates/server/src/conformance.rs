//! When `--conformance-echo` may run.
//!
//! The conformance echo (`/conformance/echo`, [`crate::ws::upgrade_echo`]) returns any
//! message to anyone, unauthenticated, up to `max_message_bytes`, which Autobahn's 9.*
//! cases need raised to 16 MiB: on a reachable address that is a free reflector and
//! memory sink. So it is a test-run switch, and start-up refuses it next to anything that
//! marks a real deployment: it needs `--dev`, a loopback bind address, and no TLS
//! certificate, JWT key or secret, admin or API key, collectives file, or required
//! authentication. Only the command line (or `ROOMCAST_CONFORMANCE_ECHO`) can turn it on;
//! a configuration file cannot.

use crate::config::{ConfigError, ServerConfig};

/// The setting name the refusal names.
const SETTING: &str = "conformance_echo";

/// Refuses a configuration that mounts the conformance echo together with production
/// settings; any configuration without it passes.
pub fn check(config: &ServerConfig) -> Result<(), ConfigError> {
    if !config.conformance_echo {
        return Ok(());
    }
    let offending = production_settings(config);
    if offending.is_empty() {
        return Ok(());
    }
    Err(ConfigError::Invalid {
        name: SETTING,
        message: format!(
            "--conformance-echo is for test runs only and cannot be combined with {}",
            offending.join(", ")
        ),
    })
}

/// The settings of `config` that mark a real deployment, as their flags.
fn production_settings(config: &ServerConfig) -> Vec<&'static str> {
    let auth = &config.auth;
    [
        (!config.dev, "running without --dev"),
        (
            !config.bind.ip().is_loopback(),
            "a non-loopback --bind address",
        ),
        (config.tls.is_some(), "--tls-cert/--tls-key"),
        (
            auth.jwt.is_some(),
            "a JWT key (--jwt-secret[-file], --jwt-public-key)",
        ),
        (
            auth.admin_key.is_some(),
            "an admin key (--admin-key[-file])",
        ),
        (
            !config.api_keys.is_empty(),
            "API keys (--api-key, --api-key-file)",
        ),
        (auth.collectives.is_some(), "a collectives file"),
        (auth.required, "required authentication ([auth] required)"),
    ]
    .into_iter()
    .filter_map(|(set, flag)| set.then_some(flag))
    .collect()
}

#[cfg(test)]
mod tests {
    use crate::config::RawConfig;

    fn raw(dev: bool) -> RawConfig {
        let mut raw = RawConfig::default();
        raw.server.dev = Some(dev);
        raw.server.conformance_echo = Some(true);
        raw
    }

    fn refusal(raw: RawConfig) -> String {
        match raw.validate() {
            Ok(_) => String::from("accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn dev_on_loopback_is_allowed() {
        let config = raw(true).validate();
        assert!(matches!(config, Ok(c) if c.conformance_echo));
    }

    #[test]
    fn off_by_default() {
        let mut raw = RawConfig::default();
        raw.server.dev = Some(true);
        let config = raw.validate();
        assert!(matches!(config, Ok(c) if !c.conformance_echo));
    }

    #[test]
    fn production_settings_are_refused() {
        let mut production = raw(false);
        production.auth.jwt_secret = Some("a-long-enough-secret".into());
        let message = refusal(production);
        assert!(message.contains("without --dev"), "{message}");

        let mut public = raw(true);
        public.server.bind = Some("0.0.0.0:0".into());
        let message = refusal(public);
        assert!(message.contains("non-loopback"), "{message}");

        let mut keyed = raw(true);
        keyed.auth.jwt_secret = Some("a-long-enough-secret".into());
        keyed.auth.admin_key = Some("admin-key-123".into());
        keyed.server.api_keys = Some(vec!["api-key-123".into()]);
        let message = refusal(keyed);
        for flag in ["JWT key", "admin key", "API keys"] {
            assert!(message.contains(flag), "{flag}: {message}");
        }

        let mut tls = raw(true);
        tls.server.tls_cert = Some("cert.pem".into());
        tls.server.tls_key = Some("key.pem".into());
        let message = refusal(tls);
        assert!(message.contains("--tls-cert"), "{message}");

        let mut required = raw(true);
        required.auth.required = Some(true);
        required.auth.jwt_secret = Some("a-long-enough-secret".into());
        let message = refusal(required);
        assert!(message.contains("required authentication"), "{message}");
    }

    #[test]
    fn a_config_file_cannot_turn_it_on() {
        let parsed: Result<RawConfig, _> = toml::from_str("[server]\nconformance_echo = true\n");
        assert!(parsed.is_err(), "the file setting must be unknown");
    }
}
