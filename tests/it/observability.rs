//! Logs name each batch (source, sequence range, outcome counts) in one
//! span and never carry item contents.
//!
//! The capture runs in a child process running only that test: `tracing`
//! caches each call site's interest, and a call site first hit by another
//! test's thread while this test installs its subscriber can keep "never"
//! (a race in `tracing-core`'s registration that made this test fail in
//! CI). Alone in its process, nothing races the subscriber.

use crate::support::*;
use std::io::Write;
use std::sync::{Arc, Mutex};

/// Set in the child process, which runs the capture.
const CHILD: &str = "STREAMFOLD_OBSERVABILITY_CHILD";

#[test]
fn batch_span_names_the_batch_and_its_outcome_without_item_contents() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "observability::capture_of_one_batch",
            "--include-ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "the capture failed:\n{stdout}\n{stderr}"
    );
}

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The capture itself; run by the test above in a process of its own.
#[test]
#[ignore = "run in its own process by batch_span_names_the_batch_and_its_outcome_without_item_contents"]
fn capture_of_one_batch() {
    // `cargo test -- --include-ignored` (CI, and the README's server run)
    // reaches it in the shared process too: there the test above has run
    // it already, in its own process, so this one has nothing to do.
    if std::env::var(CHILD).as_deref() != Ok("1") {
        return;
    }
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .finish();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    tracing::subscriber::with_default(subscriber, || {
        rt.block_on(async {
            let h = Harness::new("sqlite").await.unwrap();
            let mut secret = gh("INSERT", "101", "e2", "alice", "2024-03-12T14:00:00Z");
            secret["dynamodb"]["NewImage"]["object_uri"] =
                serde_json::json!({"S": "https://token-ghp_SECRET123@github.com/x"});
            let mut bad = gh("INSERT", "102", "e3", "alice", "2024-03-12T14:00:00Z");
            bad["dynamodb"]["NewImage"]["timestamp"] = serde_json::json!({"S": "ghp_SECRET456"});
            h.apply(&[
                gh("INSERT", "100", "e1", "alice", "2024-03-12T14:00:00Z"),
                secret,
                bad,
            ])
            .await;
        })
    });
    let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("batch applied"))
        .unwrap_or_else(|| panic!("no batch event in:\n{text}"));
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    let span = &v["span"];
    assert_eq!(span["source"], "github_events", "{line}");
    assert_eq!(span["first_sequence"], "100");
    assert_eq!(span["last_sequence"], "102");
    assert_eq!(span["records"], 3);
    assert_eq!(span["applied"], 2);
    assert_eq!(span["rejected"], 1);
    assert!(
        !text.contains("SECRET"),
        "item contents leaked into logs:\n{text}"
    );
}
