//! The two HTTP front doors of a core: the client API (REST + WebSocket)
//! and the ops port (`/metrics`, `/stats`, `/healthz`, `/readyz`).
//!
//! Lives on: every core for the API; the ops port is served by core 0.

use std::net::SocketAddr;
use std::rc::Rc;

use chat_net::http::{ConnectionEvent, Handler, Request, Response};
use chat_net::ws::WebSocket;
use hyper::Method;
use serde_json::json;

use crate::core::Core;
use crate::rest::json_response;
use crate::stats::{render_json, render_prometheus, rss_bytes};

/// REST + WebSocket.
pub struct Api {
    pub core: Rc<Core>,
}

impl Handler for Api {
    async fn request(&self, req: Request) -> Response {
        crate::rest::handle(&self.core, req).await
    }

    async fn websocket(&self, ws: WebSocket, bearer: Option<String>, _peer: SocketAddr) {
        crate::session::run(self.core.clone(), ws, bearer).await;
    }

    fn connection_event(&self, event: ConnectionEvent) {
        if event == ConnectionEvent::Rejected {
            self.core.stats.borrow_mut().connections_rejected += 1;
        }
    }
}

/// The ops port. It serves from before recovery (then `core` is `None`
/// and `/readyz` answers 503) until shutdown.
pub struct Ops {
    pub core: std::cell::RefCell<Option<Rc<Core>>>,
}

impl Handler for Ops {
    async fn request(&self, req: Request) -> Response {
        if req.method != Method::GET {
            return Response::error(405, "bad_request", "the ops port answers GET only");
        }
        let core = self.core.borrow().clone();
        let ready = core.as_ref().is_some_and(|c| c.ready.get());
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
