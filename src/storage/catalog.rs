//! The catalog of a database directory: which tables exist and which
//! Parquet files hold their rows, published by atomic replace.
//!
//! A database is a directory:
//!
//! ```text
//! <db>/catalog.json            the published catalog (this module)
//! <db>/LOCK                    held (flock) by the one writer; holds its pid
//! <db>/tables/<table>/*.parquet  data files, written before they are published
//! <db>/tables/.plain/*.parquet   ordinary tables' files
//! <db>/models/                 registered models' copied files
//! ```
//!
//! A writer writes its data files first and publishes a new catalog last
//! (write a temporary file, fsync, rename over `catalog.json`, fsync the
//! directory), so a crash at any point leaves the last published catalog
//! intact, and rows of an unpublished write invisible. Files a crashed
//! writer left behind are removed when the next writer takes the lock.
//! Writes go through [`super::commit::Transaction`].

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::remote;
use crate::error::{Error, Result};
use crate::read_format::profile::Profile;

/// Version of the catalog layout written by this build.
pub const CATALOG_FORMAT: u32 = 1;
pub const CATALOG_FILE: &str = "catalog.json";
pub const LOCK_FILE: &str = "LOCK";
/// How long a writer waits for another one before giving up.
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
pub const TABLES_DIR: &str = "tables";
/// Folder of ordinary tables' files, under [`TABLES_DIR`].
pub const PLAIN_DIR: &str = ".plain";
/// Folder, under [`TABLES_DIR`], of data files written here on their way
/// to a table on object storage.
pub const STAGING_DIR: &str = ".staging";
/// The marker of an object being uploaded from the staging file `staging`:
/// a local file holding the object's URL, written before the upload and
/// removed once a commit lists the object (or a rollback deleted it). A
/// marker a crashed writer left tells the next writer which object to
/// delete, without listing the store: objects this database did not write
/// are never touched.
pub fn upload_marker(staging: &Path) -> PathBuf {
    let mut name = staging.as_os_str().to_owned();
    name.push(format!(".{MARKER_EXTENSION}"));
    PathBuf::from(name)
}

/// Whether `path` is an upload marker (see [`upload_marker`]).
pub fn is_upload_marker(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == MARKER_EXTENSION)
        && path
            .parent()
            .and_then(|p| p.file_name())
            .is_some_and(|f| f == STAGING_DIR)
}

const MARKER_EXTENSION: &str = "url";

/// Folder of registered models' copied files.
pub const MODELS_DIR: &str = "models";

/// The published state of a database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Catalog {
    pub format_version: u32,
    /// Bumped by every commit.
    pub version: u64,
    pub tables: BTreeMap<String, TableEntry>,
    /// Files an ingest with `on_error = 'skip'` left out, and why.
    #[serde(default)]
    pub ingest_errors: Vec<IngestError>,
    /// Ordinary (non-image) tables: name -> the Parquet file holding them.
    #[serde(default)]
    pub plain_tables: BTreeMap<String, DataFile>,
    /// Views and external tables, replayed in order when a database opens.
    #[serde(default)]
    pub definitions: Vec<Definition>,
    /// ONNX models registered as SQL functions.
    #[serde(default)]
    pub models: BTreeMap<String, ModelEntry>,
    /// What CALIBRATE measured, one profile per (model, table).
    #[serde(default)]
    pub profiles: Vec<Profile>,
    /// Files no longer listed, kept for queries that still read an older
    /// version until they are purged.
    #[serde(default)]
    pub retired: Vec<RetiredFile>,
    /// Materialized views: name -> their stored rows and lineage.
    #[serde(default)]
    pub materialized_views: BTreeMap<String, MaterializedView>,
}

/// A file an older catalog version listed and this one does not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetiredFile {
    /// Relative to the database directory.
    pub path: String,
    /// The first catalog version without it.
    pub version: u64,
    /// When it was retired (seconds since the Unix epoch).
    pub retired_at: u64,
}

