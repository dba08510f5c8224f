#!/usr/bin/env python3
"""chatd protocol v1 conformance suite: an independent client, written from
the contract documents only (shared PROTOCOL.md and docs/PROTOCOL.md), not
from the server's code.

Standard library only (Python 3.11). Usage:

    python3 tools/conformance/conformance.py --http http://127.0.0.1:PORT \
        --otp-file PATH [--only SUBSTRING] [--list] [-v]

The server must run with `--otp-sink file:PATH` and default limits. Prints
`ok NAME` or `FAIL NAME: why` per check, then a summary; exits 0 only when
every check passed. Every wait is bounded; every run uses fresh random phone
numbers, so it can run again and again against one server.
"""

import argparse
import base64
import collections
import hashlib
import http.client
import json
import os
import random
import socket
import struct
import sys
import threading
import time
import traceback
import urllib.parse

WAIT = 10.0  # the longest any single expectation waits
QUIET = 0.5  # how long "nothing arrives" is watched for
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class Fail(Exception):
    """A check's expectation was not met."""


def expect(cond, msg):
    if not cond:
        raise Fail(msg)


def eq(got, want, what):
    if got != want:
        raise Fail(f"{what}: expected {want!r}, got {got!r}")


def short(v, n=300):
    s = v if isinstance(v, str) else json.dumps(v, separators=(",", ":"))
    return s if len(s) <= n else s[:n] + "..."


# ---------------------------------------------------------------- HTTP ----


class Http:
    def __init__(self, base):
        u = urllib.parse.urlsplit(base)
        if u.scheme != "http":
            raise SystemExit(f"--http must be an http:// URL, got {base}")
        self.host = u.hostname
        self.port = u.port or 80

    def request(self, method, path, token=None, body=None, raw=None, headers=None):
        """Answers (status, parsed JSON or None, raw text, headers)."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=WAIT)
        h = {"Connection": "close"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        if raw is not None:
            data = raw if isinstance(raw, bytes) else raw.encode()
            h.setdefault("Content-Type", "application/json")
        if token is not None:
            h["Authorization"] = f"Bearer {token}"
        if headers:
            h.update(headers)
        try:
            conn.request(method, path, body=data, headers=h)
            resp = conn.getresponse()
            text = resp.read().decode("utf-8", "replace")
            hdrs = {k.lower(): v for k, v in resp.getheaders()}
            status = resp.status
        finally:
            conn.close()
        parsed = None
        if text:
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = None
        return status, parsed, text, hdrs


def raw_request(http_, method, path, token=None, data=None, headers=None):
    """Answers (status, body bytes, headers): for binary bodies (media)."""
    conn = http.client.HTTPConnection(http_.host, http_.port, timeout=WAIT)
    h = {"Connection": "close"}
    if token is not None:
        h["Authorization"] = f"Bearer {token}"
    h.update(headers or {})
    try:
        conn.request(method, path, body=data, headers=h)
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, body, {k.lower(): v for k, v in resp.getheaders()}
    finally:
        conn.close()


def assert_status(resp, status, what):
    got, body, text, _ = resp
    if got != status:
        raise Fail(f"{what}: expected HTTP {status}, got {got} {short(text)}")
    return body


def assert_error(resp, status, code, what):
    """PROTOCOL.md REST: HTTP status + {"error":{"code":CODE,"message":TEXT}};
    rate_limited carries "retry_after_ms"."""
    got, body, text, _ = resp
    if got != status:
        raise Fail(f"{what}: expected HTTP {status} {code}, got {got} {short(text)}")
    expect(isinstance(body, dict), f"{what}: error body is not a JSON object: {short(text)}")
    err = body.get("error")
    expect(isinstance(err, dict), f"{what}: no `error` object: {short(text)}")
    eq(err.get("code"), code, f"{what}: error.code")
    expect(isinstance(err.get("message"), str), f"{what}: error.message is not a string: {short(text)}")
    extra_top = set(body) - {"error", "retry_after_ms"}
    expect(not extra_top, f"{what}: unexpected top-level fields {sorted(extra_top)}: {short(text)}")
    if code == "rate_limited":
        ra = err.get("retry_after_ms", body.get("retry_after_ms"))
        expect(isinstance(ra, int) and not isinstance(ra, bool) and ra >= 0,
               f"{what}: rate_limited without a numeric retry_after_ms: {short(text)}")
    return err


# ----------------------------------------------------------- WebSocket ----


class Timeout(Exception):
    pass


class WsClosed(Exception):
    def __init__(self, code, reason):
        super().__init__(f"closed code={code} reason={reason!r}")
        self.code = code
        self.reason = reason


class HandshakeRefused(Exception):
    def __init__(self, status, text):
        super().__init__(f"upgrade refused: HTTP {status} {short(text)}")
        self.status = status
        self.text = text


TYPE_NOT_FIRST = []  # frames whose first field was not "type" (contract: "field `type` first")
SERVER_MASKED = []  # server frames that were masked (RFC 6455 5.1 forbids it)


class Ws:
    """A minimal RFC 6455 client: masked client frames; text, binary,
    fragmented messages, ping/pong and close from the server."""

    def __init__(self, http_, token=None, path="/v1/ws"):
        self.sock = socket.create_connection((http_.host, http_.port), timeout=WAIT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {path} HTTP/1.1",
            f"Host: {http_.host}:{http_.port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
        ]
        if token is not None:
            lines.append(f"Authorization: Bearer {token}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        buf = b""
        deadline = time.monotonic() + WAIT
        while b"\r\n\r\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0:
                self.sock.close()
                raise Fail("no WebSocket upgrade answer within 10 s")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                self.sock.close()
                raise HandshakeRefused(0, buf.decode("latin-1"))
            buf += chunk
        head, _, rest = buf.partition(b"\r\n\r\n")
        head_lines = head.decode("latin-1").split("\r\n")
        parts = head_lines[0].split(" ", 2)
        status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        headers = {}
        for line in head_lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        if status != 101:
            self.sock.close()
            raise HandshakeRefused(status, head.decode("latin-1") + "\r\n\r\n" + rest.decode("latin-1"))
        want = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        if headers.get("sec-websocket-accept") != want:
            self.sock.close()
            raise Fail(f"bad Sec-WebSocket-Accept {headers.get('sec-websocket-accept')!r}, want {want!r}")
        expect("websocket" in headers.get("upgrade", "").lower(), f"101 without Upgrade: websocket: {headers}")
        self.buf = bytearray(rest)
        self.pending = collections.deque()
        self.frag = None  # (opcode, bytearray) while a fragmented message arrives
        self.closed = None  # WsClosed once the server closed
        self.close_sent = False
        self.pongs = collections.deque()  # payloads of pong frames
        self.refs = 0

    # -- frames
    def send_frame(self, opcode, payload=b"", fin=True):
        if isinstance(payload, str):
            payload = payload.encode()
        b0 = (0x80 if fin else 0) | opcode
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", b0, 0x80 | n)
        elif n < 65536:
            head = struct.pack("!BBH", b0, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", b0, 0x80 | 127, n)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload)) if n < 4096 else _mask_fast(payload, mask)
        self.sock.settimeout(WAIT)
        self.sock.sendall(head + mask + masked)

    def send_text(self, text):
        self.send_frame(0x1, text)

    def send(self, obj):
        self.send_text(json.dumps(obj))

    def close(self, code=1000):
        try:
            if not self.close_sent and self.closed is None:
                self.close_sent = True
                self.send_frame(0x8, struct.pack("!H", code))
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass

    def _parse_one(self):
        """One complete frame from the buffer, or None."""
        b = self.buf
        if len(b) < 2:
            return None
        b0, b1 = b[0], b[1]
        n = b1 & 0x7F
        pos = 2
        if n == 126:
            if len(b) < 4:
                return None
            n = struct.unpack_from("!H", b, 2)[0]
            pos = 4
        elif n == 127:
            if len(b) < 10:
                return None
            n = struct.unpack_from("!Q", b, 2)[0]
            pos = 10
        mask = None
        if b1 & 0x80:
            if len(b) < pos + 4:
                return None
            mask = bytes(b[pos:pos + 4])
            pos += 4
        if len(b) < pos + n:
            return None
        payload = bytes(b[pos:pos + n])
        del b[:pos + n]
        if mask is not None:
            SERVER_MASKED.append(b0 & 0x0F)
            payload = _mask_fast(payload, mask)
        return bool(b0 & 0x80), b0 & 0x0F, payload

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise Timeout()
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(262144)
        except socket.timeout:
            raise Timeout()
        except ConnectionResetError:
            self.closed = WsClosed(None, "connection reset (no close frame)")
            raise self.closed
        if not chunk:
            self.closed = WsClosed(None, "EOF without a close frame")
            raise self.closed
        self.buf += chunk

    def _next_message(self, deadline, until_pong=False):
        """The next data message's bytes (raises Timeout / WsClosed); with
        until_pong, None as soon as a pong frame arrives."""
        if self.closed is not None:
            raise self.closed
        while True:
            frame = self._parse_one()
            if frame is None:
                self._fill(deadline)
                continue
            fin, op, payload = frame
            if op == 0x8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                reason = payload[2:].decode("utf-8", "replace")
                if not self.close_sent:
                    try:
                        self.close_sent = True
                        self.send_frame(0x8, payload[:2])
                    except OSError:
                        pass
                self.closed = WsClosed(code, reason)
                try:
                    self.sock.close()
                except OSError:
                    pass
                raise self.closed
            if op == 0x9:
                try:
                    self.send_frame(0xA, payload)
                except OSError:
                    pass
                continue
            if op == 0xA:
                self.pongs.append(payload)
                if until_pong:
                    return None
                continue
            if op in (0x1, 0x2):
                if fin:
                    return payload
                self.frag = (op, bytearray(payload))
                continue
            if op == 0x0:
                if self.frag is None:
                    raise Fail("server sent a continuation frame with no message started")
                self.frag[1].extend(payload)
                if fin:
                    data = bytes(self.frag[1])
                    self.frag = None
                    return data
                continue
            raise Fail(f"server sent a frame with reserved opcode {op}")

    def _read_event(self, deadline):
        data = self._next_message(deadline)
        try:
            text = data.decode("utf-8")
            ev = json.loads(text)
        except ValueError:
            raise Fail(f"server sent a frame that is not JSON: {short(data.decode('latin-1'))}")
        if not isinstance(ev, dict):
            raise Fail(f"server sent JSON that is not an object: {short(text)}")
        if next(iter(ev), None) != "type":
            TYPE_NOT_FIRST.append(text)
        return ev

    # -- events
    def recv(self, timeout=WAIT):
        """The next event, or None when none arrives in time."""
        if self.pending:
            return self.pending.popleft()
        try:
            return self._read_event(time.monotonic() + timeout)
        except Timeout:
            return None

    def find(self, match, timeout=WAIT):
        """The first event satisfying match(ev) (others are kept for later),
        or None after timeout. Raises WsClosed if the server closes first."""
        for i, ev in enumerate(self.pending):
            if match(ev):
                del self.pending[i]
                return ev
        deadline = time.monotonic() + timeout
        while True:
            try:
                ev = self._read_event(deadline)
            except Timeout:
                return None
            if match(ev):
                return ev
            self.pending.append(ev)

    def expect(self, ty, what, timeout=WAIT, **fields):
        def match(ev):
            return ev.get("type") == ty and all(ev.get(k) == v for k, v in fields.items())
        try:
            ev = self.find(match, timeout)
        except WsClosed as e:
            raise Fail(f"{what}: connection closed ({e}) while waiting for {ty} {fields or ''}; got before: {self._seen()}")
        if ev is None:
            raise Fail(f"{what}: no {ty} {short(fields) if fields else ''} within {timeout:g} s; got instead: {self._seen()}")
        return ev

    def expect_none(self, ty, what, timeout=QUIET, **fields):
        def match(ev):
            return ev.get("type") == ty and all(ev.get(k) == v for k, v in fields.items())
        try:
            ev = self.find(match, timeout)
        except WsClosed:
            ev = None
        if ev is not None:
            raise Fail(f"{what}: unexpected {short(ev)}")

    def expect_close(self, what, timeout=WAIT):
        """Reads until the server closes; answers the close code. Events
        before the close stay in `pending`."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.pending.append(self._read_event(deadline))
            except Timeout:
                raise Fail(f"{what}: not closed within {timeout:g} s; got: {self._seen()}")
            except WsClosed as e:
                return e.code

    def drain(self, timeout=QUIET):
        """Everything that arrives within timeout (plus what is pending)."""
        out = list(self.pending)
        self.pending.clear()
        deadline = time.monotonic() + timeout
        while True:
            try:
                out.append(self._read_event(deadline))
            except (Timeout, WsClosed):
                return out

    def call(self, event, answer, what, timeout=WAIT):
        """Sends event with a fresh ref; answers the event of type `answer`
        (or an error) that echoes the ref."""
        self.refs += 1
        ref = f"r{self.refs}-{random.randrange(10**6)}"
        event = dict(event)
        event["ref"] = ref
        self.send(event)
        try:
            ev = self.find(lambda e: e.get("ref") == ref and e.get("type") in (answer, "error"), timeout)
        except WsClosed as e:
            raise Fail(f"{what}: connection closed ({e}) awaiting {answer} for ref {ref}")
        if ev is None:
            raise Fail(f"{what}: no {answer} (or error) echoing ref {ref} within {timeout:g} s; got: {self._seen()}")
        return ev

    def call_ok(self, event, answer, what, timeout=WAIT):
        ev = self.call(event, answer, what, timeout)
        if ev.get("type") != answer:
            raise Fail(f"{what}: expected {answer}, got {short(ev)}")
        return ev

    def call_error(self, event, code, what, timeout=WAIT):
        ev = self.call(event, "error", what, timeout)
        assert_ws_error(ev, code, what)
        return ev

    def _seen(self):
        return short([e.get("type") for e in self.pending], 200) if self.pending else "nothing"


