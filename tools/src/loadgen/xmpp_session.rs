//! XMPP over WebSocket (RFC 7395) sessions: placeholder until wired.

use std::borrow::Cow;

use super::target::Inbound;
use super::transport::Ws;
use super::worker::Shared;

pub async fn handshake(_ws: &mut Ws, _shared: &Shared, _u: usize) -> Result<(), String> {
    Err("XMPP target not wired yet".into())
}

pub fn decode(_text: &str) -> Inbound<'_> {
    Inbound::Other(Cow::Borrowed("xmpp"))
}

pub fn send_frame(_shared: &Shared, _u: usize, _id: &str, _body: &str) -> String {
    String::new()
}

pub fn ping_frame() -> String {
    String::new()
}
