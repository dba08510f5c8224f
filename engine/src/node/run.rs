//! A node: one pinned glommio executor per core, the core mesh, startup
//! (recover shards, announce memberships, bind listeners, say ready) and
//! shutdown (stop accepting, close sockets with 1001, flush the logs).
//!
//! Lives on: `run` on the main thread; `core_main` on each core's thread.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use chat_net::http::{serve, ServeConfig};
use chat_net::stop::StopSignal;
use glommio::channels::channel_mesh::MeshBuilder;
use glommio::{LocalExecutorBuilder, Placement};

use tracing::{error, info};

use super::core::Core;
use super::mesh::{MeshMsg, Rings};
use crate::cluster::replicator::Replicator;
use crate::config::Config;
use crate::constants::MESH_RING_CAPACITY;
use crate::front::api::Api;
use crate::front::ops_port::Ops;
use crate::machine::ids::ShardId;
use crate::shard::clock::SystemClock;
use crate::shard::conn::CoreId;
use crate::shard::mesh::call;
use crate::shard::ops::membership::Announce;
use crate::shard::runner::params;
use crate::shard::Shard;

/// What every core thread shares at startup (only `Send` things).
struct Shared {
    config: Config,
    shards: u16,
    data_dir: PathBuf,
    tls: Option<Arc<rustls::ServerConfig>>,
    /// Cluster mode with `--peer-tls-*`: mutual TLS between nodes.
    peer_tls: Option<chat_net::peer_tls::PeerTls>,
    listen: SocketAddr,
    ops_listen: SocketAddr,
    /// Cluster mode: the stored membership.
    membership: Option<chat_replication::Membership>,
    stop: AtomicBool,
    /// Counts cores through each shutdown phase.
    phase: AtomicUsize,
}

/// What a core reports when it serves (or why it could not start).
type Started = Result<(u16, Option<SocketAddr>), String>;

/// Runs the node until SIGTERM/SIGINT; returns the process exit code.
pub fn run(config: Config) -> Result<(), String> {
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| format!("data dir {}: {e}", config.data_dir.display()))?;
    let data_dir = std::path::absolute(&config.data_dir).map_err(|e| e.to_string())?;
    let shards = shard_count(&data_dir, config.shards)?;
    crate::media::store::prepare(&data_dir)?;
    let membership = match &config.cluster {
        Some(c) => Some(establish(&data_dir, c, shards)?),
        None => None,
    };
    let tls = match &config.tls {
        Some((cert, key)) => Some(chat_net::tls::load_server_config(cert, key)?),
        None => None,
    };
    let peer_tls = match config.cluster.as_ref().and_then(|c| c.tls.as_ref()) {
        Some(f) => Some(chat_net::peer_tls::load_peer_tls(&f.cert, &f.key, &f.ca)?),
        None => None,
    };
    // Port 0: reserve one port for every core's listener (bound, never
    // listening, so it takes no connections), held until all cores listen.
    let (listen_guard, listen) = reserve(config.listen)?;
    let (ops_guard, ops_listen) = reserve(config.ops_listen)?;
    block_signals();
    let cores = config.cores;
    let shared = Arc::new(Shared {
        config,
        shards,
        data_dir,
        tls,
        peer_tls,
        listen,
        ops_listen,
        membership,
        stop: AtomicBool::new(false),
        phase: AtomicUsize::new(0),
    });
    let (handles, ops) = start_cores(&shared, cores)?;
    drop((listen_guard, ops_guard));
    let scheme = if shared.tls.is_some() {
        "https"
    } else {
        "http"
    };
    println!(
        "chatd ready {scheme}={} ops={}",
        shared.listen,
        ops.unwrap_or(shared.ops_listen)
    );
    use std::io::Write;
    let _ = std::io::stdout().flush();
    wait_for_signal();
    info!("stopping");
    shared.stop.store(true, Ordering::SeqCst);
    for h in handles {
        let _ = h.join();
    }
    info!("stopped");
    Ok(())
}

