//! Prometheus' own tools for the tests that check what it consumes: the
//! tools found (or a failure saying how to install them), and a real server
//! scraping one target every second, stopped when dropped.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

/// The path of one of Prometheus' tools, or a failure saying how to get it.
pub fn tool(name: &str) -> String {
    for dir in ["/usr/bin", "/usr/local/bin", "/bin"] {
        let path = format!("{dir}/{name}");
        if std::path::Path::new(&path).exists() {
            return path;
        }
    }
    panic!(
        "{name} is not installed: these tests check the service with Prometheus' own tools; \
         install them with `apt-get install prometheus` (scripts/test does)"
    );
}

/// A Prometheus server scraping `target` as job `hulykvs` every second.
pub struct Prometheus {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    pub fn scraping(target: SocketAddr) -> Prometheus {
        let dir = tempfile::tempdir().expect("a folder for Prometheus");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: hulykvs\n    \
                 static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .expect("write prometheus.yml");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let child = Command::new(tool("prometheus"))
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus");
        Prometheus {
            port,
            child,
            _dir: dir,
        }
    }

    /// The series an instant query returns (none while Prometheus starts).
    pub async fn query(&self, expr: &str) -> Vec<serde_json::Value> {
        let url = format!("http://127.0.0.1:{}/api/v1/query", self.port);
        let body: serde_json::Value = match reqwest::Client::new()
            .get(&url)
            .query(&[("query", expr)])
            .send()
            .await
        {
            Ok(resp) => resp.json().await.unwrap_or_default(),
            Err(_) => serde_json::Value::Null,
        };
        assert_ne!(body["status"], "error", "{expr}: {body}");
        body["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
