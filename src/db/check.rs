//! `CHECK TABLE t [, ...]`, `CHECK DATABASE` and `spectradb check <db>`:
//! read every file a catalog lists and report, per file, whether it is
//! what the catalog says, as SQLite's `PRAGMA integrity_check` does. What
//! an operator runs after a disk incident.
//!
//! Each file is checked for its size, its whole content (an image table's
//! file: footer, every column of every row, every image decoded; an
//! ordinary table's or view's: every row read) and its checksum (when the
//! catalog has one). Nothing is changed: a damaged file stays where it is
//! for the operator to restore.

use std::sync::Arc;

use arrow::array::{RecordBatch, StringArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::prelude::DataFrame;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::{off_worker, Database};
use crate::error::{Error, Result};
use crate::model::sha256_file;
use crate::storage::catalog::{Catalog, DataFile, DatabaseDir, ModelEntry};
use crate::storage::checksum::file_checksum;
use crate::storage::{remote, ImageFileReader};

/// Status of a file that is what the catalog says.
pub const CHECK_OK: &str = "ok";

/// What was found of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileCheck {
    /// The table, view or model the file belongs to.
    pub name: String,
    /// `image table`, `table`, `materialized view` or `model`.
    pub kind: &'static str,
    /// Relative to the database directory.
    pub file: String,
    /// Rows read (`None` for model files and files that could not be read).
    pub rows: Option<u64>,
    pub bytes: u64,
    /// [`CHECK_OK`], or what is wrong.
    pub status: String,
}

impl FileCheck {
    pub fn is_ok(&self) -> bool {
        self.status == CHECK_OK
    }
}

/// What `CHECK` covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckScope {
    /// Every table, view and model of the catalog.
    Database,
    /// These tables (image or ordinary) and materialized views.
    Tables(Vec<String>),
}

impl Database {
    /// Checks the files of `scope` (blocking reads, on the blocking pool).
    /// SHOW TABLES then marks the image tables found damaged, and no
    /// longer marks those found whole.
    pub async fn check(&self, scope: CheckScope) -> Result<Vec<FileCheck>> {
        let dir = self.dir.clone();
        // Reading the catalog is file I/O too: on the blocking pool.
        let checks = off_worker(move || check_files(&dir, &dir.read_catalog()?, &scope)).await?;
        for c in checks.iter().filter(|c| c.kind == "image table") {
            self.stats.clear_damage(&c.name);
        }
        for c in checks
            .iter()
            .filter(|c| c.kind == "image table" && !c.is_ok())
        {
            let why = c.status.strip_prefix("damaged: ").unwrap_or(&c.status);
            self.stats.record_damage(&c.name, why.to_string());
        }
        Ok(checks)
    }

    /// `CHECK TABLE` / `CHECK DATABASE` as a result: one row per file.
    pub(super) async fn check_result(&self, scope: CheckScope) -> Result<DataFrame> {
        let checks = self.check(scope).await?;
        Ok(self.results.read_batch(check_report(&checks)?)?)
    }
}

/// The rows `CHECK` returns: name, kind, file, rows, bytes, status.
pub fn check_report(checks: &[FileCheck]) -> Result<RecordBatch> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("name", DataType::Utf8, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("file", DataType::Utf8, false),
        Field::new("rows", DataType::UInt64, true),
        Field::new("bytes", DataType::UInt64, false),
        Field::new("status", DataType::Utf8, false),
    ]));
    Ok(RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from_iter_values(
                checks.iter().map(|c| &c.name),
            )),
            Arc::new(StringArray::from_iter_values(checks.iter().map(|c| c.kind))),
            Arc::new(StringArray::from_iter_values(
                checks.iter().map(|c| &c.file),
            )),
            Arc::new(UInt64Array::from_iter(checks.iter().map(|c| c.rows))),
            Arc::new(UInt64Array::from_iter_values(
                checks.iter().map(|c| c.bytes),
            )),
            Arc::new(StringArray::from_iter_values(
                checks.iter().map(|c| &c.status),
            )),
        ],
    )?)
}

