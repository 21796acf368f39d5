//! Ingest: source files -> data files of an image table -> a catalog
//! change, published by the caller's commit. Decoding runs on all cores;
//! the catalog is published once, after every data file is on disk, so an
//! ingest is all or nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use arrow_array::{ArrayRef, StringArray};
use arrow_schema::{DataType, Field};

use crate::codec::Chroma;
use crate::error::{Error, Result};
use crate::source::{load_file, SourceOptions};
use crate::storage::catalog::{upload_marker, DataFile, IngestError, TableEntry};
use crate::storage::commit::Transaction;
use crate::storage::remote;
use crate::storage::{write_tokenized_file, TokenizedImage, TokenizedRow, WriteOptions};

/// Where the `label` column comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Label {
    /// No label column.
    None,
    /// The name of the folder holding each file.
    ParentDir,
    /// A CSV file of `file,label` lines (file name or path as given).
    Csv(PathBuf),
}

/// What to do with a file that cannot be ingested.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// Stop, name the file and commit nothing.
    Fail,
    /// Commit the rest and record the file and reason.
    Skip,
}

/// Options of one ingest.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    pub source: SourceOptions,
    pub label: Label,
    pub on_error: OnError,
    /// Decoding threads; 0 = one per core.
    pub threads: usize,
    /// Images per data file (and per decoding round, bounding memory).
    pub images_per_file: usize,
    /// Where a new table's data files go when not in the database
    /// directory: an empty `s3://` folder.
    pub location: Option<String>,
    /// The statement's store options (`aws_*`); those without secrets are
    /// kept with a new table.
    pub store_options: BTreeMap<String, String>,
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions {
            source: SourceOptions::default(),
            label: Label::None,
            on_error: OnError::Fail,
            threads: 0,
            images_per_file: 256,
            location: None,
            store_options: BTreeMap::new(),
        }
    }
}

/// What an ingest did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestReport {
    pub ingested: u64,
    pub skipped: Vec<IngestError>,
    /// The catalog version it published.
    pub version: u64,
}

/// File extensions a directory source takes (compared ignoring case).
pub const IMAGE_EXTENSIONS: [&str; 4] = ["jpg", "jpeg", "png", "webp"];

/// Expands a glob (`photos/**/*.jpg`: exactly the files it matches) or a
/// directory (the image files below it, by extension: a README,
/// `.DS_Store` or manifest beside the photos is not an image to fail on,
/// as image-folder loaders do) into a sorted list of files.
pub fn expand_sources(pattern: &str) -> Result<Vec<PathBuf>> {
    if remote::is_remote(Path::new(pattern)) {
        return expand_remote_sources(pattern);
    }
    let dir = Path::new(pattern).is_dir();
    let glob_pattern = if dir {
        format!(
            "{}/**/*",
            glob::Pattern::escape(pattern.trim_end_matches('/'))
        )
    } else {
        pattern.to_string()
    };
    let paths = glob::glob(&glob_pattern)
        .map_err(|e| Error::InvalidArgument(format!("bad file pattern '{pattern}': {e}")))?;
    let mut files = Vec::new();
    let mut ignored = 0usize;
    for p in paths {
        let p = p.map_err(|e| Error::io(e.path(), std::io::Error::other(e.to_string())))?;
        if !p.is_file() {
            continue;
        }
        if dir && !has_image_extension(&p) {
            ignored += 1;
        } else {
            files.push(p);
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(Error::InvalidArgument(if dir {
            format!(
                "no image files (.{}) under directory '{pattern}' ({ignored} other files ignored)",
                IMAGE_EXTENSIONS.join(", .")
            )
        } else {
            format!("no files match '{pattern}'")
        }));
    }
    Ok(files)
}

/// Whether a file name has one of the [`IMAGE_EXTENSIONS`].
fn has_image_extension(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| e.eq_ignore_ascii_case(x)))
}