/// A registered model: its copied files and what CREATE MODEL found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelEntry {
    /// The copied `.onnx` file, relative to the database directory.
    pub file: String,
    /// The copied labels file, if any.
    pub labels_file: Option<String>,
    /// SHA-256 of the model file, hex.
    pub checksum: String,
    pub bytes: u64,
    /// The `WITH (...)` options as given (keys lower-case).
    pub options: BTreeMap<String, String>,
    /// The input shape the model declares (-1 = dynamic).
    pub input_shape: Vec<i64>,
    /// Input side in pixels.
    pub size: u32,
    /// Output values per image.
    pub outputs: u64,
    /// For a head (`CREATE MODEL .. ON FEATURES OF b`): the model whose
    /// output is its input.
    #[serde(default)]
    pub backbone: Option<String>,
    /// For a model family (`CREATE MODEL .. FAMILY (...)`): its members,
    /// each trained for its own read format. The family's own file, size
    /// and outputs are those of its largest member; its checksum covers
    /// every member's file and format, so a changed member makes profiles
    /// and views of the family stale.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<FamilyMember>,
}

/// One member of a model family.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FamilyMember {
    /// The read format the member was trained for and is fed with.
    pub format: crate::read_format::space::ReadFormat,
    pub model: ModelEntry,
}

impl ModelEntry {
    /// The member the family's unbound calls run and calibration compares
    /// with: the one with the largest input, then the most bands.
    pub fn reference_member(&self) -> Option<&FamilyMember> {
        self.members.iter().max_by_key(|m| {
            (
                m.format.input_size(),
                m.format.bands().masks.map(u64::count_ones),
            )
        })
    }

    /// Every file the model holds in the database directory.
    pub fn files(&self) -> Vec<&str> {
        let mut files: Vec<&str> = vec![self.file.as_str()];
        files.extend(self.labels_file.as_deref());
        for m in &self.members {
            files.extend(m.model.files());
        }
        files.sort_unstable();
        files.dedup();
        files
    }
}

/// A view or external table, kept as the statement that created it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Definition {
    pub name: String,
    pub sql: String,
}

impl Default for Catalog {
    fn default() -> Self {
        Catalog {
            format_version: CATALOG_FORMAT,
            version: 0,
            tables: BTreeMap::new(),
            ingest_errors: Vec::new(),
            plain_tables: BTreeMap::new(),
            definitions: Vec::new(),
            models: BTreeMap::new(),
            profiles: Vec::new(),
            retired: Vec::new(),
            materialized_views: BTreeMap::new(),
        }
    }
}

impl Catalog {
    /// Every file this version lists (relative paths): data files, ordinary
    /// tables' files and models' files. Retired files are not included.
    pub fn referenced_files(&self) -> std::collections::HashSet<&str> {
        self.tables
            .values()
            .flat_map(|t| t.files.iter().map(|f| f.path.as_str()))
            .chain(self.plain_tables.values().map(|f| f.path.as_str()))
            .chain(
                self.materialized_views
                    .values()
                    .flat_map(|v| v.files.iter().map(|f| f.path.as_str())),
            )
            .chain(self.models.values().flat_map(ModelEntry::files))
            .collect()
    }
}

/// A source file an ingest skipped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestError {
    pub table: String,
    /// Catalog version of the ingest that skipped it.
    pub version: u64,
    pub uri: String,
    pub reason: String,
}

/// One image table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableEntry {
    /// `420`, `444` or `gray`.
    pub chroma: String,
    pub quality: u8,
    /// Next row id to hand out (ids are never reused).
    pub next_id: u64,
    /// Catalog version of the last commit that changed this table.
    pub version: u64,
    pub files: Vec<DataFile>,
    /// Identity fixed when the table is created: a table dropped and
    /// created again under the same name gets a new one, an append keeps
    /// it (cached model outputs and materialized views key on it). 0 in
    /// catalogs written before it existed (see [`TableEntry::identity`]).
    #[serde(default)]
    pub uid: u64,
    /// Where the data files live when not in the database directory: an
    /// `s3://` folder (the files' paths are then their URLs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// The store options of `location` that hold no secret (endpoint,
    /// region), so that the database opens again without them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub store_options: BTreeMap<String, String>,
}

