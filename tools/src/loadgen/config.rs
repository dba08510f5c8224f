//! The command line of `loadgen`: scenario, target, load shape, bounds.
//!
//! The coordinator and its workers parse the same arguments; a worker is the
//! same binary started with `LOADGEN_WORKER=i/n` (see `coordinator.rs`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use super::constants::{
    BODY_BYTES_MAX, BODY_BYTES_MIN, CONNECTIONS_PER_WORKER_MAX, GROUP_MEMBERS_MAX, WORKERS_MAX,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// 1:1 chat: users in pairs, each sends to its peer.
    Direct,
    /// Group chat: users in groups of --group-size, each sends to its group.
    Group,
    /// Idle connections with heartbeats; reports server memory per connection.
    Idle,
    /// Connect/disconnect storm: users reconnect over and over (sync on each
    /// connect) while their peers send.
    Storm,
    /// Offline catch-up: receivers stay away while senders send, then come
    /// back and must get everything.
    Catchup,
    /// 1:1 chat against a cluster (`--url` names its nodes) while the node
    /// `--kill-pid` is killed (SIGKILL) mid-run and restarted by
    /// `--restart-command`; connections that drop reconnect to another node
    /// and sync. Reports the unavailability window.
    Failover,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TargetKind {
    /// chatd: REST logins and conversations, the WebSocket protocol v1.
    Chatd,
    /// A WebSocket echo server (`wsecho`): the machine's ceiling.
    Echo,
    /// An XMPP server over WebSocket (RFC 7395), e.g. ejabberd.
    Xmpp,
}

/// `loadgen`: drives a chat server and says how fast it was and whether
/// anything was lost.
#[derive(Clone, Debug, Parser)]
#[command(name = "loadgen", version)]
pub struct Config {
    /// What to run
    #[arg(value_enum)]
    pub scenario: Scenario,
    /// What speaks on the other side
    #[arg(long, value_enum, default_value = "chatd")]
    pub target: TargetKind,
    /// The server: chatd's http(s)://HOST:PORT, the echo server's or the XMPP
    /// server's ws(s)://HOST:PORT/PATH. A cluster: its nodes, comma
    /// separated (user i connects to node i mod n, so the two users of a 1:1
    /// pair sit on different nodes; setup goes through the first)
    #[arg(long)]
    pub url: String,
    /// Failover: the pid of the node to kill -9
    #[arg(long)]
    pub kill_pid: Option<u32>,
    /// Failover: when to kill it, counted from the start of sending
    /// (default: warm-up + a third of --duration)
    #[arg(long, value_parser = parse_duration)]
    pub kill_after: Option<Duration>,
    /// Failover: how long after the kill to run --restart-command
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub restart_after: Duration,
    /// Failover: a shell command (`sh -c`) that starts the killed node again;
    /// it is left running when loadgen ends
    #[arg(long)]
    pub restart_command: Option<String>,
    /// A send unconfirmed for this long counts as stalled (the start of an
    /// outage for its sender)
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    pub stall: Duration,
    /// chatd: the file of its `--otp-sink file:PATH` (logins read codes there)
    #[arg(long)]
    pub otp_file: Option<PathBuf>,
    /// chatd: its ops address http://HOST:PORT (server memory from /stats)
    #[arg(long)]
    pub ops: Option<String>,
    /// The server's pid (server memory from /proc/PID/status VmRSS)
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// XMPP: the server's domain
    #[arg(long, default_value = "loadgen.local")]
    pub xmpp_domain: String,
    /// Users (one connection each)
    #[arg(long, default_value_t = 100)]
    pub users: usize,
    /// Group scenario: members per group
    #[arg(long, default_value_t = 10)]
    pub group_size: usize,
    /// Messages per second offered in total (open loop, from a schedule;
    /// latency counts from the scheduled time). 0: closed loop, each sender
    /// keeps --window messages in flight (finds saturation)
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// Members of each conversation that send (the first N; 0: all). Big
    /// groups have a few talkers and many listeners
    #[arg(long, default_value_t = 0)]
    pub senders_per_conversation: usize,
    /// Closed loop: messages in flight per sender
    #[arg(long, default_value_t = 4)]
    pub window: usize,
    /// Catch-up: messages each sender sends while its peers are away
    #[arg(long, default_value_t = 100)]
    pub backlog: u64,
    /// How long the measured part runs
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Sending before the measured part (not in the figures)
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// After sending stops, how long to wait for every message to arrive
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub drain: Duration,
    /// The whole run (setup, connect, run, drain) ends by then, whatever happens
    #[arg(long, default_value = "600s", value_parser = parse_duration)]
    pub hard_stop: Duration,
    /// New connections per second, in total
    #[arg(long, default_value_t = 2000.0)]
    pub ramp: f64,
    /// Worker processes (0: as many as the connections need, at least one)
    #[arg(long, default_value_t = 0)]
    pub workers: usize,
    /// Connections per worker process at most
    #[arg(long, default_value_t = 16_000)]
    pub connections_per_worker: usize,
    /// Source addresses to spread connections over: 127.0.0.2, .3, … (0: let
    /// the kernel choose)
    #[arg(long, default_value_t = 0)]
    pub sources: usize,
    /// Or exactly these local addresses (comma separated)
    #[arg(long, value_delimiter = ',')]
    pub source_list: Vec<IpAddr>,
    /// Bytes of text per message body
    #[arg(long, default_value_t = 100)]
    pub body_bytes: usize,
    /// Idle: seconds between heartbeats on each connection
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub heartbeat: Duration,
    /// TLS: trust this CA (PEM) for https/wss URLs
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// Write the JSON report here (it is also the last line on stdout)
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// No live progress line
    #[arg(long)]
    pub quiet: bool,
}