/// [`expand_sources`] of an `s3://` pattern: a glob over object keys (`*`
/// stays within a folder, `**` crosses them), a folder (the image objects
/// below it) or one object.
fn expand_remote_sources(pattern: &str) -> Result<Vec<PathBuf>> {
    let glob_at = pattern.find(['*', '?', '[']);
    let mut files: Vec<PathBuf> = match glob_at {
        Some(at) => {
            let folder = &pattern[..pattern[..at].rfind('/').map_or(at, |i| i + 1)];
            let glob = glob::Pattern::new(pattern).map_err(|e| {
                Error::InvalidArgument(format!("bad file pattern '{pattern}': {e}"))
            })?;
            let options = glob::MatchOptions {
                require_literal_separator: true,
                ..Default::default()
            };
            remote::list(folder)?
                .into_iter()
                .filter(|(url, _)| glob.matches_with(url, options))
                .map(|(url, _)| PathBuf::from(url))
                .collect()
        }
        None => {
            let below = remote::list(&remote::as_folder(pattern))?;
            if below.is_empty() && !pattern.ends_with('/') {
                // Not a folder: one object, if it is there.
                remote::RemoteFile::new(pattern)?.size()?;
                vec![PathBuf::from(pattern)]
            } else {
                below
                    .into_iter()
                    .map(|(url, _)| PathBuf::from(url))
                    .filter(|p| has_image_extension(p))
                    .collect()
            }
        }
    };
    files.sort();
    if files.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "no objects match '{pattern}'"
        )));
    }
    Ok(files)
}

