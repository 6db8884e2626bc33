//! Server configuration: raw values from a TOML file, `ROOMCAST_*` environment variables
//! and command-line flags, merged (flags > env > file > defaults) and validated into a
//! typed [`ServerConfig`] before anything starts.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use std::path::PathBuf;

use roomcast_engine::auth::{ForbiddenLimit, JwtConfig};
use roomcast_engine::history::{FsyncPolicy, Retention, RetentionRule};
use roomcast_engine::limits::pending::{DEFAULT_MAX_PENDING, DEFAULT_MAX_PENDING_PER_IP};
use roomcast_engine::limits::RateLimitConfig;
use roomcast_engine::{HubConfig, SlowConsumerPolicy};
use roomcast_protocol::CloseCode;

/// Default open connections per IP outside `--dev`: far above what one browser or
/// service opens, far below what exhausts the server's file descriptors (nginx's
/// `limit_conn` is the model; behind a proxy raise it or enforce it at the proxy).
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 1000;

/// Default seconds to send a request's headers: a real client sends its upgrade request
/// in one packet; hyper's own default is 30 s, nginx's `client_header_timeout` 60 s.
pub const DEFAULT_HEADER_READ_TIMEOUT_SECS: u64 = 10;
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
    /// `[auth]`
    #[serde(default)]
    pub auth: RawAuth,
    /// `[limits]`
    #[serde(default)]
    pub limits: RawLimits,
    /// `[arena]`
    #[serde(default)]
    pub arena: RawArena,
}

/// `[arena]` section: the trading arena that runs inside `roomcast serve` by default.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawArena {
    /// Whether the arena runs (default true).
    pub enabled: Option<bool>,
    /// Run demo bots that trade a random walk (default false).
    pub demo: Option<bool>,
    /// Demo orders per second, all bots together (default 5).
    pub demo_rate: Option<u32>,
    /// Allow selling more than one holds (default false).
    pub allow_shorts: Option<bool>,
    /// The instruments (default BTC-USD and ETH-USD).
    pub instruments: Option<Vec<roomcast_arena::InstrumentConfig>>,
    /// Keep the arena rooms' event history in the durable store too (default false: in
    /// memory; the exchange's own log is the durable record).
    pub durable_history: Option<bool>,
    /// Commands between two checkpoints of the exchange state (default 10000).
    pub snapshot_every: Option<u64>,
    /// On a cluster node (`server.broker`): run the exchange on this node (default false:
    /// serve the arena's streams and forward its REST calls to the node that runs it).
    pub node: Option<bool>,
}

/// `[auth]` section.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    /// Whether `/ws/{client_id}` requires authentication (default: true outside `--dev`).
    pub required: Option<bool>,
    /// HS256 shared secret.
    pub jwt_secret: Option<String>,
    /// File holding the HS256 secret (so it never appears on a command line).
    pub jwt_secret_file: Option<PathBuf>,
    /// PEM file with an Ed25519 (EdDSA) or RSA (RS256) public key.
    pub jwt_public_key: Option<PathBuf>,
    /// Required `iss`.
    pub jwt_issuer: Option<String>,
    /// Required `aud`.
    pub jwt_audience: Option<String>,
    /// Clock leeway for `exp`/`nbf`, seconds.
    pub jwt_leeway: Option<u64>,
    /// Key of the admin API.
    pub admin_key: Option<String>,
    /// File holding the admin key.
    pub admin_key_file: Option<PathBuf>,
    /// TOML/JSON file of collectives (id, public_key, starting_cash).
    pub collectives: Option<PathBuf>,
    /// Seconds a connection has to complete authentication.
    pub auth_timeout: Option<u64>,
    /// Allowed `Origin`s (empty: all in `--dev`, same-origin otherwise).
    pub allowed_origins: Option<Vec<String>>,
}

