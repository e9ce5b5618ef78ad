//! `streamfold` command line: a thin layer over the library, like
//! ripgrep's. `cli` is the argument schema, `commands` runs each
//! subcommand, `setup` assembles the configuration and pipeline once,
//! `print` formats summaries (text, and `--json` through `print::json`),
//! `progress` holds Ctrl-C, progress bars and rates, `rejects`, `stats` and
//! `bench` are the larger subcommands, `backfill` the backfill and tail
//! front ends, `docs` the completions and man pages. `main` only installs
//! logging and dispatches. Record-derived text reaches the
//! terminal only through `streamfold::printable` (summaries, listings,
//! error messages, and the text log's field formatter).

use clap::Parser;
use cli::{Cli, Command};
use streamfold::printable::printable;

/// Print to stdout; a closed pipe (`streamfold … | head`) ends the program
/// quietly instead of panicking.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout(), $($arg)*) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
        }
    }};
}

macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = write!(std::io::stdout(), $($arg)*) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
        }
    }};
}

mod audit;
mod backfill;
mod bench;
mod cli;
mod commands;
mod docs;
mod print;
mod progress;
mod rejects;
mod setup;
mod stats;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    streamfold::store::connect::install_crypto_provider();
    tracing_subscriber::fmt()
        .with_env_filter(streamfold::logging::filter("error"))
        .fmt_fields(streamfold::logging::escaped_fields())
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    let result = dispatch(Cli::parse()).await;
    setup::close_all().await;
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<audit::Differs>().is_some() => {
            eprintln!("streamfold: {e}");
            std::process::ExitCode::from(audit::DIFFERS)
        }
        Err(e) => {
            eprintln!("streamfold: error: {}", printable(&error_chain(&e)));
            if e.downcast_ref::<progress::Interrupted>().is_some() {
                // As a shell reports a command ended by SIGINT.
                std::process::ExitCode::from(130)
            } else {
                std::process::ExitCode::FAILURE
            }
        }
    }
}

/// An error and its causes, each said once: a library error that already
/// prints its source (`…: {0}`) is not followed by that source again.
fn error_chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.ends_with(&text) || out.contains(&format!("{text}: ")) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// Run the subcommand.
async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Replay(a) => commands::replay(a).await,
        Command::Stats(a) => stats::run(a).await,
        Command::Reattribute(a) => commands::reattribute(a).await,
        Command::Rejects(a) => commands::rejects(a).await,
        Command::Bench(a) => commands::bench(a).await,
        Command::LlmReport(a) => commands::llm_report(a).await,
        Command::Backfill(a) => commands::backfill(a).await,
        Command::Tail(a) => commands::tail(a).await,
        Command::Migrate(a) => commands::migrate(a).await,
        Command::Compact(a) => commands::compact(a).await,
        Command::Completions(a) => docs::completions(a),
        Command::Man(a) => docs::man(a),
        Command::Audit(a) => audit::run(a).await,
    }
}
