//! Configuration: command-line flags, an optional TOML file with the same
//! keys, and embedded defaults. Flags win over the file, the file over the
//! defaults.
//!
//! Lives on: the main thread; a copy (`Rc<Config>`) on every core.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chat_net::client::Url;
use clap::{Args, Parser, Subcommand};
use serde::Deserialize;

use crate::constants::{
    COMPACT_INTERVAL_SECONDS_DEFAULT, CONNECTIONS_PER_CORE_MAX, EDIT_WINDOW_SECONDS_DEFAULT,
    FANOUT_ON_READ_MEMBERS_DEFAULT, GROUP_MEMBERS_DEFAULT, GROUP_MEMBERS_LIMIT,
    KEY_FETCHES_PER_MINUTE_DEFAULT, OUTBOX_FRAMES_MAX, SEND_BURST_DEFAULT,
    SEND_RATE_PER_SECOND_DEFAULT, SHARDS_MAX, SNAPSHOT_RECORDS_INTERVAL, TOKEN_TTL_SECONDS_DEFAULT,
};

#[derive(Parser, Debug)]
#[command(name = "chatd", version, about = "chatd: a shard-per-core chat server")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub flags: Flags,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Write a self-signed development certificate and key (PEM).
    GenCert {
        /// Host names / IP addresses the certificate is valid for.
        #[arg(long = "host", default_values = ["localhost", "127.0.0.1"])]
        hosts: Vec<String>,
        #[arg(long, default_value = "chatd-cert.pem")]
        cert: PathBuf,
        #[arg(long, default_value = "chatd-key.pem")]
        key: PathBuf,
    },
    /// Print a table of the cluster: each node's view of every shard
    /// (role, term, leader, commit and applied index, follower lag).
    ClusterStatus {
        /// The nodes' ops addresses (HOST:PORT), comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        ops: Vec<String>,
    },
}

/// Every setting; each is also a key of the TOML file (same spelling).
#[derive(Args, Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Flags {
    /// TOML file with the same keys as these flags.
    #[arg(long)]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// REST + WebSocket address (port 0 picks a free port) [default: 127.0.0.1:8080]
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Stats address [default: 127.0.0.1:9090]
    #[arg(long)]
    pub ops_listen: Option<SocketAddr>,
    /// Data directory [default: ./data]
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Cores to run on [default: all online cores]
    #[arg(long)]
    pub cores: Option<usize>,
    /// Shards of a new data directory [default: the number of cores]
    #[arg(long)]
    pub shards: Option<usize>,
    /// TLS certificate chain (PEM); with --tls-key turns on TLS 1.3
    #[arg(long)]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM)
    #[arg(long)]
    pub tls_key: Option<PathBuf>,
    /// Where OTP codes go: log | file:PATH | webhook:URL [default: log]
    #[arg(long)]
    pub otp_sink: Option<String>,
    /// Where push notifications go: an http:// or https:// URL
    #[arg(long)]
    pub push_gateway: Option<String>,
    /// CA certificates (PEM) to trust for https:// gateways (push, OTP
    /// webhook) [default: the system's bundle]
    #[arg(long)]
    pub gateway_ca: Option<PathBuf>,
    /// Most members of a group [default: 512]
    #[arg(long)]
    pub group_members_max: Option<usize>,
    /// Groups larger than this fan out on read [default: 256]
    #[arg(long)]
    pub fanout_on_read_members: Option<usize>,
    /// Sends per second per device [default: 100]
    #[arg(long)]
    pub send_rate: Option<u32>,
    /// Send burst per device [default: 200]
    #[arg(long)]
    pub send_burst: Option<u32>,
    /// Token lifetime in seconds [default: 90 days]
    #[arg(long)]
    pub token_ttl_seconds: Option<u64>,
    /// How long after a message's ts its sender may edit it, in seconds [default: 86400]
    #[arg(long)]
    pub edit_window_seconds: Option<u64>,
    /// Key fetches (GET /v1/keys/{user}) per user per minute [default: 60]
    #[arg(long)]
    pub key_fetches_per_minute: Option<u32>,
    /// Frames queued per connection before it is dropped as too slow [default: 1024]
    #[arg(long)]
    pub outbox_frames: Option<usize>,
    /// Connections per core [default: 250000]
    #[arg(long)]
    pub connections_per_core: Option<usize>,
    /// Records between two snapshots of a shard [default: 200000]
    #[arg(long)]
    pub snapshot_records: Option<u64>,
    /// Seconds between two erasure compactions of each shard's log: deleted,
    /// vanished and erased content is gone from disk within twice this
    /// plus 5 s [default: 3600]
    #[arg(long)]
    pub compact_interval_seconds: Option<u64>,
    /// This node's id in a cluster (goes with --peers)
    #[arg(long)]
    pub node_id: Option<u64>,
    /// Every member of the cluster, this node included: ID=HOST:PORT,...
    /// (each node listens for its peers on its own entry's address)
    #[arg(long)]
    pub peers: Option<String>,
    /// Where this node listens for its peers, when that differs from its
    /// own --peers entry (behind NAT, a container's port map or a proxy)
    #[arg(long)]
    pub peer_listen: Option<SocketAddr>,
    /// TLS between nodes: this node's certificate chain (PEM); goes with
    /// --peer-tls-key and --peer-tls-ca
    #[arg(long)]
    pub peer_tls_cert: Option<PathBuf>,
    /// TLS between nodes: this node's private key (PEM)
    #[arg(long)]
    pub peer_tls_key: Option<PathBuf>,
    /// TLS between nodes: the CA (PEM) that signed every node's
    /// certificate; a peer without a certificate it signed is refused
    #[arg(long)]
    pub peer_tls_ca: Option<PathBuf>,
    /// Raft ticks without a leader's word before an election [default: 10]
    #[arg(long)]
    pub election_ticks: Option<usize>,
    /// Raft ticks between a leader's heartbeats [default: 2]
    #[arg(long)]
    pub heartbeat_ticks: Option<usize>,
    /// Milliseconds per Raft tick [default: 50]
    #[arg(long)]
    pub raft_tick_ms: Option<u64>,
}