def _mask_fast(payload, mask):
    n = len(payload)
    m = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(m, "big")).to_bytes(n, "big") if n else b""


def assert_ws_error(ev, code, what):
    """PROTOCOL.md: {"type":"error","ref","code","message"}."""
    eq(ev.get("type"), "error", f"{what}: event type")
    eq(ev.get("code"), code, f"{what}: error code ({short(ev)})")
    expect(isinstance(ev.get("message"), str), f"{what}: error.message is not a string: {short(ev)}")
    if code == "rate_limited":
        ra = ev.get("retry_after_ms")
        expect(isinstance(ra, int) and not isinstance(ra, bool) and ra >= 0,
               f"{what}: rate_limited without a numeric retry_after_ms: {short(ev)}")


def expect_refused(w, what):
    """An `error unauthorized` event, then the socket closed with 4401."""
    ev = w.expect("error", what)
    assert_ws_error(ev, "unauthorized", what)
    eq(w.expect_close(what), 4401, "close code")


# ------------------------------------------------------------- context ----


class Session:
    def __init__(self, phone, user_id, device_id, token):
        self.phone = phone
        self.user_id = user_id
        self.device_id = device_id
        self.token = token


class Ctx:
    def __init__(self, base, otp_file, verbose):
        self.http = Http(base)
        self.otp_file = otp_file
        self.verbose = verbose
        self.rng = random.SystemRandom()
        self.phones = set()
        self.sockets = []

    # -- REST
    def rest(self, method, path, token=None, body=None, **kw):
        r = self.http.request(method, path, token=token, body=body, **kw)
        if self.verbose:
            print(f"    {method} {path} {short(body) if body is not None else ''} -> {r[0]} {short(r[2], 200)}")
        return r

    def ok(self, method, path, token=None, body=None, status=200, what=None):
        return assert_status(self.rest(method, path, token, body), status, what or f"{method} {path}")

    # -- accounts
    def phone(self):
        while True:
            p = "+1555" + "".join(str(self.rng.randrange(10)) for _ in range(7))
            if p not in self.phones:
                self.phones.add(p)
                return p

    def otp_offset(self):
        try:
            return os.path.getsize(self.otp_file)
        except OSError:
            return 0

    def wait_code(self, phone, offset, timeout=WAIT):
        deadline = time.monotonic() + timeout
        while True:
            try:
                with open(self.otp_file, "rb") as f:
                    f.seek(offset)
                    data = f.read().decode("utf-8", "replace")
            except OSError:
                data = ""
            code = None
            for line in data.splitlines():
                parts = line.split()
                if len(parts) == 2 and parts[0] == phone:
                    code = parts[1]
            if code is not None:
                return code
            if time.monotonic() > deadline:
                raise Fail(f"no OTP code for {phone} in {self.otp_file} within {timeout:g} s")
            time.sleep(0.02)

    def request_code(self, phone):
        off = self.otp_offset()
        r = self.rest("POST", "/v1/auth/otp", body={"phone": phone})
        assert_status(r, 202, f"POST /v1/auth/otp {phone}")
        return self.wait_code(phone, off)

    def verify(self, phone, code, device_name="conformance"):
        r = self.rest("POST", "/v1/auth/verify", body={"phone": phone, "code": code, "device_name": device_name})
        body = assert_status(r, 200, f"POST /v1/auth/verify {phone}")
        for k in ("user_id", "device_id", "token"):
            expect(isinstance(body.get(k), str) and body[k], f"verify answer lacks string {k}: {short(body)}")
        return Session(phone, body["user_id"], body["device_id"], body["token"])

    def login(self, phone=None, device_name="conformance"):
        phone = phone or self.phone()
        return self.verify(phone, self.request_code(phone), device_name)

    def user(self, name=None):
        s = self.login()
        if name:
            self.ok("PATCH", "/v1/me", s.token, {"name": name})
        return s

    # -- conversations
    def direct(self, a, b):
        r = self.rest("POST", "/v1/conversations", a.token, {"kind": "direct", "peer": b.user_id})
        expect(r[0] in (200, 201), f"create direct: HTTP {r[0]} {short(r[2])}")
        return r[1]["conversation_id"]

    def group(self, admin, members, name="conformance group"):
        body = self.ok("POST", "/v1/conversations", admin.token,
                       {"kind": "group", "name": name, "members": [m.user_id for m in members]}, status=201)
        return body["conversation_id"]

    def history(self, s, conv, query=""):
        return self.ok("GET", f"/v1/conversations/{conv}/messages{query}", s.token)

    def conv_row(self, s, conv):
        rows = self.ok("GET", "/v1/conversations", s.token)["conversations"]
        for row in rows:
            if row.get("conversation_id") == conv:
                return row
        raise Fail(f"conversation {conv} not in GET /v1/conversations of {s.user_id}: {short(rows)}")

    # -- sockets
    def ws(self, s, header=True):
        """A WebSocket authenticated as s (header auth); answers it after auth.ok."""
        w = Ws(self.http, s.token if header else None)
        self.sockets.append(w)
        if not header:
            w.send({"type": "auth", "token": s.token})
        ok = w.expect("auth.ok", f"auth of {s.user_id}/{s.device_id}")
        eq(ok.get("user_id"), s.user_id, "auth.ok user_id")
        eq(ok.get("device_id"), s.device_id, "auth.ok device_id")
        return w

    def ws_synced(self, s, header=True):
        """Connects and reads up to sync.done; answers (ws, synced message.new list)."""
        w = self.ws(s, header)
        synced = []
        deadline = time.monotonic() + WAIT
        while True:
            try:
                ev = w.recv(max(0.0, deadline - time.monotonic()))
            except WsClosed as e:
                raise Fail(f"closed before sync.done: {e}")
            if ev is None:
                raise Fail(f"no sync.done within {WAIT:g} s for {s.user_id}/{s.device_id}")
            if ev.get("type") == "sync.done":
                return w, synced
            if ev.get("type") == "message.new":
                synced.append(ev)
            else:
                w.pending.append(ev)  # keep other events (kept order is fine for tests)
                if len(w.pending) > 1000:
                    raise Fail("too many events before sync.done")

    def raw_ws(self, token=None):
        w = Ws(self.http, token)
        self.sockets.append(w)
        return w

    def close_all(self):
        for w in self.sockets:
            w.close()
        self.sockets = []


def send_text(w, conv, text, cmid=None, what="message.send", **extra):
    ev = {"type": "message.send", "conversation_id": conv,
          "client_msg_id": cmid or f"c{random.randrange(10**12)}", "body": {"text": text}}
    ev.update(extra)
    return w.call_ok(ev, "message.sent", what)


MESSAGE_FIELDS = ("conversation_id", "seq", "message_id", "sender_id", "sender_device", "ts", "body")


def assert_message(m, what, conv=None, seq=None, sender=None, text=None):
    """The `message` object of PROTOCOL.md."""
    for k in MESSAGE_FIELDS:
        expect(k in m, f"{what}: message lacks {k}: {short(m)}")
    for k in ("conversation_id", "message_id", "sender_id", "sender_device"):
        expect(isinstance(m[k], str), f"{what}: {k} is not a string: {short(m)}")
    expect(is_int(m["seq"]) and m["seq"] >= 1, f"{what}: seq is not a positive integer: {short(m)}")
    expect(is_int(m["ts"]), f"{what}: ts is not an integer (ms): {short(m)}")
    now_ms = time.time() * 1000
    expect(abs(m["ts"] - now_ms) < 3_600_000, f"{what}: ts {m['ts']} is not server time in ms (now {now_ms:.0f})")
    expect(isinstance(m["body"], dict) and len(m["body"]) == 1 and
           ("text" in m["body"] or "ciphertext" in m["body"]),
           f"{what}: body is not {{text}} or {{ciphertext}}: {short(m)}")
    if conv is not None:
        eq(m["conversation_id"], conv, f"{what}: conversation_id")
    if seq is not None:
        eq(m["seq"], seq, f"{what}: seq")
    if sender is not None:
        eq(m["sender_id"], sender.user_id, f"{what}: sender_id")
        eq(m["sender_device"], sender.device_id, f"{what}: sender_device")
    if text is not None:
        eq(m["body"], {"text": text}, f"{what}: body")


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def seqs(msgs):
    return [m.get("seq") for m in msgs]


def poll(what, probe, timeout=WAIT):
    deadline = time.monotonic() + timeout
    last = None
    while True:
        ok, last = probe()
        if ok:
            return last
        if time.monotonic() > deadline:
            raise Fail(f"{what}: not within {timeout:g} s (last: {short(last) if last is not None else None})")
        time.sleep(0.05)


# -------------------------------------------------------------- checks ----

CHECKS = []


def check(name):
    def deco(fn):
        CHECKS.append((name, fn))
        return fn
    return deco


# ---- auth


@check("otp.request_202_and_sink")
def _(c):
    phone = c.phone()
    off = c.otp_offset()
    r = c.rest("POST", "/v1/auth/otp", body={"phone": phone})
    t0 = time.monotonic()
    body = assert_status(r, 202, "POST /v1/auth/otp")
    eq(body, {"expires_in": 300}, "OTP answer")
    code = c.wait_code(phone, off, timeout=WAIT)
    took = time.monotonic() - t0
    expect(len(code) == 6 and code.isdigit(), f"OTP code is not 6 digits: {code!r}")
    expect(took <= 1.0, f"OTP code reached the sink after {took:.2f} s (contract: within 1 s of the 202)")


@check("otp.invalid_phone_400")
def _(c):
    for phone in ("15551234567", "+0155512345", "+1", "+1555abc4567", "+1234567890123456", ""):
        assert_error(c.rest("POST", "/v1/auth/otp", body={"phone": phone}), 400, "bad_request", f"phone {phone!r}")
    assert_error(c.rest("POST", "/v1/auth/otp", body={}), 400, "bad_request", "no phone")
    assert_error(c.rest("POST", "/v1/auth/otp", raw="{not json"), 400, "bad_request", "body not JSON")
    assert_error(c.rest("POST", "/v1/auth/otp", raw="[1,2]"), 400, "bad_request", "body not an object")
    assert_error(c.rest("POST", "/v1/auth/otp", body={"phone": 15551234567}), 400, "bad_request", "phone a number")


@check("otp.sixth_request_429")
def _(c):
    phone = c.phone()
    for i in range(5):
        assert_status(c.rest("POST", "/v1/auth/otp", body={"phone": phone}), 202, f"OTP request {i + 1}")
    assert_error(c.rest("POST", "/v1/auth/otp", body={"phone": phone}), 429, "rate_limited", "6th OTP request in 10 min")


