//! The web console (SPEC §23) in a real browser: tests/browser/console.py
//! drives Debian's headless Chromium through Playwright (Python) against this
//! build's `hulykvs serve`. Its screenshots of each main state are kept in
//! `target/tmp/console-screenshots` (not committed).

use std::path::PathBuf;
use std::process::Command;

/// The Playwright release scripts/test installs (`pip install playwright==…`).
const PLAYWRIGHT: &str = "1.65.3";

fn python() -> String {
    std::env::var("HULYKVS_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

fn chromium() -> PathBuf {
    if let Ok(path) = std::env::var("HULYKVS_CHROMIUM") {
        return PathBuf::from(path);
    }
    for name in ["chromium", "chromium-browser"] {
        if let Ok(out) = Command::new("sh")
            .args(["-c", &format!("command -v {name}")])
            .output()
        {
            let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            if out.status.success() && !path.is_empty() {
                return PathBuf::from(path);
            }
        }
    }
    panic!(
        "the console's tests run in Debian's Chromium: install it (apt-get install chromium; \
         scripts/test does) or name it in HULYKVS_CHROMIUM"
    );
}

#[test]
fn the_console_works_in_a_real_browser() {
    let chromium = chromium();
    let has_playwright = Command::new(python())
        .args(["-c", "import playwright.sync_api"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        has_playwright,
        "the console's tests drive Chromium with Playwright for Python: \
         `pip install playwright=={PLAYWRIGHT}` (scripts/test does; no browser download is needed), \
         or name another interpreter in HULYKVS_PYTHON"
    );
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let artifacts = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    let out = Command::new(python())
        .arg(root.join("tests/browser/console.py"))
        .arg("--bin")
        .arg(env!("CARGO_BIN_EXE_hulykvs"))
        .arg("--chromium")
        .arg(&chromium)
        .arg("--artifacts")
        .arg(&artifacts)
        .output()
        .expect("run tests/browser/console.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "the console's browser cases failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains(" passed, 0 failed"),
        "no summary from the browser cases:\n{stdout}\n{stderr}"
    );
}