/// Starts one pinned executor per core; waits until every core serves
/// (or one failed). Answers the threads and the ops port's address.
fn start_cores(
    shared: &Arc<Shared>,
    cores: usize,
) -> Result<(Vec<glommio::ExecutorJoinHandle<()>>, Option<SocketAddr>), String> {
    let mesh = MeshBuilder::<MeshMsg, _>::full(cores, MESH_RING_CAPACITY);
    let cpus: Vec<usize> = glommio::CpuSet::online()
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|l| l.cpu)
        .collect();
    let (tx, rx) = mpsc::channel::<Started>();
    let mut handles = Vec::new();
    for i in 0..cores {
        let (shared, mesh, tx) = (shared.clone(), mesh.clone(), tx.clone());
        let placement = cpus
            .get(i)
            .map_or(Placement::Unbound, |c| Placement::Fixed(*c));
        let handle = LocalExecutorBuilder::new(placement)
            .name(&format!("chatd-core-{i}"))
            .spawn(move || async move {
                let outcome = core_main(shared, mesh, tx.clone()).await;
                if let Err(e) = outcome {
                    let _ = tx.send(Err(e));
                }
            })
            .map_err(|e| format!("cannot start core {i}: {e}"))?;
        handles.push(handle);
    }
    drop(tx);
    let mut ops = None;
    for _ in 0..cores {
        match rx.recv() {
            Ok(Ok((_, Some(addr)))) => ops = Some(addr),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                shared.stop.store(true, Ordering::SeqCst);
                return Err(e);
            }
            Err(_) => return Err("a core stopped during startup".into()),
        }
    }
    Ok((handles, ops))
}

/// Cluster mode: the data directory's membership, checked against the
/// flags (a mismatch is refused: `main` exits 2).
pub fn check_cluster(config: &Config) -> Result<(), String> {
    let Some(c) = &config.cluster else {
        return Ok(());
    };
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| format!("data dir {}: {e}", config.data_dir.display()))?;
    let shards = shard_count(&config.data_dir, config.shards)?;
    establish(&config.data_dir, c, shards).map(|_| ())
}

fn establish(
    dir: &Path,
    c: &crate::config::ClusterConfig,
    shards: u16,
) -> Result<chat_replication::Membership, String> {
    let m = crate::cluster::membership::establish(dir, c, shards)?;
    let held = m.groups_on(chat_replication::NodeId(c.node)).len();
    if held != shards as usize {
        return Err(format!(
            "node {} holds {held} of {shards} shards: serving a subset is not supported yet \
             (every node must hold every shard: at most 3 nodes)",
            c.node
        ));
    }
    Ok(m)
}

