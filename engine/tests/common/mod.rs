//! Test harness: a real `chatd` process on ephemeral loopback ports, and
//! helpers that speak the real protocol through `chat_tools::client`.
#![allow(dead_code)]

pub mod gateway;
pub mod partition;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use chat_tools::client::{self, Endpoint, Session, Ws};
use serde_json::{json, Value};

pub const WAIT: Duration = Duration::from_secs(10);
pub const QUIET: Duration = Duration::from_millis(300);

pub struct Server {
    pub child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub http: Endpoint,
    pub ops: Endpoint,
    pub otp_file: PathBuf,
    pub args: Vec<String>,
    /// Extra environment of the process (fault injection).
    pub env: Vec<(String, String)>,
    stderr: Option<std::thread::JoinHandle<()>>,
    /// Where the data lives when not in `dir` (e.g. a small mount).
    pub data: Option<PathBuf>,
}

impl Server {
    pub fn start() -> Server {
        Server::start_with(&[])
    }

    /// Starts chatd with extra flags, in a fresh data directory.
    pub fn start_with(args: &[&str]) -> Server {
        Server::launch(None, args)
    }

    /// Starts chatd with its data in `data` (which the caller made).
    pub fn start_in(data: PathBuf, args: &[&str]) -> Server {
        Server::launch(Some(data), args)
    }

    fn launch(data: Option<PathBuf>, args: &[&str]) -> Server {
        let mut server = Server::prepare(data, args);
        server.spawn();
        server
    }