/// Cluster mode: who this node is, every member, and Raft's timing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterConfig {
    pub node: u64,
    /// Every member (this node included) and where it listens for peers.
    pub peers: Vec<(u64, String)>,
    pub election_ticks: usize,
    pub heartbeat_ticks: usize,
    pub tick_ms: u64,
    /// Where to listen for peers; `None`: this node's own --peers entry.
    pub peer_listen: Option<SocketAddr>,
    /// Mutual TLS between nodes; `None`: plain TCP.
    pub tls: Option<PeerTlsFiles>,
}

/// The PEM files of mutual TLS between nodes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerTlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

/// Where OTP codes are delivered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OtpSink {
    Log,
    File(PathBuf),
    Webhook(Url),
}

/// The resolved configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    pub ops_listen: SocketAddr,
    pub data_dir: PathBuf,
    pub cores: usize,
    /// Asked for; a data directory that exists keeps its own count.
    pub shards: usize,
    pub tls: Option<(PathBuf, PathBuf)>,
    pub otp_sink: OtpSink,
    /// Where push notifications go (`push/`); `None`: none are sent.
    pub push_gateway: Option<Url>,
    /// The TLS client of `https://` gateways (built when one is named).
    pub gateway_tls: Option<Arc<rustls::ClientConfig>>,
    pub group_members_max: usize,
    pub fanout_on_read_members: usize,
    pub send_rate_per_second: u32,
    pub send_burst: u32,
    pub token_ttl_seconds: u64,
    pub edit_window_seconds: u64,
    pub key_fetches_per_minute: u32,
    pub outbox_frames_max: usize,
    pub connections_per_core_max: usize,
    pub snapshot_records: u64,
    pub compact_interval_seconds: u64,
    /// `None`: a single node (no `--peers`).
    pub cluster: Option<ClusterConfig>,
}

