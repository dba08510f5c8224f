//! chat: try chatd from a terminal (or two). Logs in with an OTP, keeps the
//! session in a profile file, and talks the public protocol through
//! `chat_tools::client`.
//!
//! ```text
//! chat [--server URL] [--ca PEM] [--profile NAME|FILE] [--json] COMMAND
//!   login --phone +1… --name NAME [--otp-file FILE] [--device NAME]
//!   me | conversations | direct --phone +1… | group --name N --phone +1…
//!   send CONV TEXT… | listen [--presence USER_ID…] | read CONV SEQ
//!   history CONV [--limit N] [--before SEQ | --after SEQ]
//! ```
//!
//! Profiles: `--profile alice` is `~/.chatd-cli/alice.json`; a value with a
//! `/` or ending in `.json` is a path. Default `default`, or `$CHAT_PROFILE`.

use std::collections::HashSet;
use std::fs;
use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chat_tools::client::{
    self, encode_query_value, event_type, expect_success, random_id, ClientError, Endpoint,
    Session, Ws,
};
use clap::{Parser, Subcommand};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";
/// How long a command waits for the server's answer on the WebSocket.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// `listen` pings after this much silence, so idle connections stay up.
const LISTEN_PING_AFTER: Duration = Duration::from_secs(25);
const LISTEN_POLL: Duration = Duration::from_secs(1);
const _: () = assert!(LISTEN_POLL.as_secs() < LISTEN_PING_AFTER.as_secs());

#[derive(Parser)]
#[command(
    name = "chat",
    about = "A terminal client for chatd: log in, start chats, send and listen",
    after_help = "Walk-through: tools/README.md. Times are shown in UTC."
)]
struct Args {
    /// chatd's REST/WebSocket address (default: the profile's, else http://127.0.0.1:8080).
    #[arg(long, global = true, value_name = "URL")]
    server: Option<String>,
    /// PEM certificate to trust for an https:// server (e.g. from `chatd gen-cert`).
    #[arg(long, global = true, value_name = "PEM")]
    ca: Option<PathBuf>,
    /// Profile name (~/.chatd-cli/NAME.json) or path of the session file.
    #[arg(
        long,
        global = true,
        env = "CHAT_PROFILE",
        default_value = "default",
        value_name = "NAME|FILE"
    )]
    profile: String,
    /// Print the server's raw JSON instead of readable lines.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Log in with a one-time code, set your display name, save the session.
    Login {
        /// Phone number in E.164 form, e.g. +15551234567.
        #[arg(long)]
        phone: String,
        /// Display name to set on the profile.
        #[arg(long)]
        name: String,
        /// Read the code from chatd's `--otp-sink file:PATH`; without it, type it in.
        #[arg(long, value_name = "FILE")]
        otp_file: Option<PathBuf>,
        /// Name of this device, as listed in `chat me`.
        #[arg(long, default_value = "chat-cli")]
        device: String,
    },
    /// Show your profile and devices.
    Me,
    /// List your conversations, latest activity first, with unread counts.
    Conversations,
    /// Open (or find) the direct conversation with a phone number; prints its id.
    Direct {
        #[arg(long)]
        phone: String,
    },
    /// Create a group with the given members; prints its id.
    Group {
        #[arg(long)]
        name: String,
        /// A member's phone number; repeat for more members.
        #[arg(long = "phone", value_name = "PHONE")]
        phones: Vec<String>,
    },
    /// Send a text message; waits until the server stored it and prints its seq.
    Send {
        conversation_id: String,
        /// Send it as a reply to this seq of the conversation.
        #[arg(long, value_name = "SEQ")]
        reply_to: Option<u64>,
        /// Attach this uploaded media (the id `chat upload` printed).
        #[arg(long, value_name = "MEDIA_ID")]
        media: Option<String>,
        #[arg(required = true, num_args = 1.., trailing_var_arg = true)]
        text: Vec<String>,
    },
    /// Upload a file (up to 16 MiB) as media; prints its media id.
    Upload {
        file: PathBuf,
        /// Its Content-Type (default: from the file name's extension).
        #[arg(long)]
        mime: Option<String>,
    },
    /// Download media you may read into a file.
    Download {
        media_id: String,
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Search the text of your conversations (the last word may be a prefix).
    Search {
        /// Only this conversation.
        #[arg(long, value_name = "ID")]
        conversation: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[arg(required = true, num_args = 1.., trailing_var_arg = true)]
        words: Vec<String>,
    },
    /// Give one of your messages a new text (within the server's edit window).
    Edit {
        conversation_id: String,
        seq: u64,
        #[arg(required = true, num_args = 1.., trailing_var_arg = true)]
        text: Vec<String>,
    },
    /// Delete a message: your own, or any message of a group you administer.
    Delete { conversation_id: String, seq: u64 },
    /// Print incoming messages, receipts, typing and presence until Ctrl-C;
    /// acknowledges each message as delivered.
    Listen {
        /// Also show presence of this user id; repeat for more.
        #[arg(long = "presence", value_name = "USER_ID")]
        presence: Vec<String>,
    },
    /// Show a page of a conversation's messages (latest by default).
    History {
        conversation_id: String,
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Messages just below this seq (with --after: the first above
        /// --after that are below this).
        #[arg(long)]
        before: Option<u64>,
        /// Messages just above this seq.
        #[arg(long)]
        after: Option<u64>,
    },
    /// Mark a conversation read up to SEQ (sends a read receipt).
    Read { conversation_id: String, seq: u64 },
}

/// What `chat login` saves: where the server is and who we are there.
#[derive(Serialize, Deserialize)]
struct Profile {
    server: String,
    #[serde(default)]
    ca: Option<PathBuf>,
    phone: String,
    name: String,
    #[serde(flatten)]
    session: Session,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chat: {e}");
            if let Some(ClientError::Status { status: 401, .. }) = e.downcast_ref::<ClientError>() {
                eprintln!("chat: the session is not valid any more; run `chat login` again");
            }
            ExitCode::FAILURE
        }
    }
}

type CliResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

fn run(args: Args) -> CliResult {
    let profile_path = profile_path(&args.profile);
    if let Command::Login {
        phone,
        name,
        otp_file,
        device,
    } = &args.command
    {
        return login(
            &args,
            &profile_path,
            phone,
            name,
            otp_file.as_deref(),
            device,
        );
    }
    let profile = load_profile(&profile_path)?;
    let server = args.server.as_deref().unwrap_or(&profile.server);
    let ca = args.ca.as_deref().or(profile.ca.as_deref());
    let ep = Endpoint::parse(server, ca)?;
    let cli = Cli {
        ep,
        profile,
        json: args.json,
    };
    dispatch(&cli, args.command)
}

/// Every command but `login`.
fn dispatch(cli: &Cli, command: Command) -> CliResult {
    match command {
        Command::Login { .. } => unreachable!("handled in run"),
        Command::Me => cli.me(),
        Command::Conversations => cli.conversations(),
        Command::Direct { phone } => cli.direct(&phone),
        Command::Group { name, phones } => cli.group(&name, &phones),
        Command::Send {
            conversation_id,
            reply_to,
            media,
            text,
        } => cli.send(
            &conversation_id,
            &text.join(" "),
            reply_to,
            media.as_deref(),
        ),
        Command::Upload { file, mime } => cli.upload(&file, mime.as_deref()),
        Command::Download { media_id, out } => cli.download(&media_id, &out),
        Command::Search {
            conversation,
            limit,
            words,
        } => cli.search(&words.join(" "), conversation.as_deref(), limit),
        Command::Edit {
            conversation_id,
            seq,
            text,
        } => cli.change(&conversation_id, seq, Some(&text.join(" "))),
        Command::Delete {
            conversation_id,
            seq,
        } => cli.change(&conversation_id, seq, None),
        Command::Listen { presence } => cli.listen(&presence),
        Command::History {
            conversation_id,
            limit,
            before,
            after,
        } => cli.history(&conversation_id, limit, before, after),
        Command::Read {
            conversation_id,
            seq,
        } => cli.read(&conversation_id, seq),
    }
}

// --- profiles -------------------------------------------------------------

