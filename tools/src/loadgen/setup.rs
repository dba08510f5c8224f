//! Setup before any WebSocket opens: accounts and conversations.
//!
//! chatd: an OTP login per user over REST (codes read from the `file:` sink),
//! then one conversation per pair or group, created by its first member.
//! Echo: nothing to create. XMPP: accounts are registered in-band when each
//! connection opens (`xmpp_session.rs`); here only names and passwords.
//!
//! Runs on: plain threads of a worker, before its executor starts.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::json;

use super::config::{Config, Scenario, TargetKind};
use super::constants::{LOGIN_TRIES_MAX, SETUP_THREADS};
use super::world::{phone, World};
use crate::client::{self, Endpoint};

/// Fills in secrets, addresses and conversation ids.
pub fn setup(config: &Config, run: &str, phone_base: u64, world: &mut World) -> Result<(), String> {
    match config.target {
        TargetKind::Echo => {
            for conv in &mut world.convs {
                conv.server_id = format!("c{}", conv.ix.0);
            }
            Ok(())
        }
        TargetKind::Xmpp => {
            let domain = &config.xmpp_domain;
            for user in &mut world.users {
                let name = format!("lg{run}u{}", user.global);
                user.address = format!("{name}@{domain}");
                user.secret = format!("pw{run}{}", user.global);
            }
            for conv in &mut world.convs {
                conv.server_id = format!("lg{run}r{}@conference.{domain}", conv.ix.0);
            }
            Ok(())
        }
        TargetKind::Chatd => {
            let ep = Endpoint::parse(config.first_url(), config.ca.as_deref())
                .map_err(|e| format!("--url: {e}"))?;
            let otp = config.otp_file.as_deref().expect("validated");
            login_all(&ep, otp, phone_base, world)?;
            if config.scenario != Scenario::Idle {
                create_conversations(&ep, run, world)?;
            }
            Ok(())
        }
    }
}

/// Runs `job(i)` for i in 0..n on `SETUP_THREADS` threads; the first errors
/// are reported.
fn parallel<T: Send>(
    n: usize,
    job: impl Fn(usize) -> Result<T, String> + Sync,
) -> Result<Vec<T>, String> {
    let next = AtomicUsize::new(0);
    let out: Mutex<Vec<Option<T>>> = Mutex::new((0..n).map(|_| None).collect());
    let failures: Mutex<Vec<String>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..SETUP_THREADS.min(n.max(1)) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return;
                }
                match job(i) {
                    Ok(v) => out.lock().expect("not poisoned")[i] = Some(v),
                    Err(e) => failures.lock().expect("not poisoned").push(e),
                }
            });
        }
    });
    let failures = failures.into_inner().expect("not poisoned");
    if let Some(first) = failures.first() {
        return Err(format!("{} of {n} failed, e.g. {first}", failures.len()));
    }
    Ok(out
        .into_inner()
        .expect("not poisoned")
        .into_iter()
        .map(|v| v.expect("every job answered"))
        .collect())
}

fn login_all(ep: &Endpoint, otp: &Path, phone_base: u64, world: &mut World) -> Result<(), String> {
    let globals: Vec<usize> = world.users.iter().map(|u| u.global).collect();
    let sessions = parallel(globals.len(), |i| {
        let phone = phone(phone_base, globals[i]);
        login_with_retry(ep, &phone, otp).map_err(|e| format!("login {phone}: {e}"))
    })
    .map_err(|e| format!("logins: {e}"))?;
    for (user, session) in world.users.iter_mut().zip(sessions) {
        user.secret = session.token;
        user.address = session.user_id;
    }
    Ok(())
}

fn login_with_retry(ep: &Endpoint, phone: &str, otp: &Path) -> client::Result<client::Session> {
    let mut tries = 0;
    loop {
        tries += 1;
        match client::login(ep, phone, "loadgen", otp) {
            Ok(s) => return Ok(s),
            Err(e) if tries < LOGIN_TRIES_MAX => {
                eprintln!("loadgen: login {phone} try {tries}: {e}; retrying");
                std::thread::sleep(Duration::from_millis(200 * u64::from(tries)));
            }
            Err(e) => return Err(e),
        }
    }
}

fn create_conversations(ep: &Endpoint, run: &str, world: &mut World) -> Result<(), String> {
    let ids = parallel(world.convs.len(), |c| {
        let conv = &world.convs[c];
        let users: Vec<&str> = conv
            .members
            .iter()
            .map(|u| world.users[*u].address.as_str())
            .collect();
        let creator = &world.users[conv.members[0]].secret;
        let body = if users.len() == 2 {
            json!({"kind": "direct", "peer": users[1]})
        } else {
            json!({"kind": "group", "name": format!("lg {run} {}", conv.ix.0), "members": users[1..]})
        };
        let answer = client::request(ep, "POST", "/v1/conversations", Some(creator), Some(&body))
            .and_then(client::expect_success)
            .map_err(|e| format!("conversation {}: {e}", conv.ix.0))?;
        answer["conversation_id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("conversation {}: no conversation_id in {answer}", conv.ix.0))
    })
    .map_err(|e| format!("conversations: {e}"))?;
    for (conv, id) in world.convs.iter_mut().zip(ids) {
        conv.server_id = id;
    }
    Ok(())
}
