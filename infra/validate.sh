#!/usr/bin/env bash
# Offline checks of the SAM template: `sam validate --lint`, cfn-lint on the
# template, cfn-lint on the template expanded by aws-sam-translator, and
# asl-validator on the Step Functions definitions (infra/*.asl.json), and
# our own policy checks on the expanded template (infra/check_policy.py),
# and behaviour checks of the state machines (infra/check_asl.py).
# Usage: bash infra/validate.sh [TEMPLATE]   (needs .venv with aws-sam-cli,
# cfn-lint and aws-sam-translator, and .tools/ with asl-validator; .ci/run
# installs them)
set -euo pipefail
cd "$(dirname "$0")/.."
template="${1:-infra/template.yaml}"
venv="$PWD/.venv"
export AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing SAM_CLI_TELEMETRY=0
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
"$venv/bin/sam" validate --lint -t "$template"
"$venv/bin/cfn-lint" "$template"
"$venv/bin/python" infra/expand.py "$template" "$scratch/expanded.json"
"$venv/bin/cfn-lint" "$scratch/expanded.json"
# What cfn-lint does not know we require: scoped ENI and S3 resources,
# trust policies pinned to this account, state machine logging, reserved
# concurrency.
"$venv/bin/python" infra/check_policy.py "$scratch/expanded.json"
# The state machine definitions, which cfn-lint does not check: asl-validator
# (npm; .ci/run installs it under .tools/).
asl="$PWD/.tools/node_modules/.bin/asl-validator"
for d in ${ASL_DEFINITIONS:-infra/backfill-export.asl.json infra/backfill-scan.asl.json}; do
  "$asl" --json-path "$d"
done
# What the definitions do (retries, the no-progress bound, children's
# outputs, the manifest key, the Scan's run and capacity): a small
# interpreter of the child loops (infra/check_asl.py).
"$venv/bin/python" infra/check_asl.py ${ASL_DEFINITIONS:-infra/backfill-export.asl.json infra/backfill-scan.asl.json}
echo "template OK: $template"