impl TableEntry {
    /// The table's identity (derived from its name for catalogs older than
    /// identities).
    pub fn identity(&self, name: &str) -> u64 {
        if self.uid != 0 {
            self.uid
        } else {
            let digest = Sha256::digest(format!("table:{name}").as_bytes());
            u64::from_le_bytes(digest[..8].try_into().expect("8 bytes")) | 1
        }
    }

    /// A fresh identity for a table created at catalog `version`.
    pub fn new_uid(name: &str, version: u64) -> u64 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let seed = format!("{name}:{version}:{nanos}:{}", std::process::id());
        let digest = Sha256::digest(seed.as_bytes());
        u64::from_le_bytes(digest[..8].try_into().expect("8 bytes")) | 1
    }
}

/// A query's result kept as Parquet in the database directory, with what
/// it was computed from (so it can tell when it is stale and what a
/// refresh must compute).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaterializedView {
    /// The query after `AS`.
    pub query: String,
    /// The rows, in order; a refresh that computes appended rows adds a file.
    pub files: Vec<DataFile>,
    pub lineage: Lineage,
    /// How its float vector columns are stored (`WITH (compression = ..)`).
    #[serde(default, skip_serializing_if = "Compression::is_none")]
    pub compression: Compression,
    /// The columns stored compressed (decoded back to float32 when read).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub compressed_columns: Vec<String>,
}

/// How a materialized view stores float vectors (embeddings, scores):
/// feature maps are most of a view's bytes, and heads tolerate less
/// precision than float32 carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// float32 as computed.
    #[default]
    None,
    /// IEEE half floats: 2 bytes a value, relative error <= 2^-11.
    F16,
    /// int8 per vector, with one float32 scale (max |x| / 127) beside each
    /// vector: about 1 byte a value, absolute error <= scale / 2.
    Int8,
}

impl Compression {
    /// Whether vectors are stored as computed (catalogs then omit the field).
    pub fn is_none(&self) -> bool {
        *self == Compression::None
    }

    /// The name `WITH (compression = ..)` takes and SHOW TABLES prints.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::F16 => "f16",
            Compression::Int8 => "int8",
        }
    }

    /// Parses a `compression` option's value.
    pub fn parse(value: &str) -> std::result::Result<Self, String> {
        match value.to_ascii_lowercase().as_str() {
            "none" => Ok(Compression::None),
            "f16" => Ok(Compression::F16),
            "int8" => Ok(Compression::Int8),
            other => Err(format!(
                "unknown compression '{other}' (expected 'none', 'f16' or 'int8')"
            )),
        }
    }
}

/// What a materialized view was computed from.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Lineage {
    /// Image tables read, at the version read.
    pub tables: Vec<TableRead>,
    /// Models run, by file checksum.
    pub models: Vec<ModelRead>,
    /// Columns that hold a model's output for each row of an image table.
    pub outputs: Vec<ViewOutput>,
    /// Set when the view is a per-row projection of one image table that
    /// keeps its `id` column: a refresh then computes appended rows only.
    pub id_column: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableRead {
    pub name: String,
    pub uid: u64,
    pub version: u64,
    /// Ids below this were covered (the table's next id when read).
    pub next_id: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelRead {
    pub name: String,
    pub checksum: String,
}

/// `column` holds `function(image)` of `table`'s rows: the model's output
/// under `format`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewOutput {
    pub column: String,
    pub function: String,
    pub model: String,
    pub checksum: String,
    pub format: Option<crate::read_format::space::ReadFormat>,
    pub table: String,
}

/// A published data file, relative to the database directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataFile {
    pub path: String,
    pub rows: u64,
    pub bytes: u64,
    /// What an image table's file holds, recorded when it was written so
    /// that loading and planning open no file. `None` for ordinary tables'
    /// and views' files, and for image files of catalogs written before
    /// statistics were kept (their footers are read instead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<FileStats>,
    /// The whole file's checksum (see [`super::checksum`]), which CHECK
    /// compares; `None` for files written before checksums were kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
}

