"""Behaviour checks of the backfill state machines (infra/validate.sh runs
them after asl-validator, which checks only their syntax): what
infra/README promises an operator.

- only `Streamfold.Transient` and Lambda's own failures are retried; a
  permanent error (`Streamfold.ChecksumMismatch`, …) fails the item at once;
- a work item whose invocations commit nothing fails with
  `Streamfold.NoProgress` after 3 in a row, and one that makes progress,
  however slowly, finishes (each child's loop is run here by a small
  interpreter of the states it uses, against a stubbed function);
- every child answers `{}` and the Map discards its result, so what the
  Map gathers does not grow with the number of files (256 KiB limit);
- the export's manifest key is the plan's (the function's), never a
  `States.Format` of the input's prefix (a trailing `/` made `…//…`);
- the Scan passes the run (`$$.Execution.Name`, or `resume_run`), and
  `max_rcu` with the concurrency sharing it, to each segment.

Usage: python3 infra/check_asl.py EXPORT.asl.json SCAN.asl.json
"""

import json
import sys

PERMANENT = [
    "Streamfold.ChecksumMismatch",
    "Streamfold.InvalidExport",
    "Streamfold.InvalidTask",
    "Streamfold.Environment",
]
CATCH_ALL = {"States.ALL", "States.TaskFailed"}


def path(doc, p):
    """A `$.a.b` reference path into `doc`."""
    assert p.startswith("$"), p
    for part in [x for x in p[1:].split(".") if x]:
        doc = doc[part]
    return doc


def put(doc, p, value):
    if p is None:
        return doc
    if p == "$":
        return value
    doc = json.loads(json.dumps(doc))
    parts = [x for x in p[1:].split(".") if x]
    at = doc
    for part in parts[:-1]:
        at = at.setdefault(part, {})
    at[parts[-1]] = value
    return doc


def template(t, data):
    """A Parameters / ResultSelector payload template: the few intrinsics
    the child loops use."""
    if isinstance(t, dict):
        out = {}
        for k, v in t.items():
            if k.endswith(".$"):
                if v.startswith("States.MathAdd("):
                    a, b = v[len("States.MathAdd("):-1].split(",")
                    out[k[:-2]] = path(data, a.strip()) + int(b)
                elif v.startswith("$$.") or v.startswith("States."):
                    # The context object, or an intrinsic the loops do
                    # not use: kept as text.
                    out[k[:-2]] = v
                else:
                    out[k[:-2]] = path(data, v)
            else:
                out[k] = template(v, data)
        return out
    return t


def choose(state, data):
    for rule in state["Choices"]:
        value = path(data, rule["Variable"])
        if "BooleanEquals" in rule and value == rule["BooleanEquals"]:
            return rule["Next"]
        if "NumericGreaterThanEquals" in rule and value >= rule["NumericGreaterThanEquals"]:
            return rule["Next"]
    return state["Default"]


def run_child(processor, item, answers, limit=1000):
    """Run a Map child on `item`; `answers` yields the function's payloads
    (or raises). Returns ("succeeded", output) or ("failed", error)."""
    name, data, steps = processor["StartAt"], item, 0
    while True:
        steps += 1
        assert steps < limit, "the child loops without end"
        state = processor["States"][name]
        kind = state["Type"]
        if kind == "Task":
            payload = next(answers)
            result = {"Payload": payload}
            if "ResultSelector" in state:
                result = template(state["ResultSelector"], result)
            data = put(data, state.get("ResultPath", "$"), result)
            name = state["Next"]
        elif kind == "Pass":
            value = template(state["Parameters"], data) if "Parameters" in state else state.get("Result", data)
            data = put(data, state.get("ResultPath", "$"), value)
            name = state["Next"]
        elif kind == "Choice":
            name = choose(state, data)
        elif kind == "Succeed":
            out = {} if "OutputPath" in state and state["OutputPath"] is None else data
            return "succeeded", out
        elif kind == "Fail":
            return "failed", state["Error"]
        else:
            raise AssertionError(f"state type {kind} not interpreted")


