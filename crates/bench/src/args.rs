//! The command line of `roomcast bench`: one subcommand per scenario, the options they
//! share ([`CommonArgs`]), and the small value types (rates, seconds, source-address
//! ranges) parsed and checked here so the scenarios get only valid values.
//!
//! The argument structs are also serialised into the JSON report as the run's
//! parameters; secrets (`--token`, `--jwt-secret`) are skipped.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::{Serialize, Serializer};

/// `roomcast bench <scenario> [options]`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// The scenario to run.
    #[command(subcommand)]
    pub scenario: Scenario,
}

/// The load scenarios.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Scenario {
    /// Subscribers in rooms, publishers at a rate: deliveries/s, loss, order, latency.
    Fanout(FanoutArgs),
    /// Open N connections at a rate and hold them: handshakes/s, failures, server memory.
    Connect(ConnectArgs),
    /// Application ping→pong round trips: round trips/s and latency.
    Echo(EchoArgs),
    /// Connect, subscribe, disconnect cycles with reconnect: cycles/s and failures.
    Churn(ChurnArgs),
    /// Seed a room's history, then N clients catch up at once: events/s and time to done.
    Replay(ReplayArgs),
    /// Signed REST orders from N collectives on the trading arena: accepted orders/s,
    /// order→`order_filled` latency, market-stream deliveries/s.
    Orders(OrdersArgs),
}

/// Options every scenario takes.
#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct CommonArgs {
    /// Server base URL; connections go to `<url>/ws/<client_id>`. `fanout` takes several
    /// (repeat `--url` or give a comma list): the nodes of one cluster.
    #[arg(
        long = "url",
        default_value = "ws://127.0.0.1:8080",
        value_delimiter = ','
    )]
    pub url: Vec<String>,
    /// A token sent as `?token=` by every connection.
    #[arg(long, conflicts_with = "jwt_secret")]
    #[serde(skip)]
    pub token: Option<String>,
    /// Mint an HS256 JWT per connection (`sub` = client id) with this secret.
    #[arg(long)]
    #[serde(skip)]
    pub jwt_secret: Option<String>,
    /// Measured time, in seconds (after the warmup).
    #[arg(long, default_value = "10")]
    pub duration: Seconds,
    /// Load before measuring, in seconds; excluded from every figure.
    #[arg(long, default_value = "2")]
    pub warmup: Seconds,
    /// Longest wait, in seconds, for in-flight messages after the load stops.
    #[arg(long, default_value = "5")]
    pub drain: Seconds,
    /// Longest time one connection attempt (TCP + upgrade + subscribe ack) may take.
    #[arg(long, default_value = "10")]
    pub connect_timeout: Seconds,
    /// Write every figure to this file as JSON.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Local source addresses for the connections, e.g. `127.0.0.2-127.0.0.9` or a comma
    /// list. On loopback, beyond 4096 connections, 127.0.0.2… are used automatically.
    #[arg(long, value_name = "RANGE")]
    pub source_ips: Option<SourceIps>,
    /// PID of the server, to report its RSS and CPU time (read from /proc). Repeat it (or
    /// give a comma list) for the nodes of a cluster: their CPU time and RSS are summed.
    #[arg(long, value_name = "PID", value_delimiter = ',')]
    pub server_pid: Vec<u32>,
    /// PID of the redis-server a cluster's nodes share, to report its CPU time.
    #[arg(long, value_name = "PID")]
    pub redis_pid: Option<u32>,
    /// Succeed even when messages were lost or duplicated.
    #[arg(long)]
    pub allow_loss: bool,
}

impl CommonArgs {
    /// Arguments for a server at `url` with the defaults of the command line.
    pub fn new(url: impl Into<String>) -> CommonArgs {
        CommonArgs {
            url: vec![url.into()],
            token: None,
            jwt_secret: None,
            duration: Seconds::from_secs_f64(10.0),
            warmup: Seconds::from_secs_f64(2.0),
            drain: Seconds::from_secs_f64(5.0),
            connect_timeout: Seconds::from_secs_f64(10.0),
            json: None,
            source_ips: None,
            server_pid: Vec::new(),
            redis_pid: None,
            allow_loss: false,
        }
    }

