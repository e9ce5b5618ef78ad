#!/usr/bin/env bash
# End-to-end run of the real streamfold-lambda binary under cargo-lambda:
# moto serves the lookup tables, `cargo lambda watch` runs the function,
# `cargo lambda invoke` sends every fixture event (the GitHub ones as a
# Kinesis event), and the resulting counts must equal a local `streamfold
# replay` of the DynamoDB Streams files; then the function applies the
# fixture export from moto S3 file by file, as the backfill state machine's
# children invoke it, and the counts must equal `streamfold backfill` of it.
#
#   bash scripts/lambda-e2e.sh            # debug build
#   RELEASE=1 bash scripts/lambda-e2e.sh  # release build (for timings)
#   bash scripts/lambda-e2e.sh extra.json # also invoke with these event files
#
# Needs .venv with moto[server] and cargo-lambda (.ci/run installs both).
set -euo pipefail
cd "$(dirname "$0")/.."
venv="$PWD/.venv"
scratch=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$scratch"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 1 600); do
    python3 -c "import socket,sys; s=socket.socket(); sys.exit(s.connect_ex(('127.0.0.1',$1)))" && return 0
    sleep 0.2
  done
  echo "nothing listens on port $1" >&2; return 1
}

profile=()
target=debug
if [ "${RELEASE:-}" = 1 ]; then profile=(--release); target=release; fi

moto_port=$(free_port)
"$venv/bin/moto_server" -H 127.0.0.1 -p "$moto_port" > "$scratch/moto.log" 2>&1 &
pids+=($!)
wait_port "$moto_port"
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1
"$venv/bin/python" scripts/seed_moto.py "http://127.0.0.1:$moto_port" icarus-e2e- acsd2p-e2e-

cargo build "${profile[@]}" --bin streamfold --bin streamfold-lambda
lambda_port=$(free_port)
env_vars="DATABASE_URL=sqlite://$scratch/lambda.db,ICARUS_TABLE_PREFIX=icarus-e2e-,ACS_TABLE_PREFIX=acsd2p-e2e-"
env_vars+=",AWS_ENDPOINT_URL=http://127.0.0.1:$moto_port,AWS_ACCESS_KEY_ID=testing,AWS_SECRET_ACCESS_KEY=testing,AWS_REGION=us-east-1"
"$venv/bin/cargo-lambda" lambda watch "${profile[@]}" --bin streamfold-lambda \
  -A 127.0.0.1 -P "$lambda_port" --env-vars "$env_vars" > "$scratch/watch.log" 2>&1 &
pids+=($!)
wait_port "$lambda_port"

# The GitHub events arrive in the Kinesis shape (fixtures/kinesis: a table
# streamed to Kinesis Data Streams); their DynamoDB Streams copies, and the
# redelivery of them, are left out, so the counts compared below hold them
# only if the Kinesis event was applied.
events=(fixtures/kinesis/01_github_events.json)
for f in fixtures/events/*.json; do
  case "$f" in */01_github_events.json|*/05_github_events_redelivered.json) ;; *) events+=("$f") ;; esac
done
for f in "${events[@]}" "$@"; do
  out=$("$venv/bin/cargo-lambda" lambda invoke streamfold-lambda -A 127.0.0.1 -P "$lambda_port" --data-file "$f")
  echo "$f -> $out"
  case "$out" in
    *'"batchItemFailures":[]'*) ;;
    *) echo "unexpected response for $f" >&2; cat "$scratch/watch.log" >&2; exit 1 ;;
  esac
done