@check("otp.new_request_replaces_code")
def _(c):
    phone = c.phone()
    old = c.request_code(phone)
    new = c.request_code(phone)
    if old != new:
        assert_error(c.rest("POST", "/v1/auth/verify", body={"phone": phone, "code": old, "device_name": "x"}),
                     401, "unauthorized", "verify with the replaced code")
    c.verify(phone, new)


@check("verify.shape_and_first_verify_creates_user")
def _(c):
    phone = c.phone()
    code = c.request_code(phone)
    s = c.verify(phone, code, "laptop")
    me = c.ok("GET", "/v1/me", s.token)
    eq(me.get("user_id"), s.user_id, "/v1/me user_id")
    eq(me.get("phone"), phone, "/v1/me phone")
    ids = [d.get("device_id") for d in me.get("devices", [])]
    eq(ids, [s.device_id], "devices of a new user")


@check("verify.wrong_code_401")
def _(c):
    phone = c.phone()
    code = c.request_code(phone)
    wrong = f"{(int(code) + 1) % 1000000:06d}"
    assert_error(c.rest("POST", "/v1/auth/verify", body={"phone": phone, "code": wrong, "device_name": "x"}),
                 401, "unauthorized", "wrong code")
    c.verify(phone, code)  # the right code still works after one wrong try
    other = c.phone()
    assert_error(c.rest("POST", "/v1/auth/verify", body={"phone": other, "code": "123456", "device_name": "x"}),
                 401, "unauthorized", "code for a phone that never asked")


@check("verify.single_use_401")
def _(c):
    phone = c.phone()
    code = c.request_code(phone)
    c.verify(phone, code)
    assert_error(c.rest("POST", "/v1/auth/verify", body={"phone": phone, "code": code, "device_name": "x"}),
                 401, "unauthorized", "second use of a code")


@check("verify.sixth_try_429")
def _(c):
    phone = c.phone()
    code = c.request_code(phone)
    wrong = f"{(int(code) + 1) % 1000000:06d}"
    for i in range(5):
        assert_error(c.rest("POST", "/v1/auth/verify", body={"phone": phone, "code": wrong, "device_name": "x"}),
                     401, "unauthorized", f"wrong try {i + 1}")
    assert_error(c.rest("POST", "/v1/auth/verify", body={"phone": phone, "code": code, "device_name": "x"}),
                 429, "rate_limited", "6th try on one code (with the right code)")


@check("verify.each_verify_links_new_device")
def _(c):
    phone = c.phone()
    a = c.login(phone, "phone")
    b = c.login(phone, "laptop")
    eq(b.user_id, a.user_id, "second verify's user_id")
    expect(b.device_id != a.device_id, f"second verify reused device {a.device_id}")
    expect(b.token != a.token, "second verify reused the token")
    for s in (a, b):
        me = c.ok("GET", "/v1/me", s.token)
        devs = me.get("devices")
        expect(isinstance(devs, list), f"devices is not a list: {short(me)}")
        eq(sorted(d.get("device_id") for d in devs), sorted([a.device_id, b.device_id]), "devices")
        for d in devs:
            for k in ("device_id", "name", "created"):
                expect(k in d, f"device lacks {k} (docs/PROTOCOL.md GET /v1/me): {short(d)}")
            expect(is_int(d["created"]), f"device.created is not ms: {short(d)}")
        names = {d["device_id"]: d["name"] for d in devs}
        eq(names.get(a.device_id), "phone", "device name")
        eq(names.get(b.device_id), "laptop", "device name")


@check("rest.unauthorized_401")
def _(c):
    assert_error(c.rest("GET", "/v1/me"), 401, "unauthorized", "GET /v1/me without a token")
    assert_error(c.rest("GET", "/v1/me", token="garbage"), 401, "unauthorized", "GET /v1/me with a bad token")
    s = c.login()
    forged = s.token[:-1] + ("0" if s.token[-1] != "0" else "1")
    assert_error(c.rest("GET", "/v1/me", token=forged), 401, "unauthorized", "GET /v1/me with a forged token")
    assert_error(c.rest("GET", "/v1/conversations", token="garbage"), 401, "unauthorized", "GET /v1/conversations")


@check("rest.unknown_route_404")
def _(c):
    s = c.login()
    assert_error(c.rest("GET", "/v1/nope", s.token), 404, "not_found", "GET /v1/nope")


# ---- profile


@check("me.get_defaults")
def _(c):
    s = c.login()
    me = c.ok("GET", "/v1/me", s.token)
    for k in ("user_id", "phone", "name", "last_seen_privacy", "read_receipts", "devices"):
        expect(k in me, f"profile lacks {k}: {short(me)}")
    eq(me["last_seen_privacy"], "everyone", "default last_seen_privacy")
    eq(me["read_receipts"], True, "default read_receipts")
    eq(me["phone"], s.phone, "phone")


@check("me.patch")
def _(c):
    s = c.login()
    me = c.ok("PATCH", "/v1/me", s.token, {"name": "Ada Lovelace"})
    eq(me.get("name"), "Ada Lovelace", "PATCH answers the whole profile: name")
    eq(me.get("last_seen_privacy"), "everyone", "PATCH answers the whole profile: last_seen_privacy")
    eq(me.get("user_id"), s.user_id, "PATCH answers the whole profile: user_id")
    me = c.ok("PATCH", "/v1/me", s.token, {"last_seen_privacy": "contacts", "read_receipts": False})
    eq((me.get("name"), me.get("last_seen_privacy"), me.get("read_receipts")),
       ("Ada Lovelace", "contacts", False), "after PATCH")
    c.ok("PATCH", "/v1/me", s.token, {"last_seen_privacy": "nobody"})
    me = c.ok("GET", "/v1/me", s.token)
    eq((me.get("name"), me.get("last_seen_privacy"), me.get("read_receipts")),
       ("Ada Lovelace", "nobody", False), "GET after PATCH")
    other = c.login()
    found = c.ok("GET", f"/v1/users?phone={urllib.parse.quote(s.phone)}", other.token)
    eq(found.get("name"), "Ada Lovelace", "lookup shows the new name")


@check("me.patch_validation_400")
def _(c):
    s = c.login()
    bad = [
        ({"last_seen_privacy": "friends"}, "last_seen_privacy not one of the three"),
        ({"last_seen_privacy": 1}, "last_seen_privacy a number"),
        ({"read_receipts": "yes"}, "read_receipts a string"),
        ({"name": 5}, "name a number"),
        ({"name": "x" * 129}, "name over 128 bytes"),
        ({"name": "bad\nname"}, "name with a control character"),
    ]
    for body, what in bad:
        assert_error(c.rest("PATCH", "/v1/me", s.token, body), 400, "bad_request", what)
    assert_error(c.rest("PATCH", "/v1/me", s.token, raw="nope"), 400, "bad_request", "body not JSON")
    me = c.ok("GET", "/v1/me", s.token)
    eq((me["last_seen_privacy"], me["read_receipts"]), ("everyone", True), "profile unchanged by refused PATCHes")
    c.ok("PATCH", "/v1/me", s.token, {"name": "é" * 64})  # 128 bytes: allowed


# ---- devices


@check("device.revoke_token_401_and_socket_4401")
def _(c):
    phone = c.phone()
    a = c.login(phone, "phone")
    b = c.login(phone, "laptop")
    wb = c.ws(b)
    r = c.rest("DELETE", f"/v1/devices/{b.device_id}", a.token)
    eq(r[0], 204, f"DELETE /v1/devices/{b.device_id} status ({short(r[2])})")
    assert_error(c.rest("GET", "/v1/me", b.token), 401, "unauthorized", "revoked device's token")
    code = wb.expect_close("revoked device's socket")
    eq(code, 4401, "close code of a revoked device's socket")
    me = c.ok("GET", "/v1/me", a.token)
    eq([d.get("device_id") for d in me["devices"]], [a.device_id], "devices after revoke")
    w = Ws(c.http, b.token)
    c.sockets.append(w)
    expect_refused(w, "WS with a revoked token")


@check("account.delete_me")
def _(c):
    phone = c.phone()
    a = c.login(phone, "phone")
    b = c.login()
    conv = c.direct(a, b)
    group = c.group(b, [a])
    wa = c.ws(a)
    wa.expect("sync.done", "sync.done")
    send_text(wa, conv, "before leaving")
    r = c.rest("DELETE", "/v1/me", a.token)
    eq(r[0], 202, f"DELETE /v1/me status ({short(r[2])})")
    eq(wa.expect_close("the deleted account's socket"), 4401, "close code after DELETE /v1/me")
    assert_error(c.rest("GET", "/v1/me", a.token), 401, "unauthorized", "a deleted account's token")
    q = urllib.parse.quote(phone, safe="")
    assert_error(c.rest("GET", f"/v1/users?phone={q}", b.token), 404, "not_found", "lookup of a deleted phone")
    m = c.history(b, conv)["messages"][0]
    eq(m.get("deleted"), True, "the deleted account's message shows deleted")
    expect("body" not in m, f"a deleted account's message has no body: {short(m)}")
    assert_error(c.rest("POST", f"/v1/conversations/{group}/members", b.token, {"user_id": a.user_id}), 404,
                 "not_found", "adding a deleted user")
    again = c.login(phone, "again")
    expect(again.user_id != a.user_id, "the phone signs up as a new user")
    eq(c.ok("GET", f"/v1/users?phone={q}", b.token).get("user_id"), again.user_id, "lookup finds the new user")


@check("device.revoke_self_and_foreign_404")
def _(c):
    # Device ids are opaque and may be numbered per user, so "another user's
    # device" is one whose id the caller's account does not have.
    a = c.login()
    other_phone = c.phone()
    other = c.login(other_phone)
    other2 = c.login(other_phone)
    mine = {d["device_id"] for d in c.ok("GET", "/v1/me", a.token)["devices"]}
    foreign = next((d for d in (other2.device_id, other.device_id) if d not in mine), None)
    if foreign is not None:
        assert_error(c.rest("DELETE", f"/v1/devices/{foreign}", a.token), 404, "not_found",
                     "revoking a device id the caller does not have")
        c.ok("GET", "/v1/me", other2.token if foreign == other2.device_id else other.token)
    assert_error(c.rest("DELETE", "/v1/devices/nonsense", a.token), 404, "not_found", "revoking an unknown id")
    r = c.rest("DELETE", f"/v1/devices/{a.device_id}", a.token)
    eq(r[0], 204, "revoking the calling device")
    assert_error(c.rest("GET", "/v1/me", a.token), 401, "unauthorized", "token after revoking itself")


# ---- users


@check("users.lookup_by_phone")
def _(c):
    a = c.user("Lookup Target")
    b = c.login()
    r = c.ok("GET", f"/v1/users?phone={urllib.parse.quote(a.phone, safe='')}", b.token)
    eq(r, {"user_id": a.user_id, "name": "Lookup Target"}, "GET /v1/users?phone=%2B...")
    assert_error(c.rest("GET", f"/v1/users?phone={urllib.parse.quote(c.phone(), safe='')}", b.token),
                 404, "not_found", "unknown phone")
    assert_error(c.rest("GET", "/v1/users", b.token), 400, "bad_request", "no phone parameter")
    assert_error(c.rest("GET", f"/v1/users?phone={urllib.parse.quote(a.phone, safe='')}"), 401, "unauthorized",
                 "lookup without a token")


# ---- conversations


@check("conv.direct_201_then_200_same_id")
def _(c):
    a, b = c.login(), c.login()
    r = c.rest("POST", "/v1/conversations", a.token, {"kind": "direct", "peer": b.user_id})
    body = assert_status(r, 201, "first create of a direct conversation")
    conv = body.get("conversation_id")
    expect(isinstance(conv, str), f"no conversation_id: {short(body)}")
    eq(body.get("kind"), "direct", "kind")
    expect("name" in body, f"answer lacks name: {short(body)}")
    eq(body.get("name"), None, "direct conversation's name (docs: null)")
    members = sorted((m.get("user_id"), m.get("role")) for m in body.get("members", []))
    eq(members, sorted([(a.user_id, "member"), (b.user_id, "member")]), "members of a direct conversation")
    again = assert_status(c.rest("POST", "/v1/conversations", a.token, {"kind": "direct", "peer": b.user_id}),
                          200, "second create, same order")
    eq(again.get("conversation_id"), conv, "same id again")
    rev = assert_status(c.rest("POST", "/v1/conversations", b.token, {"kind": "direct", "peer": a.user_id}),
                        200, "create from the peer's side")
    eq(rev.get("conversation_id"), conv, "same id from the other side")
    eq(rev.get("kind"), "direct", "kind")


