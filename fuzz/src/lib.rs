//! Shared helpers of the fuzz targets: drive arbitrary bytes through the
//! same parsing and normalisation the pipeline uses. A target "finds" a bug
//! by panicking; every error must come back as a value.

use serde_json::value::RawValue;
use streamfold::normalize::{Normalized, normalize, normalize_change};
use streamfold::record::lambda_event::{parse_event, parse_event_records, parse_record};

/// A whole Lambda event document, as the pipeline reads it: in one pass
/// when every record is well formed, else record by record; and record by
/// record always, which must agree with the one pass.
pub fn event(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(records) = parse_event_records(text) else {
        return;
    };
    let Ok(event) = parse_event(text) else {
        panic!("an event read in one pass does not split into records");
    };
    assert_eq!(records.len(), event.records.len());
    for (rec, raw) in records.iter().zip(event.records) {
        let one_pass = normalize(rec);
        let split = normalize(&parse_record(raw));
        assert_eq!(one_pass, split, "the one pass and the split disagree");
        check(one_pass);
    }
}

/// Arbitrary bytes as the item image of a record of each registered table
/// (`normalize::TABLES`), its `Keys` the table's key attributes: exercises
/// every table's normaliser, whatever tables there are.
pub fn image_of_every_table(data: &[u8]) {
    for table in streamfold::normalize::TABLES {
        let keys: Vec<String> = table
            .key_attributes
            .iter()
            .map(|name| format!(r#"{}:{{"S":"k"}}"#, serde_json::Value::from(*name)))
            .collect();
        let keys = format!("{{{}}}", keys.join(","));
        image_of(&format!("fuzz-prod-{}", table.suffix), &keys, data);
    }
}

/// Arbitrary bytes as the NewImage (and OldImage) of an otherwise valid
/// record of `table`: exercises that table's normaliser.
pub fn image_of(table: &str, keys: &str, data: &[u8]) {
    let Ok(image) = std::str::from_utf8(data) else {
        return;
    };
    if serde_json::from_str::<&RawValue>(image).is_err() {
        return;
    }
    for name in ["INSERT", "MODIFY", "REMOVE"] {
        let record = format!(
            r#"{{"eventID":"f","eventName":"{name}","eventVersion":"1.1","eventSource":"aws:dynamodb","awsRegion":"us-east-1",
               "dynamodb":{{"ApproximateCreationDateTime":1710063000.5,"Keys":{keys},"NewImage":{image},"OldImage":{image},
               "SequenceNumber":"4421584500000000017450439091","SizeBytes":1,"StreamViewType":"NEW_AND_OLD_IMAGES"}},
               "eventSourceARN":"arn:aws:dynamodb:us-east-1:1:table/{table}/stream/x"}}"#
        );
        if let Ok(raw) = serde_json::from_str::<&RawValue>(&record) {
            check(normalize(&parse_record(raw)));
        }
    }
}

fn check(n: Normalized) {
    if let Normalized::Reject(reason) = n {
        assert!(!reason.is_empty(), "a rejection without a reason");
    }
}

/// Arbitrary bytes as DynamoDB's change record inside a Kinesis record,
/// and as a line of an incremental export: each adapter's record (or its
/// error) and then its normalisation.
pub fn adapted(data: &[u8]) {
    use streamfold::record::incremental::{Window, incremental_change};
    use streamfold::record::kinesis::change_record;
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match change_record("49590000000000000000000000000000000000000000000000000001", text) {
        Ok((Ok(change), _)) => check(normalize_change(&change)),
        Ok((Err(u), _)) => assert!(!u.reason.is_empty(), "an unreadable change without a reason"),
        Err(reason) => assert!(!reason.is_empty(), "an error without a reason"),
    }
    for ttl_attribute in [None, Some("ttl")] {
        let window = Window {
            table: "icarus-prod-github_events",
            start_secs: 1_709_996_400,
            end_secs: 1_710_003_600,
            ttl_attribute,
        };
        match incremental_change(&window, text, "data.json.gz:1") {
            Ok(change) => check(normalize_change(&change)),
            Err(reason) => assert!(!reason.is_empty(), "an error without a reason"),
        }
    }
}
