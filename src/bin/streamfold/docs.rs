//! `streamfold completions` and `streamfold man`: shell completion scripts
//! (`clap_complete`) and man pages (`clap_mangen`), both generated from the
//! clap schema in `cli`, so they never disagree with `--help`.

use crate::cli::{Cli, CompletionsArgs, ManArgs};
use anyhow::{Context, Result};
use clap::CommandFactory;

/// `streamfold completions SHELL`: the script on stdout.
pub fn completions(args: CompletionsArgs) -> Result<()> {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "streamfold", &mut out);
    out!("{}", String::from_utf8_lossy(&out));
    Ok(())
}

/// `streamfold man [--out DIR]`: streamfold.1 and one page per subcommand
/// (streamfold-replay.1, streamfold-rejects-list.1, …) into DIR, or
/// streamfold.1 alone on stdout.
pub fn man(args: ManArgs) -> Result<()> {
    let cmd = Cli::command();
    match args.out {
        Some(dir) => {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(cmd, &dir)
                .with_context(|| format!("cannot write man pages into {}", dir.display()))?;
            let mut pages: Vec<String> = std::fs::read_dir(&dir)?
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("streamfold") && n.ends_with(".1"))
                .collect();
            pages.sort();
            eprintln!(
                "wrote {} man page(s) into {}: {}",
                pages.len(),
                dir.display(),
                pages.join(", ")
            );
        }
        None => {
            let mut out = Vec::new();
            clap_mangen::Man::new(cmd.disable_help_subcommand(true)).render(&mut out)?;
            out!("{}", String::from_utf8_lossy(&out));
        }
    }
    Ok(())
}