/// `[limits]` section.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    /// Inbound messages per second per connection (0 = unlimited).
    pub rate_limit: Option<u32>,
    /// Burst of the per-connection bucket.
    pub rate_burst: Option<u32>,
    /// Violations before closing with 4021 (0 = never close).
    pub rate_max_violations: Option<u32>,
    /// Handshakes per second per IP (0 = unlimited; default 50, off in `--dev`).
    pub handshake_rate: Option<u32>,
    /// Total connections.
    pub max_connections: Option<usize>,
    /// Connections per principal (client id / collective / token subject).
    pub max_connections_per_client: Option<usize>,
    /// Forbidden attempts per minute before closing with 4031 (0 = never close).
    pub max_forbidden: Option<u32>,
    /// Connections authenticating (Ed25519 challenge) at once, in total (0 = unlimited).
    pub max_pending_auth: Option<usize>,
    /// Connections authenticating at once from one IP address (0 = unlimited).
    pub max_pending_auth_per_ip: Option<usize>,
    /// Open TCP connections from one IP address (0 = unlimited; default 1000, off in
    /// `--dev`).
    pub max_connections_per_ip: Option<usize>,
    /// Seconds a client has to send a request's complete headers (at least 1).
    pub header_read_timeout: Option<u64>,
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
    /// A directory of static files served at `/` (a web app next to its server).
    pub static_dir: Option<PathBuf>,
    /// PEM certificate chain: serve HTTPS / `wss://` directly (with `tls_key`).
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// File of API keys, one per line (`#` starts a comment).
    pub api_key_file: Option<PathBuf>,
    /// `redis://host:port/db`: run as one node of a cluster sharing this Redis.
    pub broker: Option<String>,
    /// Mount the conformance echo (`--conformance-echo` only: not a file setting, so a
    /// configuration file can never turn it on).
    #[serde(skip)]
    pub conformance_echo: Option<bool>,
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
    /// Outbound queue capacity per connection, bytes.
    pub outbox_max_bytes: Option<usize>,
    /// Process-wide cap on queued outbound bytes (0 = none).
    pub max_queued_bytes: Option<usize>,
    /// `disconnect` or `drop_oldest`.
    pub slow_consumer: Option<SlowConsumerPolicy>,
    /// Most rooms per connection.
    pub max_subscriptions: Option<usize>,
    /// `user_left` only while `general` has at most this many members (0 = always).
    pub user_left_max_members: Option<usize>,
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
                api_key_file: None,
                static_dir: None,
                tls_cert: None,
                tls_key: None,
                broker: None,
                conformance_echo: None,
            },
            heartbeat: RawHeartbeat {
                interval: Some(d.hub.heartbeat_interval.as_secs()),
                timeout: Some(d.hub.heartbeat_timeout.as_secs()),
            },
            connection: RawConnection {
                outbox_capacity: Some(d.hub.outbox_capacity),
                outbox_max_bytes: Some(d.hub.outbox_max_bytes),
                max_queued_bytes: Some(d.hub.max_queued_bytes),
                slow_consumer: Some(d.hub.slow_consumer),
                max_subscriptions: Some(d.hub.max_subscriptions),
                user_left_max_members: Some(d.hub.user_left_max_members),
            },
            history: RawHistory {
                store: Some("durable".into()),
                data_dir: Some(d.history.data_dir.clone()),
                fsync: Some(d.history.fsync),
                max_events: Some(1000),
                ttl: Some(300),
                rules: Some(Vec::new()),
            },
            // `required`, `handshake_rate` and `max_connections_per_ip` are left out: their
            // defaults depend on
            // `--dev`, and writing them here would pin them for a --dev run too.
            auth: RawAuth {
                jwt_leeway: Some(30),
                auth_timeout: Some(30),
                allowed_origins: Some(Vec::new()),
                ..RawAuth::default()
            },
            limits: RawLimits {
                rate_limit: Some(10),
                rate_burst: Some(20),
                rate_max_violations: Some(50),
                handshake_rate: None,
                max_connections: Some(100_000),
                max_connections_per_client: Some(10),
                max_forbidden: Some(5),
                max_pending_auth: Some(DEFAULT_MAX_PENDING),
                max_pending_auth_per_ip: Some(DEFAULT_MAX_PENDING_PER_IP),
                max_connections_per_ip: None,
                header_read_timeout: Some(d.limits.header_read_timeout.as_secs()),
            },
            arena: RawArena {
                enabled: Some(true),
                demo: Some(false),
                demo_rate: Some(roomcast_arena::DemoConfig::default().orders_per_second),
                allow_shorts: Some(false),
                instruments: Some(roomcast_arena::ArenaConfig::default().instruments),
                durable_history: Some(false),
                snapshot_every: Some(roomcast_arena::ArenaConfig::default().snapshot_every),
                node: Some(false),
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
    /// Static files served at `/`, if any.
    pub static_dir: Option<PathBuf>,
    /// Certificate and key files when the server terminates TLS itself.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// The Redis URL of the cluster this node belongs to; `None` for a single node.
    pub broker: Option<String>,
    /// History store settings.
    pub history: HistoryConfig,
    /// Authentication settings.
    pub auth: AuthConfig,
    /// Abuse limits.
    pub limits: LimitsConfig,
    /// The trading arena; `None` when it is turned off.
    pub arena: Option<roomcast_arena::ArenaConfig>,
    /// On a cluster node: this node claims the arena lease and runs the exchange.
    pub arena_node: bool,
    /// Whether `/conformance/echo` is mounted (test runs only, [`crate::conformance`]).
    pub conformance_echo: bool,
}

