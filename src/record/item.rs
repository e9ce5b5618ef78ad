//! DynamoDB JSON items (`{"name": {"S": "…"}, …}`) parsed without copying:
//! names, strings and numbers borrow from the record's text (they are owned
//! only when the JSON escapes them), and an item is a flat list of
//! attributes rather than a hash map.
//!
//! This is the hot path of normalisation (BENCHMARKS.md, row 5), which is
//! why it does not use `serde_dynamo::AttributeValue`: that type allocates
//! every name and value. The accepted shapes are the same as
//! `serde_dynamo`'s: exactly one type tag per value, numbers as strings,
//! binary as standard base64 (decoded, so a bad `B` is rejected), `NULL`
//! with a boolean. Where a name occurs twice the last one counts, as it
//! would in a map.

use base64::Engine;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use std::borrow::Cow;
use std::fmt;

/// One attribute value.
#[derive(Clone, Debug, PartialEq)]
pub enum Attr<'a> {
    S(Cow<'a, str>),
    N(Cow<'a, str>),
    B(Vec<u8>),
    Bool(bool),
    Null,
    M(Item<'a>),
    L(Vec<Attr<'a>>),
    Ss(Vec<Cow<'a, str>>),
    Ns(Vec<Cow<'a, str>>),
    Bs(Vec<Vec<u8>>),
}

impl Attr<'_> {
    /// The type tag, for error messages.
    pub fn type_tag(&self) -> &'static str {
        match self {
            Attr::N(_) => "N",
            Attr::S(_) => "S",
            Attr::Bool(_) => "BOOL",
            Attr::B(_) => "B",
            Attr::Null => "NULL",
            Attr::M(_) => "M",
            Attr::L(_) => "L",
            Attr::Ss(_) => "SS",
            Attr::Ns(_) => "NS",
            Attr::Bs(_) => "BS",
        }
    }
}

/// An item (or a map attribute): its attributes in the order they came.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Item<'a>(Vec<(Cow<'a, str>, Attr<'a>)>);

impl<'a> Item<'a> {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The attribute called `name` (the last one, if the name repeats).
    pub fn get(&self, name: &str) -> Option<&Attr<'a>> {
        self.0.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// Attributes sorted by name, one per name (the last occurrence).
    pub fn sorted(&self) -> Vec<(&str, &Attr<'a>)> {
        let mut out: Vec<(&str, &Attr<'a>)> = self.0.iter().map(|(n, v)| (n.as_ref(), v)).collect();
        // Stable: among equal names the last one ends up last.
        out.sort_by(|a, b| a.0.cmp(b.0));
        let mut deduped: Vec<(&str, &Attr<'a>)> = Vec::with_capacity(out.len());
        for pair in out {
            match deduped.last_mut() {
                Some(last) if last.0 == pair.0 => *last = pair,
                _ => deduped.push(pair),
            }
        }
        deduped
    }

    /// An item of these attributes, in this order.
    pub fn from_pairs(pairs: Vec<(&'a str, Attr<'a>)>) -> Self {
        Item(
            pairs
                .into_iter()
                .map(|(n, v)| (Cow::Borrowed(n), v))
                .collect(),
        )
    }

    /// An empty item with room for `n` attributes.
    pub fn with_capacity(n: usize) -> Self {
        Item(Vec::with_capacity(n))
    }

    /// Add an attribute after the others.
    pub fn push(&mut self, name: Cow<'a, str>, value: Attr<'a>) {
        self.0.push((name, value));
    }

    /// The attributes in the order they came.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Attr<'a>)> {
        self.0.iter().map(|(n, v)| (n.as_ref(), v))
    }

    /// The same item, owning its names and values.
    pub fn into_owned(self) -> Item<'static> {
        Item(
            self.0
                .into_iter()
                .map(|(n, v)| (Cow::Owned(n.into_owned()), v.into_owned()))
                .collect(),
        )
    }
}

fn owned(s: Cow<'_, str>) -> Cow<'static, str> {
    Cow::Owned(s.into_owned())
}

impl Attr<'_> {
    /// The same value, owning its text.
    pub fn into_owned(self) -> Attr<'static> {
        match self {
            Attr::S(s) => Attr::S(owned(s)),
            Attr::N(s) => Attr::N(owned(s)),
            Attr::B(b) => Attr::B(b),
            Attr::Bool(b) => Attr::Bool(b),
            Attr::Null => Attr::Null,
            Attr::M(m) => Attr::M(m.into_owned()),
            Attr::L(l) => Attr::L(l.into_iter().map(Attr::into_owned).collect()),
            Attr::Ss(v) => Attr::Ss(v.into_iter().map(owned).collect()),
            Attr::Ns(v) => Attr::Ns(v.into_iter().map(owned).collect()),
            Attr::Bs(v) => Attr::Bs(v),
        }
    }
}

/// A string that borrows from the input when it can.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct CowStr<'a>(pub Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for CowStr<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CowStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// Decoded standard base64 (`B` values), as `serde_dynamo` decodes it.
struct Base64Bytes(Vec<u8>);

impl<'de> Deserialize<'de> for Base64Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = CowStr::deserialize(d)?.0;
        base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map(Base64Bytes)
            .map_err(|_| de::Error::custom("a B value is not valid base64"))
    }
}

fn strings<'de, A: MapAccess<'de>>(map: &mut A) -> Result<Vec<Cow<'de, str>>, A::Error> {
    let v: Vec<CowStr<'de>> = map.next_value()?;
    Ok(v.into_iter().map(|s| s.0).collect())
}

