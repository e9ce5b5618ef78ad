#!/usr/bin/env python3
"""Create the Icarus and ACS lookup tables (with their GSIs) in a DynamoDB
emulator and load fixtures/directory into them.

    python3 scripts/seed_moto.py http://127.0.0.1:5000 icarus-e2e- acsd2p-e2e-

Needs boto3 (installed with moto). Dummy credentials, region us-east-1.
"""
import json
import os
import sys

import boto3

endpoint, icarus, acs = sys.argv[1], sys.argv[2], sys.argv[3]
ddb = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1",
                   aws_access_key_id="testing", aws_secret_access_key="testing")


def create(table, hash_key, range_key=None, gsis=()):
    attrs = {hash_key}
    schema = [{"AttributeName": hash_key, "KeyType": "HASH"}]
    if range_key:
        attrs.add(range_key)
        schema.append({"AttributeName": range_key, "KeyType": "RANGE"})
    indexes = []
    for name, h, r in gsis:
        ks = [{"AttributeName": h, "KeyType": "HASH"}]
        attrs.add(h)
        if r:
            ks.append({"AttributeName": r, "KeyType": "RANGE"})
            attrs.add(r)
        indexes.append({"IndexName": name, "KeySchema": ks, "Projection": {"ProjectionType": "KEYS_ONLY"}})
    kwargs = dict(TableName=table, KeySchema=schema, BillingMode="PAY_PER_REQUEST",
                  AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"} for a in sorted(attrs)])
    if indexes:
        kwargs["GlobalSecondaryIndexes"] = indexes
    ddb.create_table(**kwargs)


create(f"{icarus}integrations", "slack_id", "integration", [("account_id-integration-index", "account_id", "integration")])
create(f"{icarus}github_accounts", "slack_id", None, [("slackid_by_githubuser", "githubId", None)])
create(f"{icarus}dropbox_accounts", "slack_id", None, [("slackid_by_dropboxid", "dropboxId", None)])
create(f"{icarus}accounts", "slack_id")
create(f"{acs}Users", "id")
create(f"{acs}Threads", "conversation_id")
create(f"{acs}Conversations", "conversation_id", "response_id")
create(f"{acs}LLMReportData", "report_id")

here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "directory")
for name in sorted(os.listdir(here)):
    stem = name.rsplit(".", 1)[0]
    table = (acs if stem in ("Users", "Threads", "Conversations") else icarus) + stem
    with open(os.path.join(here, name)) as f:
        for line in f:
            if line.strip():
                item = json.loads(line)
                ddb.put_item(TableName=table, Item=item.get("Item", item))
print("seeded", endpoint)
