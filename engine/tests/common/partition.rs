//! A TCP proxy between cluster nodes that the test can partition: node k
//! listens for peers on a private port (`--peer-listen`) while its
//! `--peers` entry is the proxy's port for k. The proxy learns which node
//! dials from the first frame (the hello) and, while either end is cut,
//! tears the connection down and refuses new ones: a real network
//! partition as the nodes' sockets see it (links lost, reconnects that
//! fail), not a node dropping its own frames.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chat_replication::{decode_frame, Frame};

const POLL: Duration = Duration::from_millis(20);
const HELLO_WAIT: Duration = Duration::from_secs(5);

/// The proxy of a three-node cluster; nodes are 1-based.
pub struct Partition {
    /// Bit k set: node k is cut off from every other node.
    cut: Arc<AtomicU8>,
    /// What each node's `--peers` entry names (the proxy's ports).
    pub public: Vec<String>,
    /// Where each node listens for peers (`--peer-listen`).
    pub private: Vec<String>,
}

impl Partition {
    /// Starts a proxy for `nodes` nodes on ephemeral loopback ports.
    pub fn start(nodes: u64) -> Partition {
        let cut = Arc::new(AtomicU8::new(0));
        let (mut public, mut private) = (Vec::new(), Vec::new());
        for node in 1..=nodes {
            let listener = TcpListener::bind("127.0.0.1:0").expect("proxy port");
            let backend = free_addr();
            public.push(listener.local_addr().unwrap().to_string());
            private.push(backend.clone());
            let cut = cut.clone();
            std::thread::spawn(move || accept_loop(listener, node, backend, cut));
        }
        Partition {
            cut,
            public,
            private,
        }
    }

    /// Cuts `node` off from the others, or heals it.
    pub fn set_cut(&self, node: u64, on: bool) {
        let bit = 1u8 << node;
        if on {
            self.cut.fetch_or(bit, Ordering::SeqCst);
        } else {
            self.cut.fetch_and(!bit, Ordering::SeqCst);
        }
    }
}

fn free_addr() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

fn is_cut(cut: &AtomicU8, a: u64, b: u64) -> bool {
    let bits = cut.load(Ordering::SeqCst);
    bits & (1 << a) != 0 || bits & (1 << b) != 0
}

fn accept_loop(listener: TcpListener, to: u64, backend: String, cut: Arc<AtomicU8>) {
    for stream in listener.incoming().map_while(Result::ok) {
        let (backend, cut) = (backend.clone(), cut.clone());
        std::thread::spawn(move || {
            let _ = relay(stream, to, &backend, &cut);
        });
    }
}

/// Reads the dialer's hello, then copies both ways until either end is
/// cut or closes.
fn relay(mut client: TcpStream, to: u64, backend: &str, cut: &Arc<AtomicU8>) -> Option<()> {
    client.set_read_timeout(Some(HELLO_WAIT)).ok()?;
    let mut first = Vec::new();
    let from = loop {
        let mut chunk = [0u8; 4096];
        let n = client.read(&mut chunk).ok().filter(|n| *n > 0)?;
        first.extend_from_slice(&chunk[..n]);
        match decode_frame(&first) {
            Ok(Some((Frame::Hello { node, .. }, _))) => break node.0,
            Ok(None) => continue,
            _ => return None,
        }
    };
    if is_cut(cut, from, to) {
        return None;
    }
    let mut server = TcpStream::connect(backend).ok()?;
    server.write_all(&first).ok()?;
    let (c2, s2) = (client.try_clone().ok()?, server.try_clone().ok()?);
    let cut2 = cut.clone();
    let back = std::thread::spawn(move || pump(s2, c2, from, to, &cut2));
    pump(client, server, from, to, cut);
    let _ = back.join();
    Some(())
}

/// Copies `src` to `dst` until either closes or the pair is cut; then
/// shuts both down.
fn pump(mut src: TcpStream, mut dst: TcpStream, a: u64, b: u64, cut: &AtomicU8) {
    let _ = src.set_read_timeout(Some(POLL));
    let mut chunk = vec![0u8; 64 * 1024];
    while !is_cut(cut, a, b) {
        match src.read(&mut chunk) {
            Ok(0) => break,
            // Bytes that arrive once the cut is set never cross it.
            Ok(_) if is_cut(cut, a, b) => break,
            Ok(n) => {
                if dst.write_all(&chunk[..n]).is_err() {
                    break;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
    let _ = src.shutdown(Shutdown::Both);
    let _ = dst.shutdown(Shutdown::Both);
}
