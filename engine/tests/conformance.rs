//! Runs the independent protocol conformance suite
//! (`tools/conformance/conformance.py`, Python standard library only,
//! written from PROTOCOL.md alone) against a real chatd process.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The suite takes well under a minute; past this it is killed.
const LIMIT: Duration = Duration::from_secs(120);

#[test]
fn conformance_suite_passes() {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tools/conformance/conformance.py"
    );
    assert!(
        std::path::Path::new(script).is_file(),
        "conformance suite not found at {script}"
    );
    let server = common::Server::start();
    let url = format!("http://{}", server.http.host_port);

    let mut child = match Command::new("python3")
        .arg(script)
        .arg("--http")
        .arg(&url)
        .arg("--otp-file")
        .arg(&server.otp_file)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => panic!(
            "cannot run `python3` ({e}): the conformance suite needs Python 3.11+ \
             (standard library only) on PATH"
        ),
    };

    // Drain both pipes in threads so a chatty suite never blocks on a full pipe.
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });

    let deadline = Instant::now() + LIMIT;
    let status = loop {
        match child.try_wait().expect("wait for python3") {
            Some(status) => break Some(status),
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            None => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    let out = out.join().unwrap_or_default();
    let err = err.join().unwrap_or_default();
    println!("{out}");
    if !err.is_empty() {
        eprintln!("[conformance stderr]\n{err}");
    }
    match status {
        None => panic!(
            "conformance suite did not finish within {LIMIT:?} and was killed; its output is above"
        ),
        Some(status) if status.success() => {}
        Some(status) => panic!(
            "conformance suite failed ({status}); the FAIL lines above say which checks and why"
        ),
    }
}
