//! Where OTP codes go: the log, a file (tests, development), or an SMS
//! gateway's webhook (within 1 s of the 202).
//!
//! Lives on: the phone's home shard's core (the webhook call is a task of
//! its own there).

use std::io::Write;

use tracing::{info, warn};

use crate::config::OtpSink;

pub fn deliver(sink: &OtpSink, phone: String, code: String) {
    match sink {
        OtpSink::Log => info!("otp code for {phone}: {code}"),
        OtpSink::File(path) => {
            let line = format!("{phone} {code}\n");
            let written = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .and_then(|mut f| f.write_all(line.as_bytes()));
            if let Err(e) = written {
                warn!(sink = %path.display(), error = %e, "otp file sink failed");
            }
        }
        OtpSink::Webhook(url) => {
            let url = url.clone();
            glommio::spawn_local(async move {
                if let Err(e) = post_webhook(&url, &phone, &code).await {
                    warn!(%url, error = %e, "otp webhook failed");
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