fn profile_path(profile: &str) -> PathBuf {
    if profile.contains('/') || profile.ends_with(".json") {
        return PathBuf::from(profile);
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".chatd-cli").join(format!("{profile}.json"))
}

fn load_profile(path: &Path) -> CliResult<Profile> {
    let bytes = fs::read(path).map_err(|e| {
        format!(
            "no session in {} ({e}); run `chat login --phone … --name …` first",
            path.display()
        )
    })?;
    Ok(serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))?)
}

/// Writes the profile readable by its owner only: it holds a bearer token.
fn save_profile(path: &Path, profile: &Profile) -> CliResult {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir)?;
    }
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    file.write_all(serde_json::to_string_pretty(profile)?.as_bytes())?;
    file.write_all(b"\n")?;
    Ok(())
}

fn login(
    args: &Args,
    profile_path: &Path,
    phone: &str,
    name: &str,
    otp_file: Option<&Path>,
    device: &str,
) -> CliResult {
    let server = args.server.as_deref().unwrap_or(DEFAULT_SERVER);
    // Saved absolute, so later commands work from any directory.
    let ca = match &args.ca {
        Some(ca) => Some(fs::canonicalize(ca).map_err(|e| format!("{}: {e}", ca.display()))?),
        None => None,
    };
    let ep = Endpoint::parse(server, ca.as_deref())?;
    let session = match otp_file {
        Some(otp_file) => client::login(&ep, phone, device, otp_file)?,
        None => {
            client::request_otp(&ep, phone)?;
            eprint!("code sent to {phone}; enter it: ");
            io::stderr().flush()?;
            let mut code = String::new();
            io::stdin().lock().read_line(&mut code)?;
            client::verify(&ep, phone, code.trim(), device)?
        }
    };
    let me = expect_success(client::request(
        &ep,
        "PATCH",
        "/v1/me",
        Some(&session.token),
        Some(&json!({ "name": name })),
    )?)?;
    let profile = Profile {
        server: server.to_owned(),
        ca,
        phone: phone.to_owned(),
        name: name.to_owned(),
        session,
    };
    save_profile(profile_path, &profile)?;
    if args.json {
        println!("{me}");
    } else {
        println!(
            "logged in as {name} (user {}, device {}); session saved in {}",
            profile.session.user_id,
            profile.session.device_id,
            profile_path.display()
        );
    }
    Ok(())
}

// --- commands ---------------------------------------------------------------

struct Cli {
    ep: Endpoint,
    profile: Profile,
    json: bool,
}

impl Cli {
    fn token(&self) -> &str {
        &self.profile.session.token
    }

    fn get(&self, path: &str) -> CliResult<Value> {
        Ok(expect_success(client::request(
            &self.ep,
            "GET",
            path,
            Some(self.token()),
            None,
        )?)?)
    }

    fn post(&self, path: &str, body: &Value) -> CliResult<Value> {
        Ok(expect_success(client::request(
            &self.ep,
            "POST",
            path,
            Some(self.token()),
            Some(body),
        )?)?)
    }

    fn ws(&self) -> CliResult<Ws> {
        Ok(Ws::connect(&self.ep, Some(self.token()))?)
    }