    /// The one server URL of a scenario that talks to a single node.
    pub fn single_url(&self) -> anyhow::Result<&str> {
        match self.url.as_slice() {
            [one] => Ok(one.as_str()),
            [] => anyhow::bail!("--url is required"),
            _ => anyhow::bail!("only `fanout` takes several --url"),
        }
    }

    /// The URLs as one string, for messages and the report.
    pub fn urls_text(&self) -> String {
        self.url.join(",")
    }
}

/// `roomcast bench fanout`.
#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct FanoutArgs {
    /// Shared options.
    #[command(flatten)]
    #[serde(flatten)]
    pub common: CommonArgs,
    /// Subscriber connections, spread round-robin over the rooms.
    #[arg(long, default_value_t = 1000)]
    pub subscribers: usize,
    /// Rooms (`bench-0` … `bench-<R-1>`).
    #[arg(long, default_value_t = 1)]
    pub rooms: usize,
    /// Publisher connections; publisher j publishes to room j mod R.
    #[arg(long, default_value_t = 1)]
    pub publishers: usize,
    /// Total publishes per second over all publishers, or `max`.
    #[arg(long, default_value = "1000")]
    pub rate: Rate,
    /// Approximate size of each message's `content`, in bytes.
    #[arg(long, default_value_t = 100)]
    pub payload_bytes: usize,
    /// With `--rate max`: most messages per room published but not yet delivered to its
    /// slowest subscriber.
    #[arg(long, default_value_t = 256)]
    pub max_in_flight: u64,
    /// Connection attempts in progress at once while setting up.
    #[arg(long, default_value_t = 64)]
    pub connect_concurrency: usize,
    /// With several `--url`: the node (0-based index into them) the publishers connect
    /// to. Subscribers are spread round-robin over all nodes.
    #[arg(long, default_value_t = 0)]
    pub publisher_node: usize,
}

impl FanoutArgs {
    /// Fanout arguments with the command-line defaults.
    pub fn new(common: CommonArgs) -> FanoutArgs {
        FanoutArgs {
            common,
            subscribers: 1000,
            rooms: 1,
            publishers: 1,
            rate: Rate::PerSec(1000.0),
            payload_bytes: 100,
            max_in_flight: 256,
            connect_concurrency: 64,
            publisher_node: 0,
        }
    }
}

/// `roomcast bench connect`.
#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct ConnectArgs {
    /// Shared options (`--warmup` is not used: the hold time is `--duration`).
    #[command(flatten)]
    #[serde(flatten)]
    pub common: CommonArgs,
    /// Connections to open and hold.
    #[arg(long, default_value_t = 1000)]
    pub connections: usize,
    /// New connections per second, or `max`.
    #[arg(long, default_value = "max")]
    pub rate: Rate,
    /// Connection attempts in progress at once.
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,
    /// The room every connection subscribes to.
    #[arg(long, default_value = "idle")]
    pub room: String,
}

impl ConnectArgs {
    /// Connect arguments with the command-line defaults.
    pub fn new(common: CommonArgs) -> ConnectArgs {
        ConnectArgs {
            common,
            connections: 1000,
            rate: Rate::Max,
            concurrency: 256,
            room: "idle".into(),
        }
    }
}

/// `roomcast bench echo`.
#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct EchoArgs {
    /// Shared options.
    #[command(flatten)]
    #[serde(flatten)]
    pub common: CommonArgs,
    /// Connections doing round trips.
    #[arg(long, default_value_t = 10)]
    pub connections: usize,
    /// Total pings per second over all connections, or `max` (one in flight each).
    #[arg(long, default_value = "max")]
    pub rate: Rate,
}

impl EchoArgs {
    /// Echo arguments with the command-line defaults.
    pub fn new(common: CommonArgs) -> EchoArgs {
        EchoArgs {
            common,
            connections: 10,
            rate: Rate::Max,
        }
    }
}