# Backfill work items, as the export state machine's Distributed Map
# children send them: the fixture export in moto S3, one invocation per
# line of its manifest-files.json; a second round finds every file done.
"$venv/bin/python" - "http://127.0.0.1:$moto_port" fixtures/exports/github_events > "$scratch/tasks.jsonl" <<'PY'
import json, os, sys
import boto3
endpoint, base = sys.argv[1:]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
s3.create_bucket(Bucket="streamfold-e2e")
summary = json.load(open(os.path.join(base, "manifest-summary.json")))
folder = summary["manifestFilesS3Key"].rsplit("/", 1)[0]
for root, _, files in os.walk(base):
    for f in files:
        path = os.path.join(root, f)
        s3.upload_file(path, "streamfold-e2e", f"{folder}/{os.path.relpath(path, base)}")
table = summary["tableArn"].rsplit("/", 1)[1]
for line in open(os.path.join(base, "manifest-files.json")):
    if line.strip():
        task = {"export": f"s3://streamfold-e2e/{folder}", "table": table, "file": json.loads(line)}
        print(json.dumps({"streamfold": {"export_file": task}}))
PY
for round in first again; do
  n=0
  while read -r task; do
    n=$((n + 1))
    echo "$task" > "$scratch/task.json"
    out=$("$venv/bin/cargo-lambda" lambda invoke streamfold-lambda -A 127.0.0.1 -P "$lambda_port" --data-file "$scratch/task.json")
    echo "export data file $n ($round) -> $out"
    case "$round:$out" in
      first:*'"already_done":false'*'"done":true'*|again:*'"already_done":true'*'"done":true'*) ;;
      *) echo "unexpected response for export data file $n ($round)" >&2; cat "$scratch/watch.log" >&2; exit 1 ;;
    esac
  done < "$scratch/tasks.jsonl"
done

bin="target/$target/streamfold"
"$bin" replay --database-url "sqlite://$scratch/local.db" fixtures/events "$@" > /dev/null
"$bin" backfill --database-url "sqlite://$scratch/local.db" --table icarus-prod-github_events \
  --export fixtures/exports/github_events > /dev/null
for db in lambda local; do
  "$bin" stats --database-url "sqlite://$scratch/$db.db" > "$scratch/$db.totals"
  for u in U01ALICE U02BOB U03CAROL acct-1001 acct-1002; do
    "$bin" stats --database-url "sqlite://$scratch/$db.db" --slack-id "$u" >> "$scratch/$db.totals"
  done
done
if ! diff -u "$scratch/local.totals" "$scratch/lambda.totals"; then
  echo "the Lambda's counts differ from a local replay" >&2; exit 1
fi
# The Lambda projected every LLM report to LLMReportData, as in SQL.
"$bin" llm-report --database-url "sqlite://$scratch/lambda.db" > "$scratch/reports.jsonl"
"$venv/bin/python" - "http://127.0.0.1:$moto_port" acsd2p-e2e-LLMReportData "$scratch/reports.jsonl" <<'PY'
import json, sys, boto3
endpoint, table, path = sys.argv[1:]
ddb = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")
items = {i["report_id"]["S"]: i for i in ddb.scan(TableName=table)["Items"]}
# Exact decimal text of the JSON numbers, not floats.
want = [json.loads(l, parse_float=str, parse_int=str) for l in open(path)]
assert want, "no LLM reports in SQL"
assert sorted(items) == sorted(w["report_id"] for w in want), (sorted(items), want)
for w in want:
    got = items[w["report_id"]]
    for f in ("total_requests", "total_tokens", "total_cost_usd", "version"):
        assert got[f]["N"] == w[f], (w["report_id"], f, got[f], w[f])
print(f"{len(want)} LLM report(s) in {table} match SQL")
PY
head -1 "$scratch/lambda.totals"
grep -o '"init_us":[0-9]*' "$scratch/watch.log" | head -1 || true
# Metrics: one EMF document per source and one per batch, on stdout.
if ! grep -q '"CloudWatchMetrics"' "$scratch/watch.log"; then
  echo "the Lambda printed no EMF metrics" >&2; exit 1
fi
grep -o '"BatchLatency":[0-9.]*' "$scratch/watch.log" | head -3 || true
echo
echo "lambda e2e OK: same counts as streamfold replay"
