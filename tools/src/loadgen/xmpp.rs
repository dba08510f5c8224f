//! XMPP over WebSocket (RFC 7395) for the load generator's ejabberd runs:
//! builders of the frames a client sends, and `parse`, a sans-IO parser of
//! the frames ejabberd 23.01 sends back. No I/O, no clock, no new crate: the
//! caller owns the WebSocket (subprotocol `xmpp`, one element per text frame)
//! and feeds each received text frame to `parse`.
//!
//! Used by: the load generator when its target is the ejabberd instance of
//! `benches/ejabberd/` (setup, start, stop, smoke.py; frames captured there).
//!
//! # Frame sequence (checked against ejabberd 23.01 by `smoke.py --verbose`)
//! ```text
//! C open(domain)                  S <open …/>, <stream:features> (mechanisms, register)
//! C register(id, user, pass)      S <iq type='result'/> (or IqError "conflict": exists)
//! C auth_plain(user, pass)        S <success/> (or <failure><not-authorized/>…)
//! C open(domain)                  S <open …/>, <stream:features> (bind, session optional)
//! C bind(id, resource)            S <iq type='result'><bind><jid>user@domain/resource</jid>
//! C presence()                    S <presence/> from our own full JID (self-reflection),
//!                                   then offline messages (with <delay/>), if any
//! C join_room(room@service/nick)  S the room's caps presence, one presence per occupant,
//!                                   our own (status 110; 201 if we created the room),
//!                                   then <message type='groupchat'><subject/></message>
//! C chat(to, id, body)            S (to the recipient) <message type='chat' id=…>
//! C groupchat(room, id, body)     S (to every occupant, sender included) type='groupchat'
//! C ping(id)                      S <iq type='result' id=…/>
//! C close()                       S <close/>, then ejabberd closes the WebSocket
//! ```
//! ejabberd 23.01 advertises `<session><optional/></session>`, so no session
//! request is sent. It answers `<close/>` only about 100 ms later once bound
//! (its c2s drains the session's queue first): close many sessions at once,
//! not one after another. It does not answer a bare WebSocket close frame
//! while the XMPP stream is open: send `close()` first. RFC 7395 has no
//! whitespace keepalive; `ping` is XEP-0199.
//!
//! # Parser scope
//! One element per frame: a root, attributes quoted with ' or ", the five
//! named entities and numeric references, CDATA, comments and processing
//! instructions. No DTDs, no namespace resolution (names are matched by
//! local part, `stream:features` is `features`). A frame that is not one
//! well-formed element, nests deeper than `DEPTH_MAX` or exceeds
//! `FRAME_BYTES_MAX` parses as `Stanza::Other("")`; `parse` never panics.

use std::borrow::Cow;

/// All limits of the parser. Units last.
/// Element nesting a frame may have; ejabberd's stanzas nest at most ~4 deep.
pub const DEPTH_MAX: usize = 16;
/// The benchmark instance's `max_stanza_size` (benches/ejabberd/setup).
pub const FRAME_BYTES_MAX: usize = 262_144;
/// Longest entity reference body between `&` and `;` (`#x10FFFF`).
const ENTITY_BYTES_MAX: usize = 8;
const _: () = assert!(DEPTH_MAX >= 4);

pub const NS_FRAMING: &str = "urn:ietf:params:xml:ns:xmpp-framing";
pub const NS_SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
pub const NS_BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
pub const NS_REGISTER: &str = "jabber:iq:register";
pub const NS_MUC: &str = "http://jabber.org/protocol/muc";
pub const NS_PING: &str = "urn:xmpp:ping";
pub const NS_DELAY: &str = "urn:xmpp:delay";

// ---------------------------------------------------------------- builders

/// RFC 7395 stream open; sent at the start and again after `<success/>`.
pub fn open(domain: &str) -> String {
    format!(
        "<open xmlns='{NS_FRAMING}' to='{}' version='1.0'/>",
        escape(domain)
    )
}

/// XEP-0077 in-band registration, sent before authentication.
pub fn register(id: &str, username: &str, password: &str) -> String {
    format!(
        "<iq type='set' id='{}'><query xmlns='{NS_REGISTER}'><username>{}</username>\
         <password>{}</password></query></iq>",
        escape(id),
        escape(username),
        escape(password)
    )
}

/// SASL PLAIN (RFC 4616): base64 of "\0username\0password".
pub fn auth_plain(username: &str, password: &str) -> String {
    let mut raw = Vec::with_capacity(2 + username.len() + password.len());
    raw.push(0);
    raw.extend_from_slice(username.as_bytes());
    raw.push(0);
    raw.extend_from_slice(password.as_bytes());
    format!(
        "<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{}</auth>",
        base64(&raw)
    )
}

/// Resource binding (RFC 6120 §7); the result carries the full JID.
pub fn bind(id: &str, resource: &str) -> String {
    format!(
        "<iq type='set' id='{}'><bind xmlns='{NS_BIND}'><resource>{}</resource></bind></iq>",
        escape(id),
        escape(resource)
    )
}

