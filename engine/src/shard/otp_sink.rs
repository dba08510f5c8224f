//! Where OTP codes go: the log, a file (tests, development), or an SMS
//! gateway's webhook (within 1 s of the 202; `chat_net::client`, the
//! client push notifications use).
//!
//! Lives on: the phone's home shard's core (the webhook call is a task of
//! its own there).

use std::io::Write;
use std::time::Duration;

use chat_net::client::post_json;

use tracing::{info, warn};

use crate::config::{Config, OtpSink};
use crate::constants::OTP_WEBHOOK_TIMEOUT_MS;

pub fn deliver(config: &Config, phone: String, code: String) {
    match &config.otp_sink {
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
            let (url, tls) = (url.clone(), config.gateway_tls.clone());
            glommio::spawn_local(async move {
                let body = serde_json::json!({"phone": phone, "code": code}).to_string();
                let deadline = Duration::from_millis(OTP_WEBHOOK_TIMEOUT_MS);
                match post_json(&url, tls.as_ref(), body, deadline).await {
                    Ok(a) if a.is_success() => {}
                    Ok(a) => warn!(%url, status = a.status, "otp webhook refused the code"),
                    Err(e) => warn!(%url, error = %e, "otp webhook failed"),
                }
            })
            .detach();
        }
    }
}
