//! Cluster mode with real processes: three `chatd` nodes on loopback,
//! each shard a Raft group with a replica on every node. Clients on
//! different nodes talk to each other (an OTP code asked for on one node
//! is checked on another); a killed leader's shards move and
//! writes resume; a restarted node catches up by itself; a start with a
//! different member list is refused with exit 2; the conformance client
//! passes through one node while the shards are led by all three.

mod common;

use std::time::{Duration, Instant};

use chat_tools::client::Session;
use common::partition::Partition;
use common::{next_message, send, Server, WAIT};
use serde_json::{json, Value};

const SHARDS: usize = 3;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Cluster {
    nodes: Vec<Server>,
}

impl Cluster {
    fn start() -> Cluster {
        Cluster::start_with(&[])
    }

    fn start_with(extra: &[&str]) -> Cluster {
        let peers: Vec<String> = (1..=3)
            .map(|_| format!("127.0.0.1:{}", free_port()))
            .collect();
        Cluster::start_on(&peers, |_| Vec::new(), extra)
    }

    /// Three nodes whose peer links pass through a proxy the test cuts.
    fn start_behind_proxy() -> (Cluster, Partition) {
        let proxy = Partition::start(3);
        let listen = |i: usize| vec!["--peer-listen".to_string(), proxy.private[i].clone()];
        let c = Cluster::start_on(&proxy.public, listen, &[]);
        (c, proxy)
    }

    /// Node i+1 at `peers[i]`, with `own(i)` and `extra` as more flags.
    fn start_on(peers: &[String], own: impl Fn(usize) -> Vec<String>, extra: &[&str]) -> Cluster {
        let mut nodes = Cluster::prepare_on(peers, own, extra);
        let pending: Vec<_> = nodes.iter_mut().map(|n| n.begin()).collect();
        for (n, p) in nodes.iter_mut().zip(pending) {
            n.finish(p);
        }
        Cluster { nodes }
    }

    /// The nodes of `start_on`, not started yet.
    fn prepare_on(
        peers: &[String],
        own: impl Fn(usize) -> Vec<String>,
        extra: &[&str],
    ) -> Vec<Server> {
        let list: Vec<String> = peers
            .iter()
            .enumerate()
            .map(|(i, a)| format!("{}={a}", i + 1))
            .collect();
        let peers = list.join(",");
        (1..=3)
            .map(|i| {
                let id = i.to_string();
                let shards = SHARDS.to_string();
                let args = [
                    "--node-id",
                    &id,
                    "--peers",
                    &peers,
                    "--cores",
                    "1",
                    "--shards",
                    &shards,
                ];
                let mine = own(i - 1);
                let args: Vec<&str> = args
                    .iter()
                    .copied()
                    .chain(mine.iter().map(String::as_str))
                    .chain(extra.iter().copied())
                    .collect();
                let mut n = Server::prepare(None, &args);
                let cut = n.dir.path().join("cut-off");
                n.env
                    .push(("CHATD_PEER_FAULT_FILE".into(), cut.display().to_string()));
                n
            })
            .collect()
    }

    /// `/stats` "shards" of a node.
    fn shards(&self, node: usize) -> Vec<Value> {
        let (status, v) = self.nodes[node].ops_get("/stats");
        assert_eq!(status, 200, "{v}");
        v["shards"]
            .as_array()
            .expect("cluster stats list shards")
            .clone()
    }

    /// The leader (1-based node id) of `shard` as `node` sees it.
    fn leader_of(&self, node: usize, shard: usize) -> Option<u64> {
        self.shards(node)[shard]["leader"].as_u64()
    }
}

/// Cuts `node` off from the others (or heals it): its peer frames drop.
fn cut(c: &Cluster, node: usize, on: bool) {
    let path = c.nodes[node].dir.path().join("cut-off");
    if on {
        std::fs::write(path, b"").unwrap();
    } else {
        std::fs::remove_file(path).unwrap();
    }
}

/// Waits until every node leads one of the three shards.
fn wait_balanced(c: &Cluster) {
    common::wait_until("leadership balanced over the nodes", || {
        let mut leaders: Vec<u64> = (0..SHARDS).filter_map(|s| c.leader_of(0, s)).collect();
        leaders.sort();
        (leaders == vec![1, 2, 3]).then_some(())
    });
}

