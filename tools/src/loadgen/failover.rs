//! Failover, the coordinator's side: at `--kill-after` from the start of
//! sending, SIGKILL the node `--kill-pid`; `--restart-after` later, start
//! it again with `--restart-command` (`sh -c`, detached: it outlives
//! loadgen, its output goes where the command sends it).
//!
//! Lives on: a thread of the coordinator, for the run.

use std::process::{Command, Stdio};
use std::thread::JoinHandle;
use std::time::Duration;

use super::config::{Config, Scenario};
use super::worker::unix_micros;

/// What the failover thread did, in µs since the Unix epoch.
#[derive(Clone, Debug, Default)]
pub struct Events {
    pub pid: u32,
    pub killed_unix_us: Option<u64>,
    pub restarted_unix_us: Option<u64>,
    pub errors: Vec<String>,
}

/// Starts the failover thread of a run that starts sending at `start_unix`
/// (None: not a failover run).
pub fn schedule(config: &Config, start_unix: u64) -> Option<JoinHandle<Events>> {
    if config.scenario != Scenario::Failover {
        return None;
    }
    let pid = config.kill_pid.expect("validated");
    let kill_unix = start_unix + config.kill_at().as_micros() as u64;
    let restart_after = config.restart_after;
    let restart = config.restart_command.clone();
    Some(std::thread::spawn(move || {
        run(pid, kill_unix, restart_after, restart)
    }))
}

fn run(pid: u32, kill_unix: u64, restart_after: Duration, restart: Option<String>) -> Events {
    let mut events = Events {
        pid,
        ..Events::default()
    };
    sleep_until(kill_unix);
    match kill9(pid) {
        Ok(()) => events.killed_unix_us = Some(unix_micros()),
        Err(e) => {
            events.errors.push(e);
            return events;
        }
    }
    let Some(command) = restart else {
        return events;
    };
    std::thread::sleep(restart_after);
    let started = Command::new("sh")
        .arg("-c")
        .arg(&command)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    match started {
        Ok(_child) => events.restarted_unix_us = Some(unix_micros()),
        Err(e) => events.errors.push(format!("--restart-command: {e}")),
    }
    events
}

fn sleep_until(unix_us: u64) {
    let wait = unix_us.saturating_sub(unix_micros());
    std::thread::sleep(Duration::from_micros(wait));
}

/// SIGKILL `pid`.
fn kill9(pid: u32) -> Result<(), String> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| format!("--kill-pid {pid}: not a pid"))?;
    if pid <= 1 {
        return Err(format!("--kill-pid {pid}: refusing to kill that"));
    }
    // SAFETY: kill(2) takes any pid and signal; it has no memory effects.
    let rc = unsafe { libc::kill(pid, libc::SIGKILL) };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        return Err(format!("kill -9 {pid}: {e}"));
    }
    Ok(())
}