/// Initial available presence: makes the session receive messages and
/// flushes offline storage to it.
pub fn presence() -> String {
    "<presence/>".to_owned()
}

/// XEP-0045 join (creates the room if it does not exist), no history.
pub fn join_room(room_jid_with_nick: &str) -> String {
    format!(
        "<presence to='{}'><x xmlns='{NS_MUC}'><history maxstanzas='0'/></x></presence>",
        escape(room_jid_with_nick)
    )
}

/// A 1:1 message.
pub fn chat(to_jid: &str, id: &str, body: &str) -> String {
    message("chat", to_jid, id, body)
}

/// A message to a room the sender has joined; the room reflects it to the
/// sender too.
pub fn groupchat(room_jid: &str, id: &str, body: &str) -> String {
    message("groupchat", room_jid, id, body)
}

fn message(kind: &str, to: &str, id: &str, body: &str) -> String {
    format!(
        "<message type='{kind}' to='{}' id='{}'><body>{}</body></message>",
        escape(to),
        escape(id),
        escape(body)
    )
}

/// XEP-0199 ping of the server on the account's behalf (no `to`): answered
/// by `<iq type='result' id=…/>`, i.e. `Stanza::IqResult { jid: None, .. }`.
pub fn ping(id: &str) -> String {
    format!(
        "<iq type='get' id='{}'><ping xmlns='{NS_PING}'/></iq>",
        escape(id)
    )
}

/// RFC 7395 stream close; the server answers `<close/>`.
pub fn close() -> String {
    format!("<close xmlns='{NS_FRAMING}'/>")
}

/// Escapes text for an attribute value or character data. Characters XML
/// 1.0 cannot carry (controls other than tab and newline) become U+FFFD;
/// a carriage return is kept as `&#13;`.
pub fn escape(s: &str) -> Cow<'_, str> {
    let plain = |c: char| !matches!(c, '&' | '<' | '>' | '\'' | '"') && !is_control(c);
    if s.chars().all(plain) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            '\r' => out.push_str("&#13;"),
            c if is_control(c) => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn is_control(c: char) -> bool {
    (c < ' ' && c != '\t' && c != '\n') || c == '\u{FFFE}' || c == '\u{FFFF}'
}

/// Standard base64 (RFC 4648 §4) with padding.
fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let byte = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
        let n = (byte(0) << 16) | (byte(1) << 8) | byte(2);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

// ------------------------------------------------------------------ parser

/// One frame from the server, as much of it as the load generator uses.
/// Strings borrow from the frame unless they contained entities.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stanza<'a> {
    /// `<open …/>`: the stream (re)started.
    Open,
    /// `<stream:features>`: SASL mechanisms offered (before auth), resource
    /// binding offered (after auth).
    Features { mechanisms: bool, bind: bool },
    /// SASL `<success/>`: send `open` again.
    Success,
    /// SASL `<failure>`: its condition, e.g. `not-authorized`.
    Failure(Cow<'a, str>),
    /// `<iq type='result'>`; `jid` is the bound JID of a bind result.
    IqResult {
        id: Cow<'a, str>,
        jid: Option<Cow<'a, str>>,
    },
    /// `<iq type='error'>`: the defined condition, e.g. `conflict`.
    IqError {
        id: Cow<'a, str>,
        condition: Cow<'a, str>,
    },
    /// `<message>`: `kind` is its type (`normal` when absent), `body` the
    /// unescaped text of the first `<body>`, `delayed` whether it carries a
    /// XEP-0203 `<delay/>` (offline storage), `error` the condition of an
    /// `<error>` child (type `error`: bounced).
    Message {
        from: Cow<'a, str>,
        id: Option<Cow<'a, str>>,
        kind: Cow<'a, str>,
        body: Option<Cow<'a, str>>,
        delayed: bool,
        error: Option<Cow<'a, str>>,
    },
    /// `<presence>`: `kind` is its type (`None`: available).
    Presence {
        from: Cow<'a, str>,
        kind: Option<Cow<'a, str>>,
    },
    /// `<close/>`: the server ends the stream.
    Close,
    /// Anything else, by root element name (an `iq` get/set from the server,
    /// `stream:error`, …); `""` when the frame is not one well-formed element.
    Other(Cow<'a, str>),
}

/// Parses one WebSocket text frame. Never panics; see "Parser scope".
pub fn parse(frame: &str) -> Stanza<'_> {
    parse_frame(frame).unwrap_or(Stanza::Other(Cow::Borrowed("")))
}

/// The frame is not one well-formed element (as far as this parser checks).
#[derive(Debug)]
struct Malformed;

type Parsed<T> = Result<T, Malformed>;

fn parse_frame(frame: &str) -> Parsed<Stanza<'_>> {
    if frame.len() > FRAME_BYTES_MAX {
        return Err(Malformed);
    }
    let mut tokens = Tokens { src: frame, pos: 0 };
    let (root, attrs, empty) = loop {
        match tokens.next_token()?.ok_or(Malformed)? {
            Token::Start { name, attrs, empty } => break (name, attrs, empty),
            Token::Text(text) if is_blank(text) => {}
            _ => return Err(Malformed),
        }
    };
    let facts = if empty {
        Facts::default()
    } else {
        walk(&mut tokens, root)?
    };
    while let Some(token) = tokens.next_token()? {
        match token {
            Token::Text(text) if is_blank(text) => {}
            _ => return Err(Malformed),
        }
    }
    classify(root, attrs, facts)
}