/// `roomcast bench churn`.
#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct ChurnArgs {
    /// Shared options.
    #[command(flatten)]
    #[serde(flatten)]
    pub common: CommonArgs,
    /// Concurrent workers; each reconnects with its own client id, cycle after cycle.
    #[arg(long, default_value_t = 10)]
    pub concurrency: usize,
    /// Total cycles per second over all workers, or `max`.
    #[arg(long, default_value = "max")]
    pub rate: Rate,
    /// The room each cycle subscribes to.
    #[arg(long, default_value = "churn")]
    pub room: String,
}

impl ChurnArgs {
    /// Churn arguments with the command-line defaults.
    pub fn new(common: CommonArgs) -> ChurnArgs {
        ChurnArgs {
            common,
            concurrency: 10,
            rate: Rate::Max,
            room: "churn".into(),
        }
    }
}

/// `roomcast bench replay`.
#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct ReplayArgs {
    /// Shared options (`--duration`, `--warmup` and `--drain` are not used).
    #[command(flatten)]
    #[serde(flatten)]
    pub common: CommonArgs,
    /// Clients that reconnect at once and catch up.
    #[arg(long, default_value_t = 1)]
    pub clients: usize,
    /// Events seeded into the room before the clients catch up.
    #[arg(long, default_value_t = 100_000)]
    pub events: u64,
    /// Events each client missed (it resumes from head - missed); default: all seeded.
    #[arg(long)]
    pub missed: Option<u64>,
    /// The room (default: a fresh `replay-<tag>` room per run).
    #[arg(long)]
    pub room: Option<String>,
    /// API key for `POST /api/publish/batch`; without it events are published over a
    /// WebSocket connection (`message` requests).
    #[arg(long)]
    #[serde(skip)]
    pub api_key: Option<String>,
    /// Approximate size of each event's data, in bytes.
    #[arg(long, default_value_t = 100)]
    pub payload_bytes: usize,
    /// Longest time the catch-up may take, in seconds (barrier → last replay_complete).
    #[arg(long, default_value = "60")]
    pub replay_timeout: Seconds,
    /// Connection attempts in progress at once while setting up.
    #[arg(long, default_value_t = 64)]
    pub connect_concurrency: usize,
}

impl ReplayArgs {
    /// Replay arguments with the command-line defaults.
    pub fn new(common: CommonArgs) -> ReplayArgs {
        ReplayArgs {
            common,
            clients: 1,
            events: 100_000,
            missed: None,
            room: None,
            api_key: None,
            payload_bytes: 100,
            replay_timeout: Seconds::from_secs_f64(60.0),
            connect_concurrency: 64,
        }
    }
}

/// `roomcast bench orders`.
///
/// Collectives come in pairs on one price: even ones sell, odd ones buy, every order one
/// lot-sized `--quantity` at `--price`, so each order trades with the next one of the
/// other side and the book stays one level deep.
#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct OrdersArgs {
    /// Shared options (`--url` is the server's ws:// URL; REST goes to the same address).
    #[command(flatten)]
    #[serde(flatten)]
    pub common: CommonArgs,
    /// Collectives to register and trade as (an even number: half sell, half buy).
    #[arg(long, default_value_t = 10)]
    pub collectives: usize,
    /// Trade as these already registered and funded collectives instead of registering
    /// new ones: JSON `[{"id":"..","secret_key":"<base64 32-byte Ed25519 seed>"}, ..]`.
    #[arg(long, value_name = "FILE", conflicts_with = "collectives")]
    pub collectives_file: Option<PathBuf>,
    /// Admin key for `POST /api/admin/collectives` (not needed against a `--dev` server
    /// without one, nor with `--collectives-file`).
    #[arg(long, env = "ROOMCAST_ADMIN_KEY", hide_env_values = true)]
    #[serde(skip)]
    pub admin_key: Option<String>,
    /// Total orders per second over all connections, or `max`.
    #[arg(long, default_value = "1000")]
    pub rate: Rate,
    /// Keep-alive HTTP connections sending orders (one request in flight on each).
    #[arg(long, default_value_t = 16)]
    pub connections: usize,
    /// Orders per request: 1 sends `POST /api/v1/orders`, 2-20 send that many orders of
    /// one collective in one signed `POST /api/v1/orders/batch`.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=20))]
    pub batch: u16,
    /// WebSocket subscribers to `market:{symbol}` whose deliveries are counted.
    #[arg(long, default_value_t = 10)]
    pub market_subscribers: usize,
    /// The instrument.
    #[arg(long, default_value = "BTC-USD")]
    pub symbol: String,
    /// Limit price of every order (a decimal aligned to the tick size).
    #[arg(long, default_value = "100.00")]
    pub price: String,
    /// Quantity of every order (a decimal aligned to the lot size).
    #[arg(long, default_value = "0.0001")]
    pub quantity: String,
    /// Cash each registered collective starts with, in integer cents.
    #[arg(long, default_value_t = 1_000_000_000_000)]
    pub starting_cash: u64,
    /// Quantity of `--symbol` each registered collective starts with (a decimal).
    #[arg(long, default_value = "1000000")]
    pub starting_quantity: String,
}

