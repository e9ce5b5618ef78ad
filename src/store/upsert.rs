//! One-row upserts written once for every dialect: the statements that
//! add to (or set) the compaction bases and repair aggregates
//! (`store::compaction`, `store::audit`). Exact decimals are bound as text
//! and cast where the engine needs it; SQLite, which has no exact decimal
//! type, is given sums computed in Rust and sets them.

use super::dialect::Flavor;

/// What a bound column holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Int,
    Text,
    /// An exact decimal, bound as its text.
    Decimal,
}

/// What a conflicting row's column becomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Update {
    /// Its value plus the bound one.
    Add,
    /// The bound value.
    Set,
    /// Its value plus one (a revision), whatever was bound.
    Bump,
    /// One (a flag), whatever was bound.
    One,
}

/// The one-row upsert of `table`: `keys` (text or integer, bound first, in
/// order), then `columns` with what a conflict does to each.
pub fn upsert_sql(
    f: Flavor,
    table: &str,
    keys: &[(&str, Kind)],
    columns: &[(&str, Kind, Update)],
) -> String {
    let names: Vec<&str> = keys
        .iter()
        .map(|k| k.0)
        .chain(columns.iter().map(|c| c.0))
        .collect();
    let kinds = keys.iter().map(|k| k.1).chain(columns.iter().map(|c| c.1));
    let params: Vec<String> = kinds
        .enumerate()
        .map(|(i, kind)| param(f, i + 1, kind))
        .collect();
    let head = format!(
        "INSERT INTO {table} ({}) VALUES ({})",
        names.join(", "),
        params.join(", ")
    );
    let set: Vec<String> = columns
        .iter()
        .map(|(c, _, u)| {
            let (old, new) = match f {
                Flavor::MySql => (c.to_string(), format!("VALUES({c})")),
                _ => (format!("{table}.{c}"), format!("excluded.{c}")),
            };
            match u {
                Update::Add => format!("{c} = {old} + {new}"),
                Update::Set => format!("{c} = {new}"),
                Update::Bump => format!("{c} = {old} + 1"),
                Update::One => format!("{c} = 1"),
            }
        })
        .collect();
    match f {
        Flavor::MySql => format!("{head} ON DUPLICATE KEY UPDATE {}", set.join(", ")),
        _ => {
            let key_list: Vec<&str> = keys.iter().map(|k| k.0).collect();
            format!(
                "{head} ON CONFLICT ({}) DO UPDATE SET {}",
                key_list.join(", "),
                set.join(", ")
            )
        }
    }
}

/// The `n`th parameter as a value of `kind`.
fn param(f: Flavor, n: usize, kind: Kind) -> String {
    match (f, kind) {
        (Flavor::Postgres, Kind::Decimal) => format!("CAST(${n} AS NUMERIC)"),
        (Flavor::MySql, Kind::Decimal) => "CAST(? AS DECIMAL(38,18))".to_string(),
        _ => f.p(n),
    }
}

/// Whether the dialect adds decimal sums in SQL (else they are computed in
/// Rust under SQLite's single write lock and set).
pub fn adds_decimals_in_sql(f: Flavor) -> bool {
    f != Flavor::Sqlite
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upserts_per_dialect() {
        let keys = [("k", Kind::Text)];
        let cols = [
            ("n", Kind::Int, Update::Add),
            ("d", Kind::Decimal, Update::Set),
            ("r", Kind::Int, Update::Bump),
        ];
        assert_eq!(
            upsert_sql(Flavor::Postgres, "t", &keys, &cols),
            "INSERT INTO t (k, n, d, r) VALUES ($1, $2, CAST($3 AS NUMERIC), $4) \
             ON CONFLICT (k) DO UPDATE SET n = t.n + excluded.n, d = excluded.d, r = t.r + 1"
        );
        assert_eq!(
            upsert_sql(Flavor::MySql, "t", &keys, &cols),
            "INSERT INTO t (k, n, d, r) VALUES (?, ?, CAST(? AS DECIMAL(38,18)), ?) \
             ON DUPLICATE KEY UPDATE n = n + VALUES(n), d = VALUES(d), r = r + 1"
        );
        assert!(upsert_sql(Flavor::Sqlite, "t", &keys, &cols).contains("VALUES (?, ?, ?, ?)"));
    }
}
