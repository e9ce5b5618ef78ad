#!/usr/bin/env python3
"""Writes a DynamoDB export to S3 (DYNAMODB_JSON format) of a
github_events table as a local folder: manifest-summary.json,
manifest-files.json (one JSON object per line: itemCount, md5Checksum,
etag, dataFileS3Key) and gzip data files of {"Item": {...}} lines, laid out
as AWS writes them under <prefix>/AWSDynamoDB/<export id>/.

Items are deterministic: item i has id gh-bf-<i>, username cycling over
alice-gh, bobcodes, carol (linked in fixtures/directory) and ghost-<i%7>
(not linked), and timestamp 2024-01-01T00:00:00Z + i * 3607 s.

    python3 scripts/make_export.py fixtures/exports/github_events --items 60 --files 3
    python3 scripts/make_export.py /tmp/export-1m --items 1000000 --files 16
"""
import argparse
import base64
import datetime
import gzip
import hashlib
import io
import json
import os

USERS = ["alice-gh", "bobcodes", "carol", None]
EPOCH = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)


def item(i):
    user = USERS[i % 4] or f"ghost-{i % 7}"
    ts = (EPOCH + datetime.timedelta(seconds=i * 3607)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "id": {"S": f"gh-bf-{i}"},
        "eventType": {"S": "commit"},
        "object_type": {"S": "commit"},
        "object_uri": {"S": f"https://api.github.com/repos/acme/app/commits/{i:040x}"},
        "username": {"S": user},
        "timestamp": {"S": ts},
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--items", type=int, default=60)
    ap.add_argument("--files", type=int, default=3)
    ap.add_argument("--table", default="icarus-prod-github_events")
    ap.add_argument("--prefix", default="backfill")
    args = ap.parse_args()

    export_id = "01711929600000-5f3c2a1b"
    base = f"{args.prefix}/AWSDynamoDB/{export_id}"
    os.makedirs(os.path.join(args.out, "data"), exist_ok=True)
    per_file = -(-args.items // args.files)
    manifest = []
    total_bytes = 0
    for f in range(args.files):
        lo, hi = f * per_file, min(args.items, (f + 1) * per_file)
        name = hashlib.sha1(f"{export_id}-{f}".encode()).hexdigest()[:26] + ".json.gz"
        path = os.path.join(args.out, "data", name)
        raw = io.BytesIO()
        # mtime=0: the same input gives the same bytes.
        with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
            for i in range(lo, hi):
                gz.write((json.dumps({"Item": item(i)}, separators=(",", ":")) + "\n").encode())
        data = raw.getvalue()
        with open(path, "wb") as out:
            out.write(data)
        total_bytes += len(data)
        manifest.append({
            "itemCount": max(0, hi - lo),
            "md5Checksum": base64.b64encode(hashlib.md5(data).digest()).decode(),
            "etag": hashlib.md5(data).hexdigest(),
            "dataFileS3Key": f"{base}/data/{name}",
        })
    with open(os.path.join(args.out, "manifest-files.json"), "w") as out:
        for m in manifest:
            out.write(json.dumps(m) + "\n")
    table_arn = f"arn:aws:dynamodb:us-east-1:123456789012:table/{args.table}"
    summary = {
        "version": "2020-06-30",
        "exportArn": f"{table_arn}/export/{export_id}",
        "startTime": "2024-04-01T00:00:00.000Z",
        "endTime": "2024-04-01T00:05:00.000Z",
        "tableArn": table_arn,
        "tableId": "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0",
        "exportTime": "2024-04-01T00:00:00.000Z",
        "s3Bucket": "acme-dynamodb-exports",
        "s3Prefix": args.prefix,
        "s3SseAlgorithm": "AES256",
        "s3SseKmsKeyId": None,
        "manifestFilesS3Key": f"{base}/manifest-files.json",
        "billedSizeBytes": total_bytes,
        "itemCount": args.items,
        "outputFormat": "DYNAMODB_JSON",
        "exportType": "FULL_EXPORT",
    }
    with open(os.path.join(args.out, "manifest-summary.json"), "w") as out:
        json.dump(summary, out, indent=1)
        out.write("\n")
    print(f"wrote {args.items} items in {args.files} file(s) to {args.out}")


if __name__ == "__main__":
    main()
