//! Which database hosts answer (SPEC §18): the state behind failing over
//! within seconds instead of within the statement timeout.
//!
//! A host that goes silent (a partition, a proxy whose backend died, a
//! frozen server) answers nothing, so its connections' statements would
//! each wait out the statement timeout, and the kernel's keepalives never
//! fire while a proxy in between still acknowledges. So a statement that
//! has waited a second makes the pool probe the hosts it has connections
//! to with a fresh connection (see `connect`); a host that does not answer
//! the probe within the connect timeout is *down*: every connection to it
//! is cut at once (their statements fail with `503` instead of waiting)
//! and new connections skip it for a moment, so requests go to the other
//! hosts, where the promoted standby is.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::task::AbortHandle;

/// How long a statement waits before its hosts are probed.
pub(super) const PROBE_AFTER: Duration = Duration::from_secs(1);
/// Shortest time between two probes of one host.
const PROBE_GAP: Duration = Duration::from_secs(1);
/// How long new connections skip a host that did not answer.
pub(super) const DOWN_FOR: Duration = Duration::from_secs(1);

/// What this process knows of one host.
#[derive(Debug, Default)]
pub(super) struct HostState {
    inner: Mutex<Known>,
}

#[derive(Debug, Default)]
struct Known {
    /// The driver tasks of the connections open to the host.
    drivers: Vec<AbortHandle>,
    /// Until when new connections skip the host.
    down_until: Option<Instant>,
    /// When the last probe started.
    probed_at: Option<Instant>,
}

impl HostState {
    fn known(&self) -> std::sync::MutexGuard<'_, Known> {
        // Nothing here can be left half-changed by a panic: keep going.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A connection to the host now runs on `driver`; it answered.
    pub(super) fn connected(&self, driver: AbortHandle) {
        let mut known = self.known();
        known.drivers.retain(|d| !d.is_finished());
        known.drivers.push(driver);
        known.down_until = None;
    }

    /// The host answered (a probe, or a refusal that only a live server
    /// gives): new connections may use it again.
    pub(super) fn answered(&self) {
        self.known().down_until = None;
    }

    /// Whether new connections skip the host at `now`.
    pub(super) fn is_down(&self, now: Instant) -> bool {
        self.known().down_until.is_some_and(|until| until > now)
    }

    /// Whether to probe the host now: it has connections that may be
    /// stuck, and was not probed within `PROBE_GAP`. Records the probe.
    pub(super) fn should_probe(&self, now: Instant) -> bool {
        let mut known = self.known();
        known.drivers.retain(|d| !d.is_finished());
        let recent = known
            .probed_at
            .is_some_and(|at| now.duration_since(at) < PROBE_GAP);
        if known.drivers.is_empty() || recent {
            return false;
        }
        known.probed_at = Some(now);
        true
    }

    /// The host did not answer: cut every connection to it and skip it for
    /// `DOWN_FOR`. Answers how many connections were cut.
    pub(super) fn went_silent(&self, now: Instant) -> usize {
        let mut known = self.known();
        known.down_until = Some(now + DOWN_FOR);
        let drivers = std::mem::take(&mut known.drivers);
        let live = drivers.iter().filter(|d| !d.is_finished()).count();
        for driver in drivers {
            driver.abort();
        }
        live
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_silent_host_is_skipped_for_a_moment_and_its_connections_are_cut() {
        let host = HostState::default();
        let now = Instant::now();
        assert!(!host.should_probe(now), "no connection, nothing to probe");
        let driver = tokio::spawn(std::future::pending::<()>());
        host.connected(driver.abort_handle());
        assert!(host.should_probe(now));
        assert!(!host.should_probe(now), "one probe per PROBE_GAP");
        assert!(host.should_probe(now + PROBE_GAP));
        assert_eq!(host.went_silent(now), 1);
        let cut = driver.await.expect_err("the driver was aborted");
        assert!(cut.is_cancelled());
        assert!(host.is_down(now));
        assert!(!host.is_down(now + DOWN_FOR));
        host.answered();
        assert!(!host.is_down(now));
    }
}
