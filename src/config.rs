//! Configuration, parsed once at start-up into plain structs and passed
//! explicitly to whatever needs it.

use crate::store::StoreOptions;
use chrono_tz::Tz;
use std::path::PathBuf;

/// Default embedded database.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://streamfold.db";
/// Default local directory of identity items.
pub const DEFAULT_DIRECTORY: &str = "fixtures/directory";

/// What every local command needs.
#[derive(Clone, Debug)]
pub struct Config {
    pub database_url: String,
    pub directory: PathBuf,
    pub default_tz: Tz,
    pub store: StoreOptions,
}

/// Parse an IANA time zone name given by an operator (strict: an invalid
/// configured default is an error, unlike a user's invalid `tz`).
pub fn parse_default_tz(name: &str) -> Result<Tz, String> {
    name.parse::<Tz>().map_err(|_| {
        format!("unknown time zone {name:?} (expected an IANA name such as Europe/Madrid)")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_tz() {
        assert_eq!(parse_default_tz("UTC"), Ok(Tz::UTC));
        assert!(
            parse_default_tz("Nowhere/Land")
                .unwrap_err()
                .contains("Nowhere/Land")
        );
    }
}
