//! One-time codes: request (rate limited per phone), verify (expiry, tries,
//! single use), and the sinks that deliver codes.
//!
//! Lives on: the phone's home shard (which is also the account's home:
//! accounts are minted on their phone's shard).

use std::io::Write;
use std::rc::Rc;

use chat_net::protocol::{ApiError, ErrorCode};

use crate::config::OtpSink;
use crate::constants::{
    DEVICES_PER_USER_MAX, OTP_REQUESTS_PER_WINDOW_MAX, OTP_REQUEST_WINDOW_SECONDS, OTP_TRIES_MAX,
    OTP_TTL_SECONDS,
};
use crate::ids::{mint, DeviceId, Millis, Seq, UserId};
use crate::ops::{Answer, Reply};
use crate::records::Rec;
use crate::shard::Shard;
use crate::soft::Otp;

fn unauthorized() -> ApiError {
    ApiError::new(ErrorCode::Unauthorized, "wrong, used or expired code")
}

impl Shard {
    pub fn otp_request(&self, phone: String) -> Reply {
        let now = Millis::now();
        let mut soft = self.soft.borrow_mut();
        let window_ms = OTP_REQUEST_WINDOW_SECONDS * 1000;
        let entry = soft.otp_requests.entry(phone.clone()).or_insert((now, 0));
        if now.0 >= entry.0 .0 + window_ms {
            *entry = (now, 0);
        }
        if entry.1 >= OTP_REQUESTS_PER_WINDOW_MAX {
            return Err(ApiError::rate_limited(entry.0 .0 + window_ms - now.0));
        }
        entry.1 += 1;
        let code = new_code();
        let expires = Millis(now.0 + OTP_TTL_SECONDS * 1000);
        soft.otp.insert(
            phone.clone(),
            Otp {
                code: code.clone(),
                expires,
                tries: 0,
            },
        );
        drop(soft);
        deliver(&self.config.otp_sink, phone, code);
        Ok(Answer::ExpiresIn(OTP_TTL_SECONDS))
    }

    /// Checks the code; the first verify of a phone creates the account,
    /// every verify links a new device and mints its token.
    pub async fn otp_verify(
        self: &Rc<Self>,
        phone: String,
        code: String,
        device_name: String,
    ) -> Reply {
        self.check_code(&phone, &code)?;
        let shards = self.shards;
        let shard = self.id;
        let pointers = self.soft.borrow().pointers.clone();
        self.write(|state| {
            let now = Millis::now();
            let mut recs = Vec::new();
            let user = match state.phones.get(&phone) {
                Some(user) => *user,
                None => {
                    let user = UserId(mint(state.users_minted + 1, shard, shards));
                    recs.push(Rec::UserCreated {
                        user,
                        phone: phone.clone(),
                        ts: now,
                    });
                    user
                }
            };
            let existing = state.users.get(&user);
            let devices = existing.map_or(0, |u| u.devices.len());
            if devices >= DEVICES_PER_USER_MAX {
                return Err(ApiError::new(
                    ErrorCode::Conflict,
                    format!("at most {DEVICES_PER_USER_MAX} devices per account"),
                ));
            }
            // Ids are never reused, not even those of revoked devices.
            let device = DeviceId(existing.map_or(0, |u| u.devices_ever) + 1);
            let (token, token_hash) = crate::token::mint(user, device);
            let cursors: Vec<(crate::ids::ConvId, Seq)> = pointers
                .get(&user)
                .map(|p| p.values().map(|c| (c.conv, c.last_seq)).collect())
                .unwrap_or_default();
            let expires = Millis(now.0 + self.config.token_ttl_seconds * 1000);
            recs.push(Rec::DeviceLinked {
                user,
                device,
                name: device_name.clone(),
                token_hash,
                expires,
                ts: now,
                cursors,
            });
            Ok((
                recs,
                Answer::Verified {
                    user,
                    device,
                    token,
                },
            ))
        })
        .await
    }

    fn check_code(&self, phone: &str, code: &str) -> Result<(), ApiError> {
        let mut soft = self.soft.borrow_mut();
        let Some(otp) = soft.otp.get_mut(phone) else {
            return Err(unauthorized());
        };
        if Millis::now() >= otp.expires {
            soft.otp.remove(phone);
            return Err(unauthorized());
        }
        if otp.tries >= OTP_TRIES_MAX {
            return Err(ApiError::rate_limited(
                otp.expires.0.saturating_sub(Millis::now().0),
            ));
        }
        otp.tries += 1;
        if otp.code.len() != code.len()
            || otp
                .code
                .bytes()
                .zip(code.bytes())
                .fold(0, |a, (x, y)| a | (x ^ y))
                != 0
        {
            return Err(unauthorized());
        }
        soft.otp.remove(phone);
        Ok(())
    }
}

/// Six random digits.
fn new_code() -> String {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    format!("{:06}", u64::from_le_bytes(bytes) % 1_000_000)
}

/// Sends a code to the configured sink (within 1 s of the 202).
fn deliver(sink: &OtpSink, phone: String, code: String) {
    match sink {
        OtpSink::Log => eprintln!("chatd: otp code for {phone}: {code}"),
        OtpSink::File(path) => {
            let line = format!("{phone} {code}\n");
            let written = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .and_then(|mut f| f.write_all(line.as_bytes()));
            if let Err(e) = written {
                eprintln!("chatd: otp sink {}: {e}", path.display());
            }
        }
        OtpSink::Webhook(url) => {
            let url = url.clone();
            glommio::spawn_local(async move {
                if let Err(e) = post_webhook(&url, &phone, &code).await {
                    eprintln!("chatd: otp webhook {url}: {e}");
                }
            })
            .detach();
        }
    }
}

/// POSTs `{"phone","code"}` to an http:// URL (plain HTTP/1.1).
async fn post_webhook(url: &str, phone: &str, code: &str) -> std::io::Result<()> {
    use futures_lite::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").unwrap_or(url);
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let body = serde_json::json!({"phone": phone, "code": code}).to_string();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut stream = glommio::net::TcpStream::connect(host).await?;
    stream.write_all(request.as_bytes()).await?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await?;
    let status_ok = answer.starts_with(b"HTTP/1.1 2") || answer.starts_with(b"HTTP/1.0 2");
    if !status_ok {
        return Err(std::io::Error::other(
            String::from_utf8_lossy(&answer[..answer.len().min(64)]).into_owned(),
        ));
    }
    Ok(())
}
