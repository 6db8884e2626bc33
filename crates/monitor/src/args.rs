//! The `roomcast monitor` command line, and its validation into [`Settings`] before anything
//! runs (bad URLs and intervals are rejected here, not discovered mid-poll).

use std::fmt;
use std::time::Duration;

/// Most nodes one monitor watches.
pub const MAX_NODES: usize = 32;
/// Shortest accepted `--interval`.
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// Longest accepted `--interval`.
pub const MAX_INTERVAL: Duration = Duration::from_secs(3600);

/// Options of `roomcast monitor`.
#[derive(Debug, Clone, clap::Args)]
pub struct MonitorArgs {
    /// Base URL of a node's HTTP API (repeat for several nodes); `ws://` is accepted as
    /// `http://`.
    #[arg(
        long = "url",
        value_name = "URL",
        default_value = "http://127.0.0.1:8080",
        action = clap::ArgAction::Append
    )]
    pub urls: Vec<String>,
    /// The admin API key (`Authorization: Bearer`).
    #[arg(
        long,
        env = "ROOMCAST_ADMIN_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    pub admin_key: Option<String>,
    /// Seconds between polls (fractions allowed, 0.1 to 3600).
    #[arg(long, value_name = "SECS", default_value_t = 1.0)]
    pub interval: f64,
    /// Poll once and print, instead of the live view.
    #[arg(long)]
    pub once: bool,
    /// Print JSON (one snapshot with `--once`, otherwise one line per interval).
    #[arg(long)]
    pub json: bool,
}

impl Default for MonitorArgs {
    fn default() -> MonitorArgs {
        MonitorArgs {
            urls: vec!["http://127.0.0.1:8080".to_owned()],
            admin_key: None,
            interval: 1.0,
            once: false,
            json: false,
        }
    }
}

/// Why the arguments are unusable.
#[derive(Debug, thiserror::Error)]
pub enum ArgsError {
    /// A `--url` that is not `http://host[:port][/prefix]`.
    #[error("invalid --url {url:?}: {reason}")]
    Url {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// No `--url` at all.
    #[error("no --url given")]
    NoNodes,
    /// More than [`MAX_NODES`] URLs.
    #[error("at most {MAX_NODES} --url may be given")]
    TooManyNodes,
    /// `--interval` out of range.
    #[error("--interval must be between 0.1 and 3600 seconds")]
    Interval,
}

/// Validated settings of a monitor run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Nodes to poll, in the order given.
    pub nodes: Vec<NodeUrl>,
    /// The admin key, if any.
    pub admin_key: Option<String>,
    /// Time between polls.
    pub interval: Duration,
    /// Poll once.
    pub once: bool,
    /// JSON output.
    pub json: bool,
}

impl Settings {
    /// How long one HTTP request may take: long enough for a busy node, never longer than
    /// a few polls.
    pub fn request_timeout(&self) -> Duration {
        self.interval
            .clamp(Duration::from_secs(2), Duration::from_secs(10))
    }
}

impl MonitorArgs {
    /// Checks every argument and returns the typed settings.
    pub fn validate(&self) -> Result<Settings, ArgsError> {
        if self.urls.is_empty() {
            return Err(ArgsError::NoNodes);
        }
        if self.urls.len() > MAX_NODES {
            return Err(ArgsError::TooManyNodes);
        }
        let nodes = self
            .urls
            .iter()
            .map(|u| NodeUrl::parse(u))
            .collect::<Result<Vec<_>, _>>()?;
        if !self.interval.is_finite() {
            return Err(ArgsError::Interval);
        }
        let interval =
            Duration::try_from_secs_f64(self.interval).map_err(|_| ArgsError::Interval)?;
        if !(MIN_INTERVAL..=MAX_INTERVAL).contains(&interval) {
            return Err(ArgsError::Interval);
        }
        Ok(Settings {
            nodes,
            admin_key: self.admin_key.clone().filter(|k| !k.is_empty()),
            interval,
            once: self.once,
            json: self.json,
        })
    }
}

