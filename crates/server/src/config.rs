//! Server configuration: raw values from a TOML file, `ROOMCAST_*` environment variables
//! and command-line flags, merged (flags > env > file > defaults) and validated into a
//! typed [`ServerConfig`] before anything starts.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use std::path::PathBuf;

use roomcast_engine::history::{FsyncPolicy, Retention, RetentionRule};
use roomcast_engine::{HubConfig, SlowConsumerPolicy};
use roomcast_protocol::CloseCode;
use serde::{Deserialize, Serialize};

/// A configuration file as written by an operator. Every field is optional.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// `[server]`
    #[serde(default)]
    pub server: RawServer,
    /// `[heartbeat]`
    #[serde(default)]
    pub heartbeat: RawHeartbeat,
    /// `[connection]`
    #[serde(default)]
    pub connection: RawConnection,
    /// `[history]`
    #[serde(default)]
    pub history: RawHistory,
}

/// `[history]` section.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawHistory {
    /// `durable` (default) or `memory`.
    pub store: Option<String>,
    /// Directory of the durable store.
    pub data_dir: Option<PathBuf>,
    /// `batch` (default), `always` or `never`.
    pub fsync: Option<FsyncPolicy>,
    /// Events kept per room by the default rule.
    pub max_events: Option<usize>,
    /// Seconds events are kept by the default rule.
    pub ttl: Option<u64>,
    /// Per-prefix rules (`prefix`, `max_events`, `ttl`); the longest matching prefix wins.
    /// `max_events = 0` disables history for a prefix.
    pub rules: Option<Vec<RetentionRule>>,
}

/// `[server]` section.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    /// Listen address, `ADDR:PORT`; port 0 picks a free port.
    pub bind: Option<String>,
    /// Development mode.
    pub dev: Option<bool>,
    /// Largest accepted inbound message, bytes.
    pub max_message_bytes: Option<usize>,
    /// Seconds to wait for outbound queues to drain at shutdown.
    pub shutdown_grace: Option<u64>,
    /// Close code sent at shutdown: 4091 (default) or 1001.
    pub shutdown_close_code: Option<u16>,
    /// `text` or `json`.
    pub log_format: Option<String>,
    /// Keys accepted by the publish and history APIs (`Authorization: Bearer <key>`).
    pub api_keys: Option<Vec<String>>,
}

/// `[heartbeat]` section.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawHeartbeat {
    /// Seconds between server pings.
    pub interval: Option<u64>,
    /// Extra seconds of silence tolerated before eviction.
    pub timeout: Option<u64>,
}

/// `[connection]` section.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawConnection {
    /// Outbound queue capacity per connection, messages.
    pub outbox_capacity: Option<usize>,
    /// `disconnect` or `drop_oldest`.
    pub slow_consumer: Option<SlowConsumerPolicy>,
    /// Most rooms per connection.
    pub max_subscriptions: Option<usize>,
}

impl RawConfig {
    /// Reads a TOML file.
    pub fn load(path: &Path) -> Result<RawConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.display().to_string(),
            source: e,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.display().to_string(),
            message: e.to_string(),
        })
    }

    /// The defaults, written out in full (for `roomcast default-config`).
    pub fn defaults() -> RawConfig {
        let d = ServerConfig::default();
        RawConfig {
            server: RawServer {
                bind: Some(d.bind.to_string()),
                dev: Some(false),
                max_message_bytes: Some(d.max_message_bytes),
                shutdown_grace: Some(d.shutdown_grace.as_secs()),
                shutdown_close_code: Some(d.shutdown_close.as_u16()),
                log_format: Some("text".into()),
                api_keys: Some(Vec::new()),
            },
            heartbeat: RawHeartbeat {
                interval: Some(d.hub.heartbeat_interval.as_secs()),
                timeout: Some(d.hub.heartbeat_timeout.as_secs()),
            },
            connection: RawConnection {
                outbox_capacity: Some(d.hub.outbox_capacity),
                slow_consumer: Some(d.hub.slow_consumer),
                max_subscriptions: Some(d.hub.max_subscriptions),
            },
            history: RawHistory {
                store: Some("durable".into()),
                data_dir: Some(d.history.data_dir.clone()),
                fsync: Some(d.history.fsync),
                max_events: Some(1000),
                ttl: Some(300),
                rules: Some(Vec::new()),
            },
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Validated settings of a running server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Listen address.
    pub bind: SocketAddr,
    /// Development mode (anonymous clients; see the auth docs).
    pub dev: bool,
    /// Largest accepted inbound message; larger ones close with 1009.
    pub max_message_bytes: usize,
    /// Time allowed for outbound queues to drain at shutdown.
    pub shutdown_grace: Duration,
    /// Close code sent to clients at shutdown.
    pub shutdown_close: CloseCode,
    /// Log format.
    pub log_format: LogFormat,
    /// Engine settings.
    pub hub: HubConfig,
    /// Keys of the publish/history APIs.
    pub api_keys: Vec<String>,
    /// History store settings.
    pub history: HistoryConfig,
}

/// Which history store to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryStore {
    /// In memory: fast, lost on restart (a restart starts new epochs).
    Memory,
    /// Embedded on-disk store in `data_dir`.
    Durable,
}

