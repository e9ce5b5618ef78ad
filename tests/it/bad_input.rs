//! The hostile-input corpus (`fixtures/bad/`): every record ends quarantined
//! with a reason or is handled; nothing panics, nothing is lost, and the
//! tables survive SQL-looking text.

use crate::support::{Harness, fixture_directory};
use streamfold::pipeline::run_batch;
use streamfold::record::lambda_event::parse_event;

/// (file, records, expected rejected)
const CORPUS: &[(&str, u64, u64)] = &[
    ("deep_nesting.json", 2, 1),
    ("huge_strings.json", 2, 1),
    ("wrong_types.json", 8, 8),
    ("big_numbers.json", 4, 3),
    ("invalid_utf8_binary.json", 3, 1),
    ("nan_like.json", 4, 4),
    ("epochs.json", 5, 4),
    ("sql_looking.json", 4, 1),
];

#[tokio::test]
async fn hostile_corpus_is_quarantined_or_handled_never_lost() {
    let h = Harness::with_directory("sqlite", &fixture_directory())
        .await
        .unwrap();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/bad");
    let mut rejected_total = 0;
    for (file, records, rejected) in CORPUS {
        let text = std::fs::read_to_string(format!("{dir}/{file}")).unwrap();
        let event = parse_event(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
        let report = run_batch(&h.p, &event.records)
            .await
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        let t = report.total();
        assert_eq!(t.read, *records, "{file}: {t:?}");
        assert_eq!(
            t.read,
            t.applied + t.unchanged + t.skipped + t.rejected + t.unattributed,
            "{file}: {t:?}"
        );
        assert_eq!(
            t.rejected, *rejected,
            "{file}: {t:?} {:?}",
            report.rejections
        );
        for r in &report.rejections {
            assert!(!r.reason.is_empty(), "{file}: empty reason");
            assert!(
                !r.reason.contains(&"u".repeat(100)),
                "{file}: a reason echoes a huge value"
            );
        }
        rejected_total += rejected;
        // Redelivery adds nothing.
        let again = run_batch(&h.p, &event.records).await.unwrap();
        assert_eq!(
            again.total().applied + again.total().unattributed,
            0,
            "{file}"
        );
    }
    let totals = h.p.store.totals().await.unwrap();
    assert_eq!(totals.rejected as u64, rejected_total);
    // SQL-looking text was stored as data: the tables are intact and the
    // odd actor is kept unattributed.
    assert!(
        totals.events_counted > 0 && totals.unattributed >= 1,
        "{totals:?}"
    );
    assert_eq!(
        h.p.store.heatmap("acct'--", Some("E")).await.unwrap().len(),
        1
    );
}

#[test]
fn truncated_json_fails_the_file_naming_it() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_streamfold"))
        .args([
            "replay",
            "--database-url",
            "sqlite::memory:",
            "fixtures/bad/truncated.json",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("truncated.json:1") && !err.contains("panicked"),
        "{err}"
    );
}
