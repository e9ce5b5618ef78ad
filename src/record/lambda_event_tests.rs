//! Tests of `lambda_event`: the Lambda shape, record metadata, names and
//! redaction of parser messages.

use super::*;

#[test]
fn only_the_lambda_shape_is_an_event() {
    let ok = parse_event(r#"{"Records": [{"eventID": "e1"}], "other": 1}"#).unwrap();
    assert_eq!(ok.records.len(), 1);
    let owned: OwnedRawEvent = serde_json::from_str(r#"{"Records": []}"#).unwrap();
    assert!(owned.records.is_empty());
    for text in [
        r#"[[{"eventID": "e1"}]]"#,
        r#"[{"Records": []}]"#,
        "[]",
        "7",
    ] {
        let e = parse_event(text)
            .err()
            .unwrap_or_else(|| panic!("{text} accepted"));
        assert!(
            e.to_string()
                .contains("expected a Lambda event: an object whose Records field is an array"),
            "{text}: {e}"
        );
        assert!(
            serde_json::from_str::<OwnedRawEvent>(text).is_err(),
            "{text}"
        );
    }
    let e = parse_event(r#"{"records": []}"#).err().unwrap();
    assert!(e.to_string().contains("missing field `Records`"), "{e}");
}

#[test]
fn arn_table() {
    assert_eq!(
        table_from_arn(
            "arn:aws:dynamodb:us-east-1:123456789012:table/icarus-dev-github_events/stream/2024-01-01T00:00:00.000"
        ),
        Some("icarus-dev-github_events")
    );
    assert_eq!(table_from_arn("arn:aws:sqs:x"), None);
    assert_eq!(table_from_arn("arn:aws:dynamodb:r:a:table//stream/x"), None);
}

#[test]
fn meta_survives_malformed_body() {
    let raw: Box<RawValue> = serde_json::from_str(
        r#"{"eventID":"e1","eventName":"INSERT","eventSourceARN":"arn:aws:dynamodb:us-east-1:1:table/acsd2p-dev-Conversations/stream/x",
            "dynamodb":{"SequenceNumber":"123","ApproximateCreationDateTime":1717000000.123,"Keys":{"k":{"Q":"bad"}}}}"#,
    )
    .unwrap();
    let p = parse_record(&raw);
    assert!(p.body.is_err());
    assert_eq!(p.meta().event_id.as_deref(), Some("e1"));
    assert_eq!(p.meta().sequence_number.as_deref(), Some("123"));
    assert_eq!(
        p.meta().source.map(SourceKind::table_suffix),
        Some("Conversations")
    );
    assert_eq!(
        p.meta().approx_created.unwrap().timestamp_millis(),
        1_717_000_000_123
    );
}

#[test]
fn meta_of_garbage_is_empty() {
    let raw: Box<RawValue> = serde_json::from_str("[1,2]").unwrap();
    assert_eq!(read_meta(&raw), RecordMeta::default());
}

/// `StreamRecord` accepts exactly the records `aws_lambda_events`'
/// `EventRecord` accepts, over every fixture and the hostile corpus, and
/// reads the same metadata as the lenient pass.
#[test]
fn strict_parse_agrees_with_aws_lambda_events() {
    use aws_lambda_events::event::dynamodb::EventRecord;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let (mut compared, mut rejected) = (0, 0);
    for dir in ["events", "bad"] {
        let mut files: Vec<_> = std::fs::read_dir(root.join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            let Ok(event) = parse_event(&text) else {
                continue; // truncated on purpose
            };
            for (i, raw) in event.records.iter().enumerate() {
                let ours = serde_json::from_str::<StreamRecord>(raw.get());
                let theirs = serde_json::from_str::<EventRecord>(raw.get());
                assert_eq!(
                    ours.is_ok(),
                    theirs.is_ok(),
                    "{} record {i}: ours {:?}, aws_lambda_events {:?}",
                    file.display(),
                    ours.as_ref().err(),
                    theirs.as_ref().err()
                );
                if let Ok(rec) = ours {
                    assert_eq!(rec.meta(), read_meta(raw), "{} record {i}", file.display());
                } else {
                    rejected += 1;
                }
                compared += 1;
            }
        }
    }
    assert!(
        compared > 80 && rejected > 5,
        "{compared} compared, {rejected} rejected"
    );
    // Edges the corpus may not hold: the approximate creation time's
    // type and range, null images, view types, a numeric sequence.
    let base = r#"{"eventID":"e","eventName":"INSERT","awsRegion":"r","dynamodb":{"SizeBytes":1,"Keys":{"k":{"S":"x"}}XX}}"#;
    for extra in [
        "",
        r#","ApproximateCreationDateTime":1717000000.5"#,
        r#","ApproximateCreationDateTime":1717000000"#,
        r#","ApproximateCreationDateTime":-5"#,
        r#","ApproximateCreationDateTime":1e20"#,
        r#","ApproximateCreationDateTime":null"#,
        r#","ApproximateCreationDateTime":"1717000000""#,
        r#","NewImage":null,"OldImage":null"#,
        r#","StreamViewType":"NEW_IMAGE""#,
        r#","StreamViewType":"SOMETHING""#,
        r#","SequenceNumber":123"#,
    ] {
        let text = base.replace("XX", extra);
        let ours = serde_json::from_str::<StreamRecord>(&text).is_ok();
        let theirs = serde_json::from_str::<EventRecord>(&text).is_ok();
        assert_eq!(ours, theirs, "{text}");
    }
}

#[test]
fn redaction() {
    assert_eq!(
        redact_quoted(r#"invalid type: string "tok", expected x"#),
        r#"invalid type: string "…", expected x"#
    );
}

#[test]
fn earlier_releases_records_are_read_by_their_event_source() {
    let record = |source: &str| {
        format!(
            r#"{{"eventID":"f:1","eventName":"INSERT","eventSource":"{source}","eventVersion":"1.1","awsRegion":"backfill","eventSourceARN":"arn:aws:dynamodb:backfill:000000000000:table/icarus-prod-github_events/stream/backfill","dynamodb":{{"Keys":{{"id":{{"S":"a"}}}},"NewImage":{{"id":{{"S":"a"}}}},"StreamfoldVersion":"02","SizeBytes":1,"StreamViewType":"NEW_IMAGE"}}}}"#
        )
    };
    let raw = RawValue::from_string(record("streamfold:backfill")).unwrap();
    let change = parse_record(&raw).body.unwrap();
    assert_eq!(change.origin, crate::record::change::Origin::Snapshot);
    // Their versions were text, which is no longer read: not a change.
    for source in ["streamfold:incremental-export", "streamfold:kinesis"] {
        let raw = RawValue::from_string(record(source)).unwrap();
        let u = parse_record(&raw).body.unwrap_err();
        assert!(
            u.reason.contains(source) && u.reason.contains("earlier release"),
            "{}",
            u.reason
        );
        assert_eq!(u.meta.event_id.as_deref(), Some("f:1"));
    }
}
