//! One write to a database directory: the only way a change is published.
//!
//! Every writer (ingest, ordinary tables, models, profiles, drops) runs the
//! same sequence: take the writer lock, read the catalog, change it and
//! write new files, publish the next version atomically, and retire the
//! files the new version no longer lists. [`Transaction`] is that sequence;
//! dropping one without [`Transaction::commit`] removes the files it wrote
//! and publishes nothing.
//!
//! Superseded files are not deleted at once: a query planned against an
//! older version (in this process or another) may still open them. They are
//! listed in the catalog as retired and deleted by a later commit once they
//! have been retired for longer than the retention period, or by `VACUUM`.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::catalog::{
    upload_marker, Catalog, DatabaseDir, RetiredFile, WriteLock, PLAIN_DIR, STAGING_DIR, TABLES_DIR,
};
use super::remote;
use crate::error::Result;

/// How long superseded files stay for queries that still read an older
/// version, unless `VACUUM` says otherwise.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(3600);

/// An open write: holds the writer lock and the catalog being changed.
#[derive(Debug)]
pub struct Transaction {
    dir: DatabaseDir,
    lock: WriteLock,
    catalog: Catalog,
    /// Files this write created (relative paths), removed unless committed.
    written: Vec<String>,
    /// Files the new version no longer needs (relative paths).
    retired: Vec<String>,
    /// Upload markers of this write's objects (see [`upload_marker`]),
    /// removed once it commits, or once a rollback deleted their object.
    markers: Vec<(PathBuf, String)>,
    retention: Duration,
    committed: bool,
}

/// What a commit removed for good.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Purged {
    pub files: u64,
    pub bytes: u64,
}

impl DatabaseDir {
    /// Starts a write: becomes the one writer (or says who is) and reads
    /// the published catalog.
    pub fn begin(&self) -> Result<Transaction> {
        let lock = self.lock_for_write()?;
        let catalog = self.read_catalog()?;
        Ok(Transaction {
            dir: self.clone(),
            lock,
            catalog,
            written: Vec::new(),
            retired: Vec::new(),
            markers: Vec::new(),
            retention: DEFAULT_RETENTION,
            committed: false,
        })
    }
}

impl Transaction {
    /// The catalog as this write has changed it so far.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The catalog to change; [`Self::commit`] sets its version.
    pub fn catalog_mut(&mut self) -> &mut Catalog {
        &mut self.catalog
    }

    /// The version [`Self::commit`] will publish.
    pub fn version(&self) -> u64 {
        self.catalog.version + 1
    }

    /// The database directory.
    pub fn root(&self) -> &Path {
        self.dir.root()
    }

    /// A fresh path for a new data file of image table `table`:
    /// (relative, absolute). Removed again unless the write commits.
    pub fn new_data_file(&mut self, table: &str) -> Result<(String, PathBuf)> {
        self.fresh(table, "part")
    }

    /// A fresh path for the file of an ordinary table. They live in
    /// `tables/.plain`, a name no image table can have.
    pub fn new_plain_file(&mut self) -> Result<(String, PathBuf)> {
        self.fresh(PLAIN_DIR, "plain")
    }

    fn fresh(&mut self, folder: &str, prefix: &str) -> Result<(String, PathBuf)> {
        let (rel, abs) = self
            .dir
            .fresh_file(&format!("{TABLES_DIR}/{folder}"), prefix)?;
        self.written.push(rel.clone());
        Ok((rel, abs))
    }

    /// A new data file of a table stored at `location` (an `s3://`
    /// folder): (its URL, the local file to write before uploading it
    /// there). Both are removed unless the write commits.
    pub fn new_remote_data_file(&mut self, location: &str) -> Result<(String, PathBuf)> {
        let (staging, abs) = self.fresh(STAGING_DIR, "part")?;
        let name = staging.rsplit('/').next().unwrap_or(&staging);
        let url = format!("{}{name}", remote::as_folder(location));
        self.written.push(url.clone());
        self.markers.push((upload_marker(&abs), url.clone()));
        Ok((url, abs))
    }

    /// Records a file this write created some other way (a model copy), so
    /// that it is removed unless the write commits. Returns its absolute path.
    pub fn track_new_file(&mut self, rel: &str) -> PathBuf {
        self.written.push(rel.to_string());
        self.dir.root().join(rel)
    }

    /// Marks a published file as superseded: older versions may still read
    /// it, so it is kept for the retention period.
    pub fn retire(&mut self, rel: &str) {
        self.retired.push(rel.to_string());
    }

    /// How long files retired by this or earlier writes are kept before a
    /// commit deletes them ([`DEFAULT_RETENTION`] unless set).
    pub fn set_retention(&mut self, retention: Duration) {
        self.retention = retention;
    }