fn classify<'a>(root: &'a str, attrs: &'a str, facts: Facts<'a>) -> Parsed<Stanza<'a>> {
    let stanza = match local(root) {
        "open" => Stanza::Open,
        "close" => Stanza::Close,
        "features" => Stanza::Features {
            mechanisms: facts.mechanisms,
            bind: facts.bind,
        },
        "success" => Stanza::Success,
        "failure" => Stanza::Failure(Cow::Borrowed(facts.first_child.unwrap_or(""))),
        "iq" => {
            let id = attr(attrs, "id")?.unwrap_or_default();
            match attr(attrs, "type")?.as_deref() {
                Some("result") => Stanza::IqResult { id, jid: facts.jid },
                Some("error") => Stanza::IqError {
                    id,
                    condition: Cow::Borrowed(facts.error_condition.unwrap_or("")),
                },
                _ => Stanza::Other(Cow::Borrowed(root)),
            }
        }
        "message" => Stanza::Message {
            from: attr(attrs, "from")?.unwrap_or_default(),
            id: attr(attrs, "id")?,
            kind: attr(attrs, "type")?.unwrap_or(Cow::Borrowed("normal")),
            body: facts.body,
            delayed: facts.delayed,
            error: facts
                .error
                .then(|| Cow::Borrowed(facts.error_condition.unwrap_or(""))),
        },
        "presence" => Stanza::Presence {
            from: attr(attrs, "from")?.unwrap_or_default(),
            kind: attr(attrs, "type")?,
        },
        _ => Stanza::Other(Cow::Borrowed(root)),
    };
    Ok(stanza)
}

/// What `walk` found below the root.
#[derive(Default)]
struct Facts<'a> {
    /// Local name of the first child that is not `<text>` (SASL failure).
    first_child: Option<&'a str>,
    mechanisms: bool,
    bind: bool,
    /// Text of `<bind><jid>`.
    jid: Option<Cow<'a, str>>,
    /// Text of the first `<body>`.
    body: Option<Cow<'a, str>>,
    delayed: bool,
    /// An `<error>` child exists; `error_condition` is its first child that
    /// is not `<text>`.
    error: bool,
    error_condition: Option<&'a str>,
}

/// Whose text a capture collects.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Slot {
    Body,
    Jid,
}

/// Walks the root's content up to its end tag, checking that tags balance.
fn walk<'a>(tokens: &mut Tokens<'a>, root: &'a str) -> Parsed<Facts<'a>> {
    let mut stack = [""; DEPTH_MAX];
    stack[0] = root;
    let mut depth = 1;
    let mut facts = Facts::default();
    // The slot being captured and the depth of its text.
    let mut capture: Option<(Slot, usize)> = None;
    while depth > 0 {
        match tokens.next_token()?.ok_or(Malformed)? {
            Token::Start { name, attrs, empty } => {
                if depth == DEPTH_MAX {
                    return Err(Malformed);
                }
                let slot = facts.see(&stack[..depth], name, attrs)?;
                if let Some(slot) = slot {
                    facts.slot(slot).get_or_insert(Cow::Borrowed(""));
                }
                if !empty {
                    stack[depth] = name;
                    depth += 1;
                    if let Some(slot) = slot {
                        capture = Some((slot, depth));
                    }
                }
            }
            Token::End { name } => {
                if stack[depth - 1] != name {
                    return Err(Malformed);
                }
                depth -= 1;
                capture = capture.filter(|&(_, at)| at <= depth);
            }
            Token::Text(raw) => match capture {
                Some((slot, at)) if at == depth => append(facts.slot(slot), unescape(raw)?),
                _ => {}
            },
            Token::CData(text) => match capture {
                Some((slot, at)) if at == depth => append(facts.slot(slot), Cow::Borrowed(text)),
                _ => {}
            },
        }
    }
    Ok(facts)
}

impl<'a> Facts<'a> {
    /// Notes an element `name` below `path` (root first); returns the slot
    /// its text fills, if any.
    fn see(&mut self, path: &[&'a str], name: &'a str, attrs: &'a str) -> Parsed<Option<Slot>> {
        let name = local(name);
        let mut slot = None;
        if path.len() == 1 {
            if self.first_child.is_none() && name != "text" {
                self.first_child = Some(name);
            }
            match name {
                "mechanisms" => self.mechanisms = true,
                "bind" => self.bind = true,
                "body" if self.body.is_none() => slot = Some(Slot::Body),
                "delay" => self.delayed |= attr(attrs, "xmlns")?.as_deref() == Some(NS_DELAY),
                "error" => self.error = true,
                _ => {}
            }
        } else if path.len() == 2 {
            let parent = local(path[1]);
            if parent == "bind" && name == "jid" && self.jid.is_none() {
                slot = Some(Slot::Jid);
            }
            if parent == "error" && name != "text" && self.error_condition.is_none() {
                self.error_condition = Some(name);
            }
        }
        Ok(slot)
    }

    fn slot(&mut self, slot: Slot) -> &mut Option<Cow<'a, str>> {
        match slot {
            Slot::Body => &mut self.body,
            Slot::Jid => &mut self.jid,
        }
    }
}