/// A cluster, a user logged in on node 1, and the node (0-based) that
/// leads the user's home shard.
fn cluster_and_home_leader(phone: &str) -> (Cluster, Session, usize) {
    let c = Cluster::start();
    let alice = c.nodes[0].login(phone, "phone");
    let shard = shard_of(&alice.user_id);
    let victim = c.leader_of(0, shard).expect("a leader") as usize - 1;
    (c, alice, victim)
}

/// `PATCH /v1/me` of `s` through `node`.
fn set_name(c: &Cluster, s: &Session, node: usize, name: &str) -> (u16, Value) {
    c.nodes[node].rest(
        "PATCH",
        "/v1/me",
        Some(&s.token),
        Some(&json!({ "name": name })),
    )
}

fn shard_of(id: &str) -> usize {
    let n: u64 = id[1..].parse().expect("numeric id");
    (n % SHARDS as u64) as usize
}

#[test]
fn three_nodes_serve_clients_on_any_node_and_survive_a_leader_kill() {
    let mut c = Cluster::start();
    for n in &c.nodes {
        assert_eq!(n.ops_get("/readyz").0, 200);
    }
    // Leadership spreads: every node leads one of the three shards.
    wait_balanced(&c);
    // A code asked for on node 3 is checked on node 1 (codes live on the
    // leader of the phone's home shard; each node's sink gets its own).
    let phone = "+15550100001";
    let offset = chat_tools::client::otp_file_len(&c.nodes[2].otp_file);
    chat_tools::client::request_otp(&c.nodes[2].http, phone).expect("otp on node 3");
    let code = chat_tools::client::wait_for_otp(&c.nodes[2].otp_file, phone, offset, WAIT)
        .expect("the code in node 3's sink");
    let alice = chat_tools::client::verify(&c.nodes[0].http, phone, &code, "phone")
        .expect("verify on node 1");
    let bob = c.nodes[1].login("+15550100002", "phone");
    let conv = c.nodes[2].direct(&alice, &bob);
    let mut a = c.nodes[0].ws(&alice);
    let mut b = c.nodes[1].ws(&bob);
    let sent = send(&mut a, &conv, "m1", "hello from node 1");
    assert_eq!(sent["seq"], 1);
    let got = next_message(&mut b);
    assert_eq!(got["body"]["text"], "hello from node 1");
    for n in &c.nodes {
        assert_eq!(
            common::seqs(&n.history(&bob, &conv, "")["messages"]),
            vec![1]
        );
    }

    // Kill the node that leads the conversation's shard.
    let shard = shard_of(&conv);
    let victim = c.leader_of(0, shard).expect("a leader") as usize - 1;
    c.nodes[victim].kill9();
    let killed = Instant::now();
    let (alive_a, alive_b) = match victim {
        0 => (2, 1),
        1 => (0, 2),
        _ => (0, 1),
    };
    let mut a = c.nodes[alive_a].ws(&alice);
    let mut b = c.nodes[alive_b].ws(&bob);
    let sent = loop {
        let event = json!({"type": "message.send", "conversation_id": conv,
            "client_msg_id": "m2", "body": {"text": "after the kill"}});
        let answer = a.call(event, WAIT).expect("an answer");
        if answer["type"] == "message.sent" {
            break answer;
        }
        assert_eq!(answer["error"]["code"], "unavailable", "{answer}");
        assert!(
            killed.elapsed() < Duration::from_secs(10),
            "writes did not resume"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    eprintln!("writes resumed {:?} after the kill", killed.elapsed());
    assert_eq!(sent["seq"], 2);
    let got = loop {
        let m = next_message(&mut b);
        if m["seq"] == 2 {
            break m;
        }
    };
    assert_eq!(got["body"]["text"], "after the kill");

    // The killed node comes back and catches up by itself.
    c.nodes[victim].spawn();
    let back = &c.nodes[victim];
    common::wait_until("the restarted node sees every shard led", || {
        (back.ops_get("/readyz").0 == 200).then_some(())
    });
    assert_eq!(
        common::seqs(&back.history(&alice, &conv, "")["messages"]),
        vec![1, 2]
    );
}

fn media_upload(node: &Server, s: &Session, bytes: &[u8]) -> (u16, Value) {
    let r = chat_tools::client::request_full(
        &node.http,
        "POST",
        "/v1/media",
        Some(&s.token),
        Some("application/octet-stream"),
        Some(bytes),
    )
    .expect("upload");
    (
        r.status,
        serde_json::from_slice(&r.body).unwrap_or(Value::Null),
    )
}

fn media_get(node: &Server, s: &Session, id: &str) -> chat_tools::client::Response {
    let path = format!("/v1/media/{id}");
    chat_tools::client::request_full(&node.http, "GET", &path, Some(&s.token), None, None)
        .expect("download")
}

#[test]
fn media_bytes_reach_a_majority_before_the_201_and_a_node_that_missed_them_fetches_them() {
    let mut c = Cluster::start();
    wait_balanced(&c);
    let alice = c.nodes[0].login("+15550100701", "phone");
    let bytes: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let (status, v) = media_upload(&c.nodes[0], &alice, &bytes);
    assert_eq!(status, 201, "{v}");
    let id = v["media_id"].as_str().unwrap().to_string();
    // At the 201, this node and at least one other hold the file.
    let holding = c
        .nodes
        .iter()
        .filter(|n| common::media_files(n) == 1)
        .count();
    assert!(holding >= 2, "the file on {holding} nodes at the 201");
    for n in &c.nodes {
        let r = media_get(n, &alice, &id);
        assert_eq!(r.status, 200);
        assert!(r.body == bytes, "every node serves the same bytes");
    }
    // Node 3 is down during an upload; once back, it serves the file
    // (from its own copy if the background copy reached it, else fetched).
    c.nodes[2].kill9();
    let more: Vec<u8> = bytes.iter().map(|b| b ^ 0x5a).collect();
    let (status, v) = loop {
        let answer = media_upload(&c.nodes[1], &alice, &more);
        if answer.0 != 503 {
            break answer;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status, 201, "{v}");
    let id2 = v["media_id"].as_str().unwrap().to_string();
    c.nodes[2].spawn();
    let back = &c.nodes[2];
    common::wait_until("node 3 ready", || {
        (back.ops_get("/readyz").0 == 200).then_some(())
    });
    assert_eq!(
        common::media_files(back),
        1,
        "node 3 missed the second file"
    );
    let r = common::wait_until("node 3 serves the file it missed", || {
        let r = media_get(back, &alice, &id2);
        (r.status == 200).then_some(r)
    });
    assert!(r.body == more);
    assert_eq!(common::media_files(back), 2, "and keeps it");
}

#[test]
fn a_data_directory_refuses_another_member_list() {
    let peers = format!("1=127.0.0.1:{}", free_port());
    let mut node = Server::prepare(None, &["--node-id", "1", "--peers", &peers, "--cores", "1"]);
    node.spawn();
    node.terminate();
    let other = format!("{peers},2=127.0.0.1:{}", free_port());
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_chatd"))
        .args([
            "--node-id",
            "1",
            "--peers",
            &other,
            "--cores",
            "1",
            "--data-dir",
        ])
        .arg(node.data_dir())
        .args(["--listen", "127.0.0.1:0", "--ops-listen", "127.0.0.1:0"])
        .output()
        .expect("chatd runs");
    assert_eq!(status.status.code(), Some(2));
    let err = String::from_utf8_lossy(&status.stderr);
    assert!(err.contains("belongs to cluster"), "{err}");
}

#[test]
fn the_conformance_client_passes_through_one_node_of_a_cluster() {
    let c = Cluster::start();
    wait_balanced(&c);
    let node = &c.nodes[1];
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tools/conformance/conformance.py"
    );
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg("--http")
        .arg(format!("http://{}", node.http.host_port))
        .arg("--otp-file")
        .arg(&node.otp_file)
        .output()
        .expect("python3 runs");
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{text}");
    assert!(out.status.success(), "conformance through node 2 failed");
}

#[test]
fn a_frozen_leader_serves_no_stale_read_when_it_wakes() {
    let (c, alice, victim) = cluster_and_home_leader("+15550100007");
    let other = (victim + 1) % 3;
    let patch = |node: usize, name: &str| set_name(&c, &alice, node, name);
    assert_eq!(patch(other, "before").0, 200);
    let pid = c.nodes[victim].child.as_ref().expect("running").id() as i32;
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    // The other two elect a leader of their own and take the write.
    let started = Instant::now();
    while patch(other, "after").0 != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no write while frozen"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    unsafe { libc::kill(pid, libc::SIGCONT) };
    // The old leader still thinks it leads; a read through it must not
    // answer from its stale state.
    let started = Instant::now();
    loop {
        let (status, me) = c.nodes[victim].rest("GET", "/v1/me", Some(&alice.token), None);
        if status == 200 {
            assert_eq!(me["name"], "after", "a stale read through the old leader");
            break;
        }
        assert_eq!(status, 503, "{me}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the old leader never served"
        );
    }
}

#[test]
fn a_node_cut_off_acknowledges_nothing_and_serves_no_stale_read() {
    let (c, alice, victim) = cluster_and_home_leader("+15550100009");
    let other = (victim + 1) % 3;
    let patch = |node: usize, name: &str| set_name(&c, &alice, node, name);
    let name_on = |node: usize| {
        let (status, me) = c.nodes[node].rest("GET", "/v1/me", Some(&alice.token), None);
        (status, me["name"].clone())
    };
    assert_eq!(patch(victim, "before").0, 200);
    cut(&c, victim, true);
    std::thread::sleep(Duration::from_millis(200));
    // The cut-off leader cannot commit: no acknowledgement.
    let (status, body) = patch(victim, "while cut off");
    assert_eq!(status, 503, "{body}");
    // The other two elect a leader and take writes (a write forwarded to
    // the cut-off leader before they noticed may wait for its answer).
    let started = Instant::now();
    while patch(other, "after").0 != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the majority took no write"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // A read through the cut-off node: `unavailable`, never its stale state.
    let (status, name) = name_on(victim);
    assert_eq!(
        status, 503,
        "a read through the cut-off node answered {name}"
    );
    cut(&c, victim, false);
    common::wait_until("the healed node serves the latest write", || {
        let (status, name) = name_on(victim);
        (status == 200)
            .then(|| assert_eq!(name, "after"))
            .map(|_| ())
    });
    for n in 0..3 {
        assert_eq!(name_on(n), (200, json!("after")), "node {}", n + 1);
    }
}

/// Sends `text` as `id` until it is acknowledged (an election may refuse
/// it with `unavailable` for a while); answers its seq.
fn send_until_sent(ws: &mut chat_tools::client::Ws, conv: &str, id: &str, text: &str) -> u64 {
    let started = Instant::now();
    loop {
        let event = json!({"type": "message.send", "conversation_id": conv,
            "client_msg_id": id, "body": {"text": text}});
        let answer = ws.call(event, WAIT).expect("an answer");
        if answer["type"] == "message.sent" {
            return answer["seq"].as_u64().expect("seq");
        }
        assert_eq!(answer["error"]["code"], "unavailable", "{answer}");
        assert!(started.elapsed() < WAIT, "{id} was never acknowledged");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Until node `n` applied `shard` through node 1's commit index and is ready.
/// `raft_peer_links_up` and `raft_peer_links` of `node`'s `/stats`.
fn links_up(c: &Cluster, node: usize) -> (u64, u64) {
    let (_, stats) = c.nodes[node].ops_get("/stats");
    let up = stats["raft_peer_links_up"].as_u64().expect("links up");
    (up, stats["raft_peer_links"].as_u64().expect("links"))
}

fn wait_caught_up(c: &Cluster, n: usize, shard: usize) {
    let back = &c.nodes[n];
    common::wait_until("the restarted node applied every write", || {
        let leader = c.shards(0)[shard]["commit_index"].as_u64()?;
        let (_, v) = back.ops_get("/stats");
        let applied = v["shards"][shard]["applied_index"].as_u64()?;
        (applied >= leader && back.ops_get("/readyz").0 == 200).then_some(())
    });
}

#[test]
fn a_node_tens_of_megabytes_behind_gets_the_appends_streamed() {
    // 200 writes of 100 KiB while node 3 is down: the leader still holds
    // them (no compaction), so one Ready sends node 3 up to 32 full appends,
    // more than one peer frame and more than one log batch can carry.
    let mut c = Cluster::start();
    let alice = c.nodes[0].login("+15550100041", "phone");
    let bob = c.nodes[1].login("+15550100042", "phone");
    let conv = c.nodes[0].direct(&alice, &bob);
    let shard = shard_of(&conv);
    c.nodes[2].kill9();
    let mut a = c.nodes[0].ws(&alice);
    let text = "y".repeat(100 * 1024);
    for i in 1..=200u64 {
        let seq = send_until_sent(&mut a, &conv, &format!("s{i}"), &format!("{i} {text}"));
        assert_eq!(seq, i);
    }
    c.nodes[2].spawn();
    let back = &c.nodes[2];
    wait_caught_up(&c, 2, shard);
    let (_, stats) = back.ops_get("/stats");
    assert_eq!(stats["raft_catch_ups"], 0, "streamed, not fetched: {stats}");
    for node in &c.nodes {
        assert_eq!(node.ops_get("/readyz").0, 200, "every node still serves");
    }
    let older = back.history(&bob, &conv, "?limit=100&before=101");
    let newer = back.history(&bob, &conv, "?limit=100");
    let mut got = common::seqs(&older["messages"]);
    got.extend(common::seqs(&newer["messages"]));
    assert_eq!(got, (1..=200).collect::<Vec<u64>>());
}

#[test]
fn a_node_behind_the_leaders_compaction_point_fetches_the_log_and_serves_again() {
    // Raft keeps about 2 × 10 entries per shard in memory: the 90 writes
    // below leave the stopped node far behind every compaction point.
    let mut c = Cluster::start_with(&["--snapshot-records", "10"]);
    let alice = c.nodes[0].login("+15550100031", "phone");
    let bob = c.nodes[1].login("+15550100032", "phone");
    let conv = c.nodes[0].direct(&alice, &bob);
    let shard = shard_of(&conv);
    c.nodes[2].kill9();
    let mut a = c.nodes[0].ws(&alice);
    // 60 KiB each: the catch-up takes two 4 MiB chunks (one fetched while
    // the other is written).
    let text = "x".repeat(60 * 1024);
    for i in 1..=90u64 {
        let seq = send_until_sent(&mut a, &conv, &format!("m{i}"), &format!("{i} {text}"));
        assert_eq!(seq, i);
    }
    let first = c.shards(0)[shard]["first_index"].as_u64().unwrap();
    assert!(
        first > 50,
        "the leader compacted its Raft log (first index {first})"
    );

    c.nodes[2].spawn();
    let back = &c.nodes[2];
    wait_caught_up(&c, 2, shard);
    let (_, stats) = back.ops_get("/stats");
    assert!(
        stats["raft_catch_ups"].as_u64().unwrap() >= 1,
        "the node caught up by fetching the log: {stats}"
    );
    let want: Vec<u64> = (1..=90).collect();
    let page = back.history(&alice, &conv, "?limit=100");
    assert_eq!(common::seqs(&page["messages"]), want);
    assert!(page["messages"][89]["body"]["text"]
        .as_str()
        .unwrap()
        .starts_with("90 "));

    // Its Raft log works again: with node 1 gone, nodes 2 and 3 are the
    // majority that takes the next write.
    c.nodes[0].kill9();
    let mut b = c.nodes[1].ws(&bob);
    assert_eq!(
        send_until_sent(&mut b, &conv, "m91", "after the catch-up"),
        91
    );
    let want: Vec<u64> = (1..=91).collect();
    assert_eq!(
        common::seqs(&c.nodes[2].history(&bob, &conv, "?limit=100")["messages"]),
        want
    );

    // Node 1 restarts from its own compaction point (Raft sees only the
    // entries after it) and still serves the whole history.
    c.nodes[0].spawn();
    let back = &c.nodes[0];
    common::wait_until("node 1 back", || {
        (back.ops_get("/readyz").0 == 200).then_some(())
    });
    let first = c.shards(0)[shard]["first_index"].as_u64().unwrap();
    assert!(
        first > 50,
        "node 1 booted from its compaction point ({first})"
    );
    assert_eq!(
        common::seqs(&back.history(&alice, &conv, "?limit=100")["messages"]),
        want
    );
}

/// Runs `chatd gen-cert` for 127.0.0.1 into `dir`; answers the cert and
/// key paths.
fn gen_cert(dir: &std::path::Path, name: &str) -> (String, String) {
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_chatd"))
        .args(["gen-cert", "--host", "127.0.0.1", "--cert"])
        .arg(&cert)
        .arg("--key")
        .arg(&key)
        .output()
        .expect("chatd gen-cert runs");
    assert!(out.status.success(), "gen-cert: {out:?}");
    let path = |p: std::path::PathBuf| p.to_str().unwrap().to_string();
    (path(cert), path(key))
}

/// Sets the value that follows `flag` in `node`'s arguments.
fn set_arg(node: &mut Server, flag: &str, value: &str) {
    let i = node.args.iter().position(|a| a == flag).expect("the flag");
    node.args[i + 1] = value.to_string();
}

#[test]
fn nodes_replicate_over_mutual_tls_and_a_node_with_a_stranger_certificate_stays_out() {
    // One self-signed certificate is every node's certificate and the
    // cluster's CA: a development setup, as PROTOCOL.md shows it.
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = gen_cert(certs.path(), "cluster");
    let tls = [
        "--peer-tls-cert",
        &cert,
        "--peer-tls-key",
        &key,
        "--peer-tls-ca",
        &cert,
    ];
    let mut c = Cluster::start_with(&tls);
    wait_balanced(&c);
    let alice = c.nodes[0].login("+15550100051", "phone");
    for n in 0..3 {
        let name = format!("via node {}", n + 1);
        assert_eq!(set_name(&c, &alice, n, &name).0, 200);
    }
    // Node 3 comes back with a certificate the others do not trust (and
    // that trusts only itself): nodes 1 and 2 refuse its links, so it
    // never hears of a leader and never says ready (its client port stays
    // closed), while the other two go on.
    let (stranger, stranger_key) = gen_cert(certs.path(), "stranger");
    c.nodes[2].kill9();
    set_arg(&mut c.nodes[2], "--peer-tls-cert", &stranger);
    set_arg(&mut c.nodes[2], "--peer-tls-key", &stranger_key);
    set_arg(&mut c.nodes[2], "--peer-tls-ca", &stranger);
    let pending = c.nodes[2].begin();
    let started = Instant::now();
    while set_name(&c, &alice, 0, "while node 3 is out").0 != 200 {
        assert!(started.elapsed() < WAIT, "nodes 1 and 2 took no write");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        pending.silent_for(Duration::from_secs(3)),
        "node 3 said ready with a certificate nobody trusts"
    );
    for n in 0..2 {
        let (_, stats) = c.nodes[n].ops_get("/stats");
        let refused = stats["raft_peer_links_refused"].as_u64().unwrap();
        assert!(refused > 0, "node {} refused no link: {stats}", n + 1);
    }
    pending.kill9();
    // With the cluster's certificate again it catches up by itself.
    c.nodes[2].kill9();
    set_arg(&mut c.nodes[2], "--peer-tls-cert", &cert);
    set_arg(&mut c.nodes[2], "--peer-tls-key", &key);
    set_arg(&mut c.nodes[2], "--peer-tls-ca", &cert);
    c.nodes[2].spawn();
    common::wait_until("node 3 serves the write made while it was out", || {
        let (status, me) = c.nodes[2].rest("GET", "/v1/me", Some(&alice.token), None);
        (status == 200 && me["name"] == "while node 3 is out").then_some(())
    });
}

#[test]
fn a_partitioned_leader_loses_its_links_acknowledges_nothing_and_rejoins_when_healed() {
    let (c, proxy) = Cluster::start_behind_proxy();
    let alice = c.nodes[0].login("+15550100061", "phone");
    let bob = c.nodes[1].login("+15550100062", "phone");
    let conv = c.nodes[0].direct(&alice, &bob);
    let shard = shard_of(&conv);
    let victim = c.leader_of(0, shard).expect("a leader") as usize - 1;
    let other = (victim + 1) % 3;
    let mut on_victim = c.nodes[victim].ws(&alice);
    assert_eq!(send_until_sent(&mut on_victim, &conv, "p1", "before"), 1);
    assert_eq!(links_up(&c, victim), (2, 2), "one link per peer, both up");
    // The network splits: the leader is alone, its TCP links torn down.
    proxy.set_cut(victim as u64 + 1, true);
    common::wait_until("the cut-off node's links down", || {
        (links_up(&c, victim) == (0, 2)).then_some(())
    });
    let event = json!({"type": "message.send", "conversation_id": conv,
        "client_msg_id": "p2", "body": {"text": "into the void"}});
    match on_victim.call(event, WAIT) {
        Err(chat_tools::client::ClientError::Remote { code, .. }) => {
            assert_eq!(code, "unavailable")
        }
        other => panic!("the cut-off leader answered {other:?}"),
    }
    // The majority elects a leader of its own and takes the writes.
    let mut on_other = c.nodes[other].ws(&bob);
    assert_eq!(send_until_sent(&mut on_other, &conv, "p3", "majority"), 2);
    let status = c.nodes[victim]
        .rest("GET", "/v1/me", Some(&alice.token), None)
        .0;
    assert_eq!(status, 503, "the minority serves no read");
    // Healed: the old leader reconnects, learns the new term and serves
    // what the majority committed (and not the write it could not commit).
    proxy.set_cut(victim as u64 + 1, false);
    common::wait_until("the healed node's links up", || {
        (links_up(&c, victim) == (2, 2)).then_some(())
    });
    common::wait_until("the healed node serves the majority's write", || {
        let h = c.nodes[victim].history(&alice, &conv, "");
        (common::seqs(&h["messages"]) == vec![1, 2]).then_some(())
    });
    for n in &c.nodes {
        let h = n.history(&bob, &conv, "");
        let texts: Vec<&str> = h["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["body"]["text"].as_str().unwrap())
            .collect();
        assert_eq!(texts, ["before", "majority"]);
    }
}

#[test]
fn a_node_started_alone_opens_its_client_port_answers_unavailable_and_serves_once_its_peers_come() {
    let peers: Vec<String> = (1..=3)
        .map(|_| format!("127.0.0.1:{}", free_port()))
        .collect();
    let mut nodes = Cluster::prepare_on(&peers, |_| Vec::new(), &[]);
    // Alone: no shard can elect a leader, yet the node opens its ports
    // (a bounded wait for leaders) and says why it cannot serve.
    let started = Instant::now();
    nodes[0].spawn();
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(30), "ready after {waited:?}");
    assert_eq!(nodes[0].ops_get("/readyz").0, 503, "no leader: not ready");
    let answer = nodes[0].rest(
        "POST",
        "/v1/auth/otp",
        None,
        Some(&json!({"phone": "+15550100071"})),
    );
    assert_eq!(answer.0, 503, "{answer:?}");
    assert_eq!(answer.1["error"]["code"], "unavailable", "{answer:?}");
    // Its peers come: the shards elect leaders and the node serves.
    let pending: Vec<_> = nodes[1..].iter_mut().map(|n| n.begin()).collect();
    for (n, p) in nodes[1..].iter_mut().zip(pending) {
        n.finish(p);
    }
    common::wait_until("the first node ready", || {
        (nodes[0].ops_get("/readyz").0 == 200).then_some(())
    });
    // Leadership moves to the preferred replicas soon after: a write
    // during a transfer may be refused, so wait for it to settle.
    let c = Cluster { nodes };
    wait_balanced(&c);
    let alice = c.nodes[0].login("+15550100071", "phone");
    let bob = c.nodes[2].login("+15550100072", "phone");
    let conv = c.nodes[0].direct(&alice, &bob);
    let mut ws = c.nodes[0].ws(&alice);
    assert_eq!(send_until_sent(&mut ws, &conv, "a1", "hello"), 1);
}

/// The erasure compaction runs on every node: a deleted message's body
/// leaves all three data directories, and every node (one of them
/// restarted) still shows it deleted.
#[test]
fn a_deleted_body_leaves_every_node_s_disk() {
    let mut c = Cluster::start_with(&["--compact-interval-seconds", "1"]);
    wait_balanced(&c);
    let alice = c.nodes[0].user("+15550100801", "alice");
    let bob = c.nodes[0].user("+15550100802", "bob");
    let conv = c.nodes[0].direct(&alice, &bob);
    let (mut a, _) = c.nodes[0].ws_synced(&alice);
    let marker = format!("zzclustered{}marker", std::process::id());
    common::send(&mut a, &conv, "m1", &format!("soon gone {marker}"));
    let markers = [marker.clone()];
    let holding = c
        .nodes
        .iter()
        .filter(|n| !common::markers_on_disk(&n.data_dir(), &markers).is_empty())
        .count();
    assert!(
        holding >= 2,
        "a majority holds the message at message.sent: {holding}"
    );
    common::send(&mut a, &conv, "m2", "stays");
    let delete = serde_json::json!({"type": "message.delete", "conversation_id": conv, "seq": 1});
    a.call(delete, common::WAIT).expect("deleted");
    let started = std::time::Instant::now();
    for n in &c.nodes {
        while !common::markers_on_disk(&n.data_dir(), &markers).is_empty() {
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "the body is still on a node's disk"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    drop(a);
    c.nodes[1].kill9();
    c.nodes[1].spawn();
    let back = &c.nodes[1];
    common::wait_until("node 2 ready", || {
        (back.ops_get("/readyz").0 == 200).then_some(())
    });
    for n in &c.nodes {
        let h = common::wait_until("history", || {
            let (status, v) = n.rest(
                "GET",
                &format!("/v1/conversations/{conv}/messages"),
                Some(&bob.token),
                None,
            );
            (status == 200).then_some(v)
        });
        assert_eq!(h["messages"][0]["deleted"], true, "{h}");
        assert_eq!(h["messages"][1]["body"]["text"], "stays", "{h}");
        assert!(common::markers_on_disk(&n.data_dir(), &markers).is_empty());
    }
}

#[test]
fn push_notifications_come_once_from_the_home_leader_skip_devices_on_other_nodes_and_survive_its_loss(
) {
    let gateway = common::gateway::Gateway::start();
    let url = gateway.url();
    let mut c = Cluster::start_with(&["--push-gateway", &url]);
    wait_balanced(&c);
    let alice = c.nodes[0].user("+15550100901", "alice");
    let bob = c.nodes[0].user("+15550100902", "bob");
    let path = format!("/v1/devices/{}/push", bob.device_id);
    let body = json!({"push_token": "tok-bob"});
    let (status, v) = c.nodes[1].rest("PUT", &path, Some(&bob.token), Some(&body));
    assert_eq!(status, 204, "{v}");
    let conv = c.nodes[0].direct(&alice, &bob);
    let leader = c.leader_of(0, shard_of(&bob.user_id)).expect("a leader") as usize - 1;
    let sender = (leader + 1) % 3;
    let (mut a, _) = c.nodes[sender].ws_synced(&alice);
    common::send(&mut a, &conv, "m1", "one");
    gateway.wait_for(1, Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(1_500));
    assert_eq!(
        gateway.received().len(),
        1,
        "one node sends: {:?}",
        gateway.received()
    );
    // Bob connected to a node that does not lead his home: not notified.
    let other = (leader + 2) % 3;
    let (mut b, _) = c.nodes[other].ws_synced(&bob);
    common::send(&mut a, &conv, "m2", "two");
    common::next_message(&mut b);
    std::thread::sleep(Duration::from_millis(1_500));
    assert_eq!(gateway.received().len(), 1, "{:?}", gateway.received());
    // Bob gone, his home's leader killed: the new leader notifies.
    drop(b);
    std::thread::sleep(Duration::from_millis(300));
    c.nodes[leader].kill9();
    let seq = send_until_sent(&mut a, &conv, "m3", "three");
    // (m2 may come first: Bob never acknowledged it.)
    let started = Instant::now();
    let n = loop {
        let got = gateway.received();
        if let Some(r) = got.iter().find(|r| r.body["notification"]["seq"] == seq) {
            break r.body["notification"].clone();
        }
        assert!(started.elapsed() < Duration::from_secs(15), "{got:?}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(n["unread"], 3, "{n}");
}
