#!/usr/bin/env python3
"""Smoke test of the benchmark ejabberd instance over XMPP-over-WebSocket.

Against a running instance (benches/ejabberd/setup + start) this:
  1. registers users A, B and C by XEP-0077 in-band registration, before auth
     (and checks a second registration of A gets <conflict/>);
  2. checks a wrong password gets a SASL <failure/>;
  3. logs A and B in (SASL PLAIN, re-<open/>, bind), sends presence;
  4. sends a 1:1 <message type='chat'> A -> B and checks B gets it, body
     escaping included; pings the server (XEP-0199);
  5. A and B join a MUC room (history maxstanzas='0'); A sends a groupchat
     message and checks both A (its reflection) and B get it;
  6. sends a chat to C while C is offline, logs C in and checks it arrives
     from offline storage with <delay xmlns='urn:xmpp:delay'/>;
  7. closes every stream with <close/>.

Needs the `websockets` package (not needed by CI):
    python3 -m venv /tmp/ejabberd-venv
    /tmp/ejabberd-venv/bin/pip install websockets
    /tmp/ejabberd-venv/bin/python benches/ejabberd/smoke.py --verbose

Exit status 0 when every check passes.
"""

import argparse
import asyncio
import base64
import secrets
import sys
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape, quoteattr

import websockets

FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"
SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
BIND = "urn:ietf:params:xml:ns:xmpp-bind"
SESSION = "urn:ietf:params:xml:ns:xmpp-session"
CLIENT = "jabber:client"
MUC = "http://jabber.org/protocol/muc"
MUC_USER = "http://jabber.org/protocol/muc#user"
DELAY = "urn:xmpp:delay"
STREAM = "http://etherx.jabber.org/streams"
TIMEOUT_S = 10.0


class SmokeError(Exception):
    pass


def q(ns, name):
    return "{%s}%s" % (ns, name)


class Conn:
    """One websocket: sends frames, receives and parses them."""

    def __init__(self, ws, label, verbose):
        self.ws = ws
        self.label = label
        self.verbose = verbose
        self.pending = []  # parsed frames received but not yet consumed

    async def send(self, frame):
        if self.verbose:
            print(f"{self.label} C> {frame}", flush=True)
        await self.ws.send(frame)

    async def recv(self, timeout=TIMEOUT_S):
        text = await asyncio.wait_for(self.ws.recv(), timeout)
        if isinstance(text, bytes):
            text = text.decode()
        if self.verbose:
            print(f"{self.label} S< {text}", flush=True)
        try:
            return ET.fromstring(text)
        except ET.ParseError as e:
            raise SmokeError(f"{self.label}: unparsable frame {text!r}: {e}")

    async def expect(self, what, pred, timeout=TIMEOUT_S):
        """Returns the first frame (pending or new) for which pred is true."""
        for i, el in enumerate(self.pending):
            if pred(el):
                return self.pending.pop(i)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            left = deadline - loop.time()
            if left <= 0:
                raise SmokeError(f"{self.label}: timed out waiting for {what}")
            try:
                el = await self.recv(left)
            except asyncio.TimeoutError:
                raise SmokeError(f"{self.label}: timed out waiting for {what}")
            if pred(el):
                return el
            self.pending.append(el)


def is_tag(ns, name):
    return lambda el: el.tag == q(ns, name)


def is_iq(iq_id):
    return lambda el: el.tag == q(CLIENT, "iq") and el.get("id") == iq_id


async def open_stream(c, domain):
    """RFC 7395 <open/>; returns the <stream:features/> element."""
    await c.send(f"<open xmlns='{FRAMING}' to='{domain}' version='1.0'/>")
    await c.expect("<open/>", is_tag(FRAMING, "open"))
    return await c.expect("<stream:features/>", is_tag(STREAM, "features"))


async def register(c, domain, user, password, want_conflict=False):
    iq_id = "reg-" + user
    await c.send(
        f"<iq type='set' id={quoteattr(iq_id)} to='{domain}'>"
        "<query xmlns='jabber:iq:register'>"
        f"<username>{escape(user)}</username><password>{escape(password)}</password>"
        "</query></iq>"
    )
    iq = await c.expect(f"register result for {user}", is_iq(iq_id))
    if want_conflict:
        err = iq.find(q(CLIENT, "error"))
        cond = err is not None and err.find("{urn:ietf:params:xml:ns:xmpp-stanzas}conflict")
        if iq.get("type") != "error" or cond is None:
            raise SmokeError(f"second registration of {user}: no <conflict/>")
    elif iq.get("type") != "result":
        raise SmokeError(f"registration of {user} failed: {ET.tostring(iq).decode()}")


def auth_frame(user, password):
    token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
    return f"<auth xmlns='{SASL}' mechanism='PLAIN'>{token}</auth>"


async def auth(c, user, password):
    """SASL PLAIN; returns True on <success/>, False on <failure/>."""
    await c.send(auth_frame(user, password))
    el = await c.expect(
        "SASL outcome", lambda e: e.tag in (q(SASL, "success"), q(SASL, "failure"))
    )
    return el.tag == q(SASL, "success")


async def bind(c, resource, features):
    if features.find(q(BIND, "bind")) is None:
        raise SmokeError(f"{c.label}: no <bind/> in features after auth")
    await c.send(
        f"<iq type='set' id='bind'><bind xmlns='{BIND}'>"
        f"<resource>{escape(resource)}</resource></bind></iq>"
    )
    iq = await c.expect("bind result", is_iq("bind"))
    jid = iq.find(f"{q(BIND, 'bind')}/{q(BIND, 'jid')}")
    if iq.get("type") != "result" or jid is None:
        raise SmokeError(f"{c.label}: bind failed")
    session = features.find(q(SESSION, "session"))
    if session is not None and session.find(q(SESSION, "optional")) is None:
        await c.send(f"<iq type='set' id='sess'><session xmlns='{SESSION}'/></iq>")
        await c.expect("session result", is_iq("sess"))
    return jid.text