/// A node's base URL: `http://host:port` plus an optional path prefix (for a node behind a
/// reverse proxy that mounts it under a path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeUrl {
    host: String,
    port: u16,
    prefix: String,
}

impl NodeUrl {
    /// Parses `http://host[:port][/prefix]` (or `ws://`, read as `http://`). `https` is not
    /// supported: put the monitor where it can reach the node's plain HTTP port.
    pub fn parse(text: &str) -> Result<NodeUrl, ArgsError> {
        let err = |reason| ArgsError::Url {
            url: text.to_owned(),
            reason,
        };
        let rest = if let Some(rest) = text.strip_prefix("http://") {
            rest
        } else if let Some(rest) = text.strip_prefix("ws://") {
            rest
        } else if text.starts_with("https://") || text.starts_with("wss://") {
            return Err(err(
                "TLS is not supported; use the node's plain http:// address",
            ));
        } else {
            return Err(err("must start with http://"));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if authority.is_empty() {
            return Err(err("missing host"));
        }
        if authority.contains('@') {
            return Err(err(
                "credentials in the URL are not supported; use --admin-key",
            ));
        }
        let (host, port) = split_host_port(authority).ok_or_else(|| err("bad host or port"))?;
        if path.contains(['?', '#']) {
            return Err(err("must not have a query or fragment"));
        }
        Ok(NodeUrl {
            host,
            port,
            prefix: path.trim_end_matches('/').to_owned(),
        })
    }

    /// `host:port` to connect to (IPv6 hosts in brackets).
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Host name or address, without brackets.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The request path for an API path such as `/api/admin/stats`.
    pub fn path(&self, api_path: &str) -> String {
        format!("{}{}", self.prefix, api_path)
    }
}

impl fmt::Display for NodeUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}{}", self.authority(), self.prefix)
    }
}

/// `host`, `host:port`, `[v6]`, `[v6]:port` → (host, port); the port defaults to 80.
fn split_host_port(authority: &str) -> Option<(String, u16)> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        (host, port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let valid_host = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'));
    if !valid_host {
        return None;
    }
    let port = match port {
        None => 80,
        Some(p) => p.parse().ok().filter(|p| *p != 0)?,
    };
    Some((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_node_urls() -> Result<(), ArgsError> {
        let u = NodeUrl::parse("http://127.0.0.1:8080")?;
        assert_eq!(u.authority(), "127.0.0.1:8080");
        assert_eq!(u.path("/api/admin/stats"), "/api/admin/stats");
        let u = NodeUrl::parse("ws://example.test/rc/")?;
        assert_eq!((u.host(), u.port()), ("example.test", 80));
        assert_eq!(u.path("/api/admin/rooms"), "/rc/api/admin/rooms");
        assert_eq!(u.to_string(), "http://example.test:80/rc");
        let u = NodeUrl::parse("http://[::1]:9000")?;
        assert_eq!(u.authority(), "[::1]:9000");
        for bad in [
            "127.0.0.1:8080",
            "https://x",
            "http://",
            "http://a:0",
            "http://a:99999",
            "http://u:p@a",
            "http://a/x?y",
            "http://a b",
        ] {
            assert!(NodeUrl::parse(bad).is_err(), "{bad} accepted");
        }
        Ok(())
    }

    #[test]
    fn validates_interval_and_nodes() {
        let ok = MonitorArgs::default().validate();
        assert!(ok.is_ok());
        for interval in [0.0, 0.05, f64::NAN, f64::INFINITY, -1.0, 4000.0] {
            let args = MonitorArgs {
                interval,
                ..MonitorArgs::default()
            };
            assert!(args.validate().is_err(), "{interval} accepted");
        }
        let args = MonitorArgs {
            urls: vec!["http://a".into(); MAX_NODES + 1],
            ..MonitorArgs::default()
        };
        assert!(matches!(args.validate(), Err(ArgsError::TooManyNodes)));
    }
}
