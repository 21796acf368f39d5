//! Runs every `sql/*.slt` file with the sqllogictest crate, each against a
//! fresh in-memory database, from the repository root (so paths in the
//! files are relative to it). Column types in `query` headers are checked:
//! `T` text (image values print as text summaries), `I` integer, `R`
//! floating point or decimal, `B` boolean, `?` anything else. With
//! `SPECTRADB_SLT_COMPLETE=1` the files are rewritten with the actual types
//! and results instead (review the diff).

use arrow::array::RecordBatch;
use arrow::datatypes::DataType;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use spectradb::sql::display::summarize_binary_columns;
use spectradb::Database;
use sqllogictest::{ColumnType, DBOutput};

struct SltDb(Database);

/// A column type letter of a `query` header.
#[derive(Debug, Clone, PartialEq, Eq)]
enum SltType {
    Text,
    Integer,
    Float,
    Boolean,
    Other,
}

impl ColumnType for SltType {
    fn from_char(value: char) -> Option<Self> {
        Some(match value {
            'T' => SltType::Text,
            'I' => SltType::Integer,
            'R' => SltType::Float,
            'B' => SltType::Boolean,
            '?' => SltType::Other,
            _ => return None,
        })
    }

    fn to_char(&self) -> char {
        match self {
            SltType::Text => 'T',
            SltType::Integer => 'I',
            SltType::Float => 'R',
            SltType::Boolean => 'B',
            SltType::Other => '?',
        }
    }
}

/// The letter of a result column's type.
fn slt_type(t: &DataType) -> SltType {
    match t {
        DataType::Utf8
        | DataType::LargeUtf8
        | DataType::Utf8View
        | DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView => SltType::Text,
        DataType::Dictionary(_, v) => slt_type(v),
        t if t.is_integer() => SltType::Integer,
        t if t.is_floating()
            || matches!(t, DataType::Decimal128(..) | DataType::Decimal256(..)) =>
        {
            SltType::Float
        }
        DataType::Boolean => SltType::Boolean,
        _ => SltType::Other,
    }
}

fn rows(batches: &[RecordBatch]) -> spectradb::Result<Vec<Vec<String>>> {
    let opts = FormatOptions::default().with_null("NULL");
    let mut out = Vec::new();
    for b in batches {
        let b = summarize_binary_columns(b)?;
        let fmts: Vec<ArrayFormatter> = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts))
            .collect::<Result<_, _>>()?;
        for r in 0..b.num_rows() {
            out.push(
                fmts.iter()
                    .map(|f| {
                        let s = f.value(r).to_string();
                        if s.is_empty() {
                            "(empty)".to_string()
                        } else {
                            s
                        }
                    })
                    .collect(),
            );
        }
    }
    Ok(out)
}

#[async_trait::async_trait]
impl sqllogictest::AsyncDB for SltDb {
    type Error = spectradb::Error;
    type ColumnType = SltType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<SltType>, Self::Error> {
        let df = self.0.sql(sql).await?;
        let schema = df.schema().as_arrow().clone();
        let batches = df.collect().await?;
        if schema.fields().is_empty() {
            return Ok(DBOutput::StatementComplete(0));
        }
        Ok(DBOutput::Rows {
            types: schema
                .fields()
                .iter()
                .map(|f| slt_type(f.data_type()))
                .collect(),
            rows: rows(&batches)?,
        })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "spectradb"
    }
}

#[test]
fn sql_logic_tests() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<_> = std::fs::read_dir(root.join("sql"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no sql/*.slt files");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut failures = Vec::new();
    for file in &files {
        let mut runner = sqllogictest::Runner::new(|| async { Ok(SltDb(Database::in_memory()?)) });
        runner.with_column_validator(sqllogictest::strict_column_validator);
        if std::env::var_os("SPECTRADB_SLT_COMPLETE").is_some() {
            rt.block_on(runner.update_test_file(
                file,
                " ",
                sqllogictest::default_validator,
                sqllogictest::default_normalizer,
                sqllogictest::strict_column_validator,
            ))
            .unwrap();
            continue;
        }
        if let Err(e) = rt.block_on(runner.run_file_async(file)) {
            failures.push(format!("{}: {}", file.display(), e.display(false)));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