async def connect(args, label):
    ws = await websockets.connect(args.url, subprotocols=["xmpp"], max_size=2**20)
    if ws.subprotocol != "xmpp":
        raise SmokeError(f"server chose subprotocol {ws.subprotocol!r}, not 'xmpp'")
    return Conn(ws, label, args.verbose)


async def login(args, label, user, password):
    """A new websocket through bind and initial presence; returns (conn, jid)."""
    c = await connect(args, label)
    await open_stream(c, args.domain)
    if not await auth(c, user, password):
        raise SmokeError(f"{label}: SASL PLAIN failed for {user}")
    features = await open_stream(c, args.domain)
    jid = await bind(c, label.lower(), features)
    await c.send("<presence/>")
    # The server reflects our own available presence back to us.
    await c.expect("own presence", lambda e: e.tag == q(CLIENT, "presence") and e.get("from") == jid)
    return c, jid


async def close(c):
    await c.send(f"<close xmlns='{FRAMING}'/>")
    try:
        await c.expect("<close/>", is_tag(FRAMING, "close"), timeout=5)
    finally:
        await c.ws.close()


def body_of(el):
    b = el.find(q(CLIENT, "body"))
    return None if b is None else b.text


def is_message(kind, body):
    return lambda e: (
        e.tag == q(CLIENT, "message") and e.get("type") == kind and body_of(e) == body
    )


async def register_users(args, users):
    c = await connect(args, "REG")
    await open_stream(c, args.domain)
    for user, password in users:
        await register(c, args.domain, user, password)
    await register(c, args.domain, users[0][0], users[0][1], want_conflict=True)
    if await auth(c, users[0][0], "wrong-" + users[0][1]):
        raise SmokeError("SASL PLAIN with a wrong password succeeded")
    await c.ws.close()


async def check_chat(a, b, b_jid, args):
    body = "hello <b> & 'quotes' \"double\" \u00e9"
    await a.send(
        f"<message type='chat' to={quoteattr(b_jid.split('/')[0])} id='chat-1'>"
        f"<body>{escape(body)}</body></message>"
    )
    m = await b.expect("B: chat from A", is_message("chat", body))
    if m.get("id") != "chat-1":
        raise SmokeError(f"chat id {m.get('id')!r} != 'chat-1'")
    await a.send(f"<iq type='get' id='ping-1' to='{args.domain}'><ping xmlns='urn:xmpp:ping'/></iq>")
    pong = await a.expect("ping result", is_iq("ping-1"))
    if pong.get("type") != "result":
        raise SmokeError("ping: no result")


async def join_room(c, room, nick):
    await c.send(
        f"<presence to='{room}/{nick}'><x xmlns='{MUC}'><history maxstanzas='0'/></x></presence>"
    )

    def self_presence(e):
        x = e.find(q(MUC_USER, "x"))
        return (
            e.tag == q(CLIENT, "presence")
            and e.get("from") == f"{room}/{nick}"
            and x is not None
            and any(s.get("code") == "110" for s in x.findall(q(MUC_USER, "status")))
        )

    await c.expect(f"self-presence in {room}", self_presence)


async def check_muc(a, b, args, tag):
    room = f"smoke-{tag}@conference.{args.domain}"
    await join_room(a, room, "alice")
    await join_room(b, room, "bob")
    body = "to the room & all <in> it"
    await a.send(
        f"<message type='groupchat' to='{room}' id='gc-1'><body>{escape(body)}</body></message>"
    )
    await a.expect("A: reflection of its groupchat", is_message("groupchat", body))
    await b.expect("B: groupchat from A", is_message("groupchat", body))


async def check_offline(args, a, c_user, c_pass):
    body = "while you were away"
    await a.send(
        f"<message type='chat' to='{c_user}@{args.domain}' id='off-1'>"
        f"<body>{escape(body)}</body></message>"
    )
    await asyncio.sleep(0.5)  # let the router store it offline
    c, _ = await login(args, "C", c_user, c_pass)
    m = await c.expect("C: offline message", is_message("chat", body))
    if m.find(q(DELAY, "delay")) is None:
        raise SmokeError("offline message without <delay xmlns='urn:xmpp:delay'/>")
    await close(c)


async def run(args):
    tag = secrets.token_hex(4)
    users = [(f"smoke-{n}-{tag}", f"pw-{n}-{tag}") for n in "abc"]
    await register_users(args, users)
    print(f"ok: registered {', '.join(u for u, _ in users)} (conflict and bad password checked)")
    a, a_jid = await login(args, "A", *users[0])
    b, b_jid = await login(args, "B", *users[1])
    print(f"ok: logged in {a_jid} and {b_jid}")
    await check_chat(a, b, b_jid, args)
    print("ok: 1:1 chat A -> B delivered; ping answered")
    await check_muc(a, b, args, tag)
    print("ok: groupchat delivered to B and reflected to A")
    await check_offline(args, a, *users[2])
    print("ok: offline message delivered to C with <delay/>")
    await close(a)
    await close(b)
    print("smoke: all checks passed")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--url", default="ws://127.0.0.1:5280/websocket")
    p.add_argument("--domain", default="loadgen.local")
    p.add_argument("--verbose", action="store_true", help="print every frame")
    args = p.parse_args()
    try:
        asyncio.run(run(args))
    except (SmokeError, OSError, websockets.WebSocketException) as e:
        print(f"smoke: FAILED: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
