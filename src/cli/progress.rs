//! The ingest progress bar (files, bytes, rate); hidden when stderr is not
//! a terminal.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use spectradb::ingest::IngestReport;
use spectradb::planner::calibrate::CalibrationProgress;
use spectradb::sql::display::human_bytes;
use spectradb::IngestProgress;

#[derive(Default)]
pub struct Bar {
    bar: Mutex<Option<ProgressBar>>,
    bytes: AtomicU64,
}

impl Bar {
    fn visible() -> bool {
        std::io::stderr().is_terminal()
    }

    /// stderr on a terminal, nowhere otherwise (pipes and tests stay clean).
    fn draw_target() -> ProgressDrawTarget {
        if Self::visible() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        }
    }
}

impl IngestProgress for Bar {
    fn start(&self, _table: &str, files: u64, _bytes: u64) {
        self.bytes.store(0, Ordering::Relaxed);
        let bar = ProgressBar::with_draw_target(Some(files), Self::draw_target());
        bar.set_style(
            ProgressStyle::with_template(
                "[{bar:30.cyan/blue}] {pos}/{len} images  {msg}  {elapsed_precise} ({per_sec})",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        *self.bar.lock().expect("bar lock") = Some(bar);
    }

    fn advance(&self, bytes: u64) {
        let total = self.bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if let Some(bar) = self.bar.lock().expect("bar lock").as_ref() {
            bar.set_message(human_bytes(total));
            bar.inc(1);
        }
    }

    fn finish(&self, report: &IngestReport) {
        if let Some(bar) = self.bar.lock().expect("bar lock").take() {
            bar.finish_and_clear();
        }
        if Self::visible() {
            let skipped = report.skipped.len();
            if skipped > 0 {
                eprintln!(
                    "ingested {} images, skipped {skipped} (see spectradb_ingest_errors)",
                    report.ingested
                );
            } else {
                eprintln!("ingested {} images", report.ingested);
            }
        }
    }

    fn abandon(&self) {
        if let Some(bar) = self.bar.lock().expect("bar lock").take() {
            bar.abandon();
        }
    }
}

/// The CALIBRATE progress bar: formats measured so far.
#[derive(Default)]
pub struct CalibrationBar {
    bar: Mutex<Option<ProgressBar>>,
}

impl CalibrationProgress for CalibrationBar {
    fn start(&self, formats: u64, images: u64) {
        let bar = ProgressBar::with_draw_target(Some(formats), Bar::draw_target());
        bar.set_style(
            ProgressStyle::with_template(&format!(
                "[{{bar:30.cyan/blue}}] {{pos}}/{{len}} formats x {images} images  {{msg}}  {{elapsed_precise}}"
            ))
            .expect("valid template")
            .progress_chars("=> "),
        );
        *self.bar.lock().expect("bar lock") = Some(bar);
    }

    fn format_done(&self, format: &str) {
        if let Some(bar) = self.bar.lock().expect("bar lock").as_ref() {
            bar.set_message(format.to_string());
            bar.inc(1);
        }
    }

    fn finish(&self) {
        if let Some(bar) = self.bar.lock().expect("bar lock").take() {
            bar.finish_and_clear();
        }
    }
}
