//! Network namespaces for tests that need multicast (mDNS): a test creates
//! a namespace of its own, enables multicast on its loopback, and runs its
//! real body inside it by re-executing the test binary there, so that the
//! host's network (and other tests running at the same time) are never
//! touched.
//!
//! The pattern, in a test file:
//!
//! ```no_run
//! // The outer test: creates the namespace, runs the inner one inside it,
//! // fails with the inner test's output if it failed, deletes the namespace.
//! #[test]
//! fn agents_find_each_other() {
//!     tacit_testkit::netns::run_isolated("inner_agents_find_each_other");
//! }
//!
//! // The inner test: ignored by a plain run; does the work.
//! #[test]
//! #[ignore = "runs inside a network namespace (see agents_find_each_other)"]
//! fn inner_agents_find_each_other() {
//!     if !tacit_testkit::netns::inside() { return; }
//!     // … bind agents, multicast, assert …
//! }
//! ```
//!
//! Needs root and iproute2 (`ip netns`); without them [`run_isolated`]
//! fails the test saying so, never passes silently.

use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::process::ChildGuard;

/// Set (to the namespace's name) in the environment of the inner run.
pub const INNER_ENV: &str = "TACIT_TEST_NETNS";

/// The longest an inner run may take before it is killed.
pub const INNER_LIMIT: Duration = Duration::from_secs(90);

/// Whether this process runs inside a namespace made by [`run_isolated`].
/// An inner test returns at once when it is not (it is `#[ignore]`d, so
/// only `--include-ignored` runs it on the host).
pub fn inside() -> bool {
    std::env::var_os(INNER_ENV).is_some()
}

/// A network namespace, deleted when dropped (a failed test included).
#[derive(Debug)]
pub struct Netns {
    name: String,
}

fn ip(args: &[&str]) -> Result<Output, String> {
    Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run `ip {}`: {e} (iproute2 missing?)", args.join(" ")))
}

fn ip_ok(args: &[&str]) -> Result<(), String> {
    let output = ip(args)?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`ip {}` failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

impl Netns {
    /// Creates the namespace `tacit-<tag>-<pid>-<n>` with its loopback up,
    /// multicast enabled on it and `224.0.0.0/4` routed to it: every
    /// multicast datagram sent inside is delivered inside, and nothing
    /// reaches the host's interfaces.
    pub fn create(tag: &str) -> Result<Self, String> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!("tacit-{tag}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        ip_ok(&["netns", "add", &name])
            .map_err(|e| format!("ip netns is unavailable: {e} (these tests need root and iproute2)"))?;
        let netns = Self { name };
        let n = netns.name.as_str();
        ip_ok(&["-n", n, "link", "set", "lo", "up"])?;
        ip_ok(&["-n", n, "link", "set", "lo", "multicast", "on"])?;
        ip_ok(&["-n", n, "route", "add", "224.0.0.0/4", "dev", "lo"])?;
        Ok(netns)
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs this test binary's test `test` inside the namespace
    /// (`ip netns exec NS <exe> --exact TEST --include-ignored --nocapture`,
    /// with [`INNER_ENV`] set), killed after `limit`.
    pub fn run_test(&self, test: &str, limit: Duration) -> Result<Output, String> {
        let exe = std::env::current_exe().map_err(|e| format!("no current executable: {e}"))?;
        let exe = exe.to_str().ok_or("the test executable's path is not UTF-8")?;
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.name,
                exe,
                "--exact",
                test,
                "--include-ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(INNER_ENV, &self.name)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run `ip netns exec`: {e}"))?;
        let mut child = ChildGuard(child);
        let stdout = child.stdout.take().map(drain);
        let stderr = child.stderr.take().map(drain);
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = child.try_wait().map_err(|e| format!("cannot wait for the inner test: {e}"))? {
                break status;
            }
            if Instant::now() > deadline {
                return Err(format!("the inner test {test} ran over {limit:?} and was killed"));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let joined = |h: Option<std::thread::JoinHandle<Vec<u8>>>| h.and_then(|h| h.join().ok()).unwrap_or_default();
        Ok(Output { status, stdout: joined(stdout), stderr: joined(stderr) })
    }
}

fn drain(mut from: impl std::io::Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = from.read_to_end(&mut bytes);
        bytes
    })
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = ip_ok(&["netns", "del", &self.name]) {
            eprintln!("could not delete the network namespace {}: {e}", self.name);
        }
    }
}

/// Runs the inner test `test` of this binary in a namespace of its own
/// ([`Netns::create`], [`Netns::run_test`]) and panics — with its output —
/// unless it passed. Panics saying so when namespaces are unavailable, and
/// when the inner test ran no test (a misspelt name must not pass).
#[allow(clippy::panic)]
pub fn run_isolated(test: &str) {
    let netns = Netns::create("t").unwrap_or_else(|e| panic!("{e}"));
    let output = netns.run_test(test, INNER_LIMIT).unwrap_or_else(|e| panic!("{e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("--- {test} in netns {} ---\n{stdout}{stderr}--- end of {test} ---", netns.name());
    assert!(output.status.success(), "the inner test {test} failed ({})", output.status);
    assert!(stdout.contains("1 passed"), "the inner test {test} did not run (misspelt?)");
}
