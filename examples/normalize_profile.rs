//! Parse + normalise generated records in a loop, for profiling the
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

use streamfold::normalize::normalize;
use streamfold::record::lambda_event::{parse_event, parse_record};

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
