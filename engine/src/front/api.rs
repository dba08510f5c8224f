//! The client API's front door on a core: REST requests and WebSocket
//! sessions.
//!
//! Lives on: every core.

use std::net::SocketAddr;
use std::rc::Rc;

use chat_net::http::{ConnectionEvent, Handler, Request, Response};
use chat_net::ws::WebSocket;

use crate::node::core::Core;

/// REST + WebSocket.
pub struct Api {
    pub core: Rc<Core>,
}

impl Handler for Api {
    async fn request(&self, req: Request) -> Response {
        crate::front::rest::handle(&self.core, req).await
    }

    async fn websocket(&self, ws: WebSocket, bearer: Option<String>, _peer: SocketAddr) {
        crate::front::ws::run(self.core.clone(), ws, bearer).await;
    }

    fn connection_event(&self, event: ConnectionEvent) {
        if event == ConnectionEvent::Rejected {
            self.core.stats.borrow_mut().connections_rejected += 1;
        }
    }
}
