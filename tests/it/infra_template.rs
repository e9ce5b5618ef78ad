//! `infra/template.yaml` maps every registered source table
//! (`normalize::TABLES`), and no other: its stream ARN parameter, the rule
//! that requires it, its event source mapping, the function's read of its
//! stream and the backfill's Scan of the table. Read as text, by
//! indentation (the template's tags, `!Ref`, are CloudFormation's, not
//! YAML's): the checks name the lines they look for.

use std::collections::BTreeMap;
use std::path::Path;
use streamfold::normalize::TABLES;

fn template() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("infra/template.yaml");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The entries of a top-level section (`Parameters:`, `Resources:`, …):
/// each name at two spaces' indent, with the lines of its body (comments
/// and blank lines left out).
fn section<'a>(text: &'a str, name: &str) -> BTreeMap<&'a str, Vec<&'a str>> {
    let header = format!("{name}:");
    let mut lines = text.lines().skip_while(|l| *l != header).skip(1);
    let mut entries: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut current: Option<&str> = None;
    for line in lines.by_ref() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = line.len() - trimmed.len();
        if indent == 0 {
            break;
        }
        if indent == 2 {
            let key = trimmed
                .strip_suffix(':')
                .unwrap_or_else(|| panic!("{name}: `{line}` is not an entry name"));
            entries.insert(key, Vec::new());
            current = Some(key);
        } else if let Some(key) = current {
            entries.get_mut(key).unwrap().push(trimmed);
        }
    }
    assert!(!entries.is_empty(), "the template has no {name} section");
    entries
}

/// The lines of the policy statement `Sid: <sid>` up to the next statement.
fn statement<'a>(text: &'a str, sid: &str) -> Vec<&'a str> {
    let start = format!("- Sid: {sid}");
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .skip_while(|l| *l != start)
        .collect();
    assert!(!lines.is_empty(), "the template has no statement {sid}");
    lines
        .iter()
        .skip(1)
        .take_while(|l| !l.starts_with("- Sid:") && !l.starts_with("- !If"))
        .copied()
        .collect()
}

/// The stream ARN parameters of the DynamoDB source tables: every
/// `*StreamArn` parameter but the Kinesis one.
fn stream_parameters(parameters: &BTreeMap<&str, Vec<&str>>) -> Vec<String> {
    parameters
        .keys()
        .filter(|p| p.ends_with("StreamArn") && **p != "KinesisStreamArn")
        .map(|p| p.to_string())
        .collect()
}

#[test]
fn every_registered_table_is_mapped_and_no_other() {
    let text = template();
    let parameters = section(&text, "Parameters");
    let rules = section(&text, "Rules");
    let resources = section(&text, "Resources");
    let streams_named = &rules["DynamoDbStreamsNamed"];
    let read_streams = statement(&text, "ReadSourceStreams");
    let scan = statement(&text, "BackfillScan");
    let mappings: Vec<&str> = resources
        .values()
        .filter(|body| body.contains(&"Type: AWS::Lambda::EventSourceMapping"))
        .filter_map(|body| {
            body.iter()
                .find_map(|l| l.strip_prefix("EventSourceArn: !Ref "))
        })
        .collect();

    let mut mapped = Vec::new();
    for t in TABLES {
        let description = format!("Description: Stream ARN of the {} table", t.suffix);
        let (param, _) = parameters
            .iter()
            .find(|(_, body)| body.iter().any(|l| l.starts_with(&description)))
            .unwrap_or_else(|| {
                panic!(
                    "infra/template.yaml has no parameter `{description} …` for the registered table {}",
                    t.suffix
                )
            });
        assert!(param.ends_with("StreamArn"), "{param}");
        assert!(
            streams_named.contains(&format!(r#"- !Not [!Equals [!Ref {param}, ""]]"#).as_str()),
            "rule DynamoDbStreamsNamed does not require {param}"
        );
        assert_eq!(
            mappings.iter().filter(|m| *m == param).count(),
            1,
            "one AWS::Lambda::EventSourceMapping on !Ref {param} ({})",
            t.suffix
        );
        assert!(
            read_streams.contains(&format!("- !Ref {param}").as_str()),
            "statement ReadSourceStreams does not name {param}"
        );
        assert!(
            scan.iter().any(|l| {
                l.starts_with("- !Sub arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/${")
                    && l.ends_with(&format!("TablePrefix}}{}", t.suffix))
            }),
            "statement BackfillScan does not name the table {}",
            t.suffix
        );
        mapped.push(param.to_string());
    }

    // Nothing mapped that the registry does not know.
    mapped.sort();
    assert_eq!(stream_parameters(&parameters), mapped, "stream parameters");
    let mut on_streams: Vec<String> = mappings
        .iter()
        .filter(|m| **m != "KinesisStreamArn")
        .map(|m| m.to_string())
        .collect();
    on_streams.sort();
    assert_eq!(on_streams, mapped, "event source mappings on table streams");
    let required = streams_named
        .iter()
        .filter(|l| l.starts_with("- !Not [!Equals [!Ref "))
        .count();
    assert_eq!(required, TABLES.len(), "rule DynamoDbStreamsNamed");
    let read = read_streams
        .iter()
        .filter(|l| l.starts_with("- !Ref "))
        .count();
    assert_eq!(read, TABLES.len(), "statement ReadSourceStreams");
    let scanned = scan.iter().filter(|l| l.starts_with("- !Sub ")).count();
    assert_eq!(scanned, TABLES.len(), "statement BackfillScan");
}
