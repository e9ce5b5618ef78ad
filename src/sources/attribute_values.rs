//! AWS SDK attribute values (a Scan page's items, a `GetRecords` page's
//! images) read as `record::item::Item`s, borrowing their names and text:
//! no DynamoDB JSON is written on the way.

use crate::record::item::{Attr, Item};
use std::borrow::Cow;
use std::collections::HashMap;

macro_rules! sdk_items {
    ($item:ident, $attr:ident, $sdk:path) => {
        /// An SDK item as an `Item` borrowing from it.
        pub fn $item(map: &HashMap<String, $sdk>) -> Result<Item<'_>, String> {
            let mut item = Item::with_capacity(map.len());
            for (name, value) in map {
                item.push(Cow::Borrowed(name.as_str()), $attr(value)?);
            }
            Ok(item)
        }

        fn $attr(v: &$sdk) -> Result<Attr<'_>, String> {
            use $sdk as V;
            Ok(match v {
                V::S(s) => Attr::S(Cow::Borrowed(s)),
                V::N(n) => Attr::N(Cow::Borrowed(n)),
                V::B(b) => Attr::B(b.as_ref().to_vec()),
                V::Bool(b) => Attr::Bool(*b),
                V::Null(_) => Attr::Null,
                V::M(m) => Attr::M($item(m)?),
                V::L(l) => Attr::L(l.iter().map($attr).collect::<Result<_, _>>()?),
                V::Ss(v) => Attr::Ss(v.iter().map(|s| Cow::Borrowed(s.as_str())).collect()),
                V::Ns(v) => Attr::Ns(v.iter().map(|s| Cow::Borrowed(s.as_str())).collect()),
                V::Bs(v) => Attr::Bs(v.iter().map(|b| b.as_ref().to_vec()).collect()),
                _ => {
                    return Err("an attribute value has a type this SDK does not know".to_string());
                }
            })
        }
    };
}

sdk_items!(
    from_streams,
    streams_attr,
    aws_sdk_dynamodbstreams::types::AttributeValue
);
sdk_items!(
    from_dynamodb,
    dynamodb_attr,
    aws_sdk_dynamodb::types::AttributeValue
);

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::types::AttributeValue as V;

    #[test]
    fn every_type_is_read_and_text_borrows() {
        let m: HashMap<String, V> = [
            ("s".to_string(), V::S("x".into())),
            ("n".to_string(), V::N("1.5".into())),
            ("b".to_string(), V::B(vec![0u8, 1].into())),
            ("z".to_string(), V::Null(true)),
            (
                "m".to_string(),
                V::M([("k".to_string(), V::Bool(true))].into()),
            ),
            ("l".to_string(), V::L(vec![V::N("2".into())])),
        ]
        .into();
        let item = from_dynamodb(&m).unwrap();
        assert!(matches!(item.get("s"), Some(Attr::S(Cow::Borrowed("x")))));
        assert_eq!(item.get("n"), Some(&Attr::N("1.5".into())));
        assert_eq!(item.get("b"), Some(&Attr::B(vec![0, 1])));
        assert_eq!(item.get("z"), Some(&Attr::Null));
        match item.get("m") {
            Some(Attr::M(inner)) => assert_eq!(inner.get("k"), Some(&Attr::Bool(true))),
            other => panic!("{other:?}"),
        }
        assert_eq!(item.get("l"), Some(&Attr::L(vec![Attr::N("2".into())])));
    }
}
