//! Bringing one core's replicas up: recover each shard through its
//! stored commit index, hand the driver every log entry, link to the
//! peers, listen for theirs, and start the pump.
//!
//! Lives on: each core, at startup.

use std::net::ToSocketAddrs;
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use chat_log::Offset;
use chat_replication::eraftpb::HardState;
use chat_replication::{Driver, Frame, GroupId, Membership, NodeId, Settings};
use tracing::{info, warn};

use super::link::{read_peer, Inbound, Link};
use super::raft_log::Stored;
use super::replicator::{with_local, Replicator};
use crate::config::ClusterConfig;
use crate::shard::conn::CoreId;
use crate::shard::storage::LogStore;
use crate::shard::Shard;

/// A shard's recovered replica, before it joins the driver.
pub struct Opened {
    pub shard: Shard,
    pub stored: Stored,
    pub applied: Offset,
}

/// Builds the core's replicator over its recovered shards.
pub async fn replicator(
    cfg: &ClusterConfig,
    membership: Rc<Membership>,
    dir: &Path,
    core: CoreId,
    cores: u16,
    opened: Vec<Opened>,
) -> Result<(Rc<Replicator>, Vec<Rc<Shard>>), String> {
    let node = NodeId(cfg.node);
    let settings = Settings {
        election_ticks: cfg.election_ticks,
        heartbeat_ticks: cfg.heartbeat_ticks,
        seed: cfg.node.wrapping_mul(0x9e37_79b9) ^ core.0 as u64,
    };
    let mut driver = Driver::new(node, settings);
    let mut ready = Vec::new();
    for o in opened {
        let g = GroupId(o.shard.id.0 as u32);
        let boot = super::raft_log::read_boot(&*o.shard.log, &o.stored, o.applied.0).await?;
        driver
            .add_group(g, membership.replicas(g), boot)
            .map_err(|e| format!("shard {}: {e}", g.0))?;
        ready.push((Rc::new(o.shard), o.stored, o.applied));
    }
    let id = super::membership::cluster_id(&membership);
    let tick = Duration::from_millis(cfg.tick_ms);
    let r = Replicator::new(
        node,
        core,
        cores,
        membership,
        id,
        dir.to_path_buf(),
        tick,
        driver,
    );
    let mut shards = Vec::new();
    for (shard, hs, applied) in ready {
        shard.join_cluster(r.clone(), applied);
        r.add_shard(shard.clone(), hs);
        shards.push(shard);
    }
    Ok((r, shards))
}

/// Links to every peer, the peer listener, the pump and the persister.
pub fn start(
    r: &Rc<Replicator>,
    cfg: &ClusterConfig,
    tls: Option<&chat_net::peer_tls::PeerTls>,
) -> Result<(), String> {
    let me = NodeId(cfg.node);
    let hello = Frame::Hello {
        cluster: r.cluster_id,
        node: me,
        core: r.core.0 as u32,
    };
    for (id, addr) in &cfg.peers {
        if *id == cfg.node {
            continue;
        }
        let link = Link::new(
            NodeId(*id),
            addr.clone(),
            &hello,
            tls.map(|t| t.client.clone()),
        );
        r.add_link(link.clone());
        glommio::spawn_local(link.run(|node| with_local(|r| r.link_down(node)))).detach();
    }
    let mut answer = Vec::new();
    chat_replication::encode_frame(&hello, &mut answer);
    listen_for_peers(r, cfg, Rc::new(answer), tls.map(|t| t.server.clone()))?;
    if let Some(path) = std::env::var_os(PEER_FAULT_FILE_ENV) {
        watch_fault_file(r.clone(), path.into());
    }
    glommio::spawn_local(r.clone().pump()).detach();
    glommio::spawn_local(r.clone().persister()).detach();
    Ok(())
}