/// Ingests `files` into `table` (created when `create`, else appended to)
/// as part of `tx`; the caller commits it. `progress` is called after each
/// file with its size in bytes. Data files are written as decoding goes
/// (a round of `images_per_file` images at a time, bounding memory); an
/// error or a dropped transaction takes them back.
pub fn ingest(
    tx: &mut Transaction,
    table: &str,
    create: bool,
    files: &[PathBuf],
    opts: &IngestOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<IngestReport> {
    let mut entry = match (tx.catalog().tables.get(table), create) {
        (Some(_), true) => {
            return Err(Error::InvalidArgument(format!(
                "table '{table}' already exists"
            )))
        }
        (None, false) => return Err(Error::InvalidArgument(format!("no table named '{table}'"))),
        (Some(t), false) => t.clone(),
        (None, true) => TableEntry {
            chroma: opts.source.encode.chroma.name().to_string(),
            quality: opts.source.encode.quality,
            next_id: 0,
            version: 0,
            files: Vec::new(),
            uid: TableEntry::new_uid(table, tx.version()),
            location: opts.location.as_deref().map(new_location).transpose()?,
            store_options: remote::public_options(&opts.store_options),
        },
    };
    if let Some(location) = &entry.location {
        // A new table's location takes the statement's store options (see
        // `db::options`); an append's are its source's.
        remote::configure_defaults(location, &entry.store_options)?;
    }
    // Appends use the table's own layout, whatever the options say.
    let mut source = opts.source;
    source.encode.chroma = Chroma::parse(&entry.chroma)?;
    source.encode.quality = entry.quality;
    let labels = match &opts.label {
        Label::Csv(path) => Some(read_label_csv(path)?),
        _ => None,
    };
    let version = tx.version();
    let threads = match opts.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let mut written: Vec<DataFile> = Vec::new();
    let mut skipped = Vec::new();
    // Images are tokenized on the decoding threads, the heavier stage;
    // writing a data file (fitting its Huffman codes to the tokens and
    // coding them, about 0.4x the decoding) runs on one more thread, beside
    // the decoding of the next round on all threads, and the last round's
    // write beside the one before it; two rounds are in memory at most.
    // The scope joins a write still running when an error returns early;
    // the dropped transaction then takes its file back.
    let rounds = files.len().div_ceil(opts.images_per_file.max(1));
    std::thread::scope(|scope| -> Result<()> {
        let mut writing: Vec<std::thread::ScopedJoinHandle<'_, Result<DataFile>>> = Vec::new();
        for (round, chunk) in files.chunks(opts.images_per_file.max(1)).enumerate() {
            let decoded = decode_parallel(chunk, &source, threads, progress);
            let mut rows = Vec::with_capacity(chunk.len());
            let mut label_values = Vec::with_capacity(chunk.len());
            for (path, image) in chunk.iter().zip(decoded) {
                let uri = path.display().to_string();
                match image {
                    Ok(image) => {
                        label_values.push(label_for(path, &opts.label, labels.as_ref()));
                        rows.push(TokenizedRow {
                            id: entry.next_id,
                            uri,
                            image,
                        });
                        entry.next_id += 1;
                    }
                    Err(e) if opts.on_error == OnError::Skip => skipped.push(IngestError {
                        table: table.to_string(),
                        version,
                        uri,
                        reason: e.to_string(),
                    }),
                    Err(e) => return Err(e),
                }
            }
            if rows.is_empty() {
                continue;
            }
            let user: Vec<(Arc<Field>, ArrayRef)> = if opts.label == Label::None {
                Vec::new()
            } else {
                vec![(
                    Arc::new(Field::new("label", DataType::Utf8, true)),
                    Arc::new(StringArray::from(label_values)) as ArrayRef,
                )]
            };
            let (rel, abs) = match &entry.location {
                Some(location) => tx.new_remote_data_file(location)?,
                None => tx.new_data_file(table)?,
            };
            let write = WriteOptions {
                chroma: source.encode.chroma,
                quality: source.encode.quality,
                ..Default::default()
            };
            let job = move || -> Result<DataFile> {
                #[cfg(test)]
                tests::record_writer(&abs);
                let file = write_tokenized_file(&abs, &write, &rows, &user)?.data_file(rel);
                if remote::is_remote(Path::new(&file.path)) {
                    // Written here, then uploaded whole: an object appears
                    // complete or not at all. Its marker says, should this
                    // process die before the commit, what to delete.
                    let marker = upload_marker(&abs);
                    std::fs::write(&marker, &file.path).map_err(|e| Error::io(&marker, e))?;
                    remote::RemoteFile::new(&file.path)?.upload(&abs)?;
                    remote::remove(&abs)?;
                }
                Ok(file)
            };
            if threads == 1 {
                written.push(job()?);
                continue;
            }
            if round + 1 < rounds {
                for previous in writing.drain(..) {
                    written.push(join_write(previous)?);
                }
            }
            writing.push(scope.spawn(job));
        }
        for handle in writing {
            written.push(join_write(handle)?);
        }
        Ok(())
    })?;
    let ingested = written.iter().map(|f| f.rows).sum();
    entry.files.extend(written);
    entry.version = version;
    let catalog = tx.catalog_mut();
    catalog.tables.insert(table.to_string(), entry);
    catalog.ingest_errors.extend(skipped.iter().cloned());
    Ok(IngestReport {
        ingested,
        skipped,
        version,
    })
}

/// The `s3://` folder of a new table, which must hold nothing yet: the
/// table's writers own every object in it.
fn new_location(location: &str) -> Result<String> {
    remote::check_location(location)?;
    let folder = remote::as_folder(location);
    let objects = remote::list(&folder)?;
    if let Some((first, _)) = objects.first() {
        return Err(Error::InvalidArgument(format!(
            "location = '{location}' is not empty ({first}{}): a table's location must be an empty folder",
            if objects.len() > 1 { format!(" and {} more", objects.len() - 1) } else { String::new() }
        )));
    }
    Ok(folder.trim_end_matches('/').to_string())
}

/// The data file a write thread made; its panic goes on unwinding here.
fn join_write(handle: std::thread::ScopedJoinHandle<'_, Result<DataFile>>) -> Result<DataFile> {
    handle
        .join()
        .unwrap_or_else(|payload| std::panic::resume_unwind(payload))
}

/// Decodes and tokenizes files on `threads` threads (0 = all cores),
/// results in input order.
fn decode_parallel(
    files: &[PathBuf],
    source: &SourceOptions,
    threads: usize,
    progress: &(dyn Fn(u64) + Sync),
) -> Vec<Result<TokenizedImage>> {
    let threads = match threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
    .min(files.len().max(1));
    let next = AtomicUsize::new(0);
    let slots: Mutex<Vec<Option<Result<TokenizedImage>>>> =
        Mutex::new((0..files.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(path) = files.get(i) else { break };
                let result = decode_isolated(path, source);
                progress(std::fs::metadata(path).map_or(0, |m| m.len()));
                slots.lock().expect("no panics while holding the lock")[i] = Some(result);
            });
        }
    });
    slots
        .into_inner()
        .expect("threads joined")
        .into_iter()
        .map(|r| {
            r.unwrap_or_else(|| Err(Error::Internal("a decoding thread skipped a file".into())))
        })
        .collect()
}

