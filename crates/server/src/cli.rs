//! The server's part of the `roomcast` command line: `serve`, `check-config` and
//! `default-config`. Flags and `ROOMCAST_*` variables are read by clap into optional
//! values, overlaid on the config file, then validated (see [`crate::config`]). The binary
//! (`crates/roomcast`) puts these next to `bench`, `monitor`, `token` and `keygen`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use roomcast_engine::history::FsyncPolicy;
use roomcast_engine::SlowConsumerPolicy;

use crate::config::{
    RawArena, RawAuth, RawConfig, RawConnection, RawHeartbeat, RawHistory, RawLimits, RawServer,
};

/// Options of `roomcast serve`. Precedence: flag > environment variable > config file >
/// default.
#[derive(Debug, Args, Default)]
pub struct ServeArgs {
    /// TOML configuration file.
    #[arg(long, env = "ROOMCAST_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Listen address; port 0 picks a free port. Prints `listening on ws://ADDR:PORT` once
    /// ready. [default: 127.0.0.1:8080]
    #[arg(long, env = "ROOMCAST_BIND", value_name = "ADDR:PORT")]
    pub bind: Option<String>,
    /// Development mode: anonymous clients allowed (logged loudly at start-up).
    #[arg(long, env = "ROOMCAST_DEV")]
    pub dev: bool,
    /// Seconds between server heartbeat pings. [default: 30]
    #[arg(long, env = "ROOMCAST_HEARTBEAT_INTERVAL", value_name = "SECS")]
    pub heartbeat_interval: Option<u64>,
    /// Extra seconds of silence tolerated after a missed heartbeat before the connection
    /// is closed with 1001. [default: 10]
    #[arg(long, env = "ROOMCAST_HEARTBEAT_TIMEOUT", value_name = "SECS")]
    pub heartbeat_timeout: Option<u64>,
    /// Largest accepted inbound message in bytes; larger closes with 1009. [default: 65536]
    #[arg(long, env = "ROOMCAST_MAX_MESSAGE_BYTES", value_name = "N")]
    pub max_message_bytes: Option<usize>,
    /// Seconds to let outbound queues drain at shutdown. [default: 5]
    #[arg(long, env = "ROOMCAST_SHUTDOWN_GRACE", value_name = "SECS")]
    pub shutdown_grace: Option<u64>,
    /// Close code sent to clients at shutdown: 4091 or 1001. [default: 4091]
    #[arg(long, env = "ROOMCAST_SHUTDOWN_CLOSE_CODE", value_name = "CODE")]
    pub shutdown_close_code: Option<u16>,
    /// Outbound queue capacity per connection, in messages. [default: 1024]
    #[arg(long, env = "ROOMCAST_OUTBOX_CAPACITY", value_name = "N")]
    pub outbox_capacity: Option<usize>,
    /// Outbound queue capacity per connection, in bytes; a reader whose queue would grow
    /// past it gets the slow-consumer policy. [default: 1048576]
    #[arg(long, env = "ROOMCAST_OUTBOX_MAX_BYTES", value_name = "BYTES")]
    pub outbox_max_bytes: Option<usize>,
    /// Process-wide cap on queued outbound bytes (0 = none): above it, the connections
    /// with the largest queues are closed with 1008, largest first. [default: 1073741824]
    #[arg(long, env = "ROOMCAST_MAX_QUEUED_BYTES", value_name = "BYTES")]
    pub max_queued_bytes: Option<usize>,
    /// What to do with a recipient whose queue is full: disconnect (1008) or drop-oldest.
    /// [default: disconnect]
    #[arg(long, env = "ROOMCAST_SLOW_CONSUMER", value_name = "POLICY", value_parser = parse_policy)]
    pub slow_consumer: Option<SlowConsumerPolicy>,
    /// Most rooms one connection may join. [default: 1000]
    #[arg(long, env = "ROOMCAST_MAX_SUBSCRIPTIONS", value_name = "N")]
    pub max_subscriptions: Option<usize>,
    /// History store: durable (embedded, in --data-dir) or memory. [default: durable]
    #[arg(long, env = "ROOMCAST_HISTORY", value_name = "STORE")]
    pub history: Option<String>,
    /// Directory of the durable history store. [default: ./data]
    #[arg(long, env = "ROOMCAST_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Events kept per room. [default: 1000]
    #[arg(long, env = "ROOMCAST_HISTORY_MAX_EVENTS", value_name = "N")]
    pub history_max_events: Option<usize>,
    /// Seconds events are kept. [default: 300]
    #[arg(long, env = "ROOMCAST_HISTORY_TTL", value_name = "SECS")]
    pub history_ttl: Option<u64>,
    /// When a history append counts as durable: batch (group commit), always, never.
    /// [default: batch]
    #[arg(long, env = "ROOMCAST_FSYNC", value_name = "POLICY", value_parser = parse_fsync)]
    pub fsync: Option<FsyncPolicy>,
    /// API key for POST /api/publish and GET /api/history (repeatable; env: comma-separated).
    #[arg(
        long = "api-key",
        env = "ROOMCAST_API_KEYS",
        value_name = "KEY",
        value_delimiter = ','
    )]
    pub api_keys: Vec<String>,
    /// HS256 secret for JWTs (at least 16 characters outside --dev).
    #[arg(
        long,
        env = "ROOMCAST_JWT_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub jwt_secret: Option<String>,
    /// File holding the HS256 secret (keeps it off the command line, where `ps` shows it).
    #[arg(long, env = "ROOMCAST_JWT_SECRET_FILE", value_name = "FILE")]
    pub jwt_secret_file: Option<PathBuf>,
    /// PEM file with the Ed25519 (EdDSA) or RSA (RS256) public key that verifies JWTs.
    #[arg(long, env = "ROOMCAST_JWT_PUBLIC_KEY", value_name = "FILE")]
    pub jwt_public_key: Option<PathBuf>,
    /// Required JWT issuer (`iss`).
    #[arg(long, env = "ROOMCAST_JWT_ISSUER", value_name = "ISS")]
    pub jwt_issuer: Option<String>,
    /// Required JWT audience (`aud`).
    #[arg(long, env = "ROOMCAST_JWT_AUDIENCE", value_name = "AUD")]
    pub jwt_audience: Option<String>,
    /// Clock leeway for `exp`/`nbf`, seconds. [default: 30]
    #[arg(long, env = "ROOMCAST_JWT_LEEWAY", value_name = "SECS")]
    pub jwt_leeway: Option<u64>,
    /// Key of the admin API (`Authorization: Bearer KEY`).
    #[arg(
        long,
        env = "ROOMCAST_ADMIN_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    pub admin_key: Option<String>,
    /// File holding the admin key.
    #[arg(long, env = "ROOMCAST_ADMIN_KEY_FILE", value_name = "FILE")]
    pub admin_key_file: Option<PathBuf>,
    /// File of publish/history API keys, one per line.
    #[arg(long, env = "ROOMCAST_API_KEY_FILE", value_name = "FILE")]
    pub api_key_file: Option<PathBuf>,
    /// TOML or JSON file of collectives: id, public_key (PEM or base64), starting_cash.
    #[arg(long, env = "ROOMCAST_COLLECTIVES", value_name = "FILE")]
    pub collectives: Option<PathBuf>,
    /// Comma-separated allowed Origins (empty: all in --dev, same-origin otherwise).
    #[arg(
        long,
        env = "ROOMCAST_ALLOWED_ORIGINS",
        value_name = "LIST",
        value_delimiter = ','
    )]
    pub allowed_origins: Vec<String>,
    /// Inbound messages per second per connection; 0 disables. [default: 10]
    #[arg(long, env = "ROOMCAST_RATE_LIMIT", value_name = "PER_SEC")]
    pub rate_limit: Option<u32>,
    /// Burst of the per-connection rate limit. [default: 20]
    #[arg(long, env = "ROOMCAST_RATE_BURST", value_name = "N")]
    pub rate_burst: Option<u32>,
    /// Rate-limit violations before closing with 4021; 0 never closes. [default: 50]
    #[arg(long, env = "ROOMCAST_RATE_MAX_VIOLATIONS", value_name = "N")]
    pub rate_max_violations: Option<u32>,
    /// WebSocket handshakes per second per IP (HTTP 429 beyond); 0 disables.
    /// [default: 50, off in --dev]
    #[arg(long, env = "ROOMCAST_HANDSHAKE_RATE", value_name = "PER_SEC")]
    pub handshake_rate: Option<u32>,
    /// Total connections (4022 beyond). [default: 100000]
    #[arg(long, env = "ROOMCAST_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<usize>,
    /// Connections per principal: collective, token subject or client id (4022 beyond).
    /// [default: 10]
    #[arg(long, env = "ROOMCAST_MAX_CONNECTIONS_PER_CLIENT", value_name = "N")]
    pub max_connections_per_client: Option<usize>,
    /// Connections in the Ed25519 challenge at once, in total (HTTP 503 beyond); 0 = no
    /// limit. [default: 1024]
    #[arg(long, env = "ROOMCAST_MAX_PENDING_AUTH", value_name = "N")]
    pub max_pending_auth: Option<usize>,
    /// Connections in the Ed25519 challenge at once from one IP (HTTP 429 beyond); 0 = no
    /// limit. [default: 32]
    #[arg(long, env = "ROOMCAST_MAX_PENDING_AUTH_PER_IP", value_name = "N")]
    pub max_pending_auth_per_ip: Option<usize>,
    /// Open TCP connections per IP, WebSockets included (HTTP 429 and close beyond); 0 =
    /// no limit. [default: 1000, off in --dev]
    #[arg(long, env = "ROOMCAST_MAX_CONNECTIONS_PER_IP", value_name = "N")]
    pub max_connections_per_ip: Option<usize>,
    /// Seconds a client has to send a request's complete headers; the connection is
    /// closed without a response after it (slowloris). [default: 10]
    #[arg(long, env = "ROOMCAST_HEADER_READ_TIMEOUT", value_name = "SECS")]
    pub header_read_timeout: Option<u64>,
    /// Seconds a connection has to authenticate (4004 beyond). [default: 30]
    #[arg(long, env = "ROOMCAST_AUTH_TIMEOUT", value_name = "SECS")]
    pub auth_timeout: Option<u64>,
    /// Send `user_left` to `general` only while it has at most N members; 0 = always.
    /// Bounds the O(N²) notice storm of a mass disconnect. [default: 2000]
    #[arg(long, env = "ROOMCAST_USER_LEFT_MAX_MEMBERS", value_name = "N")]
    pub user_left_max_members: Option<usize>,
    /// Log format: text or json. [default: text]
    #[arg(long, env = "ROOMCAST_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// Serve the static files of DIR at `/` (e.g. a browser app built on @roomcast/client);
    /// the server's own routes take precedence.
    #[arg(long = "static", env = "ROOMCAST_STATIC", value_name = "DIR")]
    pub static_dir: Option<PathBuf>,
    /// PEM certificate chain: serve HTTPS and wss:// directly (small deployments; at scale
    /// terminate TLS in a proxy). Needs --tls-key.
    #[arg(long, env = "ROOMCAST_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "ROOMCAST_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Run as one node of a cluster: `redis://host:port/db`. Redis sequences, stores and
    /// carries every room event; presence, supersede and user_left span the nodes.
    #[arg(long, env = "ROOMCAST_BROKER", value_name = "URL")]
    pub broker: Option<String>,
    /// Do not run the trading arena (its REST API, streams and market rooms).
    #[arg(long, env = "ROOMCAST_NO_ARENA")]
    pub no_arena: bool,
    /// On a cluster node (--broker): run the arena's exchange here. Exactly one node of a
    /// cluster should; the others serve its streams and forward its REST calls to it. A
    /// second claimant finds the lease held and does not run an exchange.
    #[arg(long, env = "ROOMCAST_ARENA_NODE")]
    pub arena_node: bool,
    /// Run demo bots that trade a random walk on the arena's markets.
    #[arg(long, env = "ROOMCAST_DEMO")]
    pub demo: bool,
    /// Demo orders per second, all bots together. [default: 5]
    #[arg(long, env = "ROOMCAST_DEMO_RATE", value_name = "N")]
    pub demo_rate: Option<u32>,
    /// Let collectives sell more than they hold (short selling). [default: off]
    #[arg(long, env = "ROOMCAST_ALLOW_SHORTS")]
    pub allow_shorts: bool,
    /// Test runs only: mount `/conformance/echo`, an echo over the real WebSocket code for
    /// Autobahn|Testsuite (scripts/autobahn). Refused unless --dev on a loopback address
    /// with no TLS, key, secret or collectives configured.
    #[arg(long, env = "ROOMCAST_CONFORMANCE_ECHO")]
    pub conformance_echo: bool,
}