impl OrdersArgs {
    /// Orders arguments with the command-line defaults.
    pub fn new(common: CommonArgs) -> OrdersArgs {
        OrdersArgs {
            common,
            collectives: 10,
            collectives_file: None,
            admin_key: None,
            rate: Rate::PerSec(1000.0),
            connections: 16,
            batch: 1,
            market_subscribers: 10,
            symbol: "BTC-USD".into(),
            price: "100.00".into(),
            quantity: "0.0001".into(),
            starting_cash: 1_000_000_000_000,
            starting_quantity: "1000000".into(),
        }
    }
}

/// A rate: events per second, or as fast as possible.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rate {
    /// As fast as possible (bounded by what is in flight).
    Max,
    /// This many per second (positive, finite).
    PerSec(f64),
}

impl Rate {
    /// The rate per second, or `None` for `max`.
    pub fn per_sec(self) -> Option<f64> {
        match self {
            Rate::Max => None,
            Rate::PerSec(r) => Some(r),
        }
    }
}

impl FromStr for Rate {
    type Err = String;

    fn from_str(s: &str) -> Result<Rate, String> {
        if s.eq_ignore_ascii_case("max") {
            return Ok(Rate::Max);
        }
        match s.parse::<f64>() {
            Ok(r) if r.is_finite() && r > 0.0 => Ok(Rate::PerSec(r)),
            _ => Err(format!("{s:?} is not a positive number or `max`")),
        }
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rate::Max => f.write_str("max"),
            Rate::PerSec(r) => write!(f, "{r}"),
        }
    }
}

impl Serialize for Rate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Rate::Max => s.serialize_str("max"),
            Rate::PerSec(r) => s.serialize_f64(*r),
        }
    }
}

/// A non-negative number of seconds (fractions allowed, at most a day).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Seconds(Duration);

impl Seconds {
    /// From seconds; negative or non-finite values become zero, the rest is capped at a day.
    pub fn from_secs_f64(s: f64) -> Seconds {
        let s = if s.is_finite() {
            s.clamp(0.0, 86_400.0)
        } else {
            0.0
        };
        Seconds(Duration::from_secs_f64(s))
    }

    /// As a duration.
    pub fn get(self) -> Duration {
        self.0
    }
}

impl FromStr for Seconds {
    type Err = String;

    fn from_str(s: &str) -> Result<Seconds, String> {
        match s.trim_end_matches('s').parse::<f64>() {
            Ok(v) if v.is_finite() && (0.0..=86_400.0).contains(&v) => {
                Ok(Seconds::from_secs_f64(v))
            }
            _ => Err(format!(
                "{s:?} is not a number of seconds between 0 and 86400"
            )),
        }
    }
}

impl Serialize for Seconds {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.0.as_secs_f64())
    }
}

/// Local source addresses to spread connections over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceIps {
    spec: String,
    ips: Vec<IpAddr>,
}