impl Config {
    /// Resolves flags over the file named by `--config` over defaults.
    pub fn resolve(flags: Flags) -> Result<Config, String> {
        let file = match &flags.config {
            Some(path) => read_file(path)?,
            None => Flags::default(),
        };
        let online = std::thread::available_parallelism().map_or(1, |n| n.get());
        let cluster = cluster(&flags, &file)?;
        let cores = flags.cores.or(file.cores).unwrap_or(online);
        // `pick!(key, default)`: the flag, else the file's key, else the default.
        macro_rules! pick {
            ($key:ident, $default:expr) => {
                pick(flags.$key, file.$key, $default)
            };
        }
        let config = Config {
            listen: pick(flags.listen, file.listen, "127.0.0.1:8080".parse().unwrap()),
            ops_listen: pick(
                flags.ops_listen,
                file.ops_listen,
                "127.0.0.1:9090".parse().unwrap(),
            ),
            data_dir: pick!(data_dir, PathBuf::from("./data")),
            cores,
            shards: pick!(shards, cores),
            tls: tls(
                flags.tls_cert.or(file.tls_cert),
                flags.tls_key.or(file.tls_key),
            )?,
            otp_sink: parse_sink(&pick!(otp_sink, "log".into()))?,
            push_gateway: flags
                .push_gateway
                .or(file.push_gateway)
                .map(|u| Url::parse(&u).map_err(|e| format!("--push-gateway {e}")))
                .transpose()?,
            group_members_max: pick!(group_members_max, GROUP_MEMBERS_DEFAULT),
            fanout_on_read_members: pick!(fanout_on_read_members, FANOUT_ON_READ_MEMBERS_DEFAULT),
            send_rate_per_second: pick!(send_rate, SEND_RATE_PER_SECOND_DEFAULT),
            send_burst: pick!(send_burst, SEND_BURST_DEFAULT),
            token_ttl_seconds: pick!(token_ttl_seconds, TOKEN_TTL_SECONDS_DEFAULT),
            edit_window_seconds: pick!(edit_window_seconds, EDIT_WINDOW_SECONDS_DEFAULT),
            key_fetches_per_minute: pick!(key_fetches_per_minute, KEY_FETCHES_PER_MINUTE_DEFAULT),
            outbox_frames_max: pick!(outbox_frames, OUTBOX_FRAMES_MAX),
            connections_per_core_max: pick!(connections_per_core, CONNECTIONS_PER_CORE_MAX),
            snapshot_records: pick!(snapshot_records, SNAPSHOT_RECORDS_INTERVAL),
            compact_interval_seconds: pick!(
                compact_interval_seconds,
                COMPACT_INTERVAL_SECONDS_DEFAULT
            ),
            gateway_tls: None,
            cluster,
        };
        let mut config = config;
        config.gateway_tls = gateway_tls(&config, flags.gateway_ca.or(file.gateway_ca))?;
        config.validate(online)?;
        Ok(config)
    }

    fn validate(&self, online: usize) -> Result<(), String> {
        if self.cores == 0 || self.cores > online {
            return Err(format!(
                "--cores must be 1..={online} (online cores), not {}",
                self.cores
            ));
        }
        if self.shards == 0 || self.shards > SHARDS_MAX {
            return Err(format!("--shards must be 1..={SHARDS_MAX}"));
        }
        if self.group_members_max < 2 || self.group_members_max > GROUP_MEMBERS_LIMIT {
            return Err(format!(
                "--group-members-max must be 2..={GROUP_MEMBERS_LIMIT}"
            ));
        }
        if self.send_rate_per_second == 0 || self.send_burst == 0 {
            return Err("--send-rate and --send-burst must be positive".into());
        }
        if self.outbox_frames_max < 16 {
            return Err("--outbox-frames must be at least 16".into());
        }
        if self.snapshot_records == 0 {
            return Err("--snapshot-records must be positive".into());
        }
        if self.compact_interval_seconds == 0 {
            return Err("--compact-interval-seconds must be positive".into());
        }
        if self.key_fetches_per_minute == 0 {
            return Err("--key-fetches-per-minute must be positive".into());
        }
        if self.token_ttl_seconds == 0 {
            return Err("--token-ttl-seconds must be positive".into());
        }
        Ok(())
    }
}

fn cluster(flags: &Flags, file: &Flags) -> Result<Option<ClusterConfig>, String> {
    use chat_replication::constants::{
        ELECTION_TICKS_DEFAULT, HEARTBEAT_TICKS_DEFAULT, TICK_INTERVAL_MS_DEFAULT,
    };
    let node = flags.node_id.or(file.node_id);
    let peers = flags.peers.clone().or(file.peers.clone());
    let (node, peers) = match (node, peers) {
        (None, None) => return Ok(None),
        (Some(node), Some(peers)) => (node, parse_peers(&peers)?),
        _ => return Err("--node-id and --peers go together".into()),
    };
    if !peers.iter().any(|(id, _)| *id == node) {
        return Err(format!(
            "--peers does not list this node (--node-id {node})"
        ));
    }
    let c = ClusterConfig {
        node,
        peers,
        election_ticks: pick(
            flags.election_ticks,
            file.election_ticks,
            ELECTION_TICKS_DEFAULT,
        ),
        heartbeat_ticks: pick(
            flags.heartbeat_ticks,
            file.heartbeat_ticks,
            HEARTBEAT_TICKS_DEFAULT,
        ),
        tick_ms: pick(
            flags.raft_tick_ms,
            file.raft_tick_ms,
            TICK_INTERVAL_MS_DEFAULT,
        ),
        peer_listen: flags.peer_listen.or(file.peer_listen),
        tls: peer_tls(flags, file)?,
    };
    if c.heartbeat_ticks == 0 || c.election_ticks <= c.heartbeat_ticks {
        return Err("--election-ticks must be above --heartbeat-ticks (and both positive)".into());
    }
    if c.tick_ms == 0 || c.tick_ms > 10_000 {
        return Err("--raft-tick-ms must be 1..=10000".into());
    }
    Ok(Some(c))
}

