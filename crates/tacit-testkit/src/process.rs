//! Child processes that cannot outlive their test: a [`ChildGuard`] kills
//! and reaps its process when dropped, also when the test panics half-way.

use std::ops::{Deref, DerefMut};
use std::process::Child;

/// Owns a child process; kills and reaps it when dropped. Derefs to the
/// [`Child`], so `guard.try_wait()`, `guard.id()` and `guard.stdout.take()`
/// work as on the child itself.
#[derive(Debug)]
pub struct ChildGuard(pub Child);

impl Deref for ChildGuard {
    type Target = Child;

    fn deref(&self) -> &Child {
        &self.0
    }
}

impl DerefMut for ChildGuard {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        // Killing a process that already exited fails harmlessly.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::process::Command;

    use super::*;

    #[test]
    fn a_dropped_guard_kills_its_child() {
        let guard = ChildGuard(Command::new("sleep").arg("60").spawn().unwrap());
        let pid = guard.id();
        drop(guard);
        // Reaped: the pid no longer names a running `sleep` of ours.
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        assert!(!stat.contains("(sleep)"), "{stat}");
    }
}