/// Validated authentication settings.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// Whether anonymous connections are refused.
    pub required: bool,
    /// JWT verification settings; `None` when no key is configured (only allowed when
    /// authentication is not required).
    pub jwt: Option<JwtConfig>,
    /// Admin API key.
    pub admin_key: Option<String>,
    /// Collectives file to load at start.
    pub collectives: Option<PathBuf>,
    /// Time allowed to authenticate.
    pub auth_timeout: Duration,
    /// Allowed origins; `None` = allow all; `Some(empty)` = same-origin only.
    pub allowed_origins: Option<Vec<String>>,
}

/// Validated abuse limits.
#[derive(Debug, Clone)]
pub struct LimitsConfig {
    /// Per-connection inbound message limit.
    pub rate: RateLimitConfig,
    /// Handshakes per second per IP (0 = off).
    pub handshake_rate: u32,
    /// Total connections (0 = unlimited).
    pub max_connections: usize,
    /// Connections per principal (0 = unlimited).
    pub max_connections_per_client: usize,
    /// Refusals that close a connection.
    pub forbidden: ForbiddenLimit,
    /// Connections authenticating at once, in total (0 = unlimited; HTTP 503 beyond).
    pub max_pending_auth: usize,
    /// Connections authenticating at once per IP (0 = unlimited; HTTP 429 beyond).
    pub max_pending_auth_per_ip: usize,
    /// Open TCP connections per IP, WebSockets included (0 = unlimited; a canned HTTP 429
    /// and close beyond).
    pub max_connections_per_ip: usize,
    /// Time a client has to send a request's complete headers (slowloris); the
    /// connection is closed without a response after it.
    pub header_read_timeout: Duration,
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
    /// Whether the arena's rooms keep their history in the durable store (else memory).
    pub arena_durable: bool,
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
            static_dir: None,
            tls: None,
            broker: None,
            history: HistoryConfig {
                store: HistoryStore::Durable,
                data_dir: PathBuf::from("./data"),
                fsync: FsyncPolicy::Batch,
                retention: Retention::default(),
                arena_durable: false,
            },
            auth: AuthConfig {
                required: true,
                jwt: None,
                admin_key: None,
                collectives: None,
                auth_timeout: Duration::from_secs(30),
                allowed_origins: Some(Vec::new()),
            },
            limits: LimitsConfig {
                rate: RateLimitConfig::default(),
                handshake_rate: 50,
                max_connections: 100_000,
                max_connections_per_client: 10,
                forbidden: ForbiddenLimit::default(),
                max_pending_auth: DEFAULT_MAX_PENDING,
                max_pending_auth_per_ip: DEFAULT_MAX_PENDING_PER_IP,
                max_connections_per_ip: DEFAULT_MAX_CONNECTIONS_PER_IP,
                header_read_timeout: Duration::from_secs(DEFAULT_HEADER_READ_TIMEOUT_SECS),
            },
            arena: Some(roomcast_arena::ArenaConfig::default()),
            arena_node: false,
            conformance_echo: false,
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
            server.api_key_file,
            server.static_dir,
            server.tls_cert,
            server.tls_key,
            server.broker,
            server.conformance_echo,
            history.store,
            history.data_dir,
            history.fsync,
            history.max_events,
            history.ttl,
            history.rules,
            auth.required,
            auth.jwt_secret,
            auth.jwt_secret_file,
            auth.jwt_public_key,
            auth.jwt_issuer,
            auth.jwt_audience,
            auth.jwt_leeway,
            auth.admin_key,
            auth.admin_key_file,
            auth.collectives,
            auth.auth_timeout,
            auth.allowed_origins,
            limits.rate_limit,
            limits.rate_burst,
            limits.rate_max_violations,
            limits.handshake_rate,
            limits.max_connections,
            limits.max_connections_per_client,
            limits.max_forbidden,
            limits.max_pending_auth,
            limits.max_pending_auth_per_ip,
            limits.max_connections_per_ip,
            limits.header_read_timeout,
            heartbeat.interval,
            heartbeat.timeout,
            arena.enabled,
            arena.demo,
            arena.demo_rate,
            arena.allow_shorts,
            arena.instruments,
            arena.durable_history,
            arena.snapshot_every,
            arena.node,
            connection.outbox_capacity,
            connection.outbox_max_bytes,
            connection.max_queued_bytes,
            connection.slow_consumer,
            connection.max_subscriptions,
            connection.user_left_max_members,
        );
        self
    }

    /// Validates into a [`ServerConfig`]; missing values take their defaults. Each section
    /// is validated on its own (server, heartbeat + connection, history, auth, limits,
    /// arena), in that order: the first bad setting is the one reported.
    pub fn validate(self) -> Result<ServerConfig, ConfigError> {
        let d = ServerConfig::default();
        let server = validate_server(self.server, &d)?;
        let hub = validate_hub(self.heartbeat, self.connection, d.hub)?;
        let fsync = self.history.fsync.unwrap_or(d.history.fsync);
        let arena_durable = self.arena.durable_history.unwrap_or(false);
        let arena_node = self.arena.node.unwrap_or(false);
        if arena_node && server.broker.is_none() {
            return Err(invalid(
                "arena.node",
                "only a cluster node (server.broker) claims the arena; a single node always runs it",
            ));
        }
        let history = validate_history(self.history, d.history, arena_durable)?;
        let auth = validate_auth(self.auth, server.dev)?;
        let limits = validate_limits(self.limits, server.dev)?;
        let arena = validate_arena(self.arena, fsync)?;
        let config = ServerConfig {
            bind: server.bind,
            dev: server.dev,
            max_message_bytes: server.max_message_bytes,
            shutdown_grace: server.shutdown_grace,
            shutdown_close: server.shutdown_close,
            log_format: server.log_format,
            hub,
            api_keys: server.api_keys,
            static_dir: server.static_dir,
            tls: server.tls,
            broker: server.broker,
            history,
            auth,
            limits,
            arena_node: arena_node && arena.is_some(),
            arena,
            conformance_echo: server.conformance_echo,
        };
        crate::conformance::check(&config)?;
        Ok(config)
    }
}