/// Decodes one file and tokenizes its bands while they are in cache; a
/// panic inside the decoders (a bug, but one that untrusted bytes may
/// reach) becomes that file's error instead of unwinding through the
/// thread scope and losing the whole ingest.
fn decode_isolated(path: &Path, source: &SourceOptions) -> Result<TokenizedImage> {
    let decode = || {
        #[cfg(test)]
        if path.file_name() == Some(tests::PANIC_MARKER.as_ref()) {
            panic!("injected decoder panic");
        }
        let (image, _) = load_file(path, source)?;
        TokenizedImage::new(&image).map_err(|reason| Error::ImageDecode {
            path: path.display().to_string(),
            reason,
        })
    };
    std::panic::catch_unwind(decode).unwrap_or_else(|payload| {
        let msg = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        Err(Error::ImageDecode {
            path: path.display().to_string(),
            reason: format!("internal error while decoding: {msg}"),
        })
    })
}

fn label_for(path: &Path, label: &Label, csv: Option<&Vec<(String, String)>>) -> Option<String> {
    match label {
        Label::None => None,
        Label::ParentDir => path
            .parent()
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned()),
        Label::Csv(_) => {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let full = path.display().to_string();
            csv?.iter()
                .find(|(f, _)| *f == name || *f == full)
                .map(|(_, l)| l.clone())
        }
    }
}