    /// A server not started yet (`spawn`, or `begin` + `finish` to start
    /// several at once: cluster nodes wait for each other).
    pub fn prepare(data: Option<PathBuf>, args: &[&str]) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let otp_file = dir.path().join("otp.txt");
        let server = Server {
            child: None,
            http: Endpoint::parse("http://127.0.0.1:1", None).unwrap(),
            ops: Endpoint::parse("http://127.0.0.1:1", None).unwrap(),
            otp_file,
            args: args.iter().map(|s| s.to_string()).collect(),
            env: Vec::new(),
            dir,
            stderr: None,
            data,
        };
        server
    }

    pub fn data_dir(&self) -> PathBuf {
        self.data
            .clone()
            .unwrap_or_else(|| self.dir.path().join("data"))
    }

    /// Starts (or restarts) the process on the same data directory.
    pub fn spawn(&mut self) {
        let pending = self.begin();
        self.finish(pending);
    }

    /// Starts the process; `finish` waits for its ready line.
    pub fn begin(&mut self) -> Pending {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_chatd"));
        cmd.arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--ops-listen")
            .arg("127.0.0.1:0");
        cmd.arg("--data-dir").arg(self.data_dir());
        if !self.args.iter().any(|a| a == "--otp-sink") {
            cmd.arg("--otp-sink")
                .arg(format!("file:{}", self.otp_file.display()));
        }
        cmd.args(&self.args);
        cmd.envs(self.env.iter().cloned());
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("chatd starts");
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        self.stderr = Some(std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[chatd] {line}");
            }
        }));
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            for _ in lines {}
        });
        Pending { child, rx }
    }

    /// Waits for the ready line of a process `begin` started.
    pub fn finish(&mut self, pending: Pending) {
        let Pending { mut child, rx } = pending;
        let line = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => line,
            Err(e) => {
                let status = child.try_wait();
                let _ = child.kill();
                panic!("chatd printed no ready line ({e}); process status: {status:?} (its stderr is above, prefixed [chatd])");
            }
        };
        let (http, ops) = parse_ready(&line);
        let ca = self
            .args
            .iter()
            .position(|a| a == "--tls-cert")
            .map(|i| PathBuf::from(&self.args[i + 1]));
        self.http = Endpoint::parse(&http, ca.as_deref()).expect("endpoint");
        self.ops = Endpoint::parse(&ops, None).expect("ops endpoint");
        self.child = Some(child);
    }

    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL");
            child.wait().unwrap();
        }
    }

    /// SIGTERM; answers the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        child.wait().unwrap()
    }

    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    pub fn login(&self, phone: &str, device: &str) -> Session {
        client::login(&self.http, phone, device, &self.otp_file).expect("login")
    }

    /// A new user with a name, logged in on one device.
    pub fn user(&self, phone: &str, name: &str) -> Session {
        let s = self.login(phone, "phone");
        let (status, _) = self.rest(
            "PATCH",
            "/v1/me",
            Some(&s.token),
            Some(&json!({ "name": name })),
        );
        assert_eq!(status, 200);
        s
    }

    pub fn rest(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, Value) {
        client::request(&self.http, method, path, token, body).expect("request")
    }

    pub fn ops_get(&self, path: &str) -> (u16, Value) {
        client::request(&self.ops, "GET", path, None, None).expect("ops request")
    }

    pub fn ws(&self, s: &Session) -> Ws {
        let mut ws = Ws::connect(&self.http, Some(&s.token)).expect("ws connects");
        let ok = ws.recv_type("auth.ok", WAIT).expect("auth.ok");
        assert_eq!(ok["user_id"], s.user_id.as_str());
        ws
    }

    /// Connects and consumes everything up to `sync.done`, answering the
    /// `message.new`s of the sync.
    pub fn ws_synced(&self, s: &Session) -> (Ws, Vec<Value>) {
        let mut ws = self.ws(s);
        let mut synced = Vec::new();
        loop {
            let e = ws.recv(WAIT).expect("recv").expect("sync.done arrives");
            match e["type"].as_str() {
                Some("sync.done") => break,
                Some("message.new") => synced.push(e),
                _ => {}
            }
        }
        (ws, synced)
    }

    pub fn direct(&self, a: &Session, b: &Session) -> String {
        let (status, v) = self.rest(
            "POST",
            "/v1/conversations",
            Some(&a.token),
            Some(&json!({"kind": "direct", "peer": b.user_id})),
        );
        assert!(status == 201 || status == 200, "{status} {v}");
        v["conversation_id"].as_str().unwrap().to_string()
    }

    pub fn group(&self, admin: &Session, name: &str, members: &[&Session]) -> String {
        let ids: Vec<&str> = members.iter().map(|m| m.user_id.as_str()).collect();
        let (status, v) = self.rest(
            "POST",
            "/v1/conversations",
            Some(&admin.token),
            Some(&json!({"kind": "group", "name": name, "members": ids})),
        );
        assert_eq!(status, 201, "{v}");
        v["conversation_id"].as_str().unwrap().to_string()
    }

    pub fn history(&self, s: &Session, conv: &str, query: &str) -> Value {
        let (status, v) = self.rest(
            "GET",
            &format!("/v1/conversations/{conv}/messages{query}"),
            Some(&s.token),
            None,
        );
        assert_eq!(status, 200, "{v}");
        v
    }
}

/// A process started by `Server::begin`, its ready line still to come.
pub struct Pending {
    child: Child,
    rx: mpsc::Receiver<String>,
}

impl Pending {
    /// True when the process printed no ready line within `d`.
    pub fn silent_for(&self, d: Duration) -> bool {
        self.rx.recv_timeout(d).is_err()
    }