/// The `[server]` section, validated: the [`ServerConfig`] fields it alone decides.
struct ServerSection {
    bind: SocketAddr,
    dev: bool,
    max_message_bytes: usize,
    shutdown_grace: Duration,
    shutdown_close: CloseCode,
    log_format: LogFormat,
    api_keys: Vec<String>,
    static_dir: Option<PathBuf>,
    tls: Option<(PathBuf, PathBuf)>,
    broker: Option<String>,
    conformance_echo: bool,
}

fn validate_server(raw: RawServer, d: &ServerConfig) -> Result<ServerSection, ConfigError> {
    let bind = match raw.bind {
        None => d.bind,
        Some(s) => s
            .parse()
            .map_err(|_| invalid("server.bind", format!("{s:?} is not ADDR:PORT")))?,
    };
    let max_message_bytes = raw.max_message_bytes.unwrap_or(d.max_message_bytes);
    if !(16..=64 * 1024 * 1024).contains(&max_message_bytes) {
        return Err(invalid(
            "server.max_message_bytes",
            "must be between 16 and 67108864",
        ));
    }
    let shutdown_grace = match raw.shutdown_grace {
        None => d.shutdown_grace,
        Some(s) if s > 3600 => {
            return Err(invalid(
                "server.shutdown_grace",
                "must be at most 3600 seconds",
            ))
        }
        Some(s) => Duration::from_secs(s),
    };
    let shutdown_close = match raw.shutdown_close_code {
        None | Some(4091) => CloseCode::ServerShutdown,
        Some(1001) => CloseCode::GoingAway,
        Some(c) => {
            return Err(invalid(
                "server.shutdown_close_code",
                format!("{c} is not 4091 or 1001"),
            ))
        }
    };
    let log_format = match raw.log_format.as_deref() {
        None | Some("text") => LogFormat::Text,
        Some("json") => LogFormat::Json,
        Some(other) => {
            return Err(invalid(
                "server.log_format",
                format!("{other:?} is not text or json"),
            ))
        }
    };
    let api_keys = validate_api_keys(raw.api_keys, raw.api_key_file.as_deref())?;
    let static_dir = match raw.static_dir {
        Some(dir) if !dir.is_dir() => {
            return Err(invalid(
                "server.static_dir",
                format!("{} is not a directory", dir.display()),
            ))
        }
        other => other,
    };
    let tls = match (raw.tls_cert, raw.tls_key) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => None,
        _ => {
            return Err(invalid(
                "server.tls_cert",
                "tls_cert and tls_key go together",
            ))
        }
    };
    let broker = match raw.broker.filter(|b| !b.is_empty()) {
        Some(url) if !(url.starts_with("redis://") || url.starts_with("rediss://")) => {
            return Err(invalid(
                "server.broker",
                format!("{url:?} is not a redis:// or rediss:// URL"),
            ))
        }
        other => other,
    };
    Ok(ServerSection {
        bind,
        dev: raw.dev.unwrap_or(false),
        max_message_bytes,
        shutdown_grace,
        shutdown_close,
        log_format,
        api_keys,
        static_dir,
        tls,
        broker,
        conformance_echo: raw.conformance_echo.unwrap_or(false),
    })
}

