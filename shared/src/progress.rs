//! Progress of long work on stderr: an indicatif bar (bytes, rows, rate, ETA) on a
//! terminal, otherwise a log line every 10 seconds, so cron logs show a backup is alive.
//! Nothing at all under `--quiet`.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often a progress line is logged when stderr is not a terminal (docs/contract.md §1).
const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Counters of one long task, shown as it runs.
pub struct Progress {
    bytes: Arc<AtomicU64>,
    rows: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    bar: Option<ProgressBar>,
    ticker: Option<JoinHandle<()>>,
}

impl Progress {
    /// Starts showing `label` with `total_bytes` expected (an estimate is fine).
    pub fn start(label: &str, total_bytes: u64) -> Progress {
        let bytes = Arc::new(AtomicU64::new(0));
        let rows = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        if crate::log::is_quiet() {
            return Progress {
                bytes,
                rows,
                stop,
                bar: None,
                ticker: None,
            };
        }
        if std::io::stderr().is_terminal() {
            let bar =
                ProgressBar::with_draw_target(Some(total_bytes), ProgressDrawTarget::stderr());
            let template = if crate::log::colour() {
                "{prefix} [{bar:30.cyan/blue}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} {msg}"
            } else {
                "{prefix} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} {msg}"
            };
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_prefix(label.to_string());
            bar.enable_steady_tick(Duration::from_millis(200));
            let (b, r, s, handle) = (bytes.clone(), rows.clone(), stop.clone(), bar.clone());
            let ticker = std::thread::spawn(move || {
                while !s.load(Ordering::Relaxed) {
                    handle.set_position(b.load(Ordering::Relaxed));
                    handle.set_message(format!("{} rows", r.load(Ordering::Relaxed)));
                    std::thread::sleep(Duration::from_millis(200));
                }
            });
            return Progress {
                bytes,
                rows,
                stop,
                bar: Some(bar),
                ticker: Some(ticker),
            };
        }
        Progress::logging(label, total_bytes, LOG_INTERVAL, |line| {
            crate::log::info(&line)
        })
    }

    /// Progress as a line handed to `log` every `interval`, for stderr that is no
    /// terminal (cron logs, CI): done and expected bytes, rows, and the average rate.
    fn logging(
        label: &str,
        total_bytes: u64,
        interval: Duration,
        log: impl Fn(String) + Send + 'static,
    ) -> Progress {
        let bytes = Arc::new(AtomicU64::new(0));
        let rows = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (b, r, s, label) = (bytes.clone(), rows.clone(), stop.clone(), label.to_string());
        let ticker = std::thread::spawn(move || {
            let started = Instant::now();
            let mut next = interval;
            while !s.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100).min(interval));
                if started.elapsed() >= next {
                    next += interval;
                    let done = b.load(Ordering::Relaxed);
                    let rate = done as f64 / started.elapsed().as_secs_f64().max(0.001);
                    log(format!(
                        "{label}: {} of ~{}, {} rows, {}/s",
                        HumanBytes(done),
                        HumanBytes(total_bytes),
                        r.load(Ordering::Relaxed),
                        HumanBytes(rate as u64)
                    ));
                }
            }
        });
        Progress {
            bytes,
            rows,
            stop,
            bar: None,
            ticker: Some(ticker),
        }
    }

    /// Counts `bytes` more bytes.
    pub fn add_bytes(&self, bytes: u64) {
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Counts `rows` more rows.
    pub fn add_rows(&self, rows: u64) {
        self.rows.fetch_add(rows, Ordering::Relaxed);
    }

    /// Stops showing progress.
    pub fn finish(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop_now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn without_a_terminal_a_line_is_logged_every_interval_until_finish() {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let progress = Progress::logging("backup", 4 << 20, Duration::from_millis(40), move |l| {
            sink.lock().expect("lines").push(l)
        });
        progress.add_bytes(2 << 20);
        progress.add_rows(1234);
        let deadline = Instant::now() + Duration::from_secs(10);
        while lines.lock().expect("lines").len() < 2 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        progress.finish();
        let logged = lines.lock().expect("lines").clone();
        assert!(logged.len() >= 2, "a line per interval: {logged:?}");
        assert!(
            logged[0].starts_with("backup: 2.00 MiB of ~4.00 MiB, 1234 rows, "),
            "{logged:?}"
        );
        assert!(logged[0].ends_with("/s"), "{logged:?}");
        let after = logged.len();
        std::thread::sleep(Duration::from_millis(120));
        assert_eq!(
            lines.lock().expect("lines").len(),
            after,
            "nothing is logged once finished"
        );
    }
}
