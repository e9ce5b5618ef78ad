#!/usr/bin/env bash
# Run every fuzz target for SECONDS each (default 20), with a corpus seeded
# from the fixtures (copied at run time, not committed). Needs the nightly
# toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
#   bash fuzz/run.sh          # short run (CI)
#   bash fuzz/run.sh 600      # longer run, by hand
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-20}"
corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT
targets=(parse_event normalize event_time adapt_records)
for t in "${targets[@]}"; do mkdir -p "$corpus/$t"; done
cp ../fixtures/events/*.json ../fixtures/bad/*.json "$corpus/parse_event/"
# Item images from the fixtures seed the normaliser target (each input goes
# through every registered table).
python3 - "$corpus" <<'PY'
import json, os, sys, glob
out = sys.argv[1]
n = 0
for path in sorted(glob.glob("../fixtures/events/*.json")):
    for rec in json.load(open(path))["Records"]:
        image = rec.get("dynamodb", {}).get("NewImage")
        if image:
            n += 1
            open(os.path.join(out, "normalize", f"seed{n}.json"), "w").write(json.dumps(image))
# Change records of the Kinesis fixture, and incremental-export lines.
import base64
for i, rec in enumerate(json.load(open("../fixtures/kinesis/01_github_events.json"))["Records"]):
    open(os.path.join(out, "adapt_records", f"kinesis{i}"), "wb").write(base64.b64decode(rec["kinesis"]["data"]))
for i, line in enumerate([
    '{"Metadata":{"WriteTimestampMicros":{"N":"1710000000250000"}},"Keys":{"id":{"S":"gh-1"}},"NewImage":{"id":{"S":"gh-1"},"username":{"S":"alice"},"timestamp":{"S":"2024-03-12T11:15:00Z"}},"OldImage":{"id":{"S":"gh-1"}}}',
    '{"Metadata":{"WriteTimestampMicros":{"N":"1710000000250000"}},"Keys":{"id":{"S":"gh-3"}},"OldImage":{"id":{"S":"gh-3"},"ttl":{"N":"1709999999"}}}',
]):
    open(os.path.join(out, "adapt_records", f"line{i}"), "w").write(line)
for i, s in enumerate(["2024-03-10T09:30:00Z", "1710063000", "1710063000123", "2024-03-10T09:30:00", "4421584500000000017450439091"]):
    open(os.path.join(out, "event_time", f"seed{i}"), "w").write(s)
PY
for t in "${targets[@]}"; do
  echo "== fuzz $t for ${seconds}s"
  log="$corpus/$t.log"
  if ! cargo +nightly fuzz run "$t" "$corpus/$t" -- -max_total_time="$seconds" -print_final_stats=1 > "$log" 2>&1; then
    tail -60 "$log" >&2
    echo "fuzz target $t crashed (reproducer under fuzz/artifacts/$t/)" >&2
    exit 1
  fi
  grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$log" || true
done
