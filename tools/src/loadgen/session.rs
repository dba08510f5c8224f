//! One user's connection inside a worker: connect, handshake, a writer task
//! that batches frames, a reader task that feeds the ledger and the figures.
//!
//! Lives on: one worker executor.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Instant;

use futures_util::{SinkExt, StreamExt};
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::sync::Semaphore;
use tungstenite::Message;

use super::config::TargetKind;
use super::constants::{IO_TIMEOUT, WRITE_QUEUE_FRAMES_MAX};
use super::figures::bump;
use super::target::{
    chatd_ack, chatd_auth, chatd_decode, parse_body, parse_message_id, Confirm, Inbound,
};
use super::target::{RATE_LIMITED, UNAVAILABLE};
use super::transport::{within, Ws};
use super::verdict::{ConvIx, MsgIx, Reception};
use super::worker::Shared;
use super::xmpp_session;

type WsTx = async_tungstenite::WebSocketSender<super::transport::Stream>;
type WsRx = async_tungstenite::WebSocketReceiver<super::transport::Stream>;

/// Why a connection is being closed by us (so it is not counted as a fault).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Closing {
    No,
    OnPurpose,
}

/// A live connection of one user.
///
/// Lives on: one worker executor; its writer and reader tasks hold it.
pub struct Conn {
    pub user: usize,
    tx: LocalSender<Message>,
    pub alive: Cell<bool>,
    pub closing: Cell<Closing>,
    /// One permit once the server said the backlog is done (chatd
    /// `sync.done`; other targets at once).
    synced: Semaphore,
}

impl Conn {
    /// Queues a frame; false when the connection is gone.
    pub async fn send(&self, text: String) -> bool {
        self.alive.get() && self.tx.send(Message::text(text)).await.is_ok()
    }

    /// Asks for a clean close (a Close frame after what is queued).
    pub async fn close(&self) {
        self.closing.set(Closing::OnPurpose);
        let _ = self.tx.send(Message::Close(None)).await;
    }
}

/// Connects user `u`, runs its handshake and starts its tasks; answers once
/// the server has sent the backlog.
pub async fn open(shared: &Rc<Shared>, u: usize) -> Result<Rc<Conn>, String> {
    let user = &shared.world.users[u];
    let started = Instant::now();
    let node = shared.nodes[u].get();
    let mut ws = shared
        .dialer
        .connect(shared.config.source(user.global), node)
        .await?;
    match shared.config.target {
        TargetKind::Chatd => chatd_handshake(&mut ws, &user.secret).await?,
        TargetKind::Echo => {}
        TargetKind::Xmpp => xmpp_session::handshake(&mut ws, shared, u).await?,
    }
    let (tx, rx) = local_channel::new_bounded(WRITE_QUEUE_FRAMES_MAX);
    let conn = Rc::new(Conn {
        user: u,
        tx,
        alive: Cell::new(true),
        closing: Cell::new(Closing::No),
        synced: Semaphore::new(0),
    });
    if shared.config.target != TargetKind::Chatd {
        conn.synced.signal(1);
    }
    let ix = shared.world.convs[user.conv].ix;
    shared.ledger.borrow_mut().connected(ix, user.pos);
    let (ws_tx, ws_rx) = ws.split();
    glommio::spawn_local(writer(ws_tx, rx)).detach();
    glommio::spawn_local(reader(shared.clone(), conn.clone(), ws_rx)).detach();
    within(IO_TIMEOUT, conn.synced.acquire(1))
        .await
        .ok_or("no sync.done in time")?
        .map_err(|_| "closed before sync.done")?;
    let micros = started.elapsed().as_micros() as u64;
    shared
        .figures
        .borrow_mut()
        .connect
        .saturating_record(micros.max(1));
    Ok(conn)
}

/// chatd: `auth` → `auth.ok` (the backlog and `sync.done` follow, read by
/// the reader).
async fn chatd_handshake(ws: &mut Ws, token: &str) -> Result<(), String> {
    ws.send(Message::text(chatd_auth(token)))
        .await
        .map_err(|e| format!("auth: {e}"))?;
    loop {
        let frame = within(IO_TIMEOUT, ws.next())
            .await
            .ok_or("no auth.ok in time")?
            .ok_or("closed during auth")?
            .map_err(|e| format!("auth: {e}"))?;
        match frame {
            Message::Text(text) if text.as_str().contains("\"auth.ok\"") => return Ok(()),
            Message::Text(text) => return Err(format!("auth answered {}", text.as_str())),
            Message::Close(c) => return Err(format!("closed during auth: {c:?}")),
            _ => {}
        }
    }
}

/// Writes queued frames, feeding while more are ready and flushing once.
async fn writer(mut tx: WsTx, rx: LocalReceiver<Message>) {
    let mut next = rx.recv().await;
    while let Some(frame) = next.take() {
        let closing = matches!(frame, Message::Close(_));
        if tx.feed(frame).await.is_err() {
            return;
        }
        if !closing {
            if let Some(more) = futures_lite::future::poll_once(rx.recv()).await {
                next = more;
                if next.is_some() {
                    continue;
                }
            }
        }
        if tx.flush().await.is_err() || closing {
            return;
        }
        next = rx.recv().await;
    }
}