/// The three peer TLS files, all or none.
fn peer_tls(flags: &Flags, file: &Flags) -> Result<Option<PeerTlsFiles>, String> {
    let cert = flags.peer_tls_cert.clone().or(file.peer_tls_cert.clone());
    let key = flags.peer_tls_key.clone().or(file.peer_tls_key.clone());
    let ca = flags.peer_tls_ca.clone().or(file.peer_tls_ca.clone());
    match (cert, key, ca) {
        (None, None, None) => Ok(None),
        (Some(cert), Some(key), Some(ca)) => Ok(Some(PeerTlsFiles { cert, key, ca })),
        _ => Err("--peer-tls-cert, --peer-tls-key and --peer-tls-ca go together".into()),
    }
}

/// `1=127.0.0.1:7001,2=...`: ids above 0, each once, each with a port.
fn parse_peers(text: &str) -> Result<Vec<(u64, String)>, String> {
    let mut out: Vec<(u64, String)> = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (id, addr) = item
            .split_once('=')
            .ok_or_else(|| format!("--peers entry {item:?} is not ID=HOST:PORT"))?;
        let id: u64 =
            id.trim().parse().ok().filter(|&i| i > 0).ok_or_else(|| {
                format!("--peers entry {item:?}: the id must be a number above 0")
            })?;
        let port = addr
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse::<u16>().ok());
        if !matches!(port, Some(p) if p > 0) {
            return Err(format!(
                "--peers entry {item:?}: needs HOST:PORT with a real port"
            ));
        }
        if out.iter().any(|(other, _)| *other == id) {
            return Err(format!("--peers lists node {id} twice"));
        }
        out.push((id, addr.trim().to_string()));
    }
    if out.is_empty() {
        return Err("--peers is empty".into());
    }
    out.sort();
    Ok(out)
}

fn pick<T>(flag: Option<T>, file: Option<T>, default: T) -> T {
    flag.or(file).unwrap_or(default)
}

fn read_file(path: &Path) -> Result<Flags, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| format!("config {}: {e}", path.display()))
}

fn tls(cert: Option<PathBuf>, key: Option<PathBuf>) -> Result<Option<(PathBuf, PathBuf)>, String> {
    match (cert, key) {
        (Some(c), Some(k)) => Ok(Some((c, k))),
        (None, None) => Ok(None),
        _ => Err("--tls-cert and --tls-key go together".into()),
    }
}

/// The TLS client configuration, when a gateway URL is `https://`.
fn gateway_tls(
    config: &Config,
    ca: Option<PathBuf>,
) -> Result<Option<Arc<rustls::ClientConfig>>, String> {
    let webhook = match &config.otp_sink {
        OtpSink::Webhook(u) => Some(u),
        _ => None,
    };
    let https = config.push_gateway.iter().chain(webhook).any(|u| u.tls);
    if !https {
        return Ok(None);
    }
    chat_net::tls::gateway_client_config(ca.as_deref())
        .map(Some)
        .map_err(|e| format!("--gateway-ca: {e}"))
}

fn parse_sink(text: &str) -> Result<OtpSink, String> {
    if text == "log" {
        return Ok(OtpSink::Log);
    }
    if let Some(path) = text.strip_prefix("file:") {
        if path.is_empty() {
            return Err("--otp-sink file:PATH needs a path".into());
        }
        return Ok(OtpSink::File(PathBuf::from(path)));
    }
    if let Some(url) = text.strip_prefix("webhook:") {
        let url = Url::parse(url).map_err(|e| format!("--otp-sink webhook:URL {e}"))?;
        return Ok(OtpSink::Webhook(url));
    }
    Err(format!(
        "--otp-sink must be log, file:PATH or webhook:URL, not {text:?}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_file_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chatd.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:7000\"\nsend-rate = 5\notp-sink = \"file:/tmp/x\"\n",
        )
        .unwrap();
        let flags = Flags {
            config: Some(path),
            send_rate: Some(9),
            cores: Some(1),
            ..Flags::default()
        };
        let config = Config::resolve(flags).unwrap();
        assert_eq!(
            config.listen,
            "127.0.0.1:7000".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(config.send_rate_per_second, 9);
        assert_eq!(config.otp_sink, OtpSink::File("/tmp/x".into()));
        assert_eq!(
            config.ops_listen,
            "127.0.0.1:9090".parse::<SocketAddr>().unwrap()
        );
    }

    #[test]
    fn bad_settings_are_named() {
        assert!(parse_sink("sms").unwrap_err().contains("otp-sink"));
        let flags = Flags {
            tls_cert: Some("a".into()),
            cores: Some(1),
            ..Flags::default()
        };
        assert!(Config::resolve(flags).unwrap_err().contains("tls"));
    }
}
