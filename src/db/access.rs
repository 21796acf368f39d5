//! Where a connection's statements may read and write files.
//!
//! A server must not let a remote client read `/etc/passwd` through
//! `CREATE EXTERNAL TABLE` or overwrite files through `COPY`: a
//! [`DataRoot`] checks every path a statement names (image sources, label
//! files, model files, external table locations, `COPY` targets) before the
//! statement runs. Paths are resolved the way the statement will resolve
//! them (relative to the working directory, symlinks followed) and must
//! land under the root; glob sources are expanded and every file matched is
//! checked, so a symlinked folder inside the root cannot lead outside it.

use std::path::{Component, Path, PathBuf};

use datafusion::sql::parser::{DFParser, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::Statement;

use crate::error::{Error, Result};
use crate::ingest::expand_sources;
use crate::sql::statements::{parse_command, Command};
use crate::storage::remote;

/// The folder a connection's statements are confined to.
#[derive(Debug, Clone)]
pub struct DataRoot {
    /// Canonical (absolute, symlinks resolved).
    root: PathBuf,
}

impl DataRoot {
    /// Confines statements to `root`, which must be an existing folder.
    pub fn new(root: impl AsRef<Path>) -> Result<Self> {
        let root = root.as_ref();
        let canonical = root.canonicalize().map_err(|e| Error::io(root, e))?;
        if !canonical.is_dir() {
            return Err(Error::InvalidArgument(format!(
                "data root {} is not a folder",
                root.display()
            )));
        }
        Ok(DataRoot { root: canonical })
    }

    /// The canonical root folder.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Checks every file path `sql` names; `Ok` for statements that name none.
    pub fn check_statement(&self, sql: &str) -> Result<()> {
        if let Some(cmd) = parse_command(sql)? {
            return self.check_command(&cmd);
        }
        // Parse errors are DataFusion's to report when the statement runs.
        let Ok(statements) = DFParser::parse_sql(sql) else {
            return Ok(());
        };
        statements.iter().try_for_each(|s| self.check_df(s))
    }

    fn check_command(&self, cmd: &Command) -> Result<()> {
        match cmd {
            Command::CreateImageTable {
                source, options, ..
            }
            | Command::InsertFrom {
                source, options, ..
            } => {
                // Store options would configure a bucket for every client
                // of the process; the server's stores are its operator's.
                let remote_option = options
                    .iter()
                    .find(|(k, _)| k == "location" || remote::is_store_option(k));
                if remote::is_remote(Path::new(source)) || remote_option.is_some() {
                    let what = remote_option.map_or(source.as_str(), |(k, _)| k.as_str());
                    return Err(Error::PermissionDenied(format!(
                        "'{what}': the server ingests only local files under the data root (tables and sources on object storage are for the embedded API and the shell)"
                    )));
                }
                self.check_source(source)?;
                for (key, value) in options {
                    if key == "label" && value.to_ascii_lowercase().ends_with(".csv") {
                        self.check_path(Path::new(value), "label file")?;
                    }
                }
                Ok(())
            }
            Command::CreateModel {
                source, options, ..
            } => {
                self.check_path(Path::new(source), "model file")?;
                self.check_labels(options)
            }
            Command::CreateModelFamily {
                members, options, ..
            } => {
                for m in members {
                    self.check_path(Path::new(&m.source), "model file")?;
                    self.check_labels(&m.options)?;
                }
                self.check_labels(options)
            }
            Command::CreateMaterializedView { query, .. } => self.check_statement(query),
            _ => Ok(()),
        }
    }

    fn check_labels(&self, options: &[(String, String)]) -> Result<()> {
        options
            .iter()
            .filter(|(key, _)| key == "labels")
            .try_for_each(|(_, value)| self.check_path(Path::new(value), "labels file").map(|_| ()))
    }

    fn check_df(&self, statement: &DfStatement) -> Result<()> {
        match statement {
            DfStatement::CreateExternalTable(t) => {
                t.locations.iter().try_for_each(|l| self.check_location(l))
            }
            DfStatement::CopyTo(c) => self.check_location(&c.target),
            DfStatement::Explain(e) => self.check_df(&e.statement),
            DfStatement::Statement(s) => match s.as_ref() {
                Statement::Set(set) => {
                    // `datafusion.runtime.*` holds the memory limit and the
                    // spill folder: the server's to choose.
                    let text = set.to_string().to_ascii_lowercase();
                    if text.contains("datafusion.runtime.") {
                        return Err(Error::PermissionDenied(
                            "datafusion.runtime.* settings (memory limit, spill folder) are fixed by the server".into(),
                        ));
                    }
                    if text.contains("spectradb.cache_size") {
                        return Err(Error::PermissionDenied(
                            "spectradb.cache_size is the database's (shared by every client): it is fixed by the server".into(),
                        ));
                    }
                    Ok(())
                }
                _ => Ok(()),
            },
            _ => Ok(()),
        }
    }

    /// An external table location or COPY target: a local path (or
    /// `file://` URL), possibly a folder or a glob.
    fn check_location(&self, location: &str) -> Result<()> {
        let path = match location.split_once("://") {
            None => location,
            Some(("file", rest)) => rest,
            Some((scheme, _)) => {
                return Err(Error::PermissionDenied(format!(
                    "'{location}': only local files under the data root can be used ({scheme}:// is not allowed)"
                )))
            }
        };
        self.check_path(&literal_prefix(path), "location")
            .map(|_| ())
    }

    /// An ingest source: a folder, a file or a glob. Every file it matches
    /// must lie under the root once symlinks are resolved.
    fn check_source(&self, pattern: &str) -> Result<()> {
        self.check_path(&literal_prefix(pattern), "source")?;
        // A pattern that matches nothing is reported by the ingest itself.
        let Ok(files) = expand_sources(pattern) else {
            return Ok(());
        };
        for f in files {
            self.check_path(&f, "source file")?;
        }
        Ok(())
    }

    /// Resolves `path` as a statement would (relative to the working
    /// directory, symlinks followed; a path that does not exist yet through
    /// its nearest existing folder) and checks that it is under the root.
    pub fn check_path(&self, path: &Path, what: &str) -> Result<PathBuf> {
        let denied = || {
            Error::PermissionDenied(format!(
                "{what} '{}' is outside the data root {} (the server reads and writes files only under it)",
                path.display(),
                self.root.display()
            ))
        };
        let absolute = if path.is_absolute() {
            path.to_path_buf()
        } else {
            std::env::current_dir()
                .map_err(|e| Error::io(".", e))?
                .join(path)
        };
        // The nearest ancestor that exists, canonicalized; the rest appended.
        let mut existing = absolute.as_path();
        let mut rest = Vec::new();
        let base = loop {
            match existing.canonicalize() {
                Ok(c) => break c,
                Err(_) => match (existing.parent(), existing.file_name()) {
                    (Some(parent), Some(name)) => {
                        rest.push(name.to_owned());
                        existing = parent;
                    }
                    _ => return Err(denied()),
                },
            }
        };
        // `..` after the part that exists cannot be resolved: refuse it.
        if !rest.is_empty()
            && absolute
                .components()
                .any(|c| matches!(c, Component::ParentDir))
        {
            return Err(denied());
        }
        let resolved = rest.iter().rev().fold(base, |p, name| p.join(name));
        if resolved.starts_with(&self.root) {
            Ok(resolved)
        } else {
            Err(denied())
        }
    }
}

/// The part of a path before its first glob character, as a path.
fn literal_prefix(pattern: &str) -> PathBuf {
    let mut prefix = PathBuf::new();
    for component in Path::new(pattern).components() {
        let text = component.as_os_str().to_string_lossy();
        if text.contains(['*', '?', '[', '{']) {
            break;
        }
        prefix.push(component);
    }
    if prefix.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        prefix
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, DataRoot) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("root/photos")).unwrap();
        std::fs::write(dir.path().join("root/photos/a.jpg"), b"x").unwrap();
        std::fs::write(dir.path().join("secret.csv"), b"a\n1\n").unwrap();
        let root = DataRoot::new(dir.path().join("root")).unwrap();
        (dir, root)
    }

    fn denied(r: Result<()>) -> bool {
        matches!(r, Err(Error::PermissionDenied(_)))
    }

    #[test]
    fn paths_inside_the_root_pass_and_escapes_are_refused() {
        let (dir, root) = setup();
        let r = dir.path().join("root");
        let ok = |sql: String| root.check_statement(&sql).unwrap();
        ok(format!(
            "CREATE IMAGE TABLE t FROM '{}/photos/*.jpg'",
            r.display()
        ));
        ok(format!(
            "COPY (SELECT 1) TO '{}/out/new.parquet'",
            r.display()
        ));
        ok("SELECT 1".into());
        ok("CREATE MATERIALIZED VIEW v AS SELECT 1 AS one".into());
        let refused = [
            format!(
                "CREATE EXTERNAL TABLE s STORED AS CSV LOCATION '{}/secret.csv'",
                dir.path().display()
            ),
            format!(
                "CREATE EXTERNAL TABLE s STORED AS CSV LOCATION '{}/../secret.csv'",
                r.display()
            ),
            format!("COPY (SELECT 1) TO '{}/../x/y.parquet'", r.display()),
            "CREATE EXTERNAL TABLE s STORED AS CSV LOCATION '/etc/passwd'".into(),
            "CREATE EXTERNAL TABLE s STORED AS CSV LOCATION 's3://bucket/x.csv'".into(),
            "CREATE IMAGE TABLE t FROM '/etc/*'".into(),
            "CREATE IMAGE TABLE t FROM 's3://bucket/photos/'".into(),
            format!(
                "CREATE IMAGE TABLE t FROM '{}/photos' WITH (location = 's3://bucket/t')",
                r.display()
            ),
            format!(
                "INSERT INTO t FROM '{}/photos' WITH (aws_access_key_id = 'k')",
                r.display()
            ),
            format!(
                "CREATE MODEL m FROM '{}/photos/a.jpg' WITH (labels = '/etc/passwd')",
                r.display()
            ),
            format!(
                "EXPLAIN ANALYZE COPY (SELECT 1) TO '{}/z.csv'",
                dir.path().display()
            ),
            "SET datafusion.runtime.memory_limit = '100G'".into(),
            "SET spectradb.cache_size = '10GB'".into(),
        ];
        for sql in refused {
            assert!(denied(root.check_statement(&sql)), "{sql}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_inside_the_root_that_points_outside_is_refused() {
        let (dir, root) = setup();
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("b.jpg"), b"x").unwrap();
        std::os::unix::fs::symlink(&outside, dir.path().join("root/photos/link")).unwrap();
        let r = dir.path().join("root");
        for sql in [
            format!("CREATE IMAGE TABLE t FROM '{}/photos'", r.display()),
            format!(
                "CREATE IMAGE TABLE t FROM '{}/photos/link/*.jpg'",
                r.display()
            ),
            format!(
                "CREATE EXTERNAL TABLE s STORED AS CSV LOCATION '{}/photos/link/b.jpg'",
                r.display()
            ),
        ] {
            assert!(denied(root.check_statement(&sql)), "{sql}");
        }
    }
}