/// Reads server frames until the connection ends.
async fn reader(shared: Rc<Shared>, conn: Rc<Conn>, mut rx: WsRx) {
    let reason = loop {
        let text = match rx.next().await {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(close))) => {
                break match close {
                    Some(c) => format!("close {}", u16::from(c.code)),
                    None => "close (no code)".to_owned(),
                }
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => break format!("error: {e}"),
            None => break "eof".to_owned(),
        };
        let inbound = match shared.config.target {
            TargetKind::Chatd => chatd_decode(text.as_str(), false),
            TargetKind::Echo => chatd_decode(text.as_str(), true),
            TargetKind::Xmpp => xmpp_session::decode(text.as_str()),
        };
        handle(&shared, &conn, inbound).await;
    };
    conn.alive.set(false);
    conn.synced.close();
    shared.connection_lost(conn.user);
    if conn.closing.get() == Closing::No && !shared.stopping.get() {
        bump(&mut shared.figures.borrow_mut().disconnects, &reason);
        if shared.failover() {
            glommio::spawn_local(super::load::reconnect(shared.clone(), conn.user)).detach();
        }
    }
}

async fn handle(shared: &Rc<Shared>, conn: &Rc<Conn>, inbound: Inbound<'_>) {
    match inbound {
        Inbound::Message { conv, seq, body } => {
            if let Some(ack) = message(shared, conn, conv.as_deref(), seq, &body) {
                conn.send(ack).await;
            }
        }
        Inbound::Accepted { id, seq } => match parse_message_id(&id) {
            Some((ix, m)) => confirm(shared, ix, m, seq),
            None => bump(
                &mut shared.figures.borrow_mut().errors,
                "client: unknown message id",
            ),
        },
        Inbound::Refused { id, code } => {
            bump(&mut shared.figures.borrow_mut().errors, &code);
            if let Some((ix, m)) = id.as_deref().and_then(parse_message_id) {
                refused(shared, ix, m, &code);
            }
        }
        Inbound::SyncDone => conn.synced.signal(1),
        Inbound::Other(kind) => bump(&mut shared.figures.borrow_mut().other_events, &kind),
        Inbound::Unparsable => bump(
            &mut shared.figures.borrow_mut().errors,
            "client: unparsable frame",
        ),
    }
}

/// The target refused message `m` of `ix` with `code`. `unavailable`
/// (a cluster between leaders) leaves its outcome unknown: a failover run
/// sends it again, as a client would. So does `rate_limited` in a failover
/// run: the message may be a resend whose first try was stored after all
/// (a refused resend says nothing of that), and a client tries again later.
fn refused(shared: &Rc<Shared>, ix: ConvIx, m: MsgIx, code: &str) {
    let retried = code == UNAVAILABLE || (code == RATE_LIMITED && shared.failover());
    if !retried {
        shared.ledger.borrow_mut().refused(ix, m);
        shared.release(ix, m);
        return;
    }
    shared.ledger.borrow_mut().unknown(ix, m);
    let Some(u) = shared.user_of(ix, m) else {
        return;
    };
    if shared.failover() {
        let intended = shared.ledger.borrow().intended_of(ix, m).unwrap_or(0);
        shared.send_failed(u, intended);
        if !shared.resend_due[u].replace(true) {
            glommio::spawn_local(super::load::resend_later(shared.clone(), u)).detach();
        }
    } else {
        shared.release(ix, m);
    }
}

/// The target accepted message `m` of `ix`: send→sent, and a window slot.
fn confirm(shared: &Shared, ix: ConvIx, m: MsgIx, seq: Option<u64>) {
    let intended = shared.ledger.borrow_mut().confirmed(ix, m, seq);
    if let Some(t) = intended {
        let now = shared.now_us();
        let mut f = shared.figures.borrow_mut();
        if shared.measured(t) {
            f.send_to_sent
                .saturating_record(now.saturating_sub(t).max(1));
        }
        if shared.measured(now) {
            f.counters.confirmed_measured += 1;
        }
        drop(f);
        if let Some(u) = shared.user_of(ix, m).filter(|_| shared.failover()) {
            shared.outages.borrow_mut().confirmed(u, t, now);
        }
        shared.release(ix, m);
    }
}

/// A copy of a message reached `conn`'s user: the ledger decides what it is;
/// answers chatd's ack frame.
fn message(
    shared: &Rc<Shared>,
    conn: &Conn,
    conv: Option<&str>,
    seq: Option<u64>,
    body: &str,
) -> Option<String> {
    let now = shared.now_us();
    let user = &shared.world.users[conn.user];
    let home = &shared.world.convs[user.conv];
    shared.figures.borrow_mut().counters.received += 1;
    let placed = parse_body(body).filter(|(ix, _, _)| *ix == home.ix);
    let wrong_conv =
        shared.config.target == TargetKind::Chatd && conv != Some(home.server_id.as_str());
    let Some((ix, m, _)) = placed.filter(|_| !wrong_conv) else {
        shared.ledger.borrow_mut().unplaceable();
        return None;
    };
    let sender = shared.ledger.borrow().sender_of(ix, m);
    if shared.confirm == Confirm::Reflection && sender == Some(user.pos) {
        confirm(shared, ix, m, seq);
        return None;
    }
    let reception = shared.ledger.borrow_mut().received(ix, m, user.pos, seq);
    if let Reception::New { intended_us } = reception {
        let mut f = shared.figures.borrow_mut();
        if shared.measured(intended_us) {
            f.send_to_receive
                .saturating_record(now.saturating_sub(intended_us).max(1));
        }
        if shared.measured(now) {
            f.counters.received_measured += 1;
        }
        drop(f);
        if shared.confirm == Confirm::Written {
            shared.release(ix, m);
        }
    }
    match (shared.config.target, seq) {
        (TargetKind::Chatd, Some(seq)) => Some(chatd_ack(&home.server_id, seq)),
        _ => None,
    }
}