/// Checks every file `scope` names in `catalog`, in catalog order.
fn check_files(dir: &DatabaseDir, catalog: &Catalog, scope: &CheckScope) -> Result<Vec<FileCheck>> {
    let wanted = |name: &str| match scope {
        CheckScope::Database => true,
        CheckScope::Tables(names) => names.iter().any(|n| n == name),
    };
    if let CheckScope::Tables(names) = scope {
        for n in names {
            let known = catalog.tables.contains_key(n)
                || catalog.plain_tables.contains_key(n)
                || catalog.materialized_views.contains_key(n);
            if !known {
                return Err(Error::InvalidArgument(format!(
                    "CHECK TABLE: no table named '{n}' is kept in this database (SHOW TABLES lists them)"
                )));
            }
        }
    }
    let mut out = Vec::new();
    for (name, entry) in catalog.tables.iter().filter(|(n, _)| wanted(n)) {
        for file in &entry.files {
            out.push(check_file(dir, name, "image table", file, read_image_file));
        }
    }
    for (name, file) in catalog.plain_tables.iter().filter(|(n, _)| wanted(n)) {
        out.push(check_file(dir, name, "table", file, read_plain_file));
    }
    for (name, view) in catalog.materialized_views.iter().filter(|(n, _)| wanted(n)) {
        for file in &view.files {
            out.push(check_file(
                dir,
                name,
                "materialized view",
                file,
                read_plain_file,
            ));
        }
    }
    if *scope == CheckScope::Database {
        // A family's own checksum covers its members: each member's file
        // is checked against its own.
        let models = catalog.models.iter().flat_map(|(name, model)| {
            let members: Vec<&ModelEntry> = model.members.iter().map(|m| &m.model).collect();
            if members.is_empty() {
                vec![(name, model)]
            } else {
                members.into_iter().map(|m| (name, m)).collect()
            }
        });
        for (name, model) in models {
            let path = dir.root().join(&model.file);
            let status = match sha256_file(&path) {
                Ok((sum, _)) if sum == model.checksum => CHECK_OK.to_string(),
                Ok((sum, _)) => format!(
                    "damaged: SHA-256 {sum}, the catalog says {}",
                    model.checksum
                ),
                Err(e) => format!("damaged: {e}"),
            };
            out.push(FileCheck {
                name: name.clone(),
                kind: "model",
                file: model.file.clone(),
                rows: None,
                bytes: model.bytes,
                status,
            });
        }
    }
    Ok(out)
}

/// Size, content (`read` returns the rows it read), then checksum.
fn check_file(
    dir: &DatabaseDir,
    name: &str,
    kind: &'static str,
    file: &DataFile,
    read: fn(&std::path::Path) -> Result<u64>,
) -> FileCheck {
    let path = remote::locate(dir.root(), &file.path);
    let mut rows = None;
    let problem = (|| -> Result<Option<String>> {
        let len = remote::file_size(&path)?;
        if len != file.bytes {
            return Ok(Some(format!(
                "{len} bytes stored, the catalog says {}",
                file.bytes
            )));
        }
        let n = read(&path)?;
        rows = Some(n);
        if n != file.rows {
            return Ok(Some(format!("{n} rows, the catalog says {}", file.rows)));
        }
        if let Some(expected) = &file.checksum {
            let sum = file_checksum(&path)?;
            if &sum != expected {
                return Ok(Some(format!("checksum {sum}, the catalog says {expected}")));
            }
        }
        Ok(None)
    })();
    let status = match problem {
        Ok(None) => CHECK_OK.to_string(),
        Ok(Some(what)) => format!("damaged: {}: {what}", path.display()),
        Err(e) => format!("damaged: {e}"),
    };
    FileCheck {
        name: name.to_string(),
        kind,
        file: file.path.clone(),
        rows,
        bytes: file.bytes,
        status,
    }
}

fn read_image_file(path: &std::path::Path) -> Result<u64> {
    Ok(ImageFileReader::open(path)?.verify()? as u64)
}

fn read_plain_file(path: &std::path::Path) -> Result<u64> {
    let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(f)
        .map_err(|e| Error::parquet(path, e))?
        .build()
        .map_err(|e| Error::parquet(path, e))?;
    let mut rows = 0;
    for batch in reader {
        rows += batch
            .map_err(|e| Error::corrupt(path, e.to_string()))?
            .num_rows() as u64;
    }
    Ok(rows)
}
