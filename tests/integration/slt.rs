//! Runs every `sql/*.slt` file with the sqllogictest crate, each against a
//! fresh in-memory database, from the repository root (so paths in the
//! files are relative to it).

use arrow::array::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use spectradb::sql::display::summarize_binary_columns;
use spectradb::Database;
use sqllogictest::{DBOutput, DefaultColumnType};

struct SltDb(Database);

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
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, Self::Error> {
        let df = self.0.sql(sql).await?;
        let schema = df.schema().as_arrow().clone();
        let batches = df.collect().await?;
        if schema.fields().is_empty() {
            return Ok(DBOutput::StatementComplete(0));
        }
        Ok(DBOutput::Rows {
            types: vec![DefaultColumnType::Any; schema.fields().len()],
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
        if let Err(e) = rt.block_on(runner.run_file_async(file)) {
            failures.push(format!("{}: {}", file.display(), e.display(false)));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