def outcome(done, progressed, items=0):
    return {"done": done, "progressed": progressed, "items": items, "applied": items, "rejected": 0}


def tasks(states):
    for name, s in states.items():
        if s["Type"] == "Task":
            yield name, s
        if s["Type"] == "Map":
            yield from tasks(s["ItemProcessor"]["States"])


def check(path_, problems):
    d = json.load(open(path_))
    for name, t in tasks(d["States"]):
        retried = [e for r in t.get("Retry", []) for e in r["ErrorEquals"]]
        if CATCH_ALL & set(retried):
            problems.append(f"{path_}: {name} retries every error ({CATCH_ALL & set(retried)})")
        if "Streamfold.Transient" not in retried:
            problems.append(f"{path_}: {name} does not retry Streamfold.Transient")
        for p in PERMANENT:
            if p in retried:
                problems.append(f"{path_}: {name} retries the permanent {p}")
    for name, m in d["States"].items():
        if m["Type"] != "Map":
            continue
        if m.get("ResultPath", "$") is not None and "ResultWriter" not in m:
            problems.append(f"{path_}: {name} keeps its children's outputs")
        proc = m["ItemProcessor"]
        item = template(m["ItemSelector"], {"table": "t", "total_segments": 2, "run": "exec-1",
                                            "max_rcu": 100, "max_concurrency": 4,
                                            "incremental": False, "ttl_attribute": None,
                                            "plan": {"export": "s3://b/p", "bucket": "b", "manifest_key": "p/m"}})
        # Progress every time, then done: it finishes, answering {}.
        answers = iter([outcome(False, True, 7)] * 10 + [outcome(True, True, 3)])
        status, out = run_child(proc, item, answers)
        if status != "succeeded" or out != {}:
            problems.append(f"{path_}: {name}: a child that progresses ends {status} with {out!r}, not {{}}")
        # Stalls below the bound between progress: it finishes too.
        answers = iter([outcome(False, False), outcome(False, False), outcome(False, True, 1)] * 5
                       + [outcome(True, True)])
        status, _ = run_child(proc, item, answers)
        if status != "succeeded":
            problems.append(f"{path_}: {name}: two stalls between progress failed the child")
        # Never any progress: failed after 3 invocations, by name.
        calls = []

        def never():
            while True:
                calls.append(1)
                yield outcome(False, False)

        try:
            status, error = run_child(proc, item, never())
        except AssertionError as e:
            status, error = "loops", str(e)
        if (status, error) != ("failed", "Streamfold.NoProgress") or len(calls) != 3:
            problems.append(f"{path_}: {name}: a child without progress ends {status} ({error}) "
                            f"after {len(calls)} invocations, not Streamfold.NoProgress after 3")
        reader = m.get("ItemReader")
        if reader:
            key = reader["Parameters"].get("Key.$", "")
            if "States.Format" in key or "export_prefix" in key:
                problems.append(f"{path_}: {name} builds the manifest key from the input's prefix ({key})")
        task = item["streamfold"]
        if "scan_segment" in task:
            seg = task["scan_segment"]
            for field in ("run", "max_rcu", "concurrency"):
                if field not in seg:
                    problems.append(f"{path_}: {name}: a segment's task has no {field}")
    text = json.dumps(d)
    if "scan_segment" in text and "$$.Execution.Name" not in text:
        problems.append(f"{path_}: the run is not the execution's name")


def main(paths):
    problems = []
    for p in paths:
        check(p, problems)
    for p in problems:
        print(f"state machine check: {p}", file=sys.stderr)
    if problems:
        sys.exit(1)
    print(f"state machine checks OK: {' '.join(paths)}")


if __name__ == "__main__":
    main(sys.argv[1:])
