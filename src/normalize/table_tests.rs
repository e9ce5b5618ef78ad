//! The registry holds together: each table declared once, recognised by
//! its own name only, its identity covering its key.

use super::TABLES;
use crate::domain::SourceKind;
use std::collections::HashSet;

#[test]
fn every_table_is_recognised_by_its_name_and_only_its_own() {
    let mut suffixes = HashSet::new();
    for (i, t) in TABLES.iter().enumerate() {
        assert!(suffixes.insert(t.suffix), "{} registered twice", t.suffix);
        assert_eq!(
            t.kind as usize, i,
            "{}: registry out of variant order",
            t.suffix
        );
        assert!(std::ptr::eq(t.kind.table(), *t), "{}", t.suffix);
        for name in [
            t.suffix.to_string(),
            format!("icarus-prod-{}", t.suffix),
            format!("a-b-c-{}", t.suffix),
        ] {
            assert_eq!(SourceKind::from_table_name(&name), Some(t.kind), "{name}");
        }
        for name in [format!("x{}", t.suffix), format!("{}-x", t.suffix)] {
            assert_ne!(SourceKind::from_table_name(&name), Some(t.kind), "{name}");
        }
    }
    assert_eq!(SourceKind::all().count(), TABLES.len());
}

/// A record's `Keys` name its identity for the seed key schemas: every key
/// attribute is a required identity attribute.
#[test]
fn every_key_attribute_is_a_required_identity_attribute() {
    for t in TABLES {
        assert!(!t.key_attributes.is_empty(), "{}", t.suffix);
        for k in t.key_attributes {
            assert!(
                t.identity_attributes.contains(&(k, true)),
                "{}: key attribute `{k}` does not name the identity",
                t.suffix
            );
        }
        let names: Vec<&str> = t.identity_attributes.iter().map(|(n, _)| *n).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(
            names, sorted,
            "{}: identity attributes in name order",
            t.suffix
        );
    }
}