    pub fn kill9(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn parse_ready(line: &str) -> (String, String) {
    let mut http = None;
    let mut ops = None;
    assert!(
        line.starts_with("chatd ready "),
        "unexpected first line: {line}"
    );
    for part in line.split_whitespace().skip(2) {
        if let Some(a) = part.strip_prefix("http=") {
            http = Some(format!("http://{a}"));
        } else if let Some(a) = part.strip_prefix("https=") {
            http = Some(format!("https://{a}"));
        } else if let Some(a) = part.strip_prefix("ops=") {
            ops = Some(format!("http://{a}"));
        }
    }
    (http.expect("http= or https="), ops.expect("ops="))
}

/// Sends a message and waits for its `message.sent`.
pub fn send(ws: &mut Ws, conv: &str, client_msg_id: &str, text: &str) -> Value {
    let event = json!({"type": "message.send", "conversation_id": conv, "client_msg_id": client_msg_id, "body": {"text": text}});
    ws.call(event, WAIT).expect("message.sent")
}

/// The next `message.new` (skipping other events, kept for later).
pub fn next_message(ws: &mut Ws) -> Value {
    ws.recv_type("message.new", WAIT).expect("message.new")
}

/// Asserts nothing of type `ty` arrives within `QUIET`.
pub fn assert_no(ws: &mut Ws, ty: &str) {
    match ws.recv_type(ty, QUIET) {
        Err(client::ClientError::Timeout(_)) => {}
        Ok(e) => panic!("unexpected {ty}: {e}"),
        Err(e) => panic!("while checking for no {ty}: {e}"),
    }
}

/// Asserts a REST error answer: the HTTP status, and a body of exactly
/// `{"error":{"code":CODE,"message":TEXT}}` (plus `retry_after_ms` for
/// `rate_limited`), as PROTOCOL.md "REST" promises for every error.
pub fn assert_error(answer: &(u16, Value), status: u16, code: &str) {
    let (got, body) = answer;
    assert_eq!(
        *got, status,
        "expected HTTP {status} {code}, got {got} {body}"
    );
    let top = body
        .as_object()
        .unwrap_or_else(|| panic!("error body is not an object: {body}"));
    assert_eq!(top.len(), 1, "error body has only `error`: {body}");
    let error = body["error"]
        .as_object()
        .unwrap_or_else(|| panic!("no `error` object: {body}"));
    assert_eq!(
        error.get("code").and_then(Value::as_str),
        Some(code),
        "{body}"
    );
    assert!(
        error.get("message").is_some_and(Value::is_string),
        "error.message is a string: {body}"
    );
    for key in error.keys() {
        let allowed = key == "code"
            || key == "message"
            || (key == "retry_after_ms" && code == "rate_limited");
        assert!(allowed, "unexpected error field {key}: {body}");
    }
}

/// Polls `probe` every 20 ms until it answers `Some`, for at most `WAIT`.
pub fn wait_until<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not within {WAIT:?}: {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends `n` messages without waiting in between (client_msg_id
/// `{prefix}{i}`, text `{prefix} {i}` for i in 1..=n), then waits for all
/// their `message.sent`s; answers them in arrival order.
pub fn send_many(ws: &mut Ws, conv: &str, prefix: &str, n: usize) -> Vec<Value> {
    for i in 1..=n {
        let event = json!({"type": "message.send", "conversation_id": conv,
            "client_msg_id": format!("{prefix}{i}"), "body": {"text": format!("{prefix} {i}")}});
        ws.send(&event).expect("send");
    }
    (0..n)
        .map(|_| ws.recv_type("message.sent", WAIT).expect("message.sent"))
        .collect()
}

/// The `seq`s of a list of messages (a history page or synced events).
pub fn seqs(messages: &Value) -> Vec<u64> {
    messages
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {messages}"))
        .iter()
        .map(|m| m["seq"].as_u64().expect("seq"))
        .collect()
}

/// How many media files the server's data directory holds.
pub fn media_files(server: &Server) -> usize {
    let root = server.data_dir().join("media").join("blobs");
    std::fs::read_dir(root)
        .unwrap()
        .map(|d| std::fs::read_dir(d.unwrap().path()).unwrap().count())
        .sum()
}

/// The markers found in some file under `dir`.
pub fn markers_on_disk(dir: &std::path::Path, markers: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            for m in markers {
                if bytes.windows(m.len()).any(|w| w == m.as_bytes()) && !found.contains(m) {
                    found.push(m.clone());
                }
            }
        }
    }
    found.sort();
    found
}

/// Sends `event` and waits for its answer; panics on a refusal.
pub fn call_ok(ws: &mut Ws, event: Value) {
    match ws.call(event, WAIT) {
        Ok(_) => {}
        Err(client::ClientError::Remote { code, .. }) => panic!("refused: {code}"),
        Err(e) => panic!("no answer: {e}"),
    }
}
