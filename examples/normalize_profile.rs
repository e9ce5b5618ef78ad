//! Parse + normalise generated records in a loop, for profiling the
//! normalisation row of `streamfold bench` under callgrind:
//!
//!     cargo build --release --example normalize_profile
//!     valgrind --tool=callgrind target/release/examples/normalize_profile 20000
//!     callgrind_annotate --inclusive=yes callgrind.out.<pid> | head -40

use streamfold::normalize::normalize;
use streamfold::sources::lambda_event::{parse_event, parse_record};

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000);
    let events = streamfold::bench::generate_events(n, 1000, 5);
    let mut changes = 0usize;
    for text in &events {
        let event = parse_event(text).expect("generated JSON");
        for raw in event.records {
            changes += usize::from(matches!(
                normalize(&parse_record(raw)),
                streamfold::normalize::Normalized::Change(_)
            ));
        }
    }
    println!("{changes} changes from {n} records");
}