@check("conv.direct_errors")
def _(c):
    a = c.login()
    assert_error(c.rest("POST", "/v1/conversations", a.token, {"kind": "direct", "peer": "u999999999999"}),
                 404, "not_found", "unknown peer")
    assert_error(c.rest("POST", "/v1/conversations", a.token, {"kind": "direct", "peer": a.user_id}),
                 400, "bad_request", "peer = caller")
    assert_error(c.rest("POST", "/v1/conversations", a.token, {"kind": "direct"}),
                 400, "bad_request", "no peer")
    assert_error(c.rest("POST", "/v1/conversations", a.token, {"kind": "channel", "peer": a.user_id}),
                 400, "bad_request", "unknown kind")


@check("conv.group_create_caller_admin")
def _(c):
    a, b, d = c.login(), c.login(), c.login()
    body = c.ok("POST", "/v1/conversations", a.token,
                {"kind": "group", "name": "Book club", "members": [b.user_id, d.user_id, b.user_id]}, status=201)
    eq(body.get("kind"), "group", "kind")
    eq(body.get("name"), "Book club", "name")
    members = sorted((m.get("user_id"), m.get("role")) for m in body.get("members", []))
    eq(members, sorted([(a.user_id, "admin"), (b.user_id, "member"), (d.user_id, "member")]),
       "members (caller admin, duplicates once)")
    body2 = c.ok("POST", "/v1/conversations", a.token,
                 {"kind": "group", "name": "Book club", "members": [a.user_id, b.user_id]}, status=201)
    expect(body2["conversation_id"] != body["conversation_id"], "a second group got the same id")
    members = sorted((m.get("user_id"), m.get("role")) for m in body2.get("members", []))
    eq(members, sorted([(a.user_id, "admin"), (b.user_id, "member")]), "members when the caller is listed")
    for s in (b, d):
        row = c.conv_row(s, body["conversation_id"])
        eq(row.get("kind"), "group", "kind in the member's list")
        eq(row.get("name"), "Book club", "name in the member's list")
        expect("peer" in row and row["peer"] is None, f"[ext] a group's peer is null: {short(row)}")


@check("conv.group_errors")
def _(c):
    a, b = c.login(), c.login()
    assert_error(c.rest("POST", "/v1/conversations", a.token, {"kind": "group", "members": [b.user_id]}),
                 400, "bad_request", "group without name")
    assert_error(c.rest("POST", "/v1/conversations", a.token,
                        {"kind": "group", "name": "g", "members": [b.user_id, "u999999999999"]}),
                 404, "not_found", "group with an unknown member")
    assert_error(c.rest("POST", "/v1/conversations", a.token, {"kind": "group", "name": "g", "members": "x"}),
                 400, "bad_request", "members not a list")


@check("conv.list_order_and_unread")
def _(c):
    a, b, d = c.login(), c.login(), c.login()
    ab = c.direct(a, b)
    bd = c.direct(b, d)
    wa = c.ws(a)
    wd = c.ws(d)
    for i in range(3):
        send_text(wa, ab, f"a to b {i}")
    time.sleep(0.05)
    send_text(wd, bd, "d to b")
    rows = c.ok("GET", "/v1/conversations", b.token)["conversations"]
    for row in rows:
        for k in ("conversation_id", "kind", "name", "last_seq", "last_ts", "unread"):
            expect(k in row, f"conversation row lacks {k}: {short(row)}")
    ids = [r["conversation_id"] for r in rows]
    eq(ids, [bd, ab], "order (latest activity first)")
    by = {r["conversation_id"]: r for r in rows}
    eq((by[ab]["last_seq"], by[ab]["unread"]), (3, 3), "a-b last_seq/unread for b")
    eq((by[bd]["last_seq"], by[bd]["unread"]), (1, 1), "b-d last_seq/unread for b")
    expect(is_int(by[ab]["last_ts"]) and by[ab]["last_ts"] <= by[bd]["last_ts"], f"last_ts: {short(rows)}")
    eq(by[ab].get("peer"), a.user_id, "[ext] peer of a direct conversation")
    eq(c.conv_row(a, ab)["unread"], 0, "unread of the sender")
    time.sleep(0.05)
    send_text(wa, ab, "a to b again")
    ids = [r["conversation_id"] for r in c.ok("GET", "/v1/conversations", b.token)["conversations"]]
    eq(ids, [ab, bd], "order after new activity")
    wb = c.ws(b)
    wb.send({"type": "message.read", "conversation_id": ab, "seq": 2})
    poll("unread after message.read seq 2 of 4", lambda: ((r := c.conv_row(b, ab))["unread"] == 2, r))
    # Sending counts as having read what came before (docs/PROTOCOL.md [ext]).
    send_text(wb, ab, "b answers")
    eq(c.conv_row(b, ab)["unread"], 0, "unread after b sends")
    eq(c.conv_row(a, ab)["unread"], 1, "unread of a after b's message")


@check("conv.not_member_404")
def _(c):
    a, b, x = c.login(), c.login(), c.login()
    ab = c.direct(a, b)
    wa = c.ws(a)
    send_text(wa, ab, "private")
    g = c.group(a, [b])
    for conv in (ab, g):
        assert_error(c.rest("GET", f"/v1/conversations/{conv}/messages", x.token), 404, "not_found",
                     "history of a conversation one is not in")
        assert_error(c.rest("GET", f"/v1/conversations/{conv}/messages/1/receipts", x.token), 404, "not_found",
                     "receipts of a conversation one is not in")
    assert_error(c.rest("DELETE", f"/v1/conversations/{g}/members/{b.user_id}", x.token), 404, "not_found",
                 "removing a member from a group one is not in")
    assert_error(c.rest("PATCH", f"/v1/conversations/{g}/members/{b.user_id}", x.token, {"role": "admin"}),
                 404, "not_found", "setting a role in a group one is not in")
    for bogus in ("c999999999999", "zzz"):
        assert_error(c.rest("GET", f"/v1/conversations/{bogus}/messages", a.token), 404, "not_found",
                     f"history of {bogus}")
    ids = [r["conversation_id"] for r in c.ok("GET", "/v1/conversations", x.token)["conversations"]]
    eq(ids, [], "conversations of a user in none")


# ---- members


def add(c, who, conv, user):
    return c.rest("POST", f"/v1/conversations/{conv}/members", who.token, {"user_id": user.user_id})


def remove(c, who, conv, user):
    return c.rest("DELETE", f"/v1/conversations/{conv}/members/{user.user_id}", who.token)


def set_role(c, who, conv, user, role):
    return c.rest("PATCH", f"/v1/conversations/{conv}/members/{user.user_id}", who.token, {"role": role})


@check("members.add_admin_only")
def _(c):
    a, b, d, e = c.login(), c.login(), c.login(), c.login()
    g = c.group(a, [b])
    wa = c.ws(a)
    send_text(wa, g, "before d joined")
    assert_error(add(c, b, g, d), 403, "forbidden", "non-admin adds a member")
    eq(add(c, a, g, d)[0], 204, "admin adds a member")
    eq(add(c, a, g, d)[0], 204, "adding a member already in")
    assert_error(c.rest("POST", f"/v1/conversations/{g}/members", a.token, {"user_id": "u999999999999"}),
                 404, "not_found", "adding an unknown user")
    assert_error(c.rest("POST", f"/v1/conversations/{g}/members", a.token, {}), 400, "bad_request", "no user_id")
    eq(c.conv_row(d, g)["unread"], 0, "unread of a member just added (read position starts where it joined)")
    h = c.history(d, g)
    eq(seqs(h["messages"]), [], "a new member's history (messages after it joined only)")
    eq(h["has_more"], False, "has_more stops where the member joined")
    wd = c.ws(d)
    sent = send_text(wa, g, "after d joined")
    m = wd.expect("message.new", "a new member receives", seq=sent["seq"], conversation_id=g)
    assert_message(m, "message.new to the new member", g, sent["seq"], a, "after d joined")
    send_text(wd, g, "hello from d")
    eq(seqs(c.history(d, g)["messages"]), [2, 3], "new member's history")
    del e


@check("members.remove_and_leave")
def _(c):
    a, b, d, e = c.login(), c.login(), c.login(), c.login()
    g = c.group(a, [b, d])
    assert_error(remove(c, b, g, d), 403, "forbidden", "non-admin removes someone else")
    assert_error(remove(c, a, g, e), 404, "not_found", "removing someone not in the group")
    eq(remove(c, a, g, d)[0], 204, "admin removes a member")
    assert_error(c.rest("GET", f"/v1/conversations/{g}/messages", d.token), 404, "not_found",
                 "history after being removed")
    wd = c.ws(d)
    wd.call_error({"type": "message.send", "conversation_id": g, "client_msg_id": "x1", "body": {"text": "hi"}},
                  "not_member", "removed member sends")
    eq(remove(c, b, g, b)[0], 204, "a member leaves")
    assert_error(c.rest("GET", f"/v1/conversations/{g}/messages", b.token), 404, "not_found", "history after leaving")
    ids = [r["conversation_id"] for r in c.ok("GET", "/v1/conversations", b.token)["conversations"]]
    expect(g not in ids, "a group one left is still listed")


@check("members.role_rules")
def _(c):
    a, b, d, e = c.login(), c.login(), c.login(), c.login()
    g = c.group(a, [b, d])
    assert_error(set_role(c, b, g, b, "admin"), 403, "forbidden", "non-admin promotes itself")
    assert_error(set_role(c, a, g, b, "owner"), 400, "bad_request", "unknown role")
    assert_error(set_role(c, a, g, a, "member"), 409, "conflict", "demoting the last admin")
    eq(set_role(c, a, g, b, "admin")[0], 204, "admin promotes a member")
    eq(add(c, b, g, e)[0], 204, "the new admin adds a member")
    eq(set_role(c, b, g, a, "member")[0], 204, "an admin demotes another admin")
    assert_error(add(c, a, g, c.login()), 403, "forbidden", "the demoted admin adds a member")
    assert_error(set_role(c, b, g, b, "member"), 409, "conflict", "demoting the last admin (again)")


@check("members.last_admin_leaves_longest_standing_promoted")
def _(c):
    a, b, d, e = c.login(), c.login(), c.login(), c.login()
    g = c.group(a, [b])
    time.sleep(0.02)
    eq(add(c, a, g, d)[0], 204, "add d later")
    eq(remove(c, a, g, a)[0], 204, "the only admin leaves")
    assert_error(add(c, d, g, e), 403, "forbidden", "a later member adds (not admin)")
    eq(add(c, b, g, e)[0], 204, "the longest-standing member (now admin) adds")


@check("members.direct_conversation_403")
def _(c):
    a, b, d = c.login(), c.login(), c.login()
    ab = c.direct(a, b)
    assert_error(add(c, a, ab, d), 403, "forbidden", "adding to a direct conversation")
    assert_error(remove(c, a, ab, b), 403, "forbidden", "removing from a direct conversation")
    assert_error(set_role(c, a, ab, b, "admin"), 403, "forbidden", "role in a direct conversation")


# ---- WebSocket basics


@check("ws.auth_header")
def _(c):
    s = c.login()
    w = c.ws(s, header=True)
    w.expect("sync.done", "sync.done after auth.ok")


@check("ws.auth_first_frame")
def _(c):
    s = c.login()
    w = c.ws(s, header=False)
    w.expect("sync.done", "sync.done after auth.ok")
    ev = w.call({"type": "ping"}, "pong", "ping after frame auth")
    eq(ev.get("type"), "pong", "answer to ping")


@check("ws.auth_bad_token_frame_4401")
def _(c):
    w = c.raw_ws()
    w.send({"type": "auth", "token": "garbage"})
    expect_refused(w, "bad token in the auth frame")


@check("ws.auth_bad_token_header_4401")
def _(c):
    try:
        w = c.raw_ws(token="garbage")
    except HandshakeRefused as e:
        raise Fail(f"upgrade with a bad Authorization header refused with HTTP {e.status} "
                   f"(contract: error unauthorized, then close 4401)")
    expect_refused(w, "bad token in the header")


@check("ws.auth_first_frame_not_auth_4401")
def _(c):
    w = c.raw_ws()
    w.send({"type": "ping"})
    expect_refused(w, "first frame not auth")


