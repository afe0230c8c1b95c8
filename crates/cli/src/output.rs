//! How commands print: aligned tables for people, JSON for scripts (`--json`), times and ages in
//! one format, and progress for long operations — a bar on a terminal, plain lines otherwise.

use std::io::{IsTerminal as _, Write};

use chrono::{DateTime, TimeDelta, Utc};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

/// Writes `value` as pretty JSON and a newline.
pub fn json(out: &mut dyn Write, value: &impl Serialize) -> anyhow::Result<()> {
    serde_json::to_writer_pretty(&mut *out, value)?;
    writeln!(out)?;
    Ok(())
}

/// A table: a header row and rows of cells, printed with every column padded to its widest cell.
#[derive(Debug)]
pub struct Table {
    header: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column titles.
    pub fn new(header: &[&'static str]) -> Self {
        Self {
            header: header.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Adds a row (as many cells as columns).
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Prints it; the last column is not padded.
    pub fn print(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let header: Vec<String> = self.header.iter().map(|h| (*h).to_owned()).collect();
        for row in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i + 1 == row.len() {
                    line.push_str(cell);
                } else {
                    let pad = widths[i].saturating_sub(cell.chars().count());
                    line.push_str(cell);
                    line.push_str(&" ".repeat(pad + 2));
                }
            }
            writeln!(out, "{}", line.trim_end())?;
        }
        Ok(())
    }
}

/// `2026-11-25 12:21:15 UTC`.
pub fn time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// [`time`] or `-`.
pub fn time_or_dash(at: Option<DateTime<Utc>>) -> String {
    at.map_or_else(|| "-".to_owned(), time)
}

/// A duration as `3d 4h`, `4h 5m`, `5m 6s` or `6s` (negative: `in …`).
pub fn age(delta: TimeDelta) -> String {
    if delta < TimeDelta::zero() {
        return format!("in {}", age(-delta));
    }
    let secs = delta.num_seconds();
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m {s}s")
    } else {
        format!("{s}s")
    }
}

/// Progress of a long operation: a bar on stderr when stderr is a terminal, otherwise one plain
/// line per step on `out` (logs and pipes keep a readable record).
#[derive(Debug)]
pub struct Progress {
    bar: Option<ProgressBar>,
    total: u64,
    done: u64,
}

impl Progress {
    /// Progress towards `total` steps.
    pub fn new(total: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total);
            if let Ok(style) =
                ProgressStyle::with_template("{bar:40} {pos}/{len} {wide_msg} [{elapsed}]")
            {
                bar.set_style(style);
            }
            bar
        });
        Self {
            bar,
            total,
            done: 0,
        }
    }

    /// `steps` more done; `what` says what (shown on the bar, or printed as a line).
    pub fn advance(&mut self, out: &mut dyn Write, steps: u64, what: &str) -> std::io::Result<()> {
        self.done += steps;
        match &self.bar {
            Some(bar) => {
                bar.set_message(what.to_owned());
                bar.inc(steps);
                Ok(())
            }
            None => writeln!(out, "[{}/{}] {what}", self.done, self.total),
        }
    }

    /// Removes the bar (the final report follows as plain lines).
    pub fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_naturally() {
        assert_eq!(age(TimeDelta::seconds(5)), "5s");
        assert_eq!(age(TimeDelta::seconds(1261)), "21m 1s");
        assert_eq!(age(TimeDelta::seconds(3 * 86_400 + 7200)), "3d 2h");
        assert_eq!(age(TimeDelta::seconds(-90)), "in 1m 30s");
    }

    #[test]
    fn tables_align_columns() {
        let mut table = Table::new(&["A", "LONGER", "LAST"]);
        table.row(vec!["wide cell".into(), "x".into(), "end".into()]);
        let mut out = Vec::new();
        table.print(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "A          LONGER  LAST\nwide cell  x       end\n"
        );
    }
}