/// Most source addresses one range may name.
const MAX_SOURCE_IPS: usize = 1024;

impl SourceIps {
    /// The addresses, in order.
    pub fn ips(&self) -> &[IpAddr] {
        &self.ips
    }

    /// An IPv4 range, both ends included.
    pub fn range(first: Ipv4Addr, last: Ipv4Addr) -> Result<SourceIps, String> {
        let (a, b) = (u32::from(first), u32::from(last));
        if b < a {
            return Err(format!("{first}-{last}: the range is empty"));
        }
        if (b - a) as usize >= MAX_SOURCE_IPS {
            return Err(format!(
                "{first}-{last}: at most {MAX_SOURCE_IPS} source addresses"
            ));
        }
        Ok(SourceIps {
            spec: format!("{first}-{last}"),
            ips: (a..=b).map(|v| IpAddr::V4(Ipv4Addr::from(v))).collect(),
        })
    }
}

impl FromStr for SourceIps {
    type Err = String;

    fn from_str(s: &str) -> Result<SourceIps, String> {
        let s = s.trim();
        if let Some((a, b)) = s.split_once('-') {
            let first: Ipv4Addr = a
                .trim()
                .parse()
                .map_err(|_| format!("{a:?} is not an IPv4 address"))?;
            let last: Ipv4Addr = b
                .trim()
                .parse()
                .map_err(|_| format!("{b:?} is not an IPv4 address"))?;
            return SourceIps::range(first, last);
        }
        let ips = s
            .split(',')
            .map(|p| {
                p.trim()
                    .parse::<IpAddr>()
                    .map_err(|_| format!("{p:?} is not an IP address"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if ips.is_empty() || ips.len() > MAX_SOURCE_IPS {
            return Err(format!("between 1 and {MAX_SOURCE_IPS} addresses"));
        }
        Ok(SourceIps {
            spec: s.to_string(),
            ips,
        })
    }
}

impl Serialize for SourceIps {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse() {
        assert_eq!("max".parse::<Rate>(), Ok(Rate::Max));
        assert_eq!("1000".parse::<Rate>(), Ok(Rate::PerSec(1000.0)));
        assert_eq!("0.5".parse::<Rate>(), Ok(Rate::PerSec(0.5)));
        assert!("0".parse::<Rate>().is_err());
        assert!("-3".parse::<Rate>().is_err());
        assert!("fast".parse::<Rate>().is_err());
    }

    #[test]
    fn source_ranges_parse() {
        let r: SourceIps = "127.0.0.2-127.0.0.9".parse().expect("range");
        assert_eq!(r.ips().len(), 8);
        assert_eq!(r.ips()[0], IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)));
        let l: SourceIps = "127.0.0.2,127.0.0.5".parse().expect("list");
        assert_eq!(l.ips().len(), 2);
        assert!("127.0.0.9-127.0.0.2".parse::<SourceIps>().is_err());
        assert!("10.0.0.0-10.1.0.0".parse::<SourceIps>().is_err());
    }

    #[test]
    fn seconds_parse() {
        assert_eq!(
            "1.5".parse::<Seconds>().map(Seconds::get),
            Ok(Duration::from_millis(1500))
        );
        assert!("-1".parse::<Seconds>().is_err());
    }

    #[test]
    fn command_line_parses() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            bench: BenchArgs,
        }
        let cli = Cli::try_parse_from([
            "x",
            "fanout",
            "--url",
            "ws://127.0.0.1:9",
            "--subscribers",
            "10",
            "--rate",
            "max",
            "--duration",
            "3",
            "--allow-loss",
        ])
        .expect("parses");
        match cli.bench.scenario {
            Scenario::Fanout(f) => {
                assert_eq!(f.subscribers, 10);
                assert_eq!(f.rate, Rate::Max);
                assert!(f.common.allow_loss);
                assert_eq!(f.common.duration.get(), Duration::from_secs(3));
            }
            other => panic!("{other:?}"),
        }
        assert!(Cli::try_parse_from(["x", "echo", "--token", "a", "--jwt-secret", "b"]).is_err());
    }
}