@check("ws.auth_again_after_ok_bad_request")
def _(c):
    s = c.login()
    w = c.ws(s)
    w.call_error({"type": "auth", "token": s.token}, "bad_request", "auth after auth.ok")
    w.call_ok({"type": "ping"}, "pong", "connection stays after a second auth")


@check("ws.ping_pong")
def _(c):
    s = c.login()
    w = c.ws(s)
    w.call_ok({"type": "ping"}, "pong", "ping")
    # RFC 6455 control frames: a ping frame is answered by a pong frame with its payload.
    w.pongs.clear()
    w.send_frame(0x9, b"hello")
    deadline = time.monotonic() + WAIT
    while not w.pongs:
        try:
            data = w._next_message(deadline, until_pong=True)
        except Timeout:
            raise Fail("no pong frame for a ping frame within 10 s (RFC 6455 5.5.2)")
        except WsClosed as e:
            raise Fail(f"closed after a ping frame: {e}")
        if data is not None:
            w.pending.append(json.loads(data))
    eq(w.pongs.popleft(), b"hello", "pong frame payload")


@check("ws.malformed_and_unknown_bad_request")
def _(c):
    s = c.login()
    w = c.ws(s)
    w.expect("sync.done", "sync.done")
    w.send_text("{this is not json")
    ev = w.expect("error", "malformed JSON")
    assert_ws_error(ev, "bad_request", "malformed JSON")
    w.call_error({"type": "no.such.type"}, "bad_request", "unknown type")
    w.send_text('["type","ping"]')
    assert_ws_error(w.expect("error", "JSON that is not an object"), "bad_request", "JSON that is not an object")
    w.call_error({"type": "message.send", "conversation_id": "c1"}, "bad_request", "message.send without fields")
    w.call_ok({"type": "ping"}, "pong", "connection stays open after bad frames")


@check("ws.client_fragmented_and_binary_frames")
def _(c):
    s = c.login()
    w = c.ws(s)
    text = json.dumps({"type": "ping", "ref": "frag1"})
    w.send_frame(0x1, text[:5], fin=False)
    w.send_frame(0x0, text[5:10], fin=False)
    w.send_frame(0x9, b"mid")  # a control frame between fragments (RFC 6455 5.4)
    w.send_frame(0x0, text[10:], fin=True)
    w.expect("pong", "fragmented ping", ref="frag1")
    w.send_frame(0x2, json.dumps({"type": "ping", "ref": "bin1"}))
    w.expect("pong", "binary frame holding UTF-8 JSON ([chatd] accepted)", ref="bin1")


@check("ws.client_close_1000")
def _(c):
    s = c.login()
    w = c.ws(s)
    w.close_sent = True
    w.send_frame(0x8, struct.pack("!H", 1000))
    code = w.expect_close("client close")
    eq(code, 1000, "server's close code answering a client close")


@check("ws.too_large_1009")
def _(c):
    a, b = c.login(), c.login()
    conv = c.direct(a, b)
    w = c.ws(a)
    w.expect("sync.done", "sync.done")
    big = json.dumps({"type": "message.send", "conversation_id": conv, "client_msg_id": "big",
                      "body": {"text": "x" * (129 * 1024)}})
    try:
        w.send_text(big)
    except OSError:
        pass  # the server may close before reading it all
    try:
        ev = w.find(lambda e: e.get("type") == "error", WAIT)
    except WsClosed:
        ev = next((e for e in w.pending if e.get("type") == "error"), None)
    code = w.closed.code if w.closed else w.expect_close("after too_large")
    expect(ev is not None, f"no error too_large before the close (close code {code})")
    assert_ws_error(ev, "too_large", "frame over 128 KiB")
    eq(code, 1009, "close code after too_large")
    eq(c.conv_row(a, conv)["last_seq"], 0, "nothing stored from the oversized frame")
    # 128 KiB minus a little is fine
    w2 = c.ws(a)
    text = "y" * (120 * 1024)
    sent = send_text(w2, conv, text, what="a 120 KiB message")
    eq(sent["seq"], 1, "seq of the large-but-allowed message")


# ---- messaging


@check("msg.send_sent_seq_gapless_ref")
def _(c):
    a, b = c.login(), c.login()
    conv = c.direct(a, b)
    w = c.ws(a)
    w.expect("sync.done", "sync.done")
    for i in range(1, 6):
        cmid = f"cm-{i}-{random.randrange(10**9)}"
        ev = w.call_ok({"type": "message.send", "conversation_id": conv, "client_msg_id": cmid,
                        "body": {"text": f"hello {i}"}}, "message.sent", f"send {i}")
        for k in ("conversation_id", "client_msg_id", "message_id", "seq", "ts"):
            expect(k in ev, f"message.sent lacks {k}: {short(ev)}")
        eq(ev["conversation_id"], conv, "message.sent conversation_id")
        eq(ev["client_msg_id"], cmid, "message.sent client_msg_id")
        eq(ev["seq"], i, "seq (starts at 1, no gaps)")
        expect(isinstance(ev["message_id"], str), "message_id is a string")
        expect(is_int(ev["ts"]) and abs(ev["ts"] - time.time() * 1000) < 3_600_000, f"ts in ms: {ev['ts']}")
    # pipelined sends keep seq order and gaplessness
    refs = []
    for i in range(10):
        ref = f"pipe{i}"
        refs.append(ref)
        w.send({"type": "message.send", "conversation_id": conv, "client_msg_id": f"p{i}-{random.randrange(10**9)}",
                "body": {"text": f"pipe {i}"}, "ref": ref})
    got = {}
    for ref in refs:
        ev = w.expect("message.sent", f"pipelined send {ref}", ref=ref)
        got[ref] = ev["seq"]
    eq(sorted(got.values()), list(range(6, 16)), "seqs of 10 pipelined sends")
    h = c.history(a, conv)
    eq(seqs(h["messages"]), list(range(1, 16)), "history seqs")


@check("msg.new_to_peer_and_other_devices_not_sender")
def _(c):
    phone = c.phone()
    a1 = c.login(phone, "a1")
    a2 = c.login(phone, "a2")
    b = c.login()
    conv = c.direct(a1, b)
    w1, _ = c.ws_synced(a1)
    w2, _ = c.ws_synced(a2)
    wb, _ = c.ws_synced(b)
    sent = send_text(w1, conv, "fan out")
    for w, who in ((wb, "peer"), (w2, "sender's other device")):
        m = w.expect("message.new", f"message.new to the {who}", conversation_id=conv, seq=sent["seq"])
        assert_message(m, f"message.new to the {who}", conv, sent["seq"], a1, "fan out")
        eq(m["message_id"], sent["message_id"], "message_id matches message.sent")
        eq(m["ts"], sent["ts"], "ts matches message.sent")
    w1.expect_none("message.new", "message.new echoed to the sending device")
    # ciphertext bodies pass through opaque
    ev = w2.call_ok({"type": "message.send", "conversation_id": conv, "client_msg_id": "ct1",
                     "body": {"ciphertext": "AAECAwQ="}}, "message.sent", "ciphertext send")
    m = wb.expect("message.new", "ciphertext message.new", seq=ev["seq"])
    eq(m["body"], {"ciphertext": "AAECAwQ="}, "ciphertext body")
    eq(m["sender_device"], a2.device_id, "sender_device of the second device")
    w1.expect("message.new", "the first device gets the second device's message", seq=ev["seq"])


@check("msg.dedupe_client_msg_id")
def _(c):
    a, b = c.login(), c.login()
    conv = c.direct(a, b)
    wa, _ = c.ws_synced(a)
    wb, _ = c.ws_synced(b)
    first = send_text(wa, conv, "once", cmid="same-id")
    wb.expect("message.new", "first delivery", seq=first["seq"])
    again = send_text(wa, conv, "once", cmid="same-id")
    eq(again["seq"], first["seq"], "resend's seq")
    eq(again["message_id"], first["message_id"], "resend's message_id")
    wb.expect_none("message.new", "second delivery of a resend")
    nxt = send_text(wa, conv, "next", cmid="other-id")
    eq(nxt["seq"], first["seq"] + 1, "seq after a resend (no gap)")
    eq(seqs(c.history(a, conv)["messages"]), [1, 2], "history after a resend")


@check("msg.send_errors")
def _(c):
    a, b, x = c.login(), c.login(), c.login()
    conv = c.direct(a, b)
    other = c.direct(b, x)
    w = c.ws(a)
    base = {"type": "message.send", "client_msg_id": "e1", "body": {"text": "hi"}}
    w.call_error(dict(base, conversation_id=other), "not_member", "send to a conversation one is not in")
    w.call_error(dict(base, conversation_id="garbage"), "not_member", "send to an id that does not parse")
    w.call_error(dict(base, conversation_id=conv, body={"text": "a", "ciphertext": "b"}), "bad_request",
                 "body with both text and ciphertext")
    w.call_error(dict(base, conversation_id=conv, body={}), "bad_request", "empty body")
    w.call_error(dict(base, conversation_id=conv, client_msg_id=""), "bad_request", "empty client_msg_id")
    w.call_error(dict(base, conversation_id=conv, client_msg_id="x" * 129), "bad_request", "client_msg_id of 129 bytes")
    w.call_error(dict(base, conversation_id=conv, reply_to=5), "bad_request", "reply_to a seq that does not exist")
    eq(c.conv_row(a, conv)["last_seq"], 0, "nothing stored by refused sends")
    s1 = send_text(w, conv, "root", cmid="root")
    s2 = send_text(w, conv, "reply", cmid="reply", reply_to=s1["seq"])
    h = c.history(b, conv)["messages"]
    eq([m.get("reply_to") for m in h], [None, s1["seq"]], "reply_to in history")
    eq(s2["seq"], 2, "seq")
    w.call_ok({"type": "ping"}, "pong", "connection stays after errors")


@check("msg.edit_delete")
def _(c):
    a, b, x = c.login(), c.login(), c.login()
    conv = c.direct(a, b)
    wa, wb = c.ws(a), c.ws(b)
    wa.expect("sync.done", "sync.done")
    wb.expect("sync.done", "sync.done")
    send_text(wa, conv, "helo", cmid="ed1")
    send_text(wa, conv, "second", cmid="ed2")
    edit = {"type": "message.edit", "conversation_id": conv, "seq": 1, "body": {"text": "hello"}}
    ev = wa.call_ok(edit, "message.edited", "edit by the sender")
    eq((ev["conversation_id"], ev["seq"], ev["body"]), (conv, 1, {"text": "hello"}), "message.edited answer")
    expect(is_int(ev.get("edited_ts")), f"edited_ts: {short(ev)}")
    got = wb.expect("message.edited", "the peer hears of the edit", seq=1)
    eq((got["body"], got["edited_ts"]), ({"text": "hello"}, ev["edited_ts"]), "the peer's message.edited")
    again = wa.call_ok(edit, "message.edited", "a resent edit")
    eq(again["edited_ts"], ev["edited_ts"], "a resent edit is the same edit")
    wb.expect_none("message.edited", "a resent edit reaches nobody again")
    wb.call_error(edit, "forbidden", "an edit by someone else")
    wa.call_error(dict(edit, seq=99), "not_found", "an edit of an unknown seq")
    wa.call_error(dict(edit, conversation_id=c.direct(b, x)), "not_member", "an edit in someone else's conversation")
    wa.call_error({"type": "message.edit", "conversation_id": conv, "seq": 1}, "bad_request", "an edit without a body")
    h = {m["seq"]: m for m in c.history(b, conv)["messages"]}
    eq((h[1]["body"], h[1].get("edited")), ({"text": "hello"}, ev["edited_ts"]), "history after an edit")
    delete = {"type": "message.delete", "conversation_id": conv, "seq": 2}
    wb.call_error(delete, "forbidden", "a delete by someone else in a direct chat")
    ev = wa.call_ok(delete, "message.deleted", "delete by the sender")
    eq((ev["conversation_id"], ev["seq"]), (conv, 2), "message.deleted answer")
    wb.expect("message.deleted", "the peer hears of the delete", seq=2)
    wa.call_ok(delete, "message.deleted", "deleting again answers again")
    wa.call_error(dict(edit, seq=2), "forbidden", "an edit of a deleted message")
    h = {m["seq"]: m for m in c.history(b, conv)["messages"]}
    eq(h[2].get("deleted"), True, "history shows the message deleted")
    expect("body" not in h[2] and "media" not in h[2], f"a deleted message has no body: {short(h[2])}")