fn append<'a>(slot: &mut Option<Cow<'a, str>>, piece: Cow<'a, str>) {
    match slot {
        Some(text) if !text.is_empty() => text.to_mut().push_str(&piece),
        _ => *slot = Some(piece),
    }
}

enum Token<'a> {
    /// `<name attrs>` or `<name attrs/>` (`empty`); `attrs` is raw.
    Start {
        name: &'a str,
        attrs: &'a str,
        empty: bool,
    },
    End {
        name: &'a str,
    },
    /// Character data, entities still escaped.
    Text(&'a str),
    /// The inside of `<![CDATA[…]]>`, literal.
    CData(&'a str),
}

/// The tokens of one frame. Every position it stores or slices at follows
/// an ASCII byte (or is 0 or the length), so it is a char boundary.
struct Tokens<'a> {
    src: &'a str,
    pos: usize,
}

impl<'a> Tokens<'a> {
    fn next_token(&mut self) -> Parsed<Option<Token<'a>>> {
        loop {
            let rest = self.src.get(self.pos..).ok_or(Malformed)?;
            if rest.is_empty() {
                return Ok(None);
            }
            if let Some(inner) = rest.strip_prefix("<!--") {
                self.pos += 4 + inner.find("-->").ok_or(Malformed)? + 3;
            } else if let Some(inner) = rest.strip_prefix("<?") {
                self.pos += 2 + inner.find("?>").ok_or(Malformed)? + 2;
            } else if let Some(inner) = rest.strip_prefix("<![CDATA[") {
                let end = inner.find("]]>").ok_or(Malformed)?;
                self.pos += 9 + end + 3;
                return Ok(Some(Token::CData(inner.get(..end).ok_or(Malformed)?)));
            } else if let Some(inner) = rest.strip_prefix("</") {
                return self.end_tag(inner).map(Some);
            } else if let Some(inner) = rest.strip_prefix('<') {
                return self.start_tag(inner).map(Some);
            } else {
                let end = rest.find('<').unwrap_or(rest.len());
                self.pos += end;
                return Ok(Some(Token::Text(rest.get(..end).ok_or(Malformed)?)));
            }
        }
    }

    /// `inner` follows `</`.
    fn end_tag(&mut self, inner: &'a str) -> Parsed<Token<'a>> {
        let end = inner.find('>').ok_or(Malformed)?;
        let name = inner.get(..end).ok_or(Malformed)?.trim_end();
        if !valid_name(name) {
            return Err(Malformed);
        }
        self.pos += 2 + end + 1;
        Ok(Token::End { name })
    }

    /// `inner` follows `<`.
    fn start_tag(&mut self, inner: &'a str) -> Parsed<Token<'a>> {
        let name_end = inner
            .find(|c: char| c.is_ascii_whitespace() || c == '/' || c == '>')
            .ok_or(Malformed)?;
        let name = inner.get(..name_end).ok_or(Malformed)?;
        if !valid_name(name) {
            return Err(Malformed);
        }
        let mut attrs = Attrs {
            s: inner,
            pos: name_end,
        };
        while attrs.next_attr()?.is_some() {}
        let raw_attrs = inner.get(name_end..attrs.pos).ok_or(Malformed)?;
        let tail = inner.get(attrs.pos..).ok_or(Malformed)?;
        let (empty, close_len) = if tail.starts_with("/>") {
            (true, 2)
        } else if tail.starts_with('>') {
            (false, 1)
        } else {
            return Err(Malformed);
        };
        self.pos += 1 + attrs.pos + close_len;
        Ok(Token::Start {
            name,
            attrs: raw_attrs,
            empty,
        })
    }
}

/// `name='value'` pairs from `pos` on, up to the end of `s` or to the `>`
/// or `/` that ends a tag.
struct Attrs<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Attrs<'a> {
    /// The next attribute's name and raw (still escaped) value.
    fn next_attr(&mut self) -> Parsed<Option<(&'a str, &'a str)>> {
        let bytes = self.s.as_bytes();
        let start = skip_blank(bytes, self.pos);
        if matches!(bytes.get(start), None | Some(b'>') | Some(b'/')) {
            self.pos = start;
            return Ok(None);
        }
        let name_len = bytes[start..]
            .iter()
            .position(|b| matches!(b, b'=' | b'>' | b'/') || b.is_ascii_whitespace())
            .ok_or(Malformed)?;
        let name = self.s.get(start..start + name_len).ok_or(Malformed)?;
        let eq = skip_blank(bytes, start + name_len);
        if bytes.get(eq) != Some(&b'=') || !valid_name(name) {
            return Err(Malformed);
        }
        let open = skip_blank(bytes, eq + 1);
        let quote = match bytes.get(open) {
            Some(&q @ (b'\'' | b'"')) => q,
            _ => return Err(Malformed),
        };
        let value_len = bytes[open + 1..]
            .iter()
            .position(|&b| b == quote)
            .ok_or(Malformed)?;
        let value = self
            .s
            .get(open + 1..open + 1 + value_len)
            .ok_or(Malformed)?;
        if value.contains('<') {
            return Err(Malformed);
        }
        self.pos = open + 1 + value_len + 1;
        Ok(Some((name, value)))
    }
}