/// Binds the peer port (`--peer-listen`, else this node's own `--peers`
/// entry) and serves every inbound link on this core.
fn listen_for_peers(
    r: &Rc<Replicator>,
    cfg: &ClusterConfig,
    answer: Rc<Vec<u8>>,
    server_tls: Option<Arc<rustls::ServerConfig>>,
) -> Result<(), String> {
    let me = NodeId(cfg.node);
    let own = cfg
        .peers
        .iter()
        .find(|(id, _)| *id == cfg.node)
        .map(|(_, a)| a.clone())
        .ok_or("this node is not in --peers")?;
    let addr = match cfg.peer_listen {
        Some(addr) => addr,
        None => own
            .to_socket_addrs()
            .map_err(|e| format!("peer address {own}: {e}"))?
            .next()
            .ok_or_else(|| format!("peer address {own} resolves to nothing"))?,
    };
    let listener =
        chat_net::bind(addr).map_err(|e| format!("cannot listen for peers on {addr}: {e}"))?;
    if r.core.0 == 0 {
        let tls = if server_tls.is_some() {
            "mutual TLS"
        } else {
            "plain TCP"
        };
        info!(node = cfg.node, %addr, tls, "listening for peers");
    }
    let (cluster, membership) = (r.cluster_id, r.membership.clone());
    glommio::spawn_local(async move {
        loop {
            match listener.accept().await {
                Ok(stream) => {
                    let membership = membership.clone();
                    let accept = move |c: u64, n: NodeId| {
                        c == cluster && n != me && membership.address(n).is_some()
                    };
                    let on_frame = |from, frame| with_local(|r| r.on_frame(from, frame));
                    let (tls, answer) = (server_tls.clone(), answer.clone());
                    glommio::spawn_local(async move {
                        let read = read_peer(stream, tls, &answer, accept, on_frame);
                        if read.await == Inbound::Refused {
                            with_local(|r| r.links_refused.set(r.links_refused.get() + 1));
                        }
                    })
                    .detach();
                }
                Err(e) => {
                    warn!(error = %e, "peer accept failed");
                    glommio::timer::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    })
    .detach();
    Ok(())
}

/// Fault injection for tests: while the file this names exists, the node
/// drops every peer frame (a partition that clients can still reach).
pub const PEER_FAULT_FILE_ENV: &str = "CHATD_PEER_FAULT_FILE";
const FAULT_POLL_MS: u64 = 50;

fn watch_fault_file(r: Rc<Replicator>, path: std::path::PathBuf) {
    warn!(path = %path.display(), "peer fault injection armed ({PEER_FAULT_FILE_ENV})");
    glommio::spawn_local(async move {
        loop {
            let cut = path.exists();
            if cut != r.cut_off.replace(cut) {
                warn!(
                    cut,
                    "peer fault injection: links {}",
                    if cut { "cut" } else { "restored" }
                );
            }
            glommio::timer::sleep(Duration::from_millis(FAULT_POLL_MS)).await;
        }
    })
    .detach();
}

/// Waits until every group of this core knows a leader.
///
/// Bounded: a node started while cut off from the others (or alone)
/// waits `STARTUP_ELECTIONS` (longest) election timeouts at most, then serves
/// anyway: its client port answers `unavailable` for shards without a
/// leader (and `/readyz` says 503) rather than refusing connections.
pub async fn wait_for_leaders(r: &Rc<Replicator>, cfg: &ClusterConfig) {
    let timeout_ms = 2 * cfg.election_ticks as u64 * cfg.tick_ms;
    let limit = Duration::from_millis(crate::constants::STARTUP_ELECTIONS * timeout_ms);
    let started = std::time::Instant::now();
    while !r.all_led() {
        if started.elapsed() >= limit {
            warn!(
                core = r.core.0,
                waited_ms = limit.as_millis() as u64,
                "no leader yet for some shards of this core: serving anyway \
                 (writes and reads to them answer unavailable until one is elected)"
            );
            return;
        }
        glommio::timer::sleep(Duration::from_millis(20)).await;
    }
}

/// The log a replica needs recovered through its commit index.
pub async fn recover(
    log: &dyn LogStore,
    params: crate::machine::state::Params,
    hs: &HardState,
) -> Result<(crate::machine::state::State, Offset), String> {
    let upto = Offset(hs.commit.min(log.last_offset().0));
    let (state, _, through) = crate::shard::recover::recover_through(log, params, upto).await?;
    Ok((state, through))
}