@check("keys.upload_count_fetch")
def _(c):
    a, b = c.login(), c.login()
    k = "AAECAwQFBgc="
    def put(s, identity, ids, signed=True):
        body = {"identity_key": identity,
                "one_time_prekeys": [{"key_id": i, "public_key": k} for i in ids]}
        if signed:
            body["signed_prekey"] = {"key_id": 7, "public_key": k, "signature": k}
        return c.rest("PUT", "/v1/keys", s.token, body)
    assert_status(put(a, k, [1, 2]), 204, "first key upload")
    eq(c.ok("GET", "/v1/keys", a.token)["one_time_prekeys_left"], 2, "prekeys left")
    got = c.ok("GET", f"/v1/keys/{a.user_id}", b.token)
    devs = got.get("devices")
    eq(len(devs), 1, "devices with keys")
    d = devs[0]
    eq((d["device_id"], d["identity_key"]), (a.device_id, k), "fetched device and identity key")
    eq(d["signed_prekey"], {"key_id": 7, "public_key": k, "signature": k}, "signed prekey")
    eq(d["one_time_prekey"], {"key_id": 1, "public_key": k}, "the first one-time prekey")
    eq(c.ok("GET", f"/v1/keys/{a.user_id}", b.token)["devices"][0]["one_time_prekey"]["key_id"], 2, "the next")
    eq(c.ok("GET", f"/v1/keys/{a.user_id}", b.token)["devices"][0]["one_time_prekey"], None, "run out: null")
    eq(c.ok("GET", "/v1/keys", a.token)["one_time_prekeys_left"], 0, "none left")
    assert_error(put(a, k, [1]), 409, "conflict", "a key id handed out before")
    assert_error(put(a, "T3RoZXI=", [9]), 409, "conflict", "another identity key")
    assert_error(put(b, k, [1], signed=False), 400, "bad_request", "a first upload without signed_prekey")
    assert_error(put(b, "%%%", [1]), 400, "bad_request", "identity key not base64")
    assert_error(c.rest("GET", "/v1/keys/u424242424242", b.token), 404, "not_found", "keys of an unknown user")


@check("media.upload_range_etag_access")
def _(c):
    a, b, x = c.login(), c.login(), c.login()
    data = bytes(random.SystemRandom().getrandbits(8) for _ in range(70_000))
    st, body, _ = raw_request(c.http, "POST", "/v1/media", a.token, data, {"Content-Type": "image/png"})
    eq(st, 201, f"upload: {body[:200]!r}")
    m = json.loads(body)
    sha = hashlib.sha256(data).hexdigest()
    eq((m.get("size"), m.get("sha256"), m.get("mime")), (70_000, sha, "image/png"), "the upload's answer")
    mid = m["media_id"]
    st, _, _ = raw_request(c.http, "POST", "/v1/media", a.token, data, {})
    eq(st, 400, "an upload without Content-Type")
    st, _, _ = raw_request(c.http, "POST", "/v1/media", a.token, b"", {"Content-Type": "text/plain"})
    eq(st, 400, "an empty upload")
    path = f"/v1/media/{mid}"
    st, got, h = raw_request(c.http, "GET", path, a.token)
    eq((st, got == data, h.get("content-type"), h.get("content-length")), (200, True, "image/png", "70000"),
       "the uploader reads it back")
    eq((h.get("etag"), h.get("accept-ranges")), (f'"{sha}"', "bytes"), "ETag and Accept-Ranges")
    st, got, h = raw_request(c.http, "GET", path, a.token, headers={"Range": "bytes=10-19"})
    eq((st, got, h.get("content-range")), (206, data[10:20], "bytes 10-19/70000"), "a Range read")
    st, got, _ = raw_request(c.http, "GET", path, a.token, headers={"Range": "bytes=-5"})
    eq((st, got), (206, data[-5:]), "a suffix Range")
    st, got, h = raw_request(c.http, "GET", path, a.token, headers={"Range": "bytes=70000-"})
    eq((st, got, h.get("content-range")), (416, b"", "bytes */70000"), "an unsatisfiable Range")
    st, got, _ = raw_request(c.http, "GET", path, a.token, headers={"If-None-Match": f'"{sha}"'})
    eq((st, got), (304, b""), "If-None-Match with the ETag")
    eq(raw_request(c.http, "GET", path, b.token)[0], 404, "not shared yet: 404")
    conv = c.direct(a, b)
    wa, wb = c.ws(a), c.ws(b)
    wa.expect("sync.done", "sync.done")
    wb.expect("sync.done", "sync.done")
    send_text(wa, conv, "a picture", media={"media_id": mid})
    ev = wb.expect("message.new", "the message with media")
    eq(ev.get("media"), {"media_id": mid, "size": 70_000, "sha256": sha, "mime": "image/png"}, "media in the message")
    eq(raw_request(c.http, "GET", path, b.token)[0], 200, "a member of the conversation reads it")
    eq(raw_request(c.http, "GET", path, x.token)[0], 404, "an outsider does not")
    wx = c.ws(x)
    wx.expect("sync.done", "sync.done")
    conv_x = c.direct(x, b)
    wx.send({"type": "message.send", "conversation_id": conv_x, "client_msg_id": "m1", "body": {"text": "t"},
             "media": {"media_id": mid}, "ref": "mx"})
    assert_ws_error(wx.expect("error", "naming media one may not read", ref="mx"), "bad_request", "media not readable")


@check("conv.disappearing")
def _(c):
    a, b = c.login(), c.login()
    conv = c.direct(a, b)
    wa, wb = c.ws(a), c.ws(b)
    wa.expect("sync.done", "sync.done")
    wb.expect("sync.done", "sync.done")
    assert_status(c.rest("PATCH", f"/v1/conversations/{conv}", b.token, {"disappearing_seconds": 1}), 204,
                  "a direct member sets disappearing_seconds")
    for w in (wa, wb):
        ev = w.expect("conversation.updated", "members hear of the setting")
        eq((ev["conversation_id"], ev["disappearing_seconds"]), (conv, 1), "conversation.updated")
    row = [r for r in c.ok("GET", "/v1/conversations", a.token)["conversations"] if r["conversation_id"] == conv][0]
    eq(row.get("disappearing_seconds"), 1, "the list shows the setting")
    send_text(wa, conv, "soon gone")
    assert_status(c.rest("PATCH", f"/v1/conversations/{conv}", a.token, {"disappearing_seconds": 0}), 204, "off")
    send_text(wa, conv, "stays")
    time.sleep(1.3)
    eq(seqs(c.history(b, conv)["messages"]), [2], "the message sent under 1 s vanished, the later one stays")
    assert_error(c.rest("PATCH", f"/v1/conversations/{conv}", a.token, {"disappearing_seconds": "x"}), 400,
                 "bad_request", "disappearing_seconds not a number")


@check("search.words_prefix_scope_edits")
def _(c):
    a, b, x = c.login(), c.login(), c.login()
    ab, bx = c.direct(a, b), c.direct(b, x)
    wa, _ = c.ws_synced(a)
    wx, _ = c.ws_synced(x)
    word = f"zq{random.randrange(10**9)}"  # unique per run: the server may hold earlier runs
    for w, conv, text in ((wa, ab, f"Lunch {word.upper()}, at noon?"), (wa, ab, f"{word} dinner"),
                          (wx, bx, f"{word} lunch with x")):
        send_text(w, conv, text)
        time.sleep(0.01)  # distinct ts: results are ordered by ts, then seq

    def found(who, query, **params):
        qs = "&".join([f"q={urllib.parse.quote(query)}"] + [f"{k}={v}" for k, v in params.items()])
        return [(m["conversation_id"], m["seq"]) for m in c.ok("GET", f"/v1/search?{qs}", who.token)["messages"]]
    # findable within 1 s of message.sent
    poll("the newest message is findable within 1 s", lambda: (found(b, word) == [(bx, 1), (ab, 2), (ab, 1)],
         found(b, word)), timeout=1.0)
    eq(found(b, f"{word} lun"), [(bx, 1), (ab, 1)], "every word, the last a prefix, newest first")
    eq(found(b, f"lun {word[:-1]}"), [], "only the last word is a prefix")
    eq(found(a, word), [(ab, 2), (ab, 1)], "only the caller's conversations")
    eq(found(b, word, conversation_id=ab, limit=1), [(ab, 2)], "conversation_id and limit")
    eq(found(b, word, conversation_id=ab, before=2), [(ab, 1)], "before")
    m = c.ok("GET", f"/v1/search?q={word}&conversation_id={ab}&limit=1", b.token)["messages"][0]
    eq((m.get("body"), m.get("conversation_id")), ({"text": f"{word} dinner"}, ab), "a result is a message object")
    edit = {"type": "message.edit", "conversation_id": ab, "seq": 2, "body": {"text": "supper instead"}}
    wa.call_ok(edit, "message.edited", "edit")
    wa.call_ok({"type": "message.delete", "conversation_id": ab, "seq": 1}, "message.deleted", "delete")
    eq(found(b, word), [(bx, 1)], "an edited message's old text and a deleted message are not found")
    for q, what in (("", "empty q"), ("%20%21", "q without a word")):
        assert_error(c.rest("GET", f"/v1/search?q={q}", b.token), 400, "bad_request", what)
    assert_error(c.rest("GET", f"/v1/search?q={word}&limit=51", b.token), 400, "bad_request", "limit over 50")
    assert_error(c.rest("GET", f"/v1/search?q={word}&conversation_id={bx}", a.token), 404, "not_found",
                 "a search in a conversation one is not in")
    assert_error(c.rest("GET", f"/v1/search?q={word}"), 401, "unauthorized", "no token")


@check("msg.ack_delivered")
def _(c):
    phone = c.phone()
    a1 = c.login(phone, "a1")
    a2 = c.login(phone, "a2")
    b = c.login()
    conv = c.direct(a1, b)
    w1, _ = c.ws_synced(a1)
    w2, _ = c.ws_synced(a2)
    wb, _ = c.ws_synced(b)
    send_text(w1, conv, "one")
    send_text(w1, conv, "two")
    wb.expect("message.new", "b receives what it acknowledges", seq=2)
    wb.send({"type": "message.ack", "conversation_id": conv, "seq": 2, "ref": "ack1"})
    for w, who in ((w1, "sending device"), (w2, "sender's other device")):
        ev = w.expect("message.delivered", f"message.delivered to the {who}")
        eq((ev.get("conversation_id"), ev.get("seq"), ev.get("user_id")), (conv, 2, b.user_id),
           f"message.delivered to the {who}")
    wb.expect_none("error", "an accepted ack answers nothing", ref="ack1")
    wb.send({"type": "message.ack", "conversation_id": conv, "seq": 2})
    w1.expect_none("message.delivered", "a second ack of the same seq (position did not move)")
    wb.call_error({"type": "message.ack", "conversation_id": "garbage", "seq": 1}, "not_member", "ack not_member")
    r = c.ok("GET", f"/v1/conversations/{conv}/messages/2/receipts", a1.token)
    eq([d.get("user_id") for d in r.get("delivered", [])], [b.user_id], "receipts delivered")


@check("msg.read_and_read_receipts_off")
def _(c):
    a, b, d = c.login(), c.login(), c.login()
    ab = c.direct(a, b)
    ad = c.direct(a, d)
    wa, _ = c.ws_synced(a)
    wb, _ = c.ws_synced(b)
    send_text(wa, ab, "read me")
    wb.expect("message.new", "b receives what it reads", seq=1)
    wb.send({"type": "message.read", "conversation_id": ab, "seq": 1})
    ev = wa.expect("message.read", "message.read to the sender")
    eq((ev.get("conversation_id"), ev.get("seq"), ev.get("user_id")), (ab, 1, b.user_id), "message.read")
    r = c.ok("GET", f"/v1/conversations/{ab}/messages/1/receipts", a.token)
    eq([x.get("user_id") for x in r.get("read", [])], [b.user_id], "receipts read list")
    wb.call_error({"type": "message.read", "conversation_id": ad, "seq": 1}, "not_member", "read not_member")
    # the reader turns read_receipts off: no message.read, reported as a delivery
    c.ok("PATCH", "/v1/me", d.token, {"read_receipts": False})
    wd, _ = c.ws_synced(d)
    send_text(wa, ad, "secret read")
    wd.expect("message.new", "d receives what it reads", seq=1)
    wd.send({"type": "message.read", "conversation_id": ad, "seq": 1})
    ev = wa.expect("message.delivered", "a read with read_receipts off reported as a delivery",
                   conversation_id=ad)
    eq((ev.get("seq"), ev.get("user_id")), (1, d.user_id), "that delivery")
    wa.expect_none("message.read", "message.read from a reader with read_receipts off", conversation_id=ad)
    r = c.ok("GET", f"/v1/conversations/{ad}/messages/1/receipts", a.token)
    eq(r.get("read"), [], "receipts read list with read_receipts off")
    eq([x.get("user_id") for x in r.get("delivered", [])], [d.user_id], "receipts delivered list")


