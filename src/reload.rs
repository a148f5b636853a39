//! Files a running `serve` reloads: when their modification times or sizes
//! change (checked every poll) and on SIGHUP. The TLS certificate and the
//! ACL policy both reload this way.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The files' modification times and sizes, to notice a change.
type Stamp = Vec<Option<(SystemTime, u64)>>;

fn stamp(paths: &[PathBuf]) -> Stamp {
    paths
        .iter()
        .map(|p: &PathBuf| {
            std::fs::metadata(Path::new(p))
                .ok()
                .and_then(|m| Some((m.modified().ok()?, m.len())))
        })
        .collect()
}

/// Calls `reload` on SIGHUP, and when one of `paths` changed since the last
/// call (or since now, for the first). A change is reloaded once: a file
/// that fails to load is tried again when it changes again, or on SIGHUP.
/// Must be called inside the runtime; the SIGHUP handler is registered
/// before it returns, so a SIGHUP right after start reloads instead of
/// ending the process.
pub fn on_change(paths: Vec<PathBuf>, poll: Duration, reload: impl Fn() + Send + 'static) {
    let mut seen = stamp(&paths);
    #[cfg(unix)]
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    tokio::spawn(async move {
        loop {
            #[cfg(unix)]
            let forced = match hup.as_mut() {
                Some(h) => tokio::select! {
                    _ = h.recv() => true,
                    _ = tokio::time::sleep(poll) => false,
                },
                None => {
                    tokio::time::sleep(poll).await;
                    false
                }
            };
            #[cfg(not(unix))]
            let forced = {
                tokio::time::sleep(poll).await;
                false
            };
            let now = stamp(&paths);
            if forced || now != seen {
                // Taken before loading: a write during the load shows next time.
                seen = now;
                reload();
            }
        }
    });
}
