//! Printing result batches as a table, CSV, JSON or NDJSON.

use std::io::Write;
use std::str::FromStr;

use anyhow::{bail, Result};
use arrow::array::RecordBatch;
use spectradb::sql::display::summarize_binary_columns;

/// How results are printed (`--format`, `.format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
    Ndjson,
}

impl FromStr for Format {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "table" => Format::Table,
            "csv" => Format::Csv,
            "json" => Format::Json,
            "ndjson" => Format::Ndjson,
            other => bail!("unknown format '{other}': expected table, csv, json or ndjson"),
        })
    }
}

/// Writes `batches` to `out`. Statements without result columns print nothing.
pub fn print_batches(out: &mut dyn Write, batches: &[RecordBatch], format: Format) -> Result<()> {
    let Some(first) = batches.first() else {
        return Ok(());
    };
    if first.num_columns() == 0 {
        return Ok(());
    }
    let batches: Vec<RecordBatch> = batches
        .iter()
        .map(summarize_binary_columns)
        .collect::<spectradb::Result<_>>()?;
    match format {
        Format::Table => {
            writeln!(
                out,
                "{}",
                arrow::util::pretty::pretty_format_batches(&batches)?
            )?;
        }
        Format::Csv => {
            let mut w = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut *out);
            for b in &batches {
                w.write(b)?;
            }
        }
        Format::Json => {
            let mut w = arrow::json::ArrayWriter::new(&mut *out);
            for b in &batches {
                w.write(b)?;
            }
            w.finish()?;
            writeln!(out)?;
        }
        Format::Ndjson => {
            let mut w = arrow::json::LineDelimitedWriter::new(&mut *out);
            for b in &batches {
                w.write(b)?;
            }
            w.finish()?;
        }
    }
    Ok(())
}

/// An error and its causes on one line, as `{:#}` prints them, leaving out
/// a cause whose text is already in the line: DataFusion's wrappers
/// (`External error: ...`) repeat their source in their own message.
pub fn error_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if text.contains(&s) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&s);
    }
    text
}

#[cfg(test)]
mod error_text_tests {
    use super::error_text;
    use anyhow::Context;

    #[test]
    fn a_wrapped_cause_is_printed_once() {
        let inner = std::io::Error::other("part-1.parquet: filter id / 0: divide by zero");
        let df = datafusion::error::DataFusionError::External(Box::new(inner));
        let e = Err::<(), _>(df)
            .context("statement `SELECT 1`")
            .unwrap_err();
        assert_eq!(
            error_text(&e),
            "statement `SELECT 1`: External error: part-1.parquet: filter id / 0: divide by zero"
        );
        // Causes that add something are all kept.
        let e = Err::<(), _>(std::io::Error::other("no such file"))
            .context("reading photos/a.jpg")
            .unwrap_err();
        assert_eq!(error_text(&e), "reading photos/a.jpg: no such file");
    }
}