@check("msg.direct_receipt_names_senders_latest_covered")
def _(c):
    a, b = c.login(), c.login()
    conv = c.direct(a, b)
    wa, _ = c.ws_synced(a)
    wb, _ = c.ws_synced(b)
    send_text(wa, conv, "a1")
    send_text(wa, conv, "a2")
    send_text(wb, conv, "b3")
    wa.expect("message.new", "b's message", seq=3)
    wb.expect("message.new", "a's second message", seq=2)
    wb.send({"type": "message.ack", "conversation_id": conv, "seq": 3})
    ev = wa.expect("message.delivered", "delivered naming a's latest covered message")
    eq(ev.get("seq"), 2, "seq of message.delivered (the sender's own latest message covered)")
    wb.expect_none("message.delivered", "a delivered event to the acker about its own message")


@check("msg.group_status_counts")
def _(c):
    a, b, d = c.login(), c.login(), c.login()
    g = c.group(a, [b, d])
    wa, _ = c.ws_synced(a)
    wb, _ = c.ws_synced(b)
    wd, _ = c.ws_synced(d)
    sent = send_text(wa, g, "group hello")
    wb.expect("message.new", "b gets it", seq=sent["seq"])
    wd.expect("message.new", "d gets it", seq=sent["seq"])
    wb.send({"type": "message.ack", "conversation_id": g, "seq": 1})
    ev = wa.expect("message.status", "message.status after one ack", conversation_id=g)
    for k in ("conversation_id", "seq", "delivered", "read"):
        expect(k in ev, f"message.status lacks {k}: {short(ev)}")
    eq((ev["seq"], ev["delivered"], ev["read"]), (1, 1, 0), "message.status after b's ack")
    wd.send({"type": "message.read", "conversation_id": g, "seq": 1})
    ev = wa.expect("message.status", "message.status after d's read", conversation_id=g)
    eq((ev["seq"], ev["delivered"], ev["read"]), (1, 2, 1), "message.status after d's read")
    wa.expect_none("message.delivered", "message.delivered in a group (groups get message.status)")
    # coalescing: at most one per conversation per 100 ms, the latest counts last
    e1 = c.login()
    eq(add(c, a, g, e1)[0], 204, "add a member")
    we, _ = c.ws_synced(e1)
    for i in range(5):
        send_text(wa, g, f"burst {i}")
    last = 6
    for w in (wb, wd, we):
        w.expect("message.new", "a member receives what it acknowledges", seq=last)
    for w in (wb, wd, we):
        w.send({"type": "message.ack", "conversation_id": g, "seq": last})
    statuses = []
    t_end = time.monotonic() + 1.5
    while time.monotonic() < t_end:
        ev = wa.find(lambda e: e.get("type") == "message.status", max(0.0, t_end - time.monotonic()))
        if ev is None:
            break
        statuses.append((time.monotonic(), ev))
        if ev.get("seq") == last and ev.get("delivered") == 3:
            break
    expect(statuses, "no message.status after three acks")
    eq((statuses[-1][1]["seq"], statuses[-1][1]["delivered"]), (last, 3),
       f"latest counts after three acks ({short([s[1] for s in statuses])})")
    for (t0, _), (t1, _) in zip(statuses, statuses[1:]):
        expect(t1 - t0 >= 0.08, f"two message.status {1000 * (t1 - t0):.0f} ms apart (coalesced: 100 ms)")


@check("msg.typing")
def _(c):
    phone = c.phone()
    a1 = c.login(phone, "a1")
    a2 = c.login(phone, "a2")
    b, x = c.login(), c.login()
    conv = c.direct(a1, b)
    other = c.direct(b, x)
    w1, _ = c.ws_synced(a1)
    w2, _ = c.ws_synced(a2)
    wb, _ = c.ws_synced(b)
    w1.send({"type": "typing", "conversation_id": conv, "state": "start"})
    ev = wb.expect("typing", "typing start to the peer")
    eq((ev.get("conversation_id"), ev.get("user_id"), ev.get("state")), (conv, a1.user_id, "start"), "typing start")
    w2.expect_none("typing", "typing to the typer's other device ([chatd]: not sent)")
    w1.send({"type": "typing", "conversation_id": conv, "state": "stop"})
    ev = wb.expect("typing", "typing stop to the peer")
    eq((ev.get("conversation_id"), ev.get("user_id"), ev.get("state")), (conv, a1.user_id, "stop"), "typing stop")
    w1.call_error({"type": "typing", "conversation_id": other, "state": "start"}, "not_member", "typing not_member")
    # auto stop after 5 s
    t0 = time.monotonic()
    w1.send({"type": "typing", "conversation_id": conv, "state": "start"})
    wb.expect("typing", "typing start (for auto stop)", state="start")
    ev = wb.expect("typing", "auto stop after 5 s", timeout=9.0, state="stop")
    took = time.monotonic() - t0
    expect(4.0 <= took <= 8.0, f"auto stop after {took:.1f} s (contract: 5 s)")
    # typing is never stored
    eq(c.conv_row(b, conv)["last_seq"], 0, "typing stored as a message")


@check("verify.device_name_optional")
def _(c):
    phone = c.phone()
    code = c.request_code(phone)
    r = c.rest("POST", "/v1/auth/verify", body={"phone": phone, "code": code})
    body = assert_status(r, 200, "verify without device_name ([chatd]: may be omitted)")
    c.ok("GET", "/v1/me", body["token"])


@check("msg.group_fanout")
def _(c):
    phone = c.phone()
    a1 = c.login(phone, "a1")
    a2 = c.login(phone, "a2")
    b, d = c.login(), c.login()
    g = c.group(a1, [b, d])
    w1, _ = c.ws_synced(a1)
    w2, _ = c.ws_synced(a2)
    wb, _ = c.ws_synced(b)
    wd, _ = c.ws_synced(d)
    sent = send_text(w1, g, "to the group")
    for w, who in ((wb, "member b"), (wd, "member d"), (w2, "sender's other device")):
        m = w.expect("message.new", f"group message.new to {who}", conversation_id=g, seq=sent["seq"])
        assert_message(m, f"group message.new to {who}", g, sent["seq"], a1, "to the group")
    w1.expect_none("message.new", "group message.new echoed to the sending device")
    s2 = send_text(wb, g, "from b")
    for w in (w1, w2, wd):
        w.expect("message.new", "b's group message", conversation_id=g, seq=s2["seq"])
    eq(s2["seq"], sent["seq"] + 1, "group seq")


@check("msg.ack_past_end_is_end")
def _(c):
    a, b = c.login(), c.login()
    conv = c.direct(a, b)
    wa, _ = c.ws_synced(a)
    wb, _ = c.ws_synced(b)
    send_text(wa, conv, "only one")
    wb.expect("message.new", "live", seq=1)
    wb.send({"type": "message.ack", "conversation_id": conv, "seq": 1000, "ref": "far"})
    ev = wa.expect("message.delivered", "ack past the end")
    eq(ev.get("seq"), 1, "delivered seq for an ack past the end ([chatd]: taken as its end)")
    wb.expect_none("error", "ack past the end answers nothing", ref="far")
    wb.close()
    _, synced = c.ws_synced(b)
    eq(synced, [], "sync after an ack past the end")


@check("msg.typing_group_and_stop_on_close")
def _(c):
    a, b, d = c.login(), c.login(), c.login()
    g = c.group(a, [b, d])
    wa, _ = c.ws_synced(a)
    wb, _ = c.ws_synced(b)
    wd, _ = c.ws_synced(d)
    wa.send({"type": "typing", "conversation_id": g, "state": "start"})
    for w, who in ((wb, "b"), (wd, "d")):
        ev = w.expect("typing", f"group typing start to {who}", conversation_id=g, state="start")
        eq(ev.get("user_id"), a.user_id, "typing user_id")
    wa.expect_none("typing", "typing echoed to the typer", timeout=0.2)
    t0 = time.monotonic()
    wa.close()
    ev = wb.expect("typing", "typing stop when the typer's connection closes", timeout=4.0,
                   conversation_id=g, state="stop")
    eq(ev.get("user_id"), a.user_id, "typing stop user_id")
    expect(time.monotonic() - t0 < 3.0, "stop on close came only with the 5 s auto stop")


@check("presence.online_offline_last_seen")
def _(c):
    a, b = c.login(), c.login()
    wb, _ = c.ws_synced(b)
    wb.send({"type": "presence.subscribe", "user_ids": [a.user_id]})
    ev = wb.expect("presence", "presence now (subject offline)", user_id=a.user_id)
    eq(ev.get("status"), "offline", "status of a subject with no connection")
    expect(is_int(ev.get("last_seen")), f"last_seen of an offline subject: {short(ev)}")
    wa, _ = c.ws_synced(a)
    ev = wb.expect("presence", "presence change to online", user_id=a.user_id)
    eq(ev.get("status"), "online", "status after the subject connects")
    expect("last_seen" in ev and ev["last_seen"] is None, f"online presence carries last_seen null: {short(ev)}")
    before = time.time() * 1000
    wa.close()
    ev = wb.expect("presence", "presence change to offline", user_id=a.user_id)
    eq(ev.get("status"), "offline", "status after the subject disconnects")
    expect(is_int(ev.get("last_seen")) and ev["last_seen"] >= before - 2000,
           f"last_seen after going offline ({before:.0f}): {short(ev)}")
    # a new subscription to an online subject answers online now
    wa2, _ = c.ws_synced(a)
    wb.expect("presence", "online again", user_id=a.user_id, status="online")
    wx, _ = c.ws_synced(c.login())
    wx.send({"type": "presence.subscribe", "user_ids": [a.user_id, "nonsense-id"]})
    ev = wx.expect("presence", "presence now (subject online)", user_id=a.user_id)
    eq(ev.get("status"), "online", "status now")
    wx.expect_none("error", "unknown ids in presence.subscribe are ignored")


@check("presence.last_seen_privacy")
def _(c):
    a, contact, stranger = c.login(), c.login(), c.login()
    c.direct(a, contact)
    c.ok("PATCH", "/v1/me", a.token, {"last_seen_privacy": "nobody"})
    ws_c, _ = c.ws_synced(contact)
    ws_s, _ = c.ws_synced(stranger)
    ws_c.send({"type": "presence.subscribe", "user_ids": [a.user_id]})
    ws_s.send({"type": "presence.subscribe", "user_ids": [a.user_id]})
    wa, _ = c.ws_synced(a)
    ws_c.expect_none("presence", "privacy nobody: presence to a contact", timeout=0.8)
    ws_s.expect_none("presence", "privacy nobody: presence to a stranger", timeout=0.1)
    wa.send({"type": "presence.subscribe", "user_ids": [a.user_id]})
    wa.expect("presence", "privacy nobody: the subject itself", user_id=a.user_id)
    c.ok("PATCH", "/v1/me", a.token, {"last_seen_privacy": "contacts"})
    wa.close()
    ev = ws_c.expect("presence", "privacy contacts: a contact sees the change", user_id=a.user_id)
    eq(ev.get("status"), "offline", "status")
    ws_s.expect_none("presence", "privacy contacts: presence to a stranger")
    c.ok("PATCH", "/v1/me", a.token, {"last_seen_privacy": "everyone"})
    c.ws_synced(a)
    ws_s.expect("presence", "privacy everyone: a stranger sees the change", user_id=a.user_id, status="online")


# ---- sync and history