/// The unescaped value of attribute `key` in a start tag's raw attributes.
fn attr<'a>(raw_attrs: &'a str, key: &str) -> Parsed<Option<Cow<'a, str>>> {
    let mut attrs = Attrs {
        s: raw_attrs,
        pos: 0,
    };
    while let Some((name, value)) = attrs.next_attr()? {
        if name == key {
            return unescape(value).map(Some);
        }
    }
    Ok(None)
}

/// Replaces entity and character references; borrows when there are none.
fn unescape(raw: &str) -> Parsed<Cow<'_, str>> {
    if !raw.contains('&') {
        return Ok(Cow::Borrowed(raw));
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(amp) = rest.find('&') {
        out.push_str(rest.get(..amp).ok_or(Malformed)?);
        let after = rest.get(amp + 1..).ok_or(Malformed)?;
        let semi = after
            .find(';')
            .filter(|&n| n <= ENTITY_BYTES_MAX)
            .ok_or(Malformed)?;
        out.push(entity(after.get(..semi).ok_or(Malformed)?)?);
        rest = after.get(semi + 1..).ok_or(Malformed)?;
    }
    out.push_str(rest);
    Ok(Cow::Owned(out))
}

fn entity(name: &str) -> Parsed<char> {
    let c = match name {
        "lt" => '<',
        "gt" => '>',
        "amp" => '&',
        "quot" => '"',
        "apos" => '\'',
        _ => {
            let number = name.strip_prefix('#').ok_or(Malformed)?;
            let (digits, radix) = match number.strip_prefix('x') {
                Some(hex) => (hex, 16),
                None => (number, 10),
            };
            if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
                return Err(Malformed);
            }
            let code = u32::from_str_radix(digits, radix).map_err(|_| Malformed)?;
            char::from_u32(code)
                .filter(|&c| c != '\0')
                .ok_or(Malformed)?
        }
    };
    Ok(c)
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.bytes().any(|b| {
            b.is_ascii_whitespace()
                || matches!(
                    b,
                    b'<' | b'>' | b'/' | b'=' | b'\'' | b'"' | b'&' | b'!' | b'?'
                )
        })
}

/// The part of a name after its prefix: `stream:features` → `features`.
fn local(name: &str) -> &str {
    name.rsplit(':').next().unwrap_or(name)
}

fn is_blank(text: &str) -> bool {
    text.bytes().all(|b| b.is_ascii_whitespace())
}

fn skip_blank(bytes: &[u8], from: usize) -> usize {
    let skipped = bytes.get(from..).map_or(0, |rest| {
        rest.iter().take_while(|b| b.is_ascii_whitespace()).count()
    });
    from + skipped
}

#[cfg(test)]
mod tests {
    use super::*;

