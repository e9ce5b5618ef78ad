//! Running the `streamfold` binary as a user does, from the repository's
//! root without `DATABASE_URL` or `DEFAULT_TIMEZONE` from the environment,
//! and reading its summary.

use std::process::{Command, Output};

/// `streamfold args…`, waited for.
pub fn streamfold(args: &[&str]) -> Output {
    command(args).output().unwrap()
}

/// `streamfold args…`, to be spawned or adjusted first.
pub fn command(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_streamfold"));
    cmd.args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("DATABASE_URL")
        .env_remove("DEFAULT_TIMEZONE");
    cmd
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The summary's `total` row: read, applied, unchanged, skipped, rejected, unattributed.
pub fn total_row(out: &str) -> Vec<u64> {
    out.lines()
        .find(|l| l.starts_with("total "))
        .unwrap_or_else(|| panic!("no total row in {out}"))
        .split_whitespace()
        .skip(1)
        .map(|n| n.parse().unwrap())
        .collect()
}

/// The summary's `database now holds …` line.
pub fn database_line(out: &str) -> String {
    out.lines()
        .find(|l| l.starts_with("database now holds"))
        .unwrap_or_else(|| panic!("no database line in {out}"))
        .to_string()
}