fn parse_fsync(s: &str) -> Result<FsyncPolicy, String> {
    match s {
        "batch" => Ok(FsyncPolicy::Batch),
        "always" => Ok(FsyncPolicy::Always),
        "never" => Ok(FsyncPolicy::Never),
        _ => Err(format!("{s:?} is not batch, always or never")),
    }
}

fn parse_policy(s: &str) -> Result<SlowConsumerPolicy, String> {
    match s {
        "disconnect" => Ok(SlowConsumerPolicy::Disconnect),
        "drop-oldest" | "drop_oldest" => Ok(SlowConsumerPolicy::DropOldest),
        _ => Err(format!("{s:?} is not disconnect or drop-oldest")),
    }
}

impl ServeArgs {
    /// The flags (and environment) as a raw config layer.
    fn as_raw(&self) -> RawConfig {
        RawConfig {
            server: RawServer {
                bind: self.bind.clone(),
                dev: self.dev.then_some(true),
                max_message_bytes: self.max_message_bytes,
                shutdown_grace: self.shutdown_grace,
                shutdown_close_code: self.shutdown_close_code,
                log_format: self.log_format.clone(),
                api_keys: (!self.api_keys.is_empty()).then(|| self.api_keys.clone()),
                api_key_file: self.api_key_file.clone(),
                static_dir: self.static_dir.clone(),
                tls_cert: self.tls_cert.clone(),
                tls_key: self.tls_key.clone(),
                broker: self.broker.clone(),
                conformance_echo: self.conformance_echo.then_some(true),
            },
            heartbeat: RawHeartbeat {
                interval: self.heartbeat_interval,
                timeout: self.heartbeat_timeout,
            },
            connection: RawConnection {
                outbox_capacity: self.outbox_capacity,
                outbox_max_bytes: self.outbox_max_bytes,
                max_queued_bytes: self.max_queued_bytes,
                slow_consumer: self.slow_consumer,
                max_subscriptions: self.max_subscriptions,
                user_left_max_members: self.user_left_max_members,
            },
            history: RawHistory {
                store: self.history.clone(),
                data_dir: self.data_dir.clone(),
                fsync: self.fsync,
                max_events: self.history_max_events,
                ttl: self.history_ttl,
                rules: None,
            },
            auth: RawAuth {
                required: None,
                jwt_secret: self.jwt_secret.clone(),
                jwt_secret_file: self.jwt_secret_file.clone(),
                jwt_public_key: self.jwt_public_key.clone(),
                jwt_issuer: self.jwt_issuer.clone(),
                jwt_audience: self.jwt_audience.clone(),
                jwt_leeway: self.jwt_leeway,
                admin_key: self.admin_key.clone(),
                admin_key_file: self.admin_key_file.clone(),
                collectives: self.collectives.clone(),
                auth_timeout: self.auth_timeout,
                allowed_origins: (!self.allowed_origins.is_empty())
                    .then(|| self.allowed_origins.clone()),
            },
            limits: RawLimits {
                rate_limit: self.rate_limit,
                rate_burst: self.rate_burst,
                rate_max_violations: self.rate_max_violations,
                handshake_rate: self.handshake_rate,
                max_connections: self.max_connections,
                max_connections_per_client: self.max_connections_per_client,
                max_forbidden: None,
                max_pending_auth: self.max_pending_auth,
                max_pending_auth_per_ip: self.max_pending_auth_per_ip,
                max_connections_per_ip: self.max_connections_per_ip,
                header_read_timeout: self.header_read_timeout,
            },
            arena: RawArena {
                enabled: self.no_arena.then_some(false),
                demo: self.demo.then_some(true),
                demo_rate: self.demo_rate,
                allow_shorts: self.allow_shorts.then_some(true),
                instruments: None,
                durable_history: None,
                snapshot_every: None,
                node: self.arena_node.then_some(true),
            },
        }
    }

    /// File, then flags, validated.
    pub fn resolve(&self) -> anyhow::Result<crate::ServerConfig> {
        let file = match &self.config {
            Some(path) => RawConfig::load(path)?,
            None => RawConfig::default(),
        };
        Ok(file.overlay(self.as_raw()).validate()?)
    }
}

/// `roomcast serve`: resolves the configuration, then serves until a shutdown signal.
pub fn serve(args: &ServeArgs) -> anyhow::Result<()> {
    let config = args.resolve()?;
    crate::serve::init_tracing(config.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(crate::serve::run(config))
}

/// `roomcast default-config`: the default configuration file (TOML).
pub fn default_config() -> anyhow::Result<String> {
    toml::to_string(&RawConfig::defaults()).context("encoding defaults")
}

/// `roomcast check-config`: validates file and flags without starting; returns the line
/// to print.
pub fn check_config(args: &ServeArgs) -> anyhow::Result<String> {
    let config = args.resolve()?;
    Ok(format!("configuration ok: listening on {}", config.bind))
}