impl DataFile {
    /// A file with no statistics (an ordinary table's or a view's).
    pub fn new(path: String, rows: u64, bytes: u64) -> Self {
        DataFile {
            path,
            rows,
            bytes,
            stats: None,
            checksum: None,
        }
    }
}

/// Per-file statistics of an image table's data file.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FileStats {
    /// Smallest and largest `width` (`None` for a file of no rows).
    pub width: Option<(u32, u32)>,
    pub height: Option<(u32, u32)>,
    pub id: Option<(u64, u64)>,
    /// The file's user columns (`label`, CTAS columns), in file order.
    #[serde(default)]
    pub columns: Vec<UserColumn>,
}

impl FileStats {
    /// Widens the ranges to include one row.
    pub fn add_row(&mut self, id: u64, width: u32, height: u32) {
        fn widen<T: Copy + Ord>(range: &mut Option<(T, T)>, v: T) {
            *range = Some(range.map_or((v, v), |(lo, hi)| (lo.min(v), hi.max(v))));
        }
        widen(&mut self.id, id);
        widen(&mut self.width, width);
        widen(&mut self.height, height);
    }
}

/// A user column of a data file: its name and Arrow type, written as
/// Arrow displays it (`Utf8`, `Int64`, ...) and parsed back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserColumn {
    pub name: String,
    pub data_type: String,
}

/// A database directory.
#[derive(Debug, Clone)]
pub struct DatabaseDir {
    root: PathBuf,
}

/// Proof that this process is the database's one writer; released on drop.
#[derive(Debug)]
pub(super) struct WriteLock {
    _file: File,
}

impl DatabaseDir {
    /// Opens (creating when missing) a database directory.
    pub fn open(root: impl AsRef<Path>) -> Result<Self> {
        let root = root.as_ref().to_path_buf();
        fs::create_dir_all(root.join(TABLES_DIR)).map_err(|e| Error::io(&root, e))?;
        let dir = DatabaseDir { root };
        dir.read_catalog()?; // refuse unreadable or newer catalogs up front
        Ok(dir)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The last published catalog (an empty one for a new database).
    pub fn read_catalog(&self) -> Result<Catalog> {
        let path = self.root.join(CATALOG_FILE);
        let mut text = String::new();
        match File::open(&path) {
            Ok(mut f) => f
                .read_to_string(&mut text)
                .map_err(|e| Error::io(&path, e))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Catalog::default()),
            Err(e) => return Err(Error::io(&path, e)),
        };
        #[derive(Deserialize)]
        struct VersionOnly {
            format_version: u32,
        }
        let v: VersionOnly = serde_json::from_str(&text)
            .map_err(|e| Error::corrupt(&path, format!("not a spectradb catalog: {e}")))?;
        if v.format_version > CATALOG_FORMAT {
            return Err(Error::corrupt(
                &path,
                format!(
                    "written by a newer spectradb (catalog format {}, this build reads up to {CATALOG_FORMAT}): upgrade spectradb to open it",
                    v.format_version
                ),
            ));
        }
        serde_json::from_str(&text).map_err(|e| Error::corrupt(&path, format!("catalog: {e}")))
    }