/// `file,label` lines; a first line `file,label` is a header.
fn read_label_csv(path: &Path) -> Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || (n == 0 && line.eq_ignore_ascii_case("file,label")) {
            continue;
        }
        let (f, l) = line.split_once(',').ok_or_else(|| {
            Error::InvalidArgument(format!(
                "{}:{}: expected 'file,label', got '{line}'",
                path.display(),
                n + 1
            ))
        })?;
        out.push((f.trim().to_string(), l.trim().to_string()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_takes_image_extensions_and_a_glob_takes_what_it_matches() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("sub")).unwrap();
        for f in [
            "a.JPG",
            "b.jpeg",
            "sub/c.png",
            "d.WebP",
            "README",
            ".DS_Store",
            "MANIFEST.txt",
            "e.jpg.bak",
        ] {
            std::fs::write(d.join(f), b"x").unwrap();
        }
        let root = d.display().to_string();
        let names = |v: Vec<PathBuf>| -> Vec<String> {
            v.iter()
                .map(|p| p.strip_prefix(d).unwrap().display().to_string())
                .collect()
        };
        assert_eq!(
            names(expand_sources(&root).unwrap()),
            ["a.JPG", "b.jpeg", "d.WebP", "sub/c.png"]
        );
        assert_eq!(names(expand_sources(&format!("{root}/")).unwrap()).len(), 4);
        // A glob means exactly what it matches.
        assert_eq!(
            names(expand_sources(&format!("{root}/*")).unwrap()),
            [
                ".DS_Store",
                "MANIFEST.txt",
                "README",
                "a.JPG",
                "b.jpeg",
                "d.WebP",
                "e.jpg.bak"
            ]
        );
        let only_text = d.join("sub2");
        std::fs::create_dir(&only_text).unwrap();
        std::fs::write(only_text.join("README.md"), b"x").unwrap();
        let err = expand_sources(&only_text.display().to_string())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no image files") && err.contains("1 other files ignored"),
            "{err}"
        );
        let err = expand_sources(&format!("{root}/*.gif"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("no files match"), "{err}");
    }

    /// A file with this name panics inside the decoder (test builds only).
    pub(super) const PANIC_MARKER: &str = "spectradb-test-panic.jpg";

    /// Each data file written in this test process, with the thread that wrote it.
    static WRITERS: Mutex<Vec<(PathBuf, std::thread::ThreadId)>> = Mutex::new(Vec::new());

    pub(super) fn record_writer(path: &Path) {
        WRITERS
            .lock()
            .unwrap()
            .push((path.to_path_buf(), std::thread::current().id()));
    }

    #[test]
    fn with_two_threads_a_round_is_written_while_the_next_one_decodes() {
        use crate::storage::catalog::DatabaseDir;
        use crate::storage::{BandSelection, ImageFileReader};
        use arrow_array::{Array, UInt64Array};

        let dir = tempfile::tempdir().unwrap();
        let files: Vec<PathBuf> = (0..5u32)
            .map(|i| {
                let p = dir.path().join(format!("img{i}.png"));
                image::RgbImage::from_pixel(9 + i, 7, image::Rgb([200, 30, 10 * i as u8]))
                    .save(&p)
                    .unwrap();
                p
            })
            .collect();
        let db = DatabaseDir::open(dir.path().join("db")).unwrap();
        let me = std::thread::current().id();
        for threads in [1, 2] {
            let table = format!("t{threads}");
            let mut tx = db.begin().unwrap();
            let opts = IngestOptions {
                images_per_file: 2,
                threads,
                ..Default::default()
            };
            let report = ingest(&mut tx, &table, true, &files, &opts, &|_| {}).unwrap();
            tx.commit().unwrap();
            assert_eq!(report.ingested, 5);
            let catalog = db.read_catalog().unwrap();
            let entry = &catalog.tables[&table];
            assert_eq!(
                entry.files.iter().map(|f| f.rows).collect::<Vec<_>>(),
                [2, 2, 1]
            );
            // Ids follow the input order across rounds, whoever wrote them.
            let mut ids = Vec::new();
            let mut widths = Vec::new();
            for f in &entry.files {
                let r = ImageFileReader::open(db.root().join(&f.path)).unwrap();
                for b in r
                    .scan(&["id", "width"], &BandSelection::none(), 16)
                    .unwrap()
                {
                    let b = b.unwrap().batch;
                    let col = |n: &str| b.column_by_name(n).unwrap().clone();
                    let id = col("id");
                    let id = id.as_any().downcast_ref::<UInt64Array>().unwrap();
                    ids.extend(id.values().iter().copied());
                    let w = col("width");
                    let w = w
                        .as_any()
                        .downcast_ref::<arrow_array::UInt32Array>()
                        .unwrap();
                    widths.extend(w.values().iter().copied());
                }
            }
            assert_eq!(ids, [0, 1, 2, 3, 4]);
            assert_eq!(widths, [9, 10, 11, 12, 13]);
            let writers = WRITERS.lock().unwrap();
            for f in &entry.files {
                let (_, thread) = writers
                    .iter()
                    .find(|(p, _)| p.ends_with(&f.path))
                    .expect("every data file was recorded");
                if threads == 1 {
                    assert_eq!(*thread, me, "one thread writes where it decodes");
                } else {
                    assert_ne!(
                        *thread, me,
                        "{} was not written off the decoding loop",
                        f.path
                    );
                }
            }
        }
    }

    #[test]
    fn a_panicking_decode_is_that_files_error_not_the_ingests() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.png");
        image::RgbImage::from_pixel(9, 7, image::Rgb([200, 30, 30]))
            .save(&good)
            .unwrap();
        let bad = dir.path().join(PANIC_MARKER);
        std::fs::write(&bad, b"whatever").unwrap();
        let files = vec![bad.clone(), good, bad];
        let out = decode_parallel(&files, &SourceOptions::default(), 2, &|_| {});
        assert_eq!(out.len(), 3);
        assert_eq!(out[1].as_ref().unwrap().width(), 9);
        for r in [&out[0], &out[2]] {
            let err = r.as_ref().unwrap_err().to_string();
            assert!(err.contains(PANIC_MARKER), "{err}");
            assert!(
                err.contains("internal error while decoding: injected decoder panic"),
                "{err}"
            );
        }
    }

    #[test]
    fn label_csv_parses_and_reports_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("labels.csv");
        std::fs::write(&p, "file,label\na.jpg, cat\nb.jpg,dog\n").unwrap();
        let v = read_label_csv(&p).unwrap();
        assert_eq!(
            v,
            vec![
                ("a.jpg".into(), "cat".into()),
                ("b.jpg".into(), "dog".into())
            ]
        );
        assert_eq!(
            label_for(Path::new("x/a.jpg"), &Label::Csv(p.clone()), Some(&v)),
            Some("cat".into())
        );
        assert_eq!(
            label_for(Path::new("x/zebra/c.jpg"), &Label::ParentDir, None),
            Some("zebra".into())
        );
        std::fs::write(&p, "a.jpg cat\n").unwrap();
        let err = read_label_csv(&p).unwrap_err().to_string();
        assert!(err.contains("labels.csv:1"), "{err}");
    }
}