/// The listed keys plus the key file's lines (`#` lines are comments), blank ones dropped.
fn validate_api_keys(
    listed: Option<Vec<String>>,
    file: Option<&Path>,
) -> Result<Vec<String>, ConfigError> {
    let mut api_keys = listed.unwrap_or_default();
    if let Some(path) = file {
        let text = read_secret_file("server.api_key_file", path)?;
        api_keys.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.starts_with('#'))
                .map(str::to_owned),
        );
    }
    api_keys.retain(|k| !k.is_empty());
    if api_keys.iter().any(|k| k.len() < 8) {
        return Err(invalid(
            "server.api_keys",
            "every API key must be at least 8 characters",
        ));
    }
    Ok(api_keys)
}

/// The `[heartbeat]` and `[connection]` sections: the hub's settings.
fn validate_hub(
    heartbeat: RawHeartbeat,
    connection: RawConnection,
    d: HubConfig,
) -> Result<HubConfig, ConfigError> {
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
        heartbeat.interval,
        d.heartbeat_interval,
    )?;
    let heartbeat_timeout = secs("heartbeat.timeout", heartbeat.timeout, d.heartbeat_timeout)?;
    let outbox_capacity = connection.outbox_capacity.unwrap_or(d.outbox_capacity);
    if !(1..=1_000_000).contains(&outbox_capacity) {
        return Err(invalid(
            "connection.outbox_capacity",
            "must be between 1 and 1000000",
        ));
    }
    let outbox_max_bytes = connection.outbox_max_bytes.unwrap_or(d.outbox_max_bytes);
    if !(1024..=(1 << 30)).contains(&outbox_max_bytes) {
        return Err(invalid(
            "connection.outbox_max_bytes",
            "must be between 1024 and 1073741824",
        ));
    }
    let max_queued_bytes = connection.max_queued_bytes.unwrap_or(d.max_queued_bytes);
    if max_queued_bytes != 0 && max_queued_bytes < outbox_max_bytes {
        return Err(invalid(
            "connection.max_queued_bytes",
            "must be 0 (no cap) or at least connection.outbox_max_bytes",
        ));
    }
    let max_subscriptions = connection.max_subscriptions.unwrap_or(d.max_subscriptions);
    if max_subscriptions == 0 {
        return Err(invalid(
            "connection.max_subscriptions",
            "must be at least 1",
        ));
    }
    Ok(HubConfig {
        heartbeat_interval,
        heartbeat_timeout,
        outbox_capacity,
        outbox_max_bytes,
        max_queued_bytes,
        slow_consumer: connection.slow_consumer.unwrap_or(d.slow_consumer),
        max_subscriptions,
        user_left_max_members: connection
            .user_left_max_members
            .unwrap_or(d.user_left_max_members),
        ..d
    })
}