@check("sync.offline_in_order_then_done")
def _(c):
    a, b = c.login(), c.login()
    ab = c.direct(a, b)
    g = c.group(a, [b])
    wa, _ = c.ws_synced(a)
    for i in range(1, 4):
        send_text(wa, ab, f"direct {i}")
        send_text(wa, g, f"group {i}")
    wb, synced = c.ws_synced(b)
    per = collections.defaultdict(list)
    for m in synced:
        assert_message(m, "synced message.new", sender=a)
        per[m["conversation_id"]].append(m["seq"])
    eq(dict(per), {ab: [1, 2, 3], g: [1, 2, 3]}, "synced seqs per conversation (in order, each once)")
    eq([m["body"]["text"] for m in synced if m["conversation_id"] == ab], ["direct 1", "direct 2", "direct 3"],
       "synced texts")
    wb.close()
    _, again = c.ws_synced(b)
    eq(sorted((m["conversation_id"], m["seq"]) for m in again),
       sorted([(ab, 1), (ab, 2), (ab, 3), (g, 1), (g, 2), (g, 3)]), "unacked messages come again on reconnect")
    w, _ = c.ws_synced(b)
    w.send({"type": "message.ack", "conversation_id": ab, "seq": 2})
    w.send({"type": "message.read", "conversation_id": g, "seq": 3})
    w.call_ok({"type": "ping"}, "pong", "ping after acks")
    time.sleep(0.2)
    c.close_all()
    _, rest = c.ws_synced(b)
    eq([(m["conversation_id"], m["seq"]) for m in rest], [(ab, 3)], "sync after ack 2 / read 3")


@check("sync.live_messages_after_done")
def _(c):
    a, b = c.login(), c.login()
    ab = c.direct(a, b)
    wa, _ = c.ws_synced(a)
    wb, _ = c.ws_synced(b)
    s = send_text(wa, ab, "live")
    m = wb.expect("message.new", "live message.new after sync.done", seq=s["seq"])
    assert_message(m, "live message.new", ab, s["seq"], a, "live")


@check("sync.new_device_starts_at_end")
def _(c):
    a, b = c.login(), c.login()
    ab = c.direct(a, b)
    wa, _ = c.ws_synced(a)
    for i in range(3):
        send_text(wa, ab, f"old {i}")
    b2 = c.login(b.phone, "new device")
    _, synced = c.ws_synced(b2)
    eq(synced, [], "sync of a new device (cursor at the end)")
    eq(seqs(c.history(b2, ab)["messages"]), [1, 2, 3], "older messages via history")


@check("history.paging")
def _(c):
    a, b = c.login(), c.login()
    conv = c.direct(a, b)
    wa, _ = c.ws_synced(a)
    empty = c.history(a, conv)
    eq((empty.get("messages"), empty.get("has_more")), ([], False), "history of an empty conversation")
    for i in range(1, 8):
        send_text(wa, conv, f"m{i}")
    h = c.history(b, conv)
    eq(set(h), {"messages", "has_more"}, "history answer fields")
    eq((seqs(h["messages"]), h["has_more"]), (list(range(1, 8)), False), "neither (latest, default limit)")
    for m in h["messages"]:
        assert_message(m, "history message", conv, sender=a)
    eq([m["body"]["text"] for m in h["messages"]], [f"m{i}" for i in range(1, 8)], "history texts")
    cases = [
        ("?limit=3", [5, 6, 7], True),
        ("?limit=7", [1, 2, 3, 4, 5, 6, 7], False),
        ("?before=5&limit=3", [2, 3, 4], True),
        ("?before=4&limit=3", [1, 2, 3], False),
        ("?before=2", [1], False),
        ("?before=1", [], False),
        ("?after=0&limit=3", [1, 2, 3], True),
        ("?after=4&limit=2", [5, 6], True),
        ("?after=4&limit=3", [5, 6, 7], False),
        ("?after=5", [6, 7], False),
        ("?after=7", [], False),
        ("?limit=100", [1, 2, 3, 4, 5, 6, 7], False),
        ("?after=1&before=6&limit=2", [2, 3], True),
        ("?after=1&before=6", [2, 3, 4, 5], False),
        ("?after=3&before=4", [], False),
        ("?after=5&before=99&limit=1", [6], True),
    ]
    for q, want, more in cases:
        h = c.history(a, conv, q)
        eq((seqs(h["messages"]), h["has_more"]), (want, more), f"history {q}")
    for q in ("?limit=101", "?limit=0", "?limit=abc"):
        assert_error(c.rest("GET", f"/v1/conversations/{conv}/messages{q}", a.token), 400, "bad_request",
                     f"history {q}")


@check("history.default_limit_50")
def _(c):
    a, b = c.login(), c.login()
    conv = c.direct(a, b)
    w, _ = c.ws_synced(a)
    for i in range(55):
        w.send({"type": "message.send", "conversation_id": conv, "client_msg_id": f"d{i}",
                "body": {"text": f"n{i}"}, "ref": f"d{i}"})
    for i in range(55):
        w.expect("message.sent", f"sent {i}", ref=f"d{i}")
    h = c.history(a, conv)
    eq((seqs(h["messages"]), h["has_more"]), (list(range(6, 56)), True), "default limit 50")
    h = c.history(a, conv, "?before=6")
    eq((seqs(h["messages"]), h["has_more"]), (list(range(1, 6)), False), "the rest")


@check("receipts.rest")
def _(c):
    a, b, d = c.login(), c.login(), c.login()
    g = c.group(a, [b, d])
    wa, _ = c.ws_synced(a)
    wb, _ = c.ws_synced(b)
    wd, _ = c.ws_synced(d)
    send_text(wa, g, "r1")
    wb.expect("message.new", "b gets r1", seq=1)
    wd.expect("message.new", "d gets r1", seq=1)
    r = c.ok("GET", f"/v1/conversations/{g}/messages/1/receipts", a.token)
    eq(r, {"delivered": [], "read": []}, "receipts before any ack")
    t_before = time.time() * 1000
    wb.send({"type": "message.ack", "conversation_id": g, "seq": 1})
    wd.send({"type": "message.read", "conversation_id": g, "seq": 1})
    wa.expect("message.status", "status after ack+read", read=1, delivered=2)
    r = c.ok("GET", f"/v1/conversations/{g}/messages/1/receipts", b.token)
    dl = {x.get("user_id"): x.get("ts") for x in r.get("delivered", [])}
    rd = {x.get("user_id"): x.get("ts") for x in r.get("read", [])}
    expect(a.user_id not in dl and a.user_id not in rd, f"the sender is listed: {short(r)}")
    expect(b.user_id in dl, f"b not in delivered: {short(r)}")
    eq(list(rd), [d.user_id], "read list")
    for who, ts in list(dl.items()) + list(rd.items()):
        expect(is_int(ts) and ts >= t_before - 2000, f"receipt ts of {who}: {ts}")
    assert_error(c.rest("GET", f"/v1/conversations/{g}/messages/99/receipts", a.token), 404, "not_found",
                 "receipts of a seq that does not exist")


@check("ws.rate_limited")
def _(c):
    a, b = c.login(), c.login()
    conv = c.direct(a, b)
    w, _ = c.ws_synced(a)
    n = 400
    payload = []
    for i in range(n):
        payload.append(json.dumps({"type": "message.send", "conversation_id": conv, "client_msg_id": f"rl{i}",
                                   "body": {"text": "r"}, "ref": f"rl{i}"}))
    # build all frames first, then write them in one go (as fast as possible)
    frames = bytearray()
    for p in payload:
        data = p.encode()
        mask = os.urandom(4)
        frames += struct.pack("!BB", 0x81, 0x80 | 126) + struct.pack("!H", len(data)) if len(data) >= 126 \
            else struct.pack("!BB", 0x81, 0x80 | len(data))
        frames += mask + _mask_fast(data, mask)
    w.sock.settimeout(WAIT)
    w.sock.sendall(bytes(frames))
    sent, limited = 0, 0
    for i in range(n):
        ev = w.find(lambda e, r=f"rl{i}": e.get("ref") == r, WAIT)
        expect(ev is not None, f"no answer for send {i} within 10 s")
        if ev.get("type") == "message.sent":
            sent += 1
        else:
            assert_ws_error(ev, "rate_limited", f"answer {i}")
            limited += 1
    expect(limited >= 1, f"{n} sends at once: none rate_limited (contract: 100/s, bursts of 200)")
    expect(sent >= 200, f"only {sent} of {n} sends accepted (contract: bursts of 200)")
    eq(c.conv_row(a, conv)["last_seq"], sent, "last_seq (nothing stored for rate_limited sends)")


# --------------------------------------------------------------- runner ----


class AuthTimeoutProbe:
    """ws.auth_timeout_4401: a socket that never authenticates, watched in
    the background while the other checks run."""

    def __init__(self, ctx):
        self.result = None
        self.ctx = ctx
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        try:
            t0 = time.monotonic()
            w = Ws(self.ctx.http, None)
            try:
                code = w.expect_close("no auth frame", timeout=16.0)
            finally:
                w.close()
            took = time.monotonic() - t0
            errs = [e for e in w.pending if e.get("type") == "error"]
            expect(errs, f"no error before the close (code {code})")
            assert_ws_error(errs[0], "unauthorized", "no auth within 10 s")
            eq(code, 4401, "close code when no auth frame arrives")
            expect(9.0 <= took <= 13.0, f"closed after {took:.1f} s (contract: the client has 10 s)")
            self.result = None
        except Fail as e:
            self.result = str(e)
        except Exception as e:  # noqa: BLE001
            self.result = f"{type(e).__name__}: {e}"

    def finish(self):
        self.thread.join(20.0)
        if self.thread.is_alive():
            return "probe did not finish"
        return self.result


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--http", required=True, help="base URL, e.g. http://127.0.0.1:8080")
    ap.add_argument("--otp-file", required=True, help="the file of --otp-sink file:PATH")
    ap.add_argument("--only", action="append", help="run only checks whose name contains this (repeatable)")
    ap.add_argument("--skip", action="append", default=[], help="skip checks whose name contains this (repeatable)")
    ap.add_argument("--list", action="store_true", help="list the checks and exit")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every REST call")
    args = ap.parse_args()
    names = [n for n, _ in CHECKS] + ["ws.auth_timeout_4401", "ws.type_field_first", "ws.server_frames_unmasked"]
    if args.list:
        print("\n".join(names))
        return 0
    ctx = Ctx(args.http, args.otp_file, args.verbose)
    chosen = (lambda n: any(s in n for s in args.only)) if args.only else (lambda n: True)
    want = lambda n: chosen(n) and not any(s in n for s in args.skip)  # noqa: E731
    passed, failed = [], []
    t_start = time.monotonic()
    probe = AuthTimeoutProbe(ctx) if want("ws.auth_timeout_4401") else None

    def report(name, err):
        if err is None:
            passed.append(name)
            print(f"ok {name}", flush=True)
        else:
            failed.append(name)
            print(f"FAIL {name}: {err}", flush=True)

    for name, fn in CHECKS:
        if not want(name):
            continue
        t0 = time.monotonic()
        err = None
        try:
            fn(ctx)
        except Fail as e:
            err = str(e)
        except Exception as e:  # noqa: BLE001
            tb = traceback.extract_tb(e.__traceback__)
            where = f" (line {tb[-1].lineno})" if tb else ""
            err = f"{type(e).__name__}: {e}{where}"
        finally:
            ctx.close_all()
        if args.verbose:
            print(f"    ({time.monotonic() - t0:.2f} s)")
        report(name, err)
    if probe is not None:
        report("ws.auth_timeout_4401", probe.finish())
    if want("ws.type_field_first"):
        kinds = sorted({json.loads(t).get("type") for t in TYPE_NOT_FIRST})
        report("ws.type_field_first", None if not TYPE_NOT_FIRST else
               f"{len(TYPE_NOT_FIRST)} server frames without `type` as their first field (types: {', '.join(kinds)}),"
               f" e.g. {short(TYPE_NOT_FIRST[0])}")
    if want("ws.server_frames_unmasked"):
        report("ws.server_frames_unmasked", None if not SERVER_MASKED else
               f"{len(SERVER_MASKED)} masked server frames (RFC 6455 5.1)")
    total = len(passed) + len(failed)
    print(f"\n{len(passed)}/{total} checks passed, {len(failed)} failed ({time.monotonic() - t_start:.1f} s)")
    if failed:
        print("failed: " + ", ".join(failed))
    return 0 if not failed and total else 1


if __name__ == "__main__":
    sys.exit(main())
