//! What the long commands (`replay`, `backfill`, `tail`, `compact`) share
//! while they run: Ctrl-C that stops after the current batch, progress as
//! a bar on a terminal or as plain lines when stderr is piped, and rates
//! and waits formatted for people (`5,133/s`, not `5132.797592593932/s`).

use indicatif::{ProgressState, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Set by the first Ctrl-C: finish the current batch, then stop.
pub static STOP: AtomicBool = AtomicBool::new(false);

/// A run stopped by Ctrl-C after printing what it did: `main` exits 130.
#[derive(Debug)]
pub struct Interrupted(pub String);

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Interrupted {}

/// Stop after the current batch on the first Ctrl-C, abort on the second.
pub fn on_ctrl_c() {
    tokio::spawn(async {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("stopping after the current batch (Ctrl-C again to abort)…");
            STOP.store(true, Ordering::Relaxed);
            let _ = tokio::signal::ctrl_c().await;
            std::process::exit(130);
        }
    });
}

/// Whether a bar can be drawn: stderr is a terminal.
pub fn on_terminal() -> bool {
    std::io::stderr().is_terminal()
}

/// A whole number with thousands separators: `12,345`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A rate per second as people read it: whole above 10 (`5,133/s`), one
/// decimal below (`2.5/s`).
pub fn rate(per_sec: f64) -> String {
    if !per_sec.is_finite() || per_sec <= 0.0 {
        "0/s".to_string()
    } else if per_sec < 10.0 {
        format!("{per_sec:.1}/s")
    } else {
        format!("{}/s", thousands(per_sec.round() as u64))
    }
}

/// The style of a progress bar of `items`: position, length, a formatted
/// rate (`{rate}`) and the ETA.
pub fn bar_style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .with_key(
            "rate",
            |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{}", rate(state.per_sec()));
            },
        )
        .progress_chars("=> ")
}

/// A line every `every` at most, for progress on a pipe.
pub struct Every {
    last: Instant,
    every: Duration,
}

impl Every {
    pub fn new(every: Duration) -> Every {
        Every {
            last: Instant::now(),
            every,
        }
    }

    /// Whether it is time for the next line.
    pub fn due(&mut self) -> bool {
        if self.last.elapsed() >= self.every {
            self.last = Instant::now();
            true
        } else {
            false
        }
    }
}

/// Count down each wait announced on `waits` on stderr: one line
/// rewritten every second on a terminal, a line every 5 s on a pipe. Ends
/// when the sender is dropped (or the task is aborted).
pub async fn count_down(
    mut waits: tokio::sync::mpsc::UnboundedReceiver<Duration>,
    announce: Duration,
) {
    let terminal = on_terminal();
    while let Some(wait) = waits.recv().await {
        let end = tokio::time::Instant::now() + wait;
        let step = if terminal {
            Duration::from_secs(1)
        } else {
            Duration::from_secs(5)
        };
        loop {
            let left = end.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                break;
            }
            let left_text = humantime::format_duration(Duration::from_secs(left.as_secs().max(1)));
            let line = format!(
                "waiting for running consumers to see the horizon: {left_text} left (of {})",
                humantime::format_duration(announce)
            );
            if terminal {
                eprint!("\r\x1b[2K{line}");
            } else {
                eprintln!("{line}");
            }
            tokio::time::sleep(step.min(left)).await;
        }
        if terminal {
            eprintln!("\r\x1b[2Kwaited for running consumers; deleting…");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_formatted() {
        assert_eq!(rate(5_132.797592593932), "5,133/s");
        assert_eq!(rate(1_234_567.4), "1,234,567/s");
        assert_eq!(rate(2.54), "2.5/s");
        assert_eq!(rate(f64::NAN), "0/s");
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
    }
}