    /// "me" for our own user id, else the id.
    fn who<'a>(&self, user_id: &'a str) -> &'a str {
        if user_id == self.profile.session.user_id {
            "me"
        } else {
            user_id
        }
    }

    fn me(&self) -> CliResult {
        let me = self.get("/v1/me")?;
        if self.json {
            println!("{me}");
            return Ok(());
        }
        println!("user_id            {}", text(&me["user_id"]));
        println!("phone              {}", text(&me["phone"]));
        println!("name               {}", text(&me["name"]));
        println!("last_seen_privacy  {}", text(&me["last_seen_privacy"]));
        println!("read_receipts      {}", text(&me["read_receipts"]));
        let devices = me["devices"].as_array().cloned().unwrap_or_default();
        println!("devices            {}", devices.len());
        for device in devices {
            let this = device["device_id"].as_str() == Some(&self.profile.session.device_id);
            println!(
                "  {}{}",
                compact(&device),
                if this { "  (this one)" } else { "" }
            );
        }
        Ok(())
    }

    fn conversations(&self) -> CliResult {
        let answer = self.get("/v1/conversations")?;
        if self.json {
            println!("{answer}");
            return Ok(());
        }
        let list = answer["conversations"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if list.is_empty() {
            println!("no conversations yet; start one with `chat direct --phone …`");
        }
        for c in list {
            let last = c["last_ts"].as_i64().map_or_else(|| "-".into(), clock);
            println!(
                "{}  {:<6}  {:<20}  last_seq {:<5}  unread {:<4}  last {}",
                text(&c["conversation_id"]),
                text(&c["kind"]),
                text(&c["name"]),
                text(&c["last_seq"]),
                text(&c["unread"]),
                last
            );
        }
        Ok(())
    }

    fn user_by_phone(&self, phone: &str) -> CliResult<String> {
        let user = self
            .get(&format!("/v1/users?phone={}", encode_query_value(phone)))
            .map_err(|e| match e.downcast_ref::<ClientError>() {
                Some(ClientError::Status { status: 404, .. }) => {
                    format!("no user with phone {phone} (they must `chat login` first)").into()
                }
                _ => e,
            })?;
        let user_id = user["user_id"]
            .as_str()
            .ok_or_else(|| format!("user lookup answered without user_id: {user}"))?;
        Ok(user_id.to_owned())
    }

    fn direct(&self, phone: &str) -> CliResult {
        let peer = self.user_by_phone(phone)?;
        let conv = self.post(
            "/v1/conversations",
            &json!({ "kind": "direct", "peer": peer }),
        )?;
        self.print_conversation_id(&conv)
    }

    fn group(&self, name: &str, phones: &[String]) -> CliResult {
        let members = phones
            .iter()
            .map(|p| self.user_by_phone(p))
            .collect::<CliResult<Vec<_>>>()?;
        let conv = self.post(
            "/v1/conversations",
            &json!({ "kind": "group", "name": name, "members": members }),
        )?;
        self.print_conversation_id(&conv)
    }

    /// Just the id on stdout, so `CONV=$(chat direct …)` works.
    fn print_conversation_id(&self, conv: &Value) -> CliResult {
        if self.json {
            println!("{conv}");
            return Ok(());
        }
        let id = conv["conversation_id"]
            .as_str()
            .ok_or_else(|| format!("answer without conversation_id: {conv}"))?;
        println!("{id}");
        Ok(())
    }

    fn send(
        &self,
        conversation_id: &str,
        message: &str,
        reply_to: Option<u64>,
        media: Option<&str>,
    ) -> CliResult {
        let mut ws = self.ws()?;
        let client_msg_id = random_id();
        let reference = format!("send-{client_msg_id}");
        let mut event = json!({
            "type": "message.send",
            "ref": reference,
            "conversation_id": conversation_id,
            "client_msg_id": client_msg_id,
            "body": { "text": message },
        });
        if let Some(seq) = reply_to {
            event["reply_to"] = seq.into();
        }
        if let Some(id) = media {
            event["media"] = json!({ "media_id": id });
        }
        ws.send(&event)?;
        let answer = ws.recv_where(ANSWER_TIMEOUT, "message.sent", |e| {
            e["ref"] == reference.as_str()
                || (event_type(e) == "message.sent" && e["client_msg_id"] == client_msg_id.as_str())
        })?;
        let _ = ws.close();
        if event_type(&answer) == "error" {
            return Err(remote(&answer));
        }
        if self.json {
            println!("{answer}");
        } else {
            println!(
                "sent seq {} in {} at {} (message {})",
                text(&answer["seq"]),
                conversation_id,
                answer["ts"].as_i64().map_or_else(|| "?".into(), clock),
                text(&answer["message_id"])
            );
        }
        Ok(())
    }

    /// `chat upload`: POST /v1/media with the file's bytes.
    fn upload(&self, file: &Path, mime: Option<&str>) -> CliResult {
        let bytes = fs::read(file).map_err(|e| format!("reading {}: {e}", file.display()))?;
        let mime = mime.unwrap_or_else(|| mime_of(file));
        let token = Some(self.token());
        let r = client::request_full(
            &self.ep,
            "POST",
            "/v1/media",
            token,
            Some(mime),
            Some(&bytes),
        )?;
        let answer: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        let answer = expect_success((r.status, answer))?;
        if self.json {
            println!("{answer}");
        } else {
            println!(
                "uploaded {} ({} bytes, {mime}): media {}",
                file.display(),
                text(&answer["size"]),
                text(&answer["media_id"])
            );
        }
        Ok(())
    }

    /// `chat download`: GET /v1/media/{id} into a file.
    fn download(&self, media_id: &str, out: &Path) -> CliResult {
        let path = format!("/v1/media/{}", encode_query_value(media_id));
        let r = client::request_full(&self.ep, "GET", &path, Some(self.token()), None, None)?;
        if r.status != 200 {
            let answer: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
            expect_success((r.status, answer))?;
        }
        fs::write(out, &r.body).map_err(|e| format!("writing {}: {e}", out.display()))?;
        println!("saved {} bytes to {}", r.body.len(), out.display());
        Ok(())
    }

    /// `chat search`: GET /v1/search, newest first.
    fn search(&self, words: &str, conversation: Option<&str>, limit: u32) -> CliResult {
        let mut path = format!("/v1/search?q={}&limit={limit}", encode_query_value(words));
        if let Some(conv) = conversation {
            path.push_str(&format!("&conversation_id={}", encode_query_value(conv)));
        }
        let found = self.get(&path)?;
        if self.json {
            println!("{found}");
            return Ok(());
        }
        let messages = found["messages"].as_array().cloned().unwrap_or_default();
        if messages.is_empty() {
            println!("nothing found");
        }
        for m in &messages {
            println!("{}", self.message_line(m));
        }
        Ok(())
    }

    /// `chat edit` (a new text) or `chat delete` (none): waits for the
    /// server's `message.edited` / `message.deleted`.
    fn change(&self, conversation_id: &str, seq: u64, text_: Option<&str>) -> CliResult {
        let mut ws = self.ws()?;
        let mut event = json!({"conversation_id": conversation_id, "seq": seq});
        event["type"] = match text_ {
            Some(t) => {
                event["body"] = json!({ "text": t });
                "message.edit".into()
            }
            None => "message.delete".into(),
        };
        let answer = ws.call(event, ANSWER_TIMEOUT)?;
        let _ = ws.close();
        if self.json {
            println!("{answer}");
        } else if event_type(&answer) == "message.edited" {
            let at = answer["edited_ts"]
                .as_i64()
                .map_or_else(|| "?".into(), clock);
            println!("edited #{seq} in {conversation_id} at {at}");
        } else {
            println!("deleted #{seq} in {conversation_id}");
        }
        Ok(())
    }

    fn history(
        &self,
        conversation_id: &str,
        limit: u32,
        before: Option<u64>,
        after: Option<u64>,
    ) -> CliResult {
        let mut path = format!(
            "/v1/conversations/{}/messages?limit={limit}",
            encode_query_value(conversation_id)
        );
        if let Some(before) = before {
            path.push_str(&format!("&before={before}"));
        }
        if let Some(after) = after {
            path.push_str(&format!("&after={after}"));
        }
        let page = self.get(&path)?;
        if self.json {
            println!("{page}");
            return Ok(());
        }
        let messages = page["messages"].as_array().cloned().unwrap_or_default();
        if messages.is_empty() {
            println!("no messages");
        }
        for m in &messages {
            println!("{}", self.message_line(m));
        }
        if page["has_more"].as_bool() == Some(true) {
            let hint = match after {
                Some(_) => messages
                    .last()
                    .map(|m| format!("--after {}", text(&m["seq"]))),
                None => messages
                    .first()
                    .map(|m| format!("--before {}", text(&m["seq"]))),
            };
            println!("(more: {})", hint.unwrap_or_default());
        }
        Ok(())
    }

    fn read(&self, conversation_id: &str, seq: u64) -> CliResult {
        let mut ws = self.ws()?;
        ws.send(&json!({
            "type": "message.read", "ref": "read", "conversation_id": conversation_id, "seq": seq,
        }))?;
        // message.read has no answer but an error; the pong after it says the
        // server got that far.
        ws.send(&json!({ "type": "ping", "ref": "after-read" }))?;
        loop {
            let answer = ws.recv_where(ANSWER_TIMEOUT, "the pong after message.read", |e| {
                e["ref"] == "read" || e["ref"] == "after-read" || event_type(e) == "pong"
            })?;
            if event_type(&answer) == "error" {
                return Err(remote(&answer));
            }
            if event_type(&answer) == "pong" {
                break;
            }
        }
        let _ = ws.close();
        if !self.json {
            println!("marked {conversation_id} read up to seq {seq}");
        }
        Ok(())
    }

    fn listen(&self, presence: &[String]) -> CliResult {
        let mut ws = self.ws()?;
        if !presence.is_empty() {
            ws.send(&json!({ "type": "presence.subscribe", "user_ids": presence }))?;
        }
        if !self.json {
            eprintln!(
                "listening as {} (user {}, device {}) at {}; Ctrl-C to stop",
                self.profile.name,
                self.profile.session.user_id,
                self.profile.session.device_id,
                self.profile.server
            );
        }
        let mut seen: HashSet<(String, u64)> = HashSet::new();
        let mut backlog = 0u64;
        let mut synced = false;
        let mut quiet_since = Instant::now();
        loop {
            let event = match ws.recv(LISTEN_POLL)? {
                Some(event) => event,
                None => {
                    if quiet_since.elapsed() >= LISTEN_PING_AFTER {
                        ws.send(&json!({ "type": "ping", "ref": "keepalive" }))?;
                        quiet_since = Instant::now();
                    }
                    continue;
                }
            };
            quiet_since = Instant::now();
            if event_type(&event) == "message.new" {
                let conv = text(&event["conversation_id"]);
                let seq = event["seq"].as_u64().unwrap_or(0);
                ws.send(&json!({ "type": "message.ack", "conversation_id": conv, "seq": seq }))?;
                // Delivery is at least once: drop what we already showed.
                if !seen.insert((conv, seq)) {
                    continue;
                }
                if !synced {
                    backlog += 1;
                }
            }
            if self.json {
                println!("{event}");
                continue;
            }
            if event_type(&event) == "sync.done" {
                synced = true;
            }
            if let Some(line) = self.event_line(&event, backlog) {
                println!("{line}");
            }
        }
    }

    /// One readable line per event; `None` for events not worth a line.
    fn event_line(&self, e: &Value, backlog: u64) -> Option<String> {
        let now = clock(now_ms());
        let conv = text(&e["conversation_id"]);
        let seq = text(&e["seq"]);
        let line = match event_type(e) {
            "message.new" => return Some(self.message_line(e)),
            "sync.done" => format!("[{now}] -- up to date ({backlog} missed messages shown) --"),
            "message.delivered" => format!(
                "[{now}] {conv} #{seq} delivered to {}",
                self.who(&text(&e["user_id"]))
            ),
            "message.read" => format!(
                "[{now}] {conv} #{seq} read by {}",
                self.who(&text(&e["user_id"]))
            ),
            "message.status" => format!(
                "[{now}] {conv} #{seq} delivered to {}, read by {}",
                text(&e["delivered"]),
                text(&e["read"])
            ),
            "message.edited" => format!("[{now}] {conv} #{seq} edited: {}", body_text(&e["body"])),
            "message.deleted" => format!("[{now}] {conv} #{seq} deleted"),
            "typing" => {
                let who = self.who(&text(&e["user_id"])).to_owned();
                match e["state"].as_str() {
                    Some("start") => format!("[{now}] {who} is typing in {conv}…"),
                    _ => format!("[{now}] {who} stopped typing in {conv}"),
                }
            }
            "presence" => {
                let last_seen = e["last_seen"]
                    .as_i64()
                    .map(|ms| format!(" (last seen {})", clock(ms)))
                    .unwrap_or_default();
                format!(
                    "[{now}] {} is {}{last_seen}",
                    self.who(&text(&e["user_id"])),
                    text(&e["status"])
                )
            }
            "error" => format!(
                "[{now}] error {}: {}",
                text(&e["code"]),
                text(&e["message"])
            ),
            "auth.ok" | "pong" => return None,
            _ => format!("[{now}] {}", compact(e)),
        };
        Some(line)
    }

    /// `[12:00:01] CONV #5 SENDER: text (edited)`.
    fn message_line(&self, m: &Value) -> String {
        let mut line = format!(
            "[{}] {} #{} {}: ",
            m["ts"].as_i64().map_or_else(|| "--:--:--".into(), clock),
            text(&m["conversation_id"]),
            text(&m["seq"]),
            self.who(&text(&m["sender_id"]))
        );
        if m["deleted"].as_bool() == Some(true) {
            line.push_str("[deleted]");
            return line;
        }
        if !m["reply_to"].is_null() {
            line.push_str(&format!("(reply to #{}) ", text(&m["reply_to"])));
        }
        line.push_str(&body_text(&m["body"]));
        if !m["media"].is_null() {
            let media = &m["media"];
            line.push_str(&format!(
                " [media {} {}, {} bytes]",
                text(&media["media_id"]),
                text(&media["mime"]),
                text(&media["size"])
            ));
        }
        if !m["edited"].is_null() {
            line.push_str(" (edited)");
        }
        line
    }
}