/// Validated history settings.
#[derive(Debug, Clone)]
pub struct HistoryConfig {
    /// Store kind.
    pub store: HistoryStore,
    /// Directory of the durable store.
    pub data_dir: PathBuf,
    /// Fsync policy of the durable store.
    pub fsync: FsyncPolicy,
    /// Which rooms keep how much.
    pub retention: Retention,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            dev: false,
            max_message_bytes: 64 * 1024,
            shutdown_grace: Duration::from_secs(5),
            shutdown_close: CloseCode::ServerShutdown,
            log_format: LogFormat::Text,
            hub: HubConfig::default(),
            api_keys: Vec::new(),
            history: HistoryConfig {
                store: HistoryStore::Durable,
                data_dir: PathBuf::from("./data"),
                fsync: FsyncPolicy::Batch,
                retention: Retention::default(),
            },
        }
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML of the expected shape.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// The parser's message.
        message: String,
    },
    /// A value is out of range.
    #[error("invalid setting {name}: {message}")]
    Invalid {
        /// The setting, as in the config file (`section.key`).
        name: &'static str,
        /// What is wrong.
        message: String,
    },
}

fn invalid(name: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        name,
        message: message.into(),
    }
}

impl RawConfig {
    /// Overlays `other` (higher precedence) onto `self`.
    pub fn overlay(mut self, other: RawConfig) -> RawConfig {
        macro_rules! take {
            ($($sec:ident . $field:ident),* $(,)?) => {
                $( if other.$sec.$field.is_some() { self.$sec.$field = other.$sec.$field; } )*
            };
        }
        take!(
            server.bind,
            server.dev,
            server.max_message_bytes,
            server.shutdown_grace,
            server.shutdown_close_code,
            server.log_format,
            server.api_keys,
            history.store,
            history.data_dir,
            history.fsync,
            history.max_events,
            history.ttl,
            history.rules,
            heartbeat.interval,
            heartbeat.timeout,
            connection.outbox_capacity,
            connection.slow_consumer,
            connection.max_subscriptions,
        );
        self
    }

