//! What a run is doing, on stderr: a progress bar for the current phase when stderr is a
//! terminal (and not with `--json`), and one line per phase otherwise.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

/// How often the bar reads its count.
const TICK: Duration = Duration::from_millis(100);

/// The progress display; one phase at a time.
#[derive(Debug)]
pub struct Progress {
    bar: ProgressBar,
    ticker: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    /// A bar drawn to stderr if `visible` and stderr is a terminal.
    pub fn new(visible: bool) -> Self {
        let target = if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(None, target);
        let style = ProgressStyle::with_template(
            "{msg:<36} [{bar:30}] {human_pos}/{human_len} {rate:>9} {elapsed:>4}",
        )
        .map(|style| {
            style.progress_chars("=> ").with_key(
                "rate",
                |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = write!(w, "{:.0}/s", state.per_sec());
                },
            )
        });
        if let Ok(style) = style {
            bar.set_style(style);
        }
        Self { bar, ticker: None }
    }

    /// Prints a line about the run (above the bar when there is one).
    pub fn note(&self, line: &str) {
        if self.bar.is_hidden() {
            eprintln!("fullup bench: {line}");
        } else {
            self.bar.println(format!("fullup bench: {line}"));
        }
    }

    /// Starts a phase: notes it, then shows `count()` out of `total` until the next one.
    pub fn phase(
        &mut self,
        label: &str,
        total: usize,
        count: impl Fn() -> usize + Send + Sync + 'static,
    ) {
        self.stop_ticker();
        self.bar.reset();
        self.bar.set_length(total as u64);
        self.bar.set_message(label.to_owned());
        self.note(label);
        let bar = self.bar.clone();
        self.ticker = Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(TICK);
            loop {
                tick.tick().await;
                bar.set_position(count() as u64);
            }
        }));
    }

    fn stop_ticker(&mut self) {
        if let Some(ticker) = self.ticker.take() {
            ticker.abort();
        }
    }

    /// Removes the bar, before the report is printed.
    pub fn finish(&mut self) {
        self.stop_ticker();
        self.bar.finish_and_clear();
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}