/// "20s", "500ms", "2m", "1.5s" or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 20s, 500ms or 2m"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        _ => return Err(format!("{text:?}: the unit is one of ms, s, m")),
    };
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(format!("{text:?} is not a positive duration"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Where the server is, split out of `--url`.
#[derive(Clone, Debug)]
pub struct ServerAddr {
    pub addr: SocketAddr,
    /// "HOST:PORT" as written (Host header, TLS name).
    pub host_port: String,
    pub host: String,
    pub tls: bool,
    /// The path of the WebSocket endpoint ("/v1/ws" for chatd).
    pub ws_path: String,
}

impl Config {
    /// Checks every bound; the answer is the message for the user.
    pub fn validate(&self) -> Result<(), String> {
        if self.users == 0 {
            return Err("--users must be at least 1".into());
        }
        if !(BODY_BYTES_MIN..=BODY_BYTES_MAX).contains(&self.body_bytes) {
            return Err(format!(
                "--body-bytes must be in {BODY_BYTES_MIN}..={BODY_BYTES_MAX}"
            ));
        }
        if !self.rate.is_finite() || self.rate < 0.0 {
            return Err("--rate must be a number of messages/s (0: closed loop)".into());
        }
        if self.rate == 0.0 && self.window == 0 {
            return Err("--window must be at least 1 in a closed loop".into());
        }
        if !self.ramp.is_finite() || self.ramp <= 0.0 {
            return Err("--ramp must be positive (connections/s)".into());
        }
        if self.connections_per_worker == 0
            || self.connections_per_worker > CONNECTIONS_PER_WORKER_MAX
        {
            return Err(format!(
                "--connections-per-worker must be in 1..={CONNECTIONS_PER_WORKER_MAX} (a process may open 20,000 files here)"
            ));
        }
        if self.workers > WORKERS_MAX {
            return Err(format!("--workers must be at most {WORKERS_MAX}"));
        }
        if self.scenario == Scenario::Group && !(2..=GROUP_MEMBERS_MAX).contains(&self.group_size) {
            return Err(format!("--group-size must be in 2..={GROUP_MEMBERS_MAX}"));
        }
        if self.target == TargetKind::Chatd && self.otp_file.is_none() {
            return Err("--otp-file is needed to log in to chatd".into());
        }
        if self.target != TargetKind::Chatd
            && matches!(self.scenario, Scenario::Storm | Scenario::Catchup)
        {
            return Err(
                "storm and catchup need a server that stores messages: --target chatd".into(),
            );
        }
        if self.target == TargetKind::Echo && self.scenario == Scenario::Idle {
            return Err("idle measures a chat server's memory: --target chatd or xmpp".into());
        }
        if self.scenario == Scenario::Failover {
            self.validate_failover()?;
        }
        if self.hard_stop < self.duration + self.warmup + self.drain {
            return Err("--hard-stop must cover --warmup + --duration + --drain".into());
        }
        for ip in &self.source_list {
            if !ip.is_loopback() {
                return Err(format!("source {ip} is not a loopback address"));
            }
        }
        Ok(())
    }

    fn validate_failover(&self) -> Result<(), String> {
        if self.target != TargetKind::Chatd {
            return Err("failover drives a chatd cluster: --target chatd".into());
        }
        if self.kill_pid.is_none() {
            return Err("failover needs --kill-pid (the node to kill)".into());
        }
        if self.kill_at() >= self.warmup + self.duration {
            return Err("--kill-after must fall before the end of --warmup + --duration".into());
        }
        if self.urls().count() < 2 {
            return Err("failover needs at least two nodes in --url (a,b,c)".into());
        }
        Ok(())
    }

    /// Failover: the kill, counted from the start of sending.
    pub fn kill_at(&self) -> Duration {
        self.kill_after.unwrap_or(self.warmup + self.duration / 3)
    }

    /// The URLs of `--url`, one per node.
    pub fn urls(&self) -> impl Iterator<Item = &str> {
        self.url.split(',').map(str::trim).filter(|u| !u.is_empty())
    }

    /// The first node: REST setup goes there.
    pub fn first_url(&self) -> &str {
        self.urls().next().unwrap_or("")
    }

    /// Members per conversation for this scenario.
    pub fn conversation_size(&self) -> usize {
        match (self.target, self.scenario) {
            (TargetKind::Echo, _) => 1,
            (_, Scenario::Group) => self.group_size,
            (_, Scenario::Idle) => 1,
            _ => 2,
        }
    }

    /// Source address for connection `i` (None: the kernel's choice).
    pub fn source(&self, i: usize) -> Option<IpAddr> {
        if !self.source_list.is_empty() {
            return Some(self.source_list[i % self.source_list.len()]);
        }
        if self.sources == 0 {
            return None;
        }
        let n = 2 + (i % self.sources) as u32;
        assert!(n < 1 << 24, "stays inside 127/8");
        Some(IpAddr::V4(Ipv4Addr::from(0x7f00_0000 | n)))
    }

    /// Every node of `--url`, in order.
    pub fn servers(&self) -> Result<Vec<ServerAddr>, String> {
        let servers: Vec<ServerAddr> = self
            .urls()
            .map(|u| self.server_of(u))
            .collect::<Result<_, _>>()?;
        if servers.is_empty() {
            return Err("--url names no server".into());
        }
        if servers.iter().any(|s| s.tls != servers[0].tls) {
            return Err("--url: every node speaks TLS or none does".into());
        }
        Ok(servers)
    }

    /// The first node of `--url`.
    pub fn server(&self) -> Result<ServerAddr, String> {
        self.server_of(self.first_url())
    }

    /// Parses one URL; refuses anything that is not a loopback address.
    fn server_of(&self, url: &str) -> Result<ServerAddr, String> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| format!("--url {url:?} has no scheme"))?;
        let tls = match scheme {
            "http" | "ws" => false,
            "https" | "wss" => true,
            _ => return Err(format!("--url scheme {scheme:?}: use http(s) or ws(s)")),
        };
        let (host_port, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let ws_path = match (self.target, path) {
            (TargetKind::Chatd, _) => "/v1/ws".to_owned(),
            (_, "") => "/".to_owned(),
            (_, p) => p.to_owned(),
        };
        let addrs: Vec<SocketAddr> = host_port
            .to_socket_addrs()
            .map_err(|e| format!("--url {url:?}: {e}"))?
            .collect();
        // "localhost" may name ::1 first; servers here listen on 127.0.0.1.
        let addr = addrs
            .iter()
            .find(|a| a.is_ipv4())
            .or(addrs.first())
            .copied()
            .ok_or_else(|| format!("--url {url:?} names no address"))?;
        if !addr.ip().is_loopback() {
            return Err(format!(
                "--url {url:?} is not on loopback: loadgen only targets 127.0.0.0/8 here"
            ));
        }
        let host = host_port
            .rsplit_once(':')
            .map_or(host_port, |(h, _)| h)
            .to_owned();
        Ok(ServerAddr {
            addr,
            host_port: host_port.to_owned(),
            host,
            tls,
            ws_path,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(args: &[&str]) -> Config {
        let mut all = vec!["loadgen"];
        all.extend_from_slice(args);
        Config::try_parse_from(all).unwrap()
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("20s"), Ok(Duration::from_secs(20)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("3h").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn only_loopback_targets_are_accepted() {
        let c = config(&[
            "direct",
            "--url",
            "http://127.0.0.1:8080",
            "--otp-file",
            "x",
        ]);
        let s = c.server().unwrap();
        assert_eq!((s.tls, s.ws_path.as_str()), (false, "/v1/ws"));
        let c = config(&["direct", "--target", "echo", "--url", "ws://10.1.2.3:80/"]);
        assert!(c.server().unwrap_err().contains("loopback"));
        let c = config(&[
            "direct",
            "--target",
            "xmpp",
            "--url",
            "wss://127.0.0.1:5280/websocket",
        ]);
        let s = c.server().unwrap();
        assert_eq!((s.tls, s.ws_path.as_str()), (true, "/websocket"));
    }

    #[test]
    fn bounds_are_checked() {
        let c = config(&["direct", "--url", "http://127.0.0.1:1"]);
        assert!(c.validate().unwrap_err().contains("--otp-file"));
        let c = config(&["storm", "--target", "echo", "--url", "ws://127.0.0.1:1"]);
        assert!(c.validate().is_err());
        let c = config(&[
            "group",
            "--target",
            "xmpp",
            "--url",
            "ws://127.0.0.1:1",
            "--group-size",
            "1",
        ]);
        assert!(c.validate().is_err());
        let c = config(&[
            "direct",
            "--target",
            "echo",
            "--url",
            "ws://127.0.0.1:1",
            "--connections-per-worker",
            "25000",
        ]);
        assert!(c.validate().is_err());
    }

    #[test]
    fn a_cluster_url_names_every_node_and_failover_checks_its_flags() {
        let urls = "http://127.0.0.1:1, http://127.0.0.1:2,http://127.0.0.1:3";
        let c = config(&["failover", "--url", urls, "--otp-file", "x"]);
        let ports: Vec<u16> = c.servers().unwrap().iter().map(|s| s.addr.port()).collect();
        assert_eq!(ports, [1, 2, 3]);
        assert_eq!(c.server().unwrap().addr.port(), 1);
        assert!(c.validate().unwrap_err().contains("--kill-pid"));
        let c = config(&[
            "failover",
            "--url",
            urls,
            "--otp-file",
            "x",
            "--kill-pid",
            "7",
        ]);
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(
            c.kill_at(),
            Duration::from_secs(2) + Duration::from_secs(10) / 3
        );
        let one = ["failover", "--url", "http://127.0.0.1:1", "--otp-file", "x"];
        let c = config(&[&one[..], &["--kill-pid", "7"]].concat());
        assert!(c.validate().unwrap_err().contains("two nodes"));
        let mixed = "http://127.0.0.1:1,https://127.0.0.1:2";
        let c = config(&["direct", "--url", mixed, "--otp-file", "x"]);
        assert!(c.servers().unwrap_err().contains("TLS"));
    }

    #[test]
    fn source_addresses_cycle_from_127_0_0_2() {
        let c = config(&["idle", "--url", "http://127.0.0.1:1", "--sources", "3"]);
        let got: Vec<String> = (0..4).map(|i| c.source(i).unwrap().to_string()).collect();
        assert_eq!(got, ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.2"]);
        let c = config(&["idle", "--url", "http://127.0.0.1:1"]);
        assert_eq!(c.source(0), None);
    }
}
