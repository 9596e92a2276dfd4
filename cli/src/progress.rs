//! The progress bar shared by `export`, `import`, `verify-export` and `verify`.

use std::io::{self, IsTerminal};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Work that ends sooner than this never shows a bar, so short commands print nothing.
const SHOW_AFTER: Duration = Duration::from_secs(1);

/// A progress bar on stderr, created only on the first update after `SHOW_AFTER`, and
/// only when stderr is a terminal and the output is not JSON (a bar would corrupt logs
/// and pipes). Cleared when dropped, so an error message never lands after a half bar.
pub struct Progress {
    enabled: bool,
    start: Instant,
    /// Records expected in all; a spinner with a count when unknown.
    total: Option<u64>,
    what: &'static str,
    bar: Option<ProgressBar>,
}

impl Progress {
    /// `what` names the records counted ("exported", "checked", ...).
    pub fn new(json: bool, what: &'static str) -> Progress {
        Progress {
            enabled: !json && io::stderr().is_terminal(),
            start: Instant::now(),
            total: None,
            what,
            bar: None,
        }
    }

    /// Whether a bar may ever be shown: lets callers skip work (such as reading a
    /// header) that only a bar needs.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    pub fn set_total(&mut self, total: u64) {
        self.total = Some(total);
    }

    /// Records `done` so far.
    pub fn update(&mut self, done: u64) {
        if !self.enabled {
            return;
        }
        let bar = match &self.bar {
            Some(b) => b,
            None => {
                if self.start.elapsed() < SHOW_AFTER {
                    return;
                }
                self.bar.insert(self.make_bar())
            }
        };
        bar.set_position(done);
    }

    fn make_bar(&self) -> ProgressBar {
        let (len, template) = match self.total {
            Some(n) => (
                Some(n),
                "{elapsed_precise} [{wide_bar}] {human_pos}/{human_len} {msg} ({eta} left)",
            ),
            None => (None, "{spinner} {elapsed_precise} {human_pos} {msg}"),
        };
        let bar = ProgressBar::with_draw_target(len, ProgressDrawTarget::stderr())
            .with_elapsed(self.start.elapsed())
            .with_message(format!("records {}", self.what));
        // The templates are fixed, so this never fails; the default style is a safe fallback.
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style);
        }
        if len.is_none() {
            // A spinner moves between the library's (sparse) callbacks too.
            bar.enable_steady_tick(Duration::from_millis(200));
        }
        bar
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