    /// Validates into a [`ServerConfig`]; missing values take their defaults.
    pub fn validate(self) -> Result<ServerConfig, ConfigError> {
        let d = ServerConfig::default();
        let bind = match self.server.bind {
            None => d.bind,
            Some(s) => s
                .parse()
                .map_err(|_| invalid("server.bind", format!("{s:?} is not ADDR:PORT")))?,
        };
        let max_message_bytes = self.server.max_message_bytes.unwrap_or(d.max_message_bytes);
        if !(16..=64 * 1024 * 1024).contains(&max_message_bytes) {
            return Err(invalid(
                "server.max_message_bytes",
                "must be between 16 and 67108864",
            ));
        }
        let secs = |name, v: Option<u64>, default: Duration| -> Result<Duration, ConfigError> {
            match v {
                None => Ok(default),
                Some(0) => Err(invalid(name, "must be at least 1 second")),
                Some(s) if s > 86_400 => Err(invalid(name, "must be at most 86400 seconds")),
                Some(s) => Ok(Duration::from_secs(s)),
            }
        };
        let heartbeat_interval = secs(
            "heartbeat.interval",
            self.heartbeat.interval,
            d.hub.heartbeat_interval,
        )?;
        let heartbeat_timeout = secs(
            "heartbeat.timeout",
            self.heartbeat.timeout,
            d.hub.heartbeat_timeout,
        )?;
        let shutdown_grace = match self.server.shutdown_grace {
            None => d.shutdown_grace,
            Some(s) if s > 3600 => {
                return Err(invalid(
                    "server.shutdown_grace",
                    "must be at most 3600 seconds",
                ))
            }
            Some(s) => Duration::from_secs(s),
        };
        let shutdown_close = match self.server.shutdown_close_code {
            None | Some(4091) => CloseCode::ServerShutdown,
            Some(1001) => CloseCode::GoingAway,
            Some(c) => {
                return Err(invalid(
                    "server.shutdown_close_code",
                    format!("{c} is not 4091 or 1001"),
                ))
            }
        };
        let log_format = match self.server.log_format.as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(invalid(
                    "server.log_format",
                    format!("{other:?} is not text or json"),
                ))
            }
        };
        let outbox_capacity = self
            .connection
            .outbox_capacity
            .unwrap_or(d.hub.outbox_capacity);
        if !(1..=1_000_000).contains(&outbox_capacity) {
            return Err(invalid(
                "connection.outbox_capacity",
                "must be between 1 and 1000000",
            ));
        }
        let max_subscriptions = self
            .connection
            .max_subscriptions
            .unwrap_or(d.hub.max_subscriptions);
        if max_subscriptions == 0 {
            return Err(invalid(
                "connection.max_subscriptions",
                "must be at least 1",
            ));
        }
        let store = match self.history.store.as_deref() {
            None | Some("durable") => HistoryStore::Durable,
            Some("memory") => HistoryStore::Memory,
            Some(other) => {
                return Err(invalid(
                    "history.store",
                    format!("{other:?} is not memory or durable"),
                ))
            }
        };
        let max_events = self.history.max_events.unwrap_or(1000);
        if max_events > 10_000_000 {
            return Err(invalid("history.max_events", "must be at most 10000000"));
        }
        let ttl = match self.history.ttl {
            None => Duration::from_secs(300),
            Some(0) => return Err(invalid("history.ttl", "must be at least 1 second")),
            Some(s) => Duration::from_secs(s),
        };
        let mut retention = Retention::all(max_events, ttl);
        for rule in self.history.rules.unwrap_or_default() {
            if rule.ttl.is_zero() {
                return Err(invalid(
                    "history.rules",
                    format!("rule {:?}: ttl must be positive", rule.prefix),
                ));
            }
            retention.rules.push(rule);
        }
        let api_keys: Vec<String> = self
            .server
            .api_keys
            .unwrap_or_default()
            .into_iter()
            .filter(|k| !k.is_empty())
            .collect();
        if api_keys.iter().any(|k| k.len() < 8) {
            return Err(invalid(
                "server.api_keys",
                "every API key must be at least 8 characters",
            ));
        }
        Ok(ServerConfig {
            bind,
            dev: self.server.dev.unwrap_or(false),
            max_message_bytes,
            shutdown_grace,
            shutdown_close,
            log_format,
            hub: HubConfig {
                heartbeat_interval,
                heartbeat_timeout,
                outbox_capacity,
                slow_consumer: self.connection.slow_consumer.unwrap_or(d.hub.slow_consumer),
                max_subscriptions,
                ..d.hub
            },
            api_keys,
            history: HistoryConfig {
                store,
                data_dir: self.history.data_dir.unwrap_or(d.history.data_dir),
                fsync: self.history.fsync.unwrap_or(d.history.fsync),
                retention,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_round_trip() -> Result<(), Box<dyn std::error::Error>> {
        let text = toml::to_string(&RawConfig::defaults())?;
        let parsed: RawConfig = toml::from_str(&text)?;
        let cfg = parsed.validate()?;
        assert_eq!(cfg.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(cfg.max_message_bytes, 65536);
        Ok(())
    }

    #[test]
    fn overlay_prefers_higher_precedence() -> Result<(), Box<dyn std::error::Error>> {
        let file: RawConfig = toml::from_str("[heartbeat]\ninterval = 7\ntimeout = 3\n")?;
        let mut flags = RawConfig::default();
        flags.heartbeat.interval = Some(2);
        let cfg = file.overlay(flags).validate()?;
        assert_eq!(cfg.hub.heartbeat_interval, Duration::from_secs(2));
        assert_eq!(cfg.hub.heartbeat_timeout, Duration::from_secs(3));
        Ok(())
    }

    #[test]
    fn rejects_bad_values_by_name() {
        let raw: RawConfig = toml::from_str("[heartbeat]\ninterval = 0\n").unwrap_or_default();
        let err = raw
            .validate()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("heartbeat.interval"), "{err}");
        assert!(toml::from_str::<RawConfig>("[server]\nbogus = 1\n").is_err());
    }
}