/// The `[history]` section: the store and its retention rules.
fn validate_history(
    raw: RawHistory,
    d: HistoryConfig,
    arena_durable: bool,
) -> Result<HistoryConfig, ConfigError> {
    let store = match raw.store.as_deref() {
        None | Some("durable") => HistoryStore::Durable,
        Some("memory") => HistoryStore::Memory,
        Some(other) => {
            return Err(invalid(
                "history.store",
                format!("{other:?} is not memory or durable"),
            ))
        }
    };
    let max_events = raw.max_events.unwrap_or(1000);
    if max_events > 10_000_000 {
        return Err(invalid("history.max_events", "must be at most 10000000"));
    }
    let ttl = match raw.ttl {
        None => Duration::from_secs(300),
        Some(0) => return Err(invalid("history.ttl", "must be at least 1 second")),
        Some(s) => Duration::from_secs(s),
    };
    let mut retention = Retention::all(max_events, ttl);
    for rule in raw.rules.unwrap_or_default() {
        if rule.ttl.is_zero() {
            return Err(invalid(
                "history.rules",
                format!("rule {:?}: ttl must be positive", rule.prefix),
            ));
        }
        retention.rules.push(rule);
    }
    // The arena publishes every order's events to its own `order:{collective}/{id}`
    // room, mostly with nobody listening: those rooms keep no history (a resume there
    // gets a fresh snapshot), or every order would cost a second durable write and a
    // retained room. A configured `order:` rule wins.
    if !retention.rules.iter().any(|r| r.prefix == "order:") {
        retention.rules.push(RetentionRule {
            prefix: "order:".to_owned(),
            max_events: 0,
            ttl: Duration::from_secs(1),
        });
    }
    Ok(HistoryConfig {
        store,
        data_dir: raw.data_dir.unwrap_or(d.data_dir),
        fsync: raw.fsync.unwrap_or(d.fsync),
        retention,
        arena_durable,
    })
}

/// The arena's settings; its durability follows the history store's fsync policy.
fn validate_arena(
    raw: RawArena,
    fsync: FsyncPolicy,
) -> Result<Option<roomcast_arena::ArenaConfig>, ConfigError> {
    if !raw.enabled.unwrap_or(true) {
        return Ok(None);
    }
    let mut config = roomcast_arena::ArenaConfig {
        allow_shorts: raw.allow_shorts.unwrap_or(false),
        fsync,
        ..roomcast_arena::ArenaConfig::default()
    };
    if let Some(instruments) = raw.instruments {
        config.instruments = instruments;
    }
    if let Some(every) = raw.snapshot_every {
        if every == 0 {
            return Err(invalid("arena.snapshot_every", "must be at least 1"));
        }
        config.snapshot_every = every;
    }
    if raw.demo.unwrap_or(false) {
        let mut demo = roomcast_arena::DemoConfig::default();
        if let Some(rate) = raw.demo_rate {
            if rate > 10_000 {
                return Err(invalid("arena.demo_rate", "must be at most 10000 orders/s"));
            }
            demo.orders_per_second = rate;
        }
        config.demo = Some(demo);
    }
    config
        .validate()
        .map_err(|e| invalid("arena.instruments", e.to_string()))?;
    Ok(Some(config))
}

/// Reads a secret from a file (surrounding whitespace, e.g. the final newline, removed).
fn read_secret_file(name: &'static str, path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .map_err(|e| invalid(name, format!("cannot read {}: {e}", path.display())))
}

