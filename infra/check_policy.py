"""Policy checks on the expanded template (infra/validate.sh runs them):
what cfn-lint does not know we require.

- no IAM resource is a whole account's subnets or security groups
  (`subnet/*`, `security-group/*`);
- S3 object access is under the export prefix, never a whole bucket;
- every role's trust policy pins `aws:SourceAccount`;
- every state machine logs (LoggingConfiguration with a destination);
- the function has a reserved concurrency;
- with SourceKmsKeyArn set, the function role (exports, streams) and the
  state machine role (manifests) may kms:Decrypt with that key only,
  and no role may kms:anything on `*`.

Usage: python3 infra/check_policy.py EXPANDED.json
"""

import json
import sys


def texts(value):
    """Every string inside a template value, intrinsic functions included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for v in value:
            yield from texts(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from texts(v)


def statements(role):
    for policy in role["Properties"].get("Policies", []):
        yield from texts_statements(policy["PolicyDocument"]["Statement"])


def texts_statements(value):
    """Statements, looking through Fn::If branches."""
    if isinstance(value, list):
        for v in value:
            yield from texts_statements(v)
    elif isinstance(value, dict) and "Fn::If" in value:
        yield from texts_statements(value["Fn::If"][1:])
    elif isinstance(value, dict) and "Effect" in value:
        yield value


def main(path):
    template = json.load(open(path))
    resources = template["Resources"]
    problems = []
    for name, r in resources.items():
        kind = r["Type"]
        if kind == "AWS::IAM::Role":
            for st in r["Properties"]["AssumeRolePolicyDocument"]["Statement"]:
                cond = st.get("Condition", {}).get("StringEquals", {})
                if "aws:SourceAccount" not in cond:
                    problems.append(f"{name}: trust policy without aws:SourceAccount")
            for st in statements(r):
                sid = st.get("Sid", "?")
                for t in texts(st.get("Resource", [])):
                    if t.endswith(("subnet/*", "security-group/*")):
                        problems.append(f"{name}/{sid}: every subnet or security group ({t})")
                actions = st.get("Action", [])
                actions = [actions] if isinstance(actions, str) else actions
                if "s3:GetObject" in actions:
                    for t in texts(st["Resource"]):
                        if "s3:::" in t and "${BackfillExportPrefix}/" not in t:
                            problems.append(f"{name}/{sid}: s3:GetObject beyond the export prefix ({t})")
        if kind == "AWS::IAM::Role":
            for st in statements(r):
                actions = st.get("Action", [])
                actions = [actions] if isinstance(actions, str) else actions
                if any(a.startswith("kms:") for a in actions):
                    if st.get("Resource") != {"Ref": "SourceKmsKeyArn"}:
                        problems.append(f"{name}/{st.get('Sid')}: kms beyond SourceKmsKeyArn")
        if kind == "AWS::StepFunctions::StateMachine":
            logging = r["Properties"].get("LoggingConfiguration", {})
            if not logging.get("Destinations"):
                problems.append(f"{name}: no logging")
        if kind == "AWS::Lambda::Function":
            if "ReservedConcurrentExecutions" not in r["Properties"]:
                problems.append(f"{name}: no reserved concurrency")
    if "SourceKmsKeyArn" not in template.get("Parameters", {}):
        problems.append("no SourceKmsKeyArn parameter (customer-key encrypted exports and streams)")
    for role, sid in [("FunctionRole", "DecryptSources"), ("BackfillStateMachineRole", "DecryptManifests")]:
        found = [st for st in statements(resources.get(role, {"Properties": {}})) if st.get("Sid") == sid]
        if not found or found[0].get("Action") != ["kms:Decrypt"]:
            problems.append(f"{role}: no {sid} statement granting kms:Decrypt on SourceKmsKeyArn")
    for p in problems:
        print(f"policy check: {p}", file=sys.stderr)
    if problems:
        sys.exit(1)
    print(f"policy checks OK: {path}")


if __name__ == "__main__":
    main(sys.argv[1])
