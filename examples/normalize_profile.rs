//! Parse + normalise generated records in a loop (the pipeline's one pass:
//! event text → change records → normalised changes), for profiling the
//! normalisation row of `streamfold bench` under callgrind; with `floor`,
//! read the same bytes as `serde::de::IgnoredAny` instead (the row's
//! baseline), so that both sides can be counted in instructions:
//!
//!     cargo build --release --example normalize_profile
//!     valgrind --tool=callgrind target/release/examples/normalize_profile 20000
//!     valgrind --tool=callgrind target/release/examples/normalize_profile 20000 floor
//!     callgrind_annotate --inclusive=yes callgrind.out.<pid> | head -40
//!
//! Subtract the generator's share (`streamfold::bench::generate_events`)
//! from each total.

use streamfold::normalize::{Normalized, normalize_change};
use streamfold::record::lambda_event::parse_event_typed;

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let floor = args.next().as_deref() == Some("floor");
    let events = streamfold::bench::generate_events(n, 1000, 5);
    let mut changes = 0usize;
    for text in &events {
        if floor {
            let v: serde::de::IgnoredAny = serde_json::from_str(text).expect("generated JSON");
            std::hint::black_box(v);
            continue;
        }
        let records = parse_event_typed(text).expect("generated records are well formed");
        for rec in &records {
            let out = match rec {
                Ok(change) => normalize_change(change),
                Err(u) => Normalized::Reject(u.reason.clone()),
            };
            changes += usize::from(matches!(out, Normalized::Change(_)));
        }
    }
    println!("{changes} changes from {n} records");
}
