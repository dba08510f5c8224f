//! The ops port: `/metrics` (Prometheus), `/stats` (JSON), `/healthz`,
//! `/readyz` (503 until every shard recovered and announced, and in
//! cluster mode while a shard has no leader this node knows of).
//!
//! Lives on: core 0; it serves from before recovery until shutdown.

use std::net::SocketAddr;
use std::rc::Rc;

use chat_net::http::{Handler, Request, Response};
use chat_net::ws::WebSocket;
use hyper::Method;
use serde_json::json;

use crate::front::rest::body::json_response;
use crate::node::core::Core;
use crate::node::stats::{render_json, render_prometheus, rss_bytes};

/// The ops port. It serves from before recovery (then `core` is `None`
/// and `/readyz` answers 503) until shutdown.
pub struct Ops {
    pub core: std::cell::RefCell<Option<Rc<Core>>>,
}

/// Cluster mode: this node sees a leader for every shard (a single node
/// always does).
async fn every_shard_led(core: &Rc<Core>) -> bool {
    let all = core.all_stats().await;
    all.iter()
        .filter_map(|c| c.raft.as_ref())
        .flat_map(|r| r.replicas.iter())
        .all(|r| r.leader.is_some())
}

impl Handler for Ops {
    async fn request(&self, req: Request) -> Response {
        if req.method != Method::GET {
            return Response::error(405, "bad_request", "the ops port answers GET only");
        }
        let core = self.core.borrow().clone();
        let mut ready = core.as_ref().is_some_and(|c| c.ready.get());
        if ready && req.path == "/readyz" {
            ready = every_shard_led(core.as_ref().expect("ready has a core")).await;
        }
        match req.path.as_str() {
            "/healthz" => json_response(200, &json!({"status": "ok"})),
            "/readyz" if ready => json_response(200, &json!({"status": "ready"})),
            "/readyz" => json_response(503, &json!({"status": "recovering"})),
            "/stats" | "/metrics" if core.is_none() => {
                json_response(503, &json!({"status": "recovering"}))
            }
            "/stats" => {
                let all = core.as_ref().expect("checked above").all_stats().await;
                json_response(200, &render_json(&all, ready, rss_bytes()))
            }
            "/metrics" => {
                let all = core.as_ref().expect("checked above").all_stats().await;
                Response {
                    status: 200,
                    content_type: "text/plain; version=0.0.4",
                    body: render_prometheus(&all, rss_bytes()).into_bytes(),
                    headers: Vec::new(),
                    stream: None,
                }
            }
            _ => Response::error(
                404,
                "not_found",
                "ops paths: /metrics /stats /healthz /readyz",
            ),
        }
    }

    async fn websocket(&self, ws: WebSocket, _bearer: Option<String>, _peer: SocketAddr) {
        let (_, outbox) = ws.split(1);
        outbox.close(1008, "no WebSocket on the ops port");
    }
}