/// A Content-Type from a file name's extension.
fn mime_of(file: &Path) -> &'static str {
    let ext = file.extension().and_then(|e| e.to_str()).unwrap_or("");
    match ext.to_ascii_lowercase().as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "txt" => "text/plain",
        "pdf" => "application/pdf",
        "mp4" => "video/mp4",
        _ => "application/octet-stream",
    }
}

fn remote(event: &Value) -> Box<dyn std::error::Error> {
    Box::new(ClientError::Remote {
        code: text(&event["code"]),
        message: text(&event["message"]),
        event: event.clone(),
    })
}

fn body_text(body: &Value) -> String {
    if let Some(text) = body["text"].as_str() {
        return text.to_owned();
    }
    if let Some(ciphertext) = body["ciphertext"].as_str() {
        return format!("[encrypted, {} bytes]", ciphertext.len());
    }
    compact(body)
}

/// A string without quotes, `-` for null, anything else as JSON.
fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn compact(value: &Value) -> String {
    value.to_string()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// `HH:MM:SS` (UTC) of a server timestamp in ms.
fn clock(ms: i64) -> String {
    let secs = ms.div_euclid(1000).rem_euclid(86_400);
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_names_map_to_the_home_directory_and_paths_stay_paths() {
        let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
        assert_eq!(
            profile_path("alice"),
            home.join(".chatd-cli").join("alice.json")
        );
        assert_eq!(profile_path("./bob.json"), PathBuf::from("./bob.json"));
        assert_eq!(profile_path("bob.json"), PathBuf::from("bob.json"));
        assert_eq!(profile_path("/tmp/x"), PathBuf::from("/tmp/x"));
    }

    #[test]
    fn profile_round_trips_with_the_session_fields_flat() {
        let profile = Profile {
            server: "http://127.0.0.1:8080".into(),
            ca: None,
            phone: "+15551234567".into(),
            name: "alice".into(),
            session: Session {
                user_id: "u1".into(),
                device_id: "d1".into(),
                token: "t1".into(),
            },
        };
        let value = serde_json::to_value(&profile).unwrap();
        assert_eq!(value["token"], "t1");
        let back: Profile = serde_json::from_value(value).unwrap();
        assert_eq!(back.session, profile.session);
    }

    #[test]
    fn clock_shows_utc_time_of_day() {
        assert_eq!(clock(0), "00:00:00");
        assert_eq!(clock(86_399_999), "23:59:59");
        assert_eq!(clock(1_700_000_000_123), "22:13:20");
    }

    #[test]
    fn body_text_shows_text_or_a_ciphertext_placeholder() {
        assert_eq!(body_text(&json!({"text": "hi"})), "hi");
        assert_eq!(
            body_text(&json!({"ciphertext": "AAAA"})),
            "[encrypted, 4 bytes]"
        );
    }
}