/// A secret given directly or in a file, not both.
fn secret_setting(
    name: &'static str,
    direct: Option<String>,
    file: Option<&Path>,
) -> Result<Option<String>, ConfigError> {
    let direct = direct.filter(|s| !s.is_empty());
    match (direct, file) {
        (Some(_), Some(_)) => Err(invalid(
            name,
            "set either the value or its _file variant, not both",
        )),
        (Some(v), None) => Ok(Some(v)),
        (None, Some(path)) => {
            let v = read_secret_file(name, path)?;
            if v.is_empty() {
                return Err(invalid(name, format!("{} is empty", path.display())));
            }
            Ok(Some(v))
        }
        (None, None) => Ok(None),
    }
}

fn validate_auth(raw: RawAuth, dev: bool) -> Result<AuthConfig, ConfigError> {
    let required = raw.required.unwrap_or(!dev);
    let public_key_pem = match &raw.jwt_public_key {
        None => None,
        Some(path) => Some(std::fs::read_to_string(path).map_err(|e| {
            invalid(
                "auth.jwt_public_key",
                format!("cannot read {}: {e}", path.display()),
            )
        })?),
    };
    let secret = secret_setting(
        "auth.jwt_secret",
        raw.jwt_secret,
        raw.jwt_secret_file.as_deref(),
    )?;
    if let Some(secret) = &secret {
        if secret.len() < 16 && !dev {
            return Err(invalid(
                "auth.jwt_secret",
                "must be at least 16 characters (use --dev for toy secrets)",
            ));
        }
    }
    let jwt = if secret.is_none() && public_key_pem.is_none() {
        if required {
            return Err(invalid(
                "auth",
                "authentication is required but no JWT key is configured: set --jwt-secret SECRET \
                 or --jwt-public-key FILE (or run with --dev for development)",
            ));
        }
        None
    } else {
        Some(JwtConfig {
            hs256_secret: secret,
            public_key_pem,
            issuer: raw.jwt_issuer,
            audience: raw.jwt_audience,
            leeway: Duration::from_secs(raw.jwt_leeway.unwrap_or(30).min(3600)),
        })
    };
    let auth_timeout = match raw.auth_timeout {
        None => Duration::from_secs(30),
        Some(0) => return Err(invalid("auth.auth_timeout", "must be at least 1 second")),
        Some(s) => Duration::from_secs(s.min(3600)),
    };
    let admin_key = secret_setting(
        "auth.admin_key",
        raw.admin_key,
        raw.admin_key_file.as_deref(),
    )?;
    if admin_key.as_ref().is_some_and(|k| k.len() < 8) {
        return Err(invalid("auth.admin_key", "must be at least 8 characters"));
    }
    let origins: Vec<String> = raw
        .allowed_origins
        .unwrap_or_default()
        .into_iter()
        .map(|o| o.trim().trim_end_matches('/').to_ascii_lowercase())
        .filter(|o| !o.is_empty())
        .collect();
    let allowed_origins = if origins.is_empty() && dev {
        None
    } else {
        Some(origins)
    };
    Ok(AuthConfig {
        required,
        jwt,
        admin_key,
        collectives: raw.collectives,
        auth_timeout,
        allowed_origins,
    })
}