    /// Becomes the one writer, or says who is.
    pub(super) fn lock_for_write(&self) -> Result<WriteLock> {
        let path = self.root.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        // Wait a little for a writer that is finishing (like SQLite's busy
        // timeout). This also covers a lock that outlives its holder for a
        // moment because a child process forked at that instant still
        // shares the lock file until it execs.
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        let mut outcome = file.try_lock();
        while matches!(outcome, Err(fs::TryLockError::WouldBlock))
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(10));
            outcome = file.try_lock();
        }
        match outcome {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                let who = if holder.is_empty() {
                    "another process".to_string()
                } else {
                    format!("pid {holder}")
                };
                return Err(Error::Locked {
                    path: self.root.display().to_string(),
                    holder: who,
                });
            }
            Err(fs::TryLockError::Error(e)) => return Err(Error::io(&path, e)),
        }
        file.set_len(0).map_err(|e| Error::io(&path, e))?;
        write!(file, "{}", std::process::id()).map_err(|e| Error::io(&path, e))?;
        file.sync_all().map_err(|e| Error::io(&path, e))?;
        let lock = WriteLock { _file: file };
        self.remove_unpublished(&lock)?;
        Ok(lock)
    }

    /// `<folder>/<prefix>-<time>-<pid>.parquet` (folder relative to the
    /// root, created): (relative, absolute).
    pub(super) fn fresh_file(&self, folder: &str, prefix: &str) -> Result<(String, PathBuf)> {
        let dir = self.root.join(folder);
        fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let name = format!("{prefix}-{nanos:x}-{}.parquet", std::process::id());
        Ok((format!("{folder}/{name}"), dir.join(name)))
    }

    /// Publishes `catalog` atomically: temp file, fsync, rename, fsync dir.
    pub(super) fn publish(&self, catalog: &Catalog, _lock: &WriteLock) -> Result<()> {
        let path = self.root.join(CATALOG_FILE);
        let tmp = self
            .root
            .join(format!("{CATALOG_FILE}.tmp-{}", std::process::id()));
        let text = serde_json::to_string_pretty(catalog)
            .map_err(|e| Error::Internal(format!("catalog to JSON: {e}")))?;
        let mut f = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        f.write_all(text.as_bytes())
            .map_err(|e| Error::io(&tmp, e))?;
        f.sync_all().map_err(|e| Error::io(&tmp, e))?;
        drop(f);
        fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
        sync_dir(&self.root)
    }

    /// Removes what a crashed writer left: temporary catalogs, and data or
    /// model files that the catalog neither lists nor keeps as retired.
    /// Needs the write lock, so it never touches the files of a writer
    /// still at work.
    fn remove_unpublished(&self, _lock: &WriteLock) -> Result<()> {
        let catalog = self.read_catalog()?;
        let mut known = catalog.referenced_files();
        known.extend(catalog.retired.iter().map(|r| r.path.as_str()));
        for entry in fs::read_dir(&self.root).map_err(|e| Error::io(&self.root, e))? {
            let p = entry.map_err(|e| Error::io(&self.root, e))?.path();
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.starts_with(&format!("{CATALOG_FILE}.tmp-")) {
                fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
            }
        }
        // Objects a crashed writer uploaded: their markers name them. Best
        // effort: a store that cannot be reached must not stop writes to
        // other tables (the marker stays for a later writer).
        let staging = self.root.join(TABLES_DIR).join(STAGING_DIR);
        for marker in fs::read_dir(&staging).into_iter().flatten().flatten() {
            let marker = marker.path();
            if !is_upload_marker(&marker) {
                continue;
            }
            let Ok(url) = fs::read_to_string(&marker) else {
                continue;
            };
            let url = url.trim();
            if known.contains(url) || remote::remove(Path::new(url)).is_ok() {
                let _ = fs::remove_file(&marker);
            }
        }
        let tables = self.root.join(TABLES_DIR);
        let mut folders = vec![(MODELS_DIR.to_string(), self.root.join(MODELS_DIR))];
        for table in fs::read_dir(&tables).map_err(|e| Error::io(&tables, e))? {
            let dir = table.map_err(|e| Error::io(&tables, e))?.path();
            if dir.is_dir() {
                let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("");
                folders.push((format!("{TABLES_DIR}/{name}"), dir.clone()));
            }
        }
        for (rel_dir, dir) in folders {
            let Ok(files) = fs::read_dir(&dir) else {
                continue; // no models folder yet
            };
            for file in files {
                let p = file.map_err(|e| Error::io(&dir, e))?.path();
                let fname = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                if p.is_file()
                    && !is_upload_marker(&p)
                    && !known.contains(format!("{rel_dir}/{fname}").as_str())
                {
                    fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
                }
            }
        }
        Ok(())
    }
}