/// The shard count is fixed when a data directory is created.
fn shard_count(dir: &Path, asked: usize) -> Result<u16, String> {
    let path = dir.join("SHARDS");
    match std::fs::read_to_string(&path) {
        Ok(text) => text
            .trim()
            .parse()
            .map_err(|_| format!("{} is not a shard count", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let tmp = dir.join("SHARDS.tmp");
            std::fs::write(&tmp, format!("{asked}\n")).map_err(|e| e.to_string())?;
            std::fs::File::open(&tmp)
                .and_then(|f| f.sync_all())
                .map_err(|e| e.to_string())?;
            std::fs::rename(&tmp, &path).map_err(|e| e.to_string())?;
            std::fs::File::open(dir)
                .and_then(|f| f.sync_all())
                .map_err(|e| e.to_string())?;
            Ok(asked as u16)
        }
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

fn reserve(addr: SocketAddr) -> Result<(socket2::Socket, SocketAddr), String> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .map_err(|e| e.to_string())?;
    s.set_reuse_port(true).map_err(|e| e.to_string())?;
    s.set_reuse_address(true).map_err(|e| e.to_string())?;
    s.bind(&addr.into())
        .map_err(|e| format!("cannot bind {addr}: {e}"))?;
    let local = s
        .local_addr()
        .map_err(|e| e.to_string())?
        .as_socket()
        .ok_or("not an IP socket")?;
    Ok((s, local))
}

async fn core_main(
    shared: Arc<Shared>,
    mesh: MeshBuilder<MeshMsg, glommio::channels::channel_mesh::Full>,
    tx: mpsc::Sender<Started>,
) -> Result<(), String> {
    let stop = StopSignal::new();
    let (senders, receivers) = mesh
        .join()
        .await
        .map_err(|_| "mesh join failed".to_string())?;
    let id = CoreId(senders.peer_id() as u16);
    // The ops port answers (`/healthz`; `/readyz` 503) while shards recover.
    let ops_handler = Rc::new(Ops {
        core: std::cell::RefCell::new(None),
    });
    let (ops, ops_addr) = if id.0 == 0 {
        let (task, addr) = start_ops_port(&shared, &ops_handler, &stop)?;
        (Some(task), Some(addr))
    } else {
        (None, None)
    };
    let cores = shared.config.cores as u16;
    let config = Rc::new(shared.config.clone());
    let (local, replicator) = open_local(&shared, &config, id, cores).await?;
    let core = Rc::new(Core::new(
        id,
        cores,
        config.clone(),
        local,
        Box::new(Rings(senders)),
    ));
    serve_mesh(&core, receivers);
    if let (Some(r), Some(c)) = (&replicator, &config.cluster) {
        r.set_mesh(core.mesh());
        crate::cluster::start::start(r, c, shared.peer_tls.as_ref())?;
        crate::cluster::start::wait_for_leaders(r, c).await;
    }
    *ops_handler.core.borrow_mut() = Some(core.clone());
    announce(&core, cores).await?;
    let serve_config = ServeConfig {
        tls: shared.tls.clone(),
        connections_max: config.connections_per_core_max,
    };
    let listener = chat_net::bind(shared.listen)
        .map_err(|e| format!("cannot listen on {}: {e}", shared.listen))?;
    let api = glommio::spawn_local(serve(
        listener,
        serve_config,
        Rc::new(Api { core: core.clone() }),
        stop.clone(),
    ));
    spawn_ticker(core.clone());
    spawn_compactor(&core, Duration::from_secs(config.compact_interval_seconds));
    spawn_pushers(&core);
    let _ = tx.send(Ok((id.0, ops_addr)));
    while !shared.stop.load(Ordering::SeqCst) {
        glommio::timer::sleep(Duration::from_millis(50)).await;
    }
    shutdown(&shared, &core, &stop, cores).await;
    if let Some(r) = &replicator {
        r.save_hard_states().await;
    }
    api.await;
    if let Some(ops) = ops {
        ops.await;
    }
    Ok(())
}

/// Core 0 serves the ops port from before recovery on.
fn start_ops_port(
    shared: &Shared,
    handler: &Rc<Ops>,
    stop: &StopSignal,
) -> Result<(glommio::Task<()>, SocketAddr), String> {
    let l = chat_net::bind(shared.ops_listen)
        .map_err(|e| format!("cannot listen on {}: {e}", shared.ops_listen))?;
    let addr = l.local_addr().map_err(|e| e.to_string())?;
    let cfg = ServeConfig {
        tls: None,
        connections_max: 1024,
    };
    let task = glommio::spawn_local(serve(l, cfg, handler.clone(), stop.clone()));
    Ok((task, addr))
}

/// This core's shards: recovered logs, or (cluster mode) replicas under
/// one driver.
async fn open_local(
    shared: &Shared,
    config: &Rc<Config>,
    id: CoreId,
    cores: u16,
) -> Result<(Vec<Option<Rc<Shard>>>, Option<Rc<Replicator>>), String> {
    let mut local = vec![None; shared.shards as usize];
    let replicator = match (&shared.membership, &config.cluster) {
        (Some(m), Some(c)) => {
            let (r, shards) = open_replicas(shared, config, c, m, id, cores).await?;
            for s in shards {
                let at = s.id.0 as usize;
                local[at] = Some(s);
            }
            Some(r)
        }
        _ => {
            for s in (0..shared.shards).filter(|s| s % cores == id.0) {
                let shard =
                    open_shard(&shared.data_dir, ShardId(s), shared.shards, config.clone()).await?;
                local[s as usize] = Some(Rc::new(shard));
            }
            None
        }
    };
    Ok((local, replicator))
}

/// Cluster mode: this core's replicas, recovered through their commit
/// indexes, under one driver.
async fn open_replicas(
    shared: &Shared,
    config: &Rc<Config>,
    c: &crate::config::ClusterConfig,
    m: &chat_replication::Membership,
    id: CoreId,
    cores: u16,
) -> Result<(Rc<crate::cluster::replicator::Replicator>, Vec<Rc<Shard>>), String> {
    use crate::cluster::raft_log::read_hard_state;
    use crate::cluster::start::{recover, replicator, Opened};
    let mut opened = Vec::new();
    for s in (0..shared.shards).filter(|s| s % cores == id.0) {
        let path = shared.data_dir.join(format!("shard-{s:04}"));
        let log = chat_log::Log::open(&path, chat_log::Config::default())
            .await
            .map_err(|e| format!("shard {s}: {e}"))?;
        let stored = read_hard_state(&shared.data_dir, s)?;
        let (state, applied) = recover(&log, params(config), &stored.hard_state)
            .await
            .map_err(|e| format!("shard {s}: {e}"))?;
        info!(shard = s, applied = applied.0, "replica recovered");
        let shard = Shard::new(
            ShardId(s),
            shared.shards,
            config.clone(),
            Rc::new(log),
            Rc::new(SystemClock),
            state,
        );
        let started = std::time::Instant::now();
        let docs = shard
            .index_log()
            .await
            .map_err(|e| format!("shard {s}: {e}"))?;
        info!(
            shard = s,
            docs,
            ms = started.elapsed().as_millis() as u64,
            "search index built"
        );
        opened.push(Opened {
            shard,
            stored,
            applied,
        });
    }
    let membership = Rc::new(m.clone());
    replicator(c, membership, &shared.data_dir, id, cores, opened).await
}

/// Opens a shard's log under `dir` and recovers its state.
async fn open_shard(
    dir: &Path,
    id: ShardId,
    shards: u16,
    config: Rc<Config>,
) -> Result<Shard, String> {
    let path = dir.join(format!("shard-{:04}", id.0));
    let log = chat_log::Log::open(&path, chat_log::Config::default())
        .await
        .map_err(|e| format!("shard {}: {e}", id.0))?;
    let (state, replayed) = crate::shard::recover::recover(&log, params(&config))
        .await
        .map_err(|e| format!("shard {}: {e}", id.0))?;
    info!(shard = id.0, replayed, "shard recovered");
    let shard = Shard::new(
        id,
        shards,
        config,
        Rc::new(log),
        Rc::new(SystemClock),
        state,
    );
    let started = std::time::Instant::now();
    let docs = shard
        .index_log()
        .await
        .map_err(|e| format!("shard {}: {e}", id.0))?;
    info!(
        shard = id.0,
        docs,
        ms = started.elapsed().as_millis() as u64,
        "search index built"
    );
    Ok(shard)
}

/// Serves the mesh: one task per peer ring, in arrival order per ring.
fn serve_mesh(core: &Rc<Core>, mut receivers: glommio::channels::channel_mesh::Receivers<MeshMsg>) {
    for (_, rx) in receivers.streams() {
        let core = core.clone();
        glommio::spawn_local(async move {
            while let Some(msg) = rx.recv().await {
                core.on_mesh(msg).await;
            }
        })
        .detach();
    }
}

/// Startup: every local shard announces its memberships to the users'
/// homes; then wait until every core has (the user homes' pointers are
/// whole before the first client is served).
async fn announce(core: &Rc<Core>, cores: u16) -> Result<(), String> {
    let mesh = core.mesh();
    let shard_ids: Vec<ShardId> = core.local_shards().map(|s| s.id).collect();
    for shard in shard_ids {
        call(&mesh, shard, Announce)
            .await
            .map_err(|e| format!("shard {}: announce: {e:?}", shard.0))?;
    }
    core.broadcast_announced().await;
    while core.announced.get() < cores {
        glommio::timer::sleep(Duration::from_millis(2)).await;
    }
    core.ready.set(true);
    Ok(())
}

/// Once a second: fold the logs' fsync latencies into the histograms.
fn spawn_ticker(core: Rc<Core>) {
    glommio::spawn_local(async move {
        loop {
            glommio::timer::sleep(Duration::from_secs(1)).await;
            core.drain_log_latencies();
        }
    })
    .detach();
}

/// Every `interval`: the erasure compaction of each of this core's shards
/// (`shard/compact.rs`), one shard after the other.
fn spawn_compactor(core: &Rc<Core>, interval: Duration) {
    let shards: Vec<Rc<Shard>> = core.local_shards().cloned().collect();
    // Core 0 also sweeps the node's media files after its shards.
    let sweeper = (core.id.0 == 0).then(|| (core.mesh(), core.config.data_dir.clone()));
    let grace = media_grace(interval);
    glommio::spawn_local(async move {
        loop {
            glommio::timer::sleep(interval).await;
            for shard in &shards {
                if shard.log.is_closed() {
                    return;
                }
                if let Err(e) = shard.compact().await {
                    tracing::warn!(shard = shard.id.0, error = %e, "compaction failed (next run retries)");
                }
            }
            if let Some((mesh, dir)) = &sweeper {
                if let Err(e) = crate::media::sweep::sweep(mesh, dir, grace).await {
                    tracing::warn!(error = %e, "media sweep failed (next run retries)");
                }
            }
        }
    })
    .detach();
}

/// A media file stays at least this long after it was written, even if
/// nobody holds it yet (`media/sweep.rs`): `MEDIA_SWEEP_GRACE_SECONDS_MAX`,
/// or less with a short compaction interval, so that a file is still gone
/// within two intervals and 5 s.
fn media_grace(interval: Duration) -> Duration {
    let max = Duration::from_secs(crate::constants::MEDIA_SWEEP_GRACE_SECONDS_MAX);
    max.min(interval + Duration::from_secs(2))
}

/// With `--push-gateway`: a push sender per local shard, started once
/// every core announced (so that each user's conversations are known).
fn spawn_pushers(core: &Rc<Core>) {
    let Some(gateway) = &core.config.push_gateway else {
        return;
    };
    for shard in core.local_shards() {
        let tls = core.config.gateway_tls.clone();
        let pusher = Rc::new(crate::push::sender::Pusher::new(gateway.clone(), tls));
        shard.set_pusher(pusher.clone());
        let run = crate::push::sender::run(shard.clone(), core.mesh(), pusher);
        glommio::spawn_local(run).detach();
    }
}

/// Stop accepting, close every socket with 1001, wait for every core,
/// then flush and close the logs.
async fn shutdown(shared: &Shared, core: &Rc<Core>, stop: &StopSignal, cores: u16) {
    stop.fire();
    core.ready.set(false);
    let conns: Vec<_> = core
        .conns
        .borrow()
        .values()
        .map(|c| c.outlet.clone())
        .collect();
    for outlet in conns {
        outlet.close(chat_net::ws::CLOSE_GOING_AWAY, "server shutting down");
    }
    for _ in 0..100 {
        if core.conns.borrow().is_empty() {
            break;
        }
        glommio::timer::sleep(Duration::from_millis(10)).await;
    }
    barrier(&shared.phase, cores as usize).await;
    for shard in core.local_shards() {
        if let Err(e) = shard.log.sync().await {
            error!(shard = shard.id.0, error = %e, "final flush failed");
        }
    }
    barrier(&shared.phase, 2 * cores as usize).await;
    for shard in core.local_shards() {
        let _ = shard.log.close().await;
    }
}

async fn barrier(counter: &AtomicUsize, target: usize) {
    counter.fetch_add(1, Ordering::SeqCst);
    while counter.load(Ordering::SeqCst) < target {
        glommio::timer::sleep(Duration::from_millis(2)).await;
    }
}

/// SIGTERM and SIGINT are taken by `wait_for_signal` on the main thread
/// only: block them before the core threads start (they inherit the mask).
fn block_signals() {
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

fn wait_for_signal() {
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        let mut sig = 0;
        libc::sigwait(&set, &mut sig);
    }
}