impl<'de: 'a, 'a> Deserialize<'de> for Attr<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Attr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    r#"an object with a single key "N", "S", "BOOL", "B", "NULL", "M", "L", "SS", "NS", or "BS""#,
                )
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let Some(tag) = map.next_key::<CowStr<'de>>()? else {
                    return Err(de::Error::custom(
                        "an attribute value has no type tag (expected exactly one)",
                    ));
                };
                let value = match tag.0.as_ref() {
                    "S" => Attr::S(map.next_value::<CowStr<'de>>()?.0),
                    "N" => Attr::N(map.next_value::<CowStr<'de>>()?.0),
                    "BOOL" => Attr::Bool(map.next_value()?),
                    "NULL" => {
                        let _: bool = map.next_value()?;
                        Attr::Null
                    }
                    "B" => Attr::B(map.next_value::<Base64Bytes>()?.0),
                    "M" => Attr::M(map.next_value()?),
                    "L" => Attr::L(map.next_value()?),
                    "SS" => Attr::Ss(strings(&mut map)?),
                    "NS" => Attr::Ns(strings(&mut map)?),
                    "BS" => {
                        let v: Vec<Base64Bytes> = map.next_value()?;
                        Attr::Bs(v.into_iter().map(|b| b.0).collect())
                    }
                    _ => {
                        return Err(de::Error::custom(
                            "an attribute value's type tag is not a known DynamoDB prefix \
                             (N, S, BOOL, B, NULL, M, L, SS, NS or BS)",
                        ));
                    }
                };
                if map.next_key::<de::IgnoredAny>()?.is_some() {
                    return Err(de::Error::custom(
                        "an attribute value has more than one type tag",
                    ));
                }
                Ok(value)
            }
        }
        d.deserialize_map(V)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Item<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Item<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of attribute names to attribute values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut attrs = Vec::with_capacity(map.size_hint().unwrap_or(16).min(64));
                while let Some(name) = map.next_key::<CowStr<'de>>()? {
                    attrs.push((name.0, map.next_value::<Attr<'de>>()?));
                }
                Ok(Item(attrs))
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Item<'_>, serde_json::Error> {
        serde_json::from_str(text)
    }

    #[test]
    fn every_type_parses_and_strings_borrow() {
        let text = r#"{"s":{"S":"x"},"n":{"N":"12.5"},"b":{"B":"AAEC"},"t":{"BOOL":true},
            "z":{"NULL":true},"m":{"M":{"k":{"S":"v"}}},"l":{"L":[{"N":"1"},{"S":"a"}]},
            "ss":{"SS":["a","b"]},"ns":{"NS":["1"]},"bs":{"BS":["AA=="]},"e":{"S":"a\"b"}}"#;
        let item = parse(text).unwrap();
        assert!(matches!(item.get("s"), Some(Attr::S(Cow::Borrowed("x")))));
        assert_eq!(item.get("n"), Some(&Attr::N("12.5".into())));
        assert_eq!(item.get("b"), Some(&Attr::B(vec![0, 1, 2])));
        assert_eq!(item.get("t"), Some(&Attr::Bool(true)));
        assert_eq!(item.get("z"), Some(&Attr::Null));
        match item.get("m") {
            Some(Attr::M(m)) => assert_eq!(m.get("k"), Some(&Attr::S("v".into()))),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            item.get("l"),
            Some(&Attr::L(vec![Attr::N("1".into()), Attr::S("a".into())]))
        );
        assert_eq!(
            item.get("ss"),
            Some(&Attr::Ss(vec!["a".into(), "b".into()]))
        );
        assert_eq!(item.get("bs"), Some(&Attr::Bs(vec![vec![0]])));
        // Escaped text is unescaped (and owned).
        assert_eq!(item.get("e"), Some(&Attr::S("a\"b".into())));
        assert_eq!(item.get("missing"), None);
    }

    #[test]
    fn malformed_values_are_errors_without_echoing_them() {
        for bad in [
            r#"{"a":{"X":"1"}}"#,
            r#"{"a":{}}"#,
            r#"{"a":{"S":"x","N":"1"}}"#,
            r#"{"a":{"N":1}}"#,
            r#"{"a":{"B":"secret!!"}}"#,
            r#"{"a":{"NULL":"yes"}}"#,
            r#"{"a":"plain"}"#,
            r#"[1]"#,
        ] {
            let e = parse(bad).expect_err(bad).to_string();
            assert!(!e.contains("secret"), "{e}");
        }
    }

    #[test]
    fn a_repeated_name_counts_once_and_last() {
        let item = parse(r#"{"b":{"S":"1"},"a":{"S":"2"},"b":{"S":"3"}}"#).unwrap();
        assert_eq!(item.get("b"), Some(&Attr::S("3".into())));
        let sorted = item.sorted();
        assert_eq!(sorted.len(), 2);
        assert_eq!(sorted[0].0, "a");
        assert_eq!(sorted[1], ("b", &Attr::S("3".into())));
    }

    #[test]
    fn same_acceptance_as_serde_dynamo() {
        // Anything serde_dynamo accepts is accepted, and vice versa.
        for text in [
            r#"{"a":{"S":"x"}}"#,
            r#"{"a":{"B":"not base64"}}"#,
            r#"{"a":{"BS":["AA==","?"]}}"#,
            r#"{"a":{"L":[{"Q":"1"}]}}"#,
            r#"{"a":{"M":{"b":{"N":"1"}}}}"#,
            r#"{"a":{"NULL":false}}"#,
            r#"{}"#,
        ] {
            let ours = parse(text).is_ok();
            let theirs = serde_json::from_str::<serde_dynamo::Item>(text).is_ok();
            assert_eq!(ours, theirs, "{text}");
        }
    }
}