    // Frames captured from ejabberd 23.01 (Debian 23.01-1) on the
    // benches/ejabberd instance by `smoke.py --verbose`.
    const OPEN: &str = "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' \
        id='12107680189118890001' version='1.0' xml:lang='en' from='loadgen.local'/>";
    const FEATURES_PRE_AUTH: &str = "<stream:features \
        xmlns:stream='http://etherx.jabber.org/streams'><mechanisms \
        xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>DIGEST-MD5</mechanism>\
        <mechanism>PLAIN</mechanism><mechanism>SCRAM-SHA-512</mechanism>\
        <mechanism>SCRAM-SHA-256</mechanism><mechanism>SCRAM-SHA-1</mechanism>\
        <mechanism>X-OAUTH2</mechanism></mechanisms><register \
        xmlns='http://jabber.org/features/iq-register'/></stream:features>";
    const FEATURES_POST_AUTH: &str = "<stream:features \
        xmlns:stream='http://etherx.jabber.org/streams'><bind \
        xmlns='urn:ietf:params:xml:ns:xmpp-bind'/><session \
        xmlns='urn:ietf:params:xml:ns:xmpp-session'><optional/></session></stream:features>";
    const REGISTER_OK: &str = "<iq xmlns='jabber:client' xml:lang='en' from='loadgen.local' \
        type='result' id='reg-smoke-a-869d9852'/>";
    const REGISTER_CONFLICT: &str = "<iq xmlns='jabber:client' xml:lang='en' \
        from='loadgen.local' type='error' id='reg-smoke-a-869d9852'><query \
        xmlns='jabber:iq:register'><username>smoke-a-869d9852</username><password>\
        pw-a-869d9852</password></query><error type='cancel'><conflict \
        xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xml:lang='en' \
        xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>User already exists</text></error></iq>";
    const SASL_FAILURE: &str = "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
        <not-authorized/><text xml:lang='en'>Invalid username or password</text></failure>";
    const SASL_SUCCESS: &str = "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>";
    const BIND_RESULT: &str = "<iq xmlns='jabber:client' type='result' id='bind'><bind \
        xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>smoke-a-869d9852@loadgen.local/a</jid>\
        </bind></iq>";
    const SELF_PRESENCE: &str = "<presence xmlns='jabber:client' xml:lang='en' \
        to='smoke-a-869d9852@loadgen.local/a' from='smoke-a-869d9852@loadgen.local/a'/>";
    const CHAT: &str = "<message xmlns='jabber:client' xml:lang='en' \
        to='smoke-b-869d9852@loadgen.local' from='smoke-a-869d9852@loadgen.local/a' \
        type='chat' id='chat-1'><body>hello &lt;b&gt; &amp; &apos;quotes&apos; \
        &quot;double&quot; é</body></message>";
    const PING_RESULT: &str = "<iq xmlns='jabber:client' xml:lang='en' \
        to='smoke-a-869d9852@loadgen.local/a' from='loadgen.local' type='result' id='ping-1'/>";
    const ROOM_CAPS: &str = "<presence xmlns='jabber:client' \
        to='smoke-a-869d9852@loadgen.local/a' from='smoke-869d9852@conference.loadgen.local' \
        id='14166088518526111089'><c ver='yyBlbjrRG+7OE4iOc3ol9JiXzEM=' \
        node='http://www.process-one.net/en/ejabberd/' hash='sha-1' \
        xmlns='http://jabber.org/protocol/caps'/></presence>";
    const ROOM_SELF: &str = "<presence xmlns='jabber:client' xml:lang='en' \
        to='smoke-a-869d9852@loadgen.local/a' from='smoke-869d9852@conference.loadgen.local/alice'>\
        <x xmlns='http://jabber.org/protocol/muc#user'><item \
        jid='smoke-a-869d9852@loadgen.local/a' role='moderator' affiliation='owner'/>\
        <status code='201'/><status code='110'/></x></presence>";
    const ROOM_SUBJECT: &str = "<message xmlns='jabber:client' \
        to='smoke-a-869d9852@loadgen.local/a' from='smoke-869d9852@conference.loadgen.local' \
        type='groupchat'><subject/></message>";
    const GROUPCHAT: &str = "<message xmlns='jabber:client' xml:lang='en' \
        to='smoke-a-869d9852@loadgen.local/a' \
        from='smoke-869d9852@conference.loadgen.local/alice' type='groupchat' id='gc-1'>\
        <body>to the room &amp; all &lt;in&gt; it</body></message>";
    const ROOM_LEAVE: &str = "<presence xmlns='jabber:client' \
        to='smoke-b-869d9852@loadgen.local/b' \
        from='smoke-869d9852@conference.loadgen.local/alice' type='unavailable'><x \
        xmlns='http://jabber.org/protocol/muc#user'><item role='none' affiliation='owner'/>\
        </x></presence>";
    const OFFLINE: &str = "<message xmlns='jabber:client' xml:lang='en' \
        to='smoke-c-869d9852@loadgen.local' from='smoke-a-869d9852@loadgen.local/a' \
        type='chat' id='off-1'><delay from='loadgen.local' stamp='2026-11-22T12:41:53.473019Z' \
        xmlns='urn:xmpp:delay'>Offline storage</delay><body>while you were away</body></message>";
    const BOUNCE: &str = "<message xmlns='jabber:client' xml:lang='en' \
        to='cap-a-29da2c@loadgen.local/a' from='nobody-here@loadgen.local' type='error' id='e1'>\
        <error type='cancel'><service-unavailable \
        xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error><body>x</body></message>";
    const ROOM_MISSING: &str = "<message xmlns='jabber:client' xml:lang='en' \
        to='cap-a-29da2c@loadgen.local/a' from='notjoined@conference.loadgen.local' \
        type='error' id='e2'><error type='cancel'><item-not-found \
        xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xml:lang='en' \
        xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>Conference room does not exist</text>\
        </error><body>y</body></message>";
    const CLOSE: &str = "<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>";

    const CAPTURED: [&str; 20] = [
        OPEN,
        FEATURES_PRE_AUTH,
        FEATURES_POST_AUTH,
        REGISTER_OK,
        REGISTER_CONFLICT,
        SASL_FAILURE,
        SASL_SUCCESS,
        BIND_RESULT,
        SELF_PRESENCE,
        CHAT,
        PING_RESULT,
        ROOM_CAPS,
        ROOM_SELF,
        ROOM_SUBJECT,
        GROUPCHAT,
        ROOM_LEAVE,
        OFFLINE,
        BOUNCE,
        ROOM_MISSING,
        CLOSE,
    ];

