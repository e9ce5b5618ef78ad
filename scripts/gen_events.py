#!/usr/bin/env python3
"""Generate a large replay file of realistic Lambda DynamoDB stream events.

    python3 scripts/gen_events.py 100000 /tmp/events-100k.jsonl [--batch 1000]

Output: one Lambda event per line ({"Records": [...]}, `--batch` records
each), all four source tables, users from fixtures/directory (plus unlinked
ones), with 5 % redelivered duplicates, 2 % MODIFY (half of them moving the
event time), 1 % application REMOVE. Deterministic (seeded).
"""
import argparse
import json
import random

TABLES = {
    "G": "icarus-prod-github_events",
    "D": "icarus-prod-dropbox_file_changes",
    "E": "acsd2p-prod-Conversations",
    "L": "acsd2p-prod-LLMDataCollection",
}
GH_USERS = ["alice-gh", "bobcodes", "carol", "dave-unlinked"]
DB_USERS = ["dbid:AAALICE", "dbid:AABOB", "dbid:AAZED"]
ACCOUNTS = ["acct-1001", "acct-1002"]
CONVS = ["conv-a", "conv-b", "conv-zzz"]
MODELS = ["meta-llama/Llama-3.3-70B-Instruct-Turbo", "mistralai/Mixtral-8x7B-Instruct-v0.1"]


def S(v):
    return {"S": v}


def N(v):
    return {"N": str(v)}


def arn(t):
    return f"arn:aws:dynamodb:us-east-1:123456789012:table/{TABLES[t]}/stream/2024-01-02T03:04:05.678"


def make_item(kind, i, rng, ts):
    iso = f"2024-{1 + ts // 2419200 % 12:02d}-{1 + ts // 86400 % 28:02d}T{ts // 3600 % 24:02d}:{ts // 60 % 60:02d}:{ts % 60:02d}Z"
    if kind == "G":
        keys = {"id": S(f"gh-{i}")}
        item = {"id": S(f"gh-{i}"), "eventType": S("commit"), "object_type": S("commit"),
                "object_uri": S(f"https://api.github.com/repos/acme/app/commits/{i:040x}"),
                "username": S(rng.choice(GH_USERS)), "timestamp": S(iso)}
    elif kind == "D":
        keys = {"account_id": S(f"dbid:ACC{i}")}
        item = {"account_id": S(f"dbid:ACC{i}"), "user_id": S(rng.choice(DB_USERS)), "type": S("file"),
                "path_lower": S(f"/projects/report-{i}.xlsx"), "timestamp": N(1704067200 + ts)}
    elif kind == "E":
        keys = {"conversation_id": S(f"conv-{i // 4}"), "response_id": S(f"resp-{i}")}
        item = {"conversation_id": S(f"conv-{i // 4}"), "response_id": S(f"resp-{i}"),
                "message_id": S(f"msg-{i}"), "associated_account": S(rng.choice(ACCOUNTS)),
                "sender_email": S("sender@example.com"), "subject": S("Quarterly numbers"),
                "timestamp": S(iso), "status": S("received"), "ev_score": N("0.85")}
    else:
        conv = rng.choice(CONVS)
        keys = {"conversation_id": S(conv)}
        item = {"conversation_id": S(conv), "model_used": S(rng.choice(MODELS)),
                "prompt_tokens": N(150), "response_tokens": N(200), "total_tokens": N(350),
                "response_time_ms": N(2500), "quality_score": N("0.88"), "generated_at": S(iso.replace("Z", f".{i % 1000:03d}Z")),
                "metadata": {"M": {"temperature": N("0.7"), "cost_usd": N("0.0025"), "function_name": S("generate_email")}}}
    return keys, item


def record(kind, name, seq, keys, new=None, old=None):
    ddb = {"ApproximateCreationDateTime": 1710000000 + seq // 10, "Keys": keys}
    if new is not None:
        ddb["NewImage"] = new
    if old is not None:
        ddb["OldImage"] = old
    ddb["SequenceNumber"] = str(4421584500000000000000000000 + seq)
    ddb["SizeBytes"] = 300
    ddb["StreamViewType"] = "NEW_AND_OLD_IMAGES"
    return {"eventID": f"{seq:032x}", "eventName": name, "eventVersion": "1.1", "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1", "dynamodb": ddb, "eventSourceARN": arn(kind)}


def generate(n, rng):
    live = []  # (kind, keys, item) eligible for MODIFY/REMOVE
    out = []
    seq = 0
    i = 0
    while len(out) < n:
        seq += 1
        roll = rng.random()
        if roll < 0.05 and out:
            out.append(rng.choice(out[-5000:]))  # redelivered duplicate, same sequence number
            continue
        if roll < 0.07 and live:
            kind, keys, item = rng.choice(live)
            new = dict(item)
            if rng.random() < 0.5 and kind != "L":
                new["timestamp"] = make_item(kind, 0, rng, rng.randrange(31536000))[1]["timestamp"]
            new["status"] = S("processed")
            out.append(record(kind, "MODIFY", seq, keys, new, item))
            continue
        if roll < 0.08 and live:
            kind, keys, item = live.pop(rng.randrange(len(live)))
            out.append(record(kind, "REMOVE", seq, keys, None, item))
            continue
        kind = rng.choice("GDEL")
        i += 1
        keys, item = make_item(kind, i, rng, rng.randrange(31536000))
        live.append((kind, keys, item))
        if len(live) > 20000:
            live.pop(0)
        out.append(record(kind, "INSERT", seq, keys, item))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("count", type=int)
    ap.add_argument("out")
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    recs = generate(a.count, random.Random(a.seed))
    with open(a.out, "w") as f:
        for k in range(0, len(recs), a.batch):
            f.write(json.dumps({"Records": recs[k:k + a.batch]}, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    main()