fn validate_limits(raw: RawLimits, dev: bool) -> Result<LimitsConfig, ConfigError> {
    let d = RateLimitConfig::default();
    let rate = RateLimitConfig {
        rate_per_sec: raw.rate_limit.unwrap_or(d.rate_per_sec),
        burst: raw.rate_burst.unwrap_or(d.burst),
        max_violations: raw.rate_max_violations.unwrap_or(d.max_violations),
    };
    Ok(LimitsConfig {
        rate,
        handshake_rate: raw.handshake_rate.unwrap_or(if dev { 0 } else { 50 }),
        max_connections: raw.max_connections.unwrap_or(100_000),
        max_connections_per_client: raw.max_connections_per_client.unwrap_or(10),
        forbidden: ForbiddenLimit {
            max_attempts: raw.max_forbidden.unwrap_or(5),
            ..ForbiddenLimit::default()
        },
        max_pending_auth: raw.max_pending_auth.unwrap_or(DEFAULT_MAX_PENDING),
        max_pending_auth_per_ip: raw
            .max_pending_auth_per_ip
            .unwrap_or(DEFAULT_MAX_PENDING_PER_IP),
        max_connections_per_ip: raw.max_connections_per_ip.unwrap_or(if dev {
            0
        } else {
            DEFAULT_MAX_CONNECTIONS_PER_IP
        }),
        header_read_timeout: match raw
            .header_read_timeout
            .unwrap_or(DEFAULT_HEADER_READ_TIMEOUT_SECS)
        {
            0 => {
                return Err(invalid(
                    "limits.header_read_timeout",
                    "must be at least 1 second",
                ))
            }
            secs => Duration::from_secs(secs),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_round_trip() -> Result<(), Box<dyn std::error::Error>> {
        let text = toml::to_string(&RawConfig::defaults())?;
        let mut parsed: RawConfig = toml::from_str(&text)?;
        parsed.auth.jwt_secret = Some("0123456789abcdef0123".into());
        let cfg = parsed.validate()?;
        assert_eq!(cfg.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(cfg.max_message_bytes, 65536);
        Ok(())
    }

    #[test]
    fn overlay_prefers_higher_precedence() -> Result<(), Box<dyn std::error::Error>> {
        let file: RawConfig =
            toml::from_str("[server]\ndev = true\n[heartbeat]\ninterval = 7\ntimeout = 3\n")?;
        let mut flags = RawConfig::default();
        flags.heartbeat.interval = Some(2);
        let cfg = file.overlay(flags).validate()?;
        assert_eq!(cfg.hub.heartbeat_interval, Duration::from_secs(2));
        assert_eq!(cfg.hub.heartbeat_timeout, Duration::from_secs(3));
        Ok(())
    }

    #[test]
    fn rejects_bad_values_by_name() {
        let raw: RawConfig =
            toml::from_str("[server]\ndev = true\n[heartbeat]\ninterval = 0\n").unwrap_or_default();
        let err = raw
            .validate()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("heartbeat.interval"), "{err}");
        assert!(toml::from_str::<RawConfig>("[server]\nbogus = 1\n").is_err());
    }

    #[test]
    fn connection_budget_is_off_in_dev_and_the_header_timeout_is_at_least_a_second(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let dev: RawConfig = toml::from_str("[server]\ndev = true\n")?;
        let cfg = dev.clone().validate()?;
        assert_eq!(cfg.limits.max_connections_per_ip, 0);
        assert_eq!(cfg.limits.header_read_timeout, Duration::from_secs(10));
        let secure: RawConfig = toml::from_str("[auth]\njwt_secret = \"0123456789abcdef0123\"\n")?;
        let cfg = secure.validate()?;
        assert_eq!(
            cfg.limits.max_connections_per_ip,
            DEFAULT_MAX_CONNECTIONS_PER_IP
        );
        let zero: RawConfig =
            toml::from_str("[server]\ndev = true\n[limits]\nheader_read_timeout = 0\n")?;
        let err = zero
            .validate()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("limits.header_read_timeout"), "{err}");
        Ok(())
    }
}

#[cfg(test)]
mod auth_tests {
    use super::*;

    #[test]
    fn secure_by_default_names_the_flags() {
        let err = RawConfig::default()
            .validate()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("--jwt-secret") && err.contains("--dev"),
            "{err}"
        );
        let mut dev = RawConfig::default();
        dev.server.dev = Some(true);
        let cfg = dev.validate().map_err(|e| e.to_string());
        assert!(matches!(cfg, Ok(ref c) if !c.auth.required && c.limits.handshake_rate == 0));
    }
}

#[cfg(test)]
mod default_file_tests {
    use super::*;

    #[test]
    fn the_default_file_still_allows_dev_mode() -> Result<(), Box<dyn std::error::Error>> {
        let mut file: RawConfig = toml::from_str(&toml::to_string(&RawConfig::defaults())?)?;
        file.server.dev = Some(true);
        let cfg = file.validate()?;
        assert!(!cfg.auth.required);
        assert_eq!(cfg.limits.handshake_rate, 0);
        Ok(())
    }
}