    /// Publishes the next catalog version, then deletes retired files older
    /// than the retention period. Returns the published catalog and what
    /// was deleted.
    pub fn commit(mut self) -> Result<(Catalog, Purged)> {
        let now = unix_now();
        self.catalog.version += 1;
        let version = self.catalog.version;
        let earlier = std::mem::take(&mut self.catalog.retired);
        let referenced = self.catalog.referenced_files();
        // A file can be retired and listed again (a model dropped and
        // created again from the same file): the catalog's word wins.
        let mut retired: Vec<RetiredFile> = earlier
            .into_iter()
            .filter(|r| !referenced.contains(r.path.as_str()))
            .collect();
        for path in std::mem::take(&mut self.retired) {
            if !referenced.contains(path.as_str()) && !retired.iter().any(|r| r.path == path) {
                retired.push(RetiredFile {
                    path,
                    version,
                    retired_at: now,
                });
            }
        }
        let keep_after = now.saturating_sub(self.retention.as_secs());
        let (expired, mut kept): (Vec<RetiredFile>, Vec<RetiredFile>) = retired
            .into_iter()
            .partition(|r| r.retired_at <= keep_after);
        // Deleted before the catalog stops listing them, so that one that
        // cannot be deleted now (a store that is down) stays listed for a
        // later commit: no version lists it, and no sweep would find it.
        let mut purged = Purged::default();
        for r in expired {
            let path = remote::locate(self.dir.root(), &r.path);
            match remote::file_size(&path) {
                Ok(bytes) if remote::remove(&path).is_ok() => {
                    purged.files += 1;
                    purged.bytes += bytes;
                }
                Err(e) if remote::is_not_found(&e) => {} // already gone
                _ => kept.push(r),
            }
        }
        self.catalog.retired = kept;
        self.dir.publish(&self.catalog, &self.lock)?;
        self.committed = true;
        for (marker, _) in &self.markers {
            let _ = std::fs::remove_file(marker);
        }
        Ok((std::mem::take(&mut self.catalog), purged))
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        if !self.committed {
            // Nothing was published: take the files back now (a crash here
            // is handled by the next writer's cleanup).
            let mut kept = Vec::new();
            for rel in &self.written {
                if remote::remove(&remote::locate(self.dir.root(), rel)).is_err() {
                    kept.push(rel);
                }
            }
            // A marker whose object could not be deleted stays for the
            // next writer.
            for (marker, url) in &self.markers {
                if !kept.contains(&url) {
                    let _ = std::fs::remove_file(marker);
                }
            }
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::catalog::{DataFile, TableEntry};

    fn entry(path: &str) -> TableEntry {
        TableEntry {
            chroma: "420".into(),
            quality: 90,
            next_id: 1,
            version: 1,
            uid: 11,
            files: vec![DataFile::new(path.into(), 1, 4)],
            location: None,
            store_options: Default::default(),
        }
    }

    #[test]
    fn a_write_that_does_not_commit_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let db = DatabaseDir::open(dir.path()).unwrap();
        let mut tx = db.begin().unwrap();
        let (_, abs) = tx.new_data_file("t").unwrap();
        std::fs::write(&abs, b"rows").unwrap();
        tx.catalog_mut().tables.insert("t".into(), entry("x"));
        drop(tx);
        assert!(!abs.exists(), "an abandoned write removes its files");
        assert_eq!(db.read_catalog().unwrap().version, 0);
    }

    #[test]
    fn superseded_files_stay_for_the_retention_period_then_go() {
        let dir = tempfile::tempdir().unwrap();
        let db = DatabaseDir::open(dir.path()).unwrap();
        let mut tx = db.begin().unwrap();
        let (old, old_abs) = tx.new_data_file("t").unwrap();
        std::fs::write(&old_abs, b"v1").unwrap();
        tx.catalog_mut().tables.insert("t".into(), entry(&old));
        let (c, _) = tx.commit().unwrap();
        assert_eq!(c.version, 1);

        // Replace the table: the old file is retired, not deleted.
        let mut tx = db.begin().unwrap();
        let (new, new_abs) = tx.new_data_file("t").unwrap();
        std::fs::write(&new_abs, b"v2").unwrap();
        tx.catalog_mut().tables.insert("t".into(), entry(&new));
        tx.retire(&old);
        let (c, purged) = tx.commit().unwrap();
        assert_eq!((c.version, purged.files), (2, 0));
        assert_eq!(c.retired.len(), 1);
        assert_eq!(
            (c.retired[0].path.as_str(), c.retired[0].version),
            (old.as_str(), 2)
        );
        assert!(old_abs.exists(), "an older snapshot may still read it");

        // The next writer's cleanup keeps retired files too.
        let tx = db.begin().unwrap();
        assert!(old_abs.exists());
        drop(tx);

        // A commit with no retention deletes it, and only it.
        let mut tx = db.begin().unwrap();
        tx.set_retention(Duration::ZERO);
        let (c, purged) = tx.commit().unwrap();
        assert_eq!(purged, Purged { files: 1, bytes: 2 });
        assert!(c.retired.is_empty());
        assert!(!old_abs.exists());
        assert!(new_abs.exists());
    }

    #[test]
    fn a_retired_file_listed_again_is_never_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let db = DatabaseDir::open(dir.path()).unwrap();
        let mut tx = db.begin().unwrap();
        let (rel, abs) = tx.new_data_file("t").unwrap();
        std::fs::write(&abs, b"v1").unwrap();
        tx.catalog_mut().tables.insert("t".into(), entry(&rel));
        tx.commit().unwrap();
        // Dropped (retired), then listed again by the next version.
        let mut tx = db.begin().unwrap();
        tx.catalog_mut().tables.remove("t");
        tx.retire(&rel);
        tx.commit().unwrap();
        let mut tx = db.begin().unwrap();
        tx.catalog_mut().tables.insert("t".into(), entry(&rel));
        tx.set_retention(Duration::ZERO);
        let (c, purged) = tx.commit().unwrap();
        assert_eq!(purged.files, 0);
        assert!(c.retired.is_empty());
        assert!(abs.exists());
    }
}
