//! The Icarus and ACS lookup tables in moto, created with the key schemas
//! and indexes of the seed specification and filled from
//! `fixtures/directory`, for the tests that run against DynamoDB lookups.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, GlobalSecondaryIndex, KeySchemaElement, KeyType,
    Projection, ProjectionType, ScalarAttributeType,
};
use serde_json::Value;
use std::collections::HashMap;

pub(crate) const ICARUS: &str = "icarus-test-";
pub(crate) const ACS: &str = "acsd2p-test-";

fn key(name: &str, kind: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
        .unwrap()
}

fn attr(name: &str) -> AttributeDefinition {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .unwrap()
}

/// Create a table: (hash, range) keys and optional GSIs (name, hash, range).
pub(crate) async fn create(
    c: &aws_sdk_dynamodb::Client,
    table: &str,
    hash: &str,
    range: Option<&str>,
    gsis: &[(&str, &str, Option<&str>)],
) {
    let mut attrs = vec![attr(hash)];
    let mut req = c
        .create_table()
        .table_name(table)
        .billing_mode(aws_sdk_dynamodb::types::BillingMode::PayPerRequest)
        .key_schema(key(hash, KeyType::Hash));
    if let Some(r) = range {
        attrs.push(attr(r));
        req = req.key_schema(key(r, KeyType::Range));
    }
    for (name, h, r) in gsis {
        let mut g = GlobalSecondaryIndex::builder()
            .index_name(*name)
            .key_schema(key(h, KeyType::Hash))
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::KeysOnly)
                    .build(),
            );
        if !attrs.iter().any(|a| a.attribute_name() == *h) {
            attrs.push(attr(h));
        }
        if let Some(r) = r {
            g = g.key_schema(key(r, KeyType::Range));
            if !attrs.iter().any(|a| a.attribute_name() == *r) {
                attrs.push(attr(r));
            }
        }
        req = req.global_secondary_indexes(g.build().unwrap());
    }
    req.set_attribute_definitions(Some(attrs))
        .send()
        .await
        .unwrap();
}

/// DynamoDB JSON → SDK AttributeValue.
fn to_av(v: &Value) -> AttributeValue {
    let (tag, inner) = v.as_object().unwrap().iter().next().unwrap();
    match tag.as_str() {
        "S" => AttributeValue::S(inner.as_str().unwrap().into()),
        "N" => AttributeValue::N(inner.as_str().unwrap().into()),
        "BOOL" => AttributeValue::Bool(inner.as_bool().unwrap()),
        "NULL" => AttributeValue::Null(true),
        "M" => AttributeValue::M(
            inner
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), to_av(v)))
                .collect(),
        ),
        "L" => AttributeValue::L(inner.as_array().unwrap().iter().map(to_av).collect()),
        other => panic!("unexpected tag {other}"),
    }
}

/// The Icarus and ACS lookup tables in moto, filled from fixtures/directory.
pub(crate) async fn seed_tables(c: &aws_sdk_dynamodb::Client) {
    create(
        c,
        &format!("{ICARUS}integrations"),
        "slack_id",
        Some("integration"),
        &[(
            "account_id-integration-index",
            "account_id",
            Some("integration"),
        )],
    )
    .await;
    create(
        c,
        &format!("{ICARUS}github_accounts"),
        "slack_id",
        None,
        &[("slackid_by_githubuser", "githubId", None)],
    )
    .await;
    create(
        c,
        &format!("{ICARUS}dropbox_accounts"),
        "slack_id",
        None,
        &[("slackid_by_dropboxid", "dropboxId", None)],
    )
    .await;
    create(c, &format!("{ICARUS}accounts"), "slack_id", None, &[]).await;
    create(c, &format!("{ACS}Users"), "id", None, &[]).await;
    create(c, &format!("{ACS}Threads"), "conversation_id", None, &[]).await;
    create(
        c,
        &format!("{ACS}Conversations"),
        "conversation_id",
        Some("response_id"),
        &[],
    )
    .await;
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/directory");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let stem = path.file_stem().unwrap().to_string_lossy().to_string();
        let table = if ["Users", "Threads", "Conversations"].contains(&stem.as_str()) {
            format!("{ACS}{stem}")
        } else {
            format!("{ICARUS}{stem}")
        };
        for line in std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .filter(|l| !l.trim().is_empty())
        {
            let v: Value = serde_json::from_str(line).unwrap();
            let item = v.get("Item").unwrap_or(&v);
            let item: HashMap<String, AttributeValue> = item
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), to_av(v)))
                .collect();
            c.put_item()
                .table_name(&table)
                .set_item(Some(item))
                .send()
                .await
                .unwrap();
        }
    }
}