    fn b(s: &str) -> Cow<'_, str> {
        Cow::Borrowed(s)
    }

    #[test]
    fn stream_negotiation_frames() {
        assert_eq!(parse(OPEN), Stanza::Open);
        assert_eq!(
            parse(FEATURES_PRE_AUTH),
            Stanza::Features {
                mechanisms: true,
                bind: false
            }
        );
        assert_eq!(
            parse(FEATURES_POST_AUTH),
            Stanza::Features {
                mechanisms: false,
                bind: true
            }
        );
        assert_eq!(parse(SASL_SUCCESS), Stanza::Success);
        assert_eq!(parse(SASL_FAILURE), Stanza::Failure(b("not-authorized")));
        assert_eq!(parse(CLOSE), Stanza::Close);
    }

    #[test]
    fn iq_frames() {
        assert_eq!(
            parse(REGISTER_OK),
            Stanza::IqResult {
                id: b("reg-smoke-a-869d9852"),
                jid: None
            }
        );
        assert_eq!(
            parse(REGISTER_CONFLICT),
            Stanza::IqError {
                id: b("reg-smoke-a-869d9852"),
                condition: b("conflict")
            }
        );
        assert_eq!(
            parse(BIND_RESULT),
            Stanza::IqResult {
                id: b("bind"),
                jid: Some(b("smoke-a-869d9852@loadgen.local/a"))
            }
        );
        assert_eq!(
            parse(PING_RESULT),
            Stanza::IqResult {
                id: b("ping-1"),
                jid: None
            }
        );
        let ping = "<iq type='get' id='s1' from='loadgen.local'><ping xmlns='urn:xmpp:ping'/></iq>";
        assert_eq!(parse(ping), Stanza::Other(b("iq")));
    }

    #[test]
    fn chat_frames() {
        let Stanza::Message {
            from,
            id,
            kind,
            body,
            delayed,
            error,
        } = parse(CHAT)
        else {
            panic!("not a message");
        };
        assert_eq!(from, "smoke-a-869d9852@loadgen.local/a");
        assert_eq!(id.as_deref(), Some("chat-1"));
        assert_eq!(kind, "chat");
        assert_eq!(body.as_deref(), Some("hello <b> & 'quotes' \"double\" é"));
        assert!(!delayed);
        assert_eq!(error, None);

        let Stanza::Message {
            kind,
            body,
            delayed,
            ..
        } = parse(OFFLINE)
        else {
            panic!("not a message");
        };
        assert_eq!(
            (kind.as_ref(), body.as_deref(), delayed),
            ("chat", Some("while you were away"), true)
        );

        let Stanza::Message {
            kind, error, body, ..
        } = parse(BOUNCE)
        else {
            panic!("not a message");
        };
        assert_eq!(
            (kind.as_ref(), error.as_deref()),
            ("error", Some("service-unavailable"))
        );
        assert_eq!(body.as_deref(), Some("x"));
        let Stanza::Message { error, .. } = parse(ROOM_MISSING) else {
            panic!("not a message");
        };
        assert_eq!(error.as_deref(), Some("item-not-found"));
    }

    #[test]
    fn room_frames() {
        let room = "smoke-869d9852@conference.loadgen.local";
        assert_eq!(
            parse(ROOM_CAPS),
            Stanza::Presence {
                from: b(room),
                kind: None
            }
        );
        assert_eq!(
            parse(ROOM_SELF),
            Stanza::Presence {
                from: Cow::Owned(format!("{room}/alice")),
                kind: None
            }
        );
        assert_eq!(
            parse(ROOM_LEAVE),
            Stanza::Presence {
                from: Cow::Owned(format!("{room}/alice")),
                kind: Some(b("unavailable"))
            }
        );
        assert_eq!(
            parse(ROOM_SUBJECT),
            Stanza::Message {
                from: b(room),
                id: None,
                kind: b("groupchat"),
                body: None,
                delayed: false,
                error: None
            }
        );
        let Stanza::Message {
            from,
            id,
            kind,
            body,
            ..
        } = parse(GROUPCHAT)
        else {
            panic!("not a message");
        };
        assert_eq!(from, format!("{room}/alice"));
        assert_eq!((id.as_deref(), kind.as_ref()), (Some("gc-1"), "groupchat"));
        assert_eq!(body.as_deref(), Some("to the room & all <in> it"));
        assert!(matches!(
            parse(SELF_PRESENCE),
            Stanza::Presence { kind: None, .. }
        ));
    }

    #[test]
    fn builders_match_what_ejabberd_accepted() {
        assert_eq!(
            open("loadgen.local"),
            "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='loadgen.local' version='1.0'/>"
        );
        // The auth frame smoke.py sent for smoke-a-869d9852 / pw-a-869d9852.
        assert_eq!(
            auth_plain("smoke-a-869d9852", "pw-a-869d9852"),
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>\
             AHNtb2tlLWEtODY5ZDk4NTIAcHctYS04NjlkOTg1Mg==</auth>"
        );
        assert_eq!(
            bind("bind", "a"),
            "<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
             <resource>a</resource></bind></iq>"
        );
        assert_eq!(
            register("r1", "u", "p"),
            "<iq type='set' id='r1'><query xmlns='jabber:iq:register'><username>u</username>\
             <password>p</password></query></iq>"
        );
        assert_eq!(
            join_room("r@conference.loadgen.local/alice"),
            "<presence to='r@conference.loadgen.local/alice'><x \
             xmlns='http://jabber.org/protocol/muc'><history maxstanzas='0'/></x></presence>"
        );
        assert_eq!(
            ping("p1"),
            "<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>"
        );
        assert_eq!(presence(), "<presence/>");
        assert_eq!(close(), CLOSE);
    }

    #[test]
    fn base64_rfc4648_vectors() {
        let vectors = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in vectors {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
        assert_eq!(base64(&[0xff, 0xfe, 0xfd]), "//79");
    }

    #[test]
    fn escaping_round_trips() {
        let bodies = [
            "plain",
            "",
            "<>&'\"",
            "a&amp;b",
            "é ✓ 😀",
            "tab\tnl\ncr\r",
            "]]>",
            "&#38;",
        ];
        for body in bodies {
            for frame in [
                chat("b@loadgen.local", "i<1>", body),
                groupchat("r@c.l", "'", body),
            ] {
                let Stanza::Message { body: got, id, .. } = parse(&frame) else {
                    panic!("{frame} did not parse as a message");
                };
                assert_eq!(got.as_deref(), Some(body), "{frame}");
                assert!(id.is_some());
            }
        }
        assert_eq!(escape("x\0y\u{1}"), "x\u{FFFD}y\u{FFFD}");
        assert!(matches!(escape("no specials"), Cow::Borrowed(_)));
        let frame = chat("b@l", "a'b\"c<d>&e", "");
        let Stanza::Message { id, .. } = parse(&frame) else {
            panic!("not a message");
        };
        assert_eq!(id.as_deref(), Some("a'b\"c<d>&e"));
    }

    #[test]
    fn entities_and_text_forms() {
        let frame = "<message from='a&#x40;b' type='chat'><body>&#60;&#x3e;&#233;\
            <![CDATA[<raw & cdata>]]><!-- c --> tail</body></message>";
        let Stanza::Message { from, body, .. } = parse(frame) else {
            panic!("not a message");
        };
        assert_eq!(from, "a@b");
        assert_eq!(body.as_deref(), Some("<>é<raw & cdata> tail"));
        let with_decl = "<?xml version='1.0'?>\n<message type=\"chat\"><body/></message>\n";
        assert!(matches!(parse(with_decl), Stanza::Message { body: Some(b), .. } if b.is_empty()));
        let nested = "<message><body>a<span>ignored</span>b</body><body>second</body></message>";
        assert!(matches!(parse(nested), Stanza::Message { body: Some(b), .. } if b == "ab"));
    }

    #[test]
    fn malformed_frames_are_other_empty() {
        let bad = [
            "",
            "   ",
            "text",
            "<",
            "<>",
            "</message>",
            "<message>",
            "<message></presence>",
            "<message/><message/>",
            "<message/>junk",
            "<message type=chat/>",
            "<message type='chat/>",
            "<message type='a<b'/>",
            "<message 'x'/>",
            "<message><body>&bogus;</body></message>",
            "<message><body>&#0;</body></message>",
            "<message><body>&#xD800;</body></message>",
            "<message><body>&#x+41;</body></message>",
            "<message><body>& amp</body></message>",
            "<!DOCTYPE x><x/>",
            "<a><!-- unterminated </a>",
            "<a><![CDATA[ unterminated</a>",
            "<a/ >",
        ];
        for frame in bad {
            assert_eq!(parse(frame), Stanza::Other(b("")), "{frame:?}");
        }
        let deep = "<a>".repeat(DEPTH_MAX + 1) + &"</a>".repeat(DEPTH_MAX + 1);
        assert_eq!(parse(&deep), Stanza::Other(b("")));
        let ok_depth = "<a>".repeat(DEPTH_MAX) + &"</a>".repeat(DEPTH_MAX);
        assert_eq!(parse(&ok_depth), Stanza::Other(b("a")));
        let huge = format!(
            "<message><body>{}</body></message>",
            "x".repeat(FRAME_BYTES_MAX)
        );
        assert_eq!(parse(&huge), Stanza::Other(b("")));
        assert_eq!(parse("<stream:error/>"), Stanza::Other(b("stream:error")));
    }

    /// Every prefix of every captured frame, and mutations of them, must
    /// parse without panicking.
    #[test]
    fn garbage_never_panics() {
        for frame in CAPTURED {
            assert_ne!(parse(frame), Stanza::Other(b("")), "{frame}");
            for (end, _) in frame.char_indices() {
                let _ = parse(&frame[..end]);
            }
        }
        let mut state = 0x9E37_79B9_7F4A_7C15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let alphabet = b"<>/='\"&;#x!?[]- abc:CDATA\x00\xff";
        for round in 0..20_000 {
            let mut bytes = CAPTURED[round % CAPTURED.len()].as_bytes().to_vec();
            for _ in 0..1 + next() % 4 {
                let at = (next() % bytes.len() as u64) as usize;
                bytes[at] = alphabet[(next() % alphabet.len() as u64) as usize];
            }
            let _ = parse(&String::from_utf8_lossy(&bytes));
            let random: Vec<u8> = (0..next() % 64)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            let _ = parse(&String::from_utf8_lossy(&random));
        }
    }
}
