//! XMPP over WebSocket (RFC 7395) sessions for loadgen: the login of one
//! connection (in-band registration, SASL PLAIN, bind, presence, and the
//! room of a group), the frames a sender writes, and what a server frame
//! means to the ledger. The stanzas themselves are built and parsed by
//! `xmpp.rs`; the frame sequence is in benches/ejabberd/README.md.
//!
//! Lives on: one worker executor.

use std::borrow::Cow;

use futures_util::StreamExt;
use tungstenite::Message;

use super::constants::IO_TIMEOUT;
use super::target::Inbound;
use super::transport::{within, Ws};
use super::worker::Shared;
use super::xmpp::{self, Stanza};

/// The next text frame, owned (the handshake is not a hot path).
async fn next_frame(ws: &mut Ws, waiting_for: &str) -> Result<String, String> {
    loop {
        let frame = within(IO_TIMEOUT, ws.next())
            .await
            .ok_or_else(|| format!("no {waiting_for} in time"))?
            .ok_or_else(|| format!("closed while waiting for {waiting_for}"))?
            .map_err(|e| format!("waiting for {waiting_for}: {e}"))?;
        match frame {
            Message::Text(text) => return Ok(text.as_str().to_owned()),
            Message::Close(c) => {
                return Err(format!("closed while waiting for {waiting_for}: {c:?}"))
            }
            _ => {}
        }
    }
}

async fn send(ws: &mut Ws, frame: String) -> Result<(), String> {
    ws.send(Message::text(frame))
        .await
        .map_err(|e| format!("XMPP send: {e}"))
}

/// Reads frames until `pick` accepts one (Some(result)); others are skipped.
async fn expect<T>(
    ws: &mut Ws,
    waiting_for: &str,
    mut pick: impl FnMut(&Stanza<'_>) -> Option<Result<T, String>>,
) -> Result<T, String> {
    loop {
        let text = next_frame(ws, waiting_for).await?;
        let stanza = xmpp::parse(&text);
        if let Some(answer) = pick(&stanza) {
            return answer;
        }
    }
}

/// Opens the stream and waits for the features of `phase`.
async fn open_stream(ws: &mut Ws, domain: &str, phase: &str) -> Result<(), String> {
    send(ws, xmpp::open(domain)).await?;
    expect(ws, phase, |s| match s {
        Stanza::Features { .. } => Some(Ok(())),
        Stanza::Close => Some(Err("the server closed the stream".into())),
        _ => None,
    })
    .await
}

/// Registers (an existing account is fine), logs in, binds, says present,
/// and joins the user's room for groups.
pub async fn handshake(ws: &mut Ws, shared: &Shared, u: usize) -> Result<(), String> {
    let user = &shared.world.users[u];
    let domain = &shared.config.xmpp_domain;
    let name = user.address.split('@').next().unwrap_or_default();
    open_stream(ws, domain, "stream features").await?;
    send(ws, xmpp::register("reg", name, &user.secret)).await?;
    expect(ws, "registration answer", |s| match s {
        Stanza::IqResult { id, .. } if id == "reg" => Some(Ok(())),
        Stanza::IqError { id, condition } if id == "reg" => Some(match condition.as_ref() {
            "conflict" => Ok(()),
            other => Err(format!("registration refused: {other}")),
        }),
        _ => None,
    })
    .await?;
    send(ws, xmpp::auth_plain(name, &user.secret)).await?;
    expect(ws, "SASL answer", |s| match s {
        Stanza::Success => Some(Ok(())),
        Stanza::Failure(why) => Some(Err(format!("SASL failure: {why}"))),
        _ => None,
    })
    .await?;
    open_stream(ws, domain, "bind feature").await?;
    send(ws, xmpp::bind("bind", "lg")).await?;
    expect(ws, "bind result", |s| match s {
        Stanza::IqResult { id, .. } if id == "bind" => Some(Ok(())),
        Stanza::IqError { id, condition } if id == "bind" => {
            Some(Err(format!("bind refused: {condition}")))
        }
        _ => None,
    })
    .await?;
    send(ws, xmpp::presence()).await?;
    let conv = &shared.world.convs[user.conv];
    if conv.members.len() > 2 {
        let me = format!("{}/u{}", conv.server_id, user.global);
        send(ws, xmpp::join_room(&me)).await?;
        expect(ws, "room join", |s| match s {
            Stanza::Presence { from, kind } if *from == me => Some(match kind.as_deref() {
                Some("error") => Err(format!("joining {me} failed")),
                _ => Ok(()),
            }),
            _ => None,
        })
        .await?;
    }
    Ok(())
}

/// What a server frame means to loadgen.
pub fn decode(text: &str) -> Inbound<'_> {
    match xmpp::parse(text) {
        Stanza::Message {
            error: Some(code),
            id,
            ..
        } => Inbound::Refused { id, code },
        Stanza::Message {
            body: Some(body),
            kind,
            ..
        } if kind == "chat" || kind == "groupchat" => Inbound::Message {
            conv: None,
            seq: None,
            body,
        },
        Stanza::Message { .. } => Inbound::Other(Cow::Borrowed("message without body")),
        Stanza::IqError { condition, .. } => Inbound::Refused {
            id: None,
            code: condition,
        },
        Stanza::IqResult { .. } => Inbound::Other(Cow::Borrowed("iq result")),
        Stanza::Presence { .. } => Inbound::Other(Cow::Borrowed("presence")),
        Stanza::Close => Inbound::Other(Cow::Borrowed("close")),
        Stanza::Other(name) if name.is_empty() => Inbound::Unparsable,
        Stanza::Other(name) => Inbound::Other(name),
        Stanza::Open | Stanza::Features { .. } | Stanza::Success | Stanza::Failure(_) => {
            Inbound::Other(Cow::Borrowed("stream"))
        }
    }
}

/// User `u`'s message `id` with `body`: to its peer (1:1) or its room.
pub fn send_frame(shared: &Shared, u: usize, id: &str, body: &str) -> String {
    let user = &shared.world.users[u];
    let conv = &shared.world.convs[user.conv];
    if conv.members.len() > 2 {
        return xmpp::groupchat(&conv.server_id, id, body);
    }
    let peer = conv
        .members
        .iter()
        .map(|m| &shared.world.users[*m])
        .find(|p| p.pos != user.pos)
        .expect("a direct conversation has two members");
    xmpp::chat(&peer.address, id, body)
}

/// XEP-0199 ping (the heartbeat of idle XMPP connections).
pub fn ping_frame() -> String {
    xmpp::ping("hb")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_frames_map_to_what_the_ledger_needs() {
        let chat = "<message xmlns='jabber:client' to='b@x' from='a@x/lg' type='chat' id='r.1.2'><body>lg 1 2 3 xx</body></message>";
        assert_eq!(
            decode(chat),
            Inbound::Message {
                conv: None,
                seq: None,
                body: "lg 1 2 3 xx".into()
            }
        );
        let bounced = "<message from='b@x' type='error' id='r.1.3'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>";
        assert_eq!(
            decode(bounced),
            Inbound::Refused {
                id: Some("r.1.3".into()),
                code: "service-unavailable".into()
            }
        );
        let subject = "<message from='room@conference.x' type='groupchat'><subject/></message>";
        assert!(matches!(decode(subject), Inbound::Other(_)));
        assert_eq!(
            decode("<presence from='a@x/lg'/>"),
            Inbound::Other("presence".into())
        );
        assert_eq!(decode("<message"), Inbound::Unparsable);
    }
}