/// fsync a directory so a rename in it is durable.
fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(files: &[&str]) -> TableEntry {
        TableEntry {
            chroma: "420".into(),
            quality: 90,
            next_id: 3,
            version: 1,
            uid: 11,
            files: files
                .iter()
                .map(|p| DataFile::new(p.to_string(), 3, 10))
                .collect(),
            location: None,
            store_options: BTreeMap::new(),
        }
    }

    #[test]
    fn publish_then_reopen_sees_the_same_catalog() {
        let dir = tempfile::tempdir().unwrap();
        let db = DatabaseDir::open(dir.path().join("new.db")).unwrap();
        assert_eq!(db.read_catalog().unwrap(), Catalog::default());
        let lock = db.lock_for_write().unwrap();
        let (rel, abs) = db.fresh_file("tables/photos", "part").unwrap();
        fs::write(&abs, b"data").unwrap();
        let mut c = Catalog {
            version: 1,
            ..Default::default()
        };
        c.tables.insert("photos".into(), table(&[&rel]));
        db.publish(&c, &lock).unwrap();
        drop(lock);
        let again = DatabaseDir::open(db.root()).unwrap();
        assert_eq!(again.read_catalog().unwrap(), c);
        // Taking the lock again must keep published files.
        let _lock = again.lock_for_write().unwrap();
        assert!(abs.exists());
    }

    #[test]
    fn a_crashed_writers_leftovers_are_removed_and_the_published_version_stays() {
        let dir = tempfile::tempdir().unwrap();
        let db = DatabaseDir::open(dir.path()).unwrap();
        let lock = db.lock_for_write().unwrap();
        let (kept, kept_abs) = db.fresh_file("tables/t", "part").unwrap();
        fs::write(&kept_abs, b"published").unwrap();
        let mut c = Catalog::default();
        c.tables.insert("t".into(), table(&[&kept]));
        db.publish(&c, &lock).unwrap();
        let (retired, retired_abs) = db.fresh_file("tables/t", "part").unwrap();
        fs::write(&retired_abs, b"an older version's").unwrap();
        c.retired.push(RetiredFile {
            path: retired,
            version: 1,
            retired_at: 0,
        });
        db.publish(&c, &lock).unwrap();
        // A write that never published: its data file, a model copy and a
        // half-written catalog.
        let (_, orphan) = db.fresh_file("tables/t", "part").unwrap();
        fs::write(&orphan, b"unpublished").unwrap();
        let (_, orphan_model) = db.fresh_file(MODELS_DIR, "model").unwrap();
        fs::write(&orphan_model, b"unpublished model").unwrap();
        fs::write(dir.path().join("catalog.json.tmp-999"), b"{ half").unwrap();
        drop(lock);

        let db = DatabaseDir::open(dir.path()).unwrap();
        assert_eq!(db.read_catalog().unwrap(), c);
        let _lock = db.lock_for_write().unwrap();
        assert!(kept_abs.exists());
        assert!(retired_abs.exists(), "older snapshots may still read it");
        assert!(!orphan.exists());
        assert!(!orphan_model.exists());
        assert!(!dir.path().join("catalog.json.tmp-999").exists());
    }

    #[test]
    fn a_second_writer_is_told_who_holds_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let db = DatabaseDir::open(dir.path()).unwrap();
        let _first = db.lock_for_write().unwrap();
        let err = db.lock_for_write().unwrap_err().to_string();
        assert!(
            err.contains(&format!("locked by pid {}", std::process::id())),
            "{err}"
        );
    }

    #[test]
    fn newer_or_damaged_catalogs_are_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join(CATALOG_FILE),
            r#"{"format_version": 7, "future": true}"#,
        )
        .unwrap();
        let err = DatabaseDir::open(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("catalog format 7") && err.contains("upgrade"),
            "{err}"
        );
        fs::write(dir.path().join(CATALOG_FILE), "not json").unwrap();
        let err = DatabaseDir::open(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("catalog.json") && err.contains("not a spectradb catalog"),
            "{err}"
        );
    }
}
