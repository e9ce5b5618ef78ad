//! The log filter both binaries install: `STREAMFOLD_LOG` (or a default),
//! with the drivers' connection-option parsers silenced. Those log the
//! value of every query parameter they do not recognise (for example
//! `PASSWORD=…` in a PostgreSQL URL) at WARN, so no level an operator picks
//! may show them.

use tracing_subscriber::EnvFilter;

/// Targets that echo connection-URL values.
const SILENCED: [&str; 3] = [
    "sqlx_postgres::options=off",
    "sqlx_mysql::options=off",
    "sqlx_sqlite::options=off",
];

/// `STREAMFOLD_LOG` if set and valid, else `default`, plus the silenced
/// targets.
pub fn filter(default: &str) -> EnvFilter {
    let mut f = EnvFilter::try_from_env("STREAMFOLD_LOG").unwrap_or_else(|_| default.into());
    for directive in SILENCED {
        if let Ok(d) = directive.parse() {
            f = f.add_directive(d);
        }
    }
    f
}

#[cfg(test)]
mod tests {
    #[test]
    fn silenced_targets_parse() {
        for d in super::SILENCED {
            d.parse::<tracing_subscriber::filter::Directive>().unwrap();
        }
    }
}
