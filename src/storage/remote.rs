//! Files on object storage: S3 and S3-compatible stores, through the
//! `object_store` crate DataFusion uses.
//!
//! A *location* is a local path or an `s3://bucket/key` URL carried in a
//! `Path`, so that catalog entries, scan ranges and error messages keep one
//! type; [`is_remote`] tells them apart, and the functions here
//! ([`file_size`], [`read_all`], [`remove`]) take either.
//!
//! spectradb's file I/O is synchronous (scans run on the blocking pool,
//! ingest on threads of its own), so each request runs on a small runtime
//! of this module's and the caller waits for it: any thread may call in,
//! an async worker included, without nesting runtimes.
//!
//! A store is configured per bucket from the AWS environment variables
//! (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`, ...) and then
//! the `aws_*` options a statement gives (`WITH (aws_endpoint = ...)`).
//! Options without secrets are kept with the table in the catalog
//! ([`public_options`]); credentials stay in this process's memory.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, RetryConfig};

use crate::error::{Error, Result};

/// The one scheme spectradb reads and writes.
pub const SCHEME: &str = "s3://";

/// The reason of a store error for an object that is not there.
const NOT_FOUND: &str = "no such object";

/// Options that hold secrets: used for requests, never written down.
const SECRET_OPTIONS: [&str; 3] = [
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
];

/// Whether `location` is an object URL rather than a local path.
pub fn is_remote(location: &Path) -> bool {
    location.to_str().is_some_and(|s| s.starts_with(SCHEME))
}

/// Where a catalog path lies: an object URL as it is, a relative path
/// under the database directory `root`.
pub fn locate(root: &Path, path: &str) -> PathBuf {
    if path.starts_with(SCHEME) {
        PathBuf::from(path)
    } else {
        root.join(path)
    }
}

/// `url` as a folder: with one trailing `/`.
pub fn as_folder(url: &str) -> String {
    format!("{}/", url.trim_end_matches('/'))
}

/// Checks that a table's `location` option names an object store folder.
pub fn check_location(location: &str) -> Result<()> {
    if !is_remote(Path::new(location)) {
        return Err(Error::InvalidArgument(format!(
            "location = '{location}': expected an {SCHEME} folder (tables in the database directory need no location)"
        )));
    }
    split_url(location).map(|_| ())
}

/// Whether an option key is a store option (`aws_*`).
pub fn is_store_option(key: &str) -> bool {
    key.starts_with("aws_")
}

/// The options of `options` that may be kept in the catalog.
pub fn public_options(options: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    options
        .iter()
        .filter(|(k, _)| !SECRET_OPTIONS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// One object of a store.
#[derive(Clone)]
pub struct RemoteFile {
    store: Arc<dyn ObjectStore>,
    key: ObjectPath,
    url: String,
}

impl std::fmt::Debug for RemoteFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.url)
    }
}

/// The buckets' stores and the options they were built with.
#[derive(Default)]
struct Stores {
    options: HashMap<String, BTreeMap<String, String>>,
    built: HashMap<String, Arc<dyn ObjectStore>>,
}

fn stores() -> &'static Mutex<Stores> {
    static STORES: OnceLock<Mutex<Stores>> = OnceLock::new();
    STORES.get_or_init(Mutex::default)
}

/// Sets options of the bucket of `url` (over those given before; an
/// option a later statement gives wins). Checks each key.
pub fn configure(url: &str, options: &BTreeMap<String, String>) -> Result<()> {
    let (bucket, _) = split_url(url)?;
    for key in options.keys() {
        key.parse::<AmazonS3ConfigKey>().map_err(|_| {
            Error::InvalidArgument(format!(
                "unknown store option '{key}' (valid: aws_endpoint, aws_region, aws_access_key_id, aws_secret_access_key, aws_session_token, aws_allow_http, aws_virtual_hosted_style_request, ...)"
            ))
        })?;
    }
    let mut s = stores().lock().expect("stores lock");
    let merged = s.options.entry(bucket.to_string()).or_default();
    let before = merged.clone();
    merged.extend(options.iter().map(|(k, v)| (k.clone(), v.clone())));
    if *merged != before {
        s.built.remove(bucket);
    }
    Ok(())
}

/// Sets options of the bucket of `url` that no statement of this process
/// gave yet (those kept in the catalog, when a database opens).
pub fn configure_defaults(url: &str, options: &BTreeMap<String, String>) -> Result<()> {
    let (bucket, _) = split_url(url)?;
    let missing: BTreeMap<String, String> = {
        let s = stores().lock().expect("stores lock");
        let given = s.options.get(bucket);
        options
            .iter()
            .filter(|(k, _)| given.is_none_or(|g| !g.contains_key(*k)))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    configure(url, &missing)
}

/// `s3://bucket/key` -> (bucket, key).
fn split_url(url: &str) -> Result<(&str, &str)> {
    let rest = url
        .strip_prefix(SCHEME)
        .ok_or_else(|| Error::InvalidArgument(format!("'{url}' is not an {SCHEME} URL")))?;
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(Error::InvalidArgument(format!("'{url}': no bucket name")));
    }
    Ok((bucket, key))
}

/// The store of `bucket`, built on first use.
fn store(bucket: &str) -> Result<Arc<dyn ObjectStore>> {
    let mut s = stores().lock().expect("stores lock");
    if let Some(store) = s.built.get(bucket) {
        return Ok(store.clone());
    }
    let options = s.options.get(bucket).cloned().unwrap_or_default();
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
    for (key, value) in &options {
        let key: AmazonS3ConfigKey = key
            .parse()
            .map_err(|_| Error::InvalidArgument(format!("unknown store option '{key}'")))?;
        builder = builder.with_config(key, value);
    }
    // A plain-HTTP endpoint (a store on the local network) is allowed
    // without a separate switch.
    let endpoint = options
        .get("aws_endpoint")
        .cloned()
        .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
        .or_else(|| std::env::var("AWS_ENDPOINT").ok());
    if endpoint.is_some_and(|e| e.starts_with("http://")) {
        builder = builder.with_allow_http(true);
    }
    // Report a store that is down or refuses us within seconds, not after
    // minutes of retries.
    builder = builder.with_retry(RetryConfig {
        max_retries: 2,
        retry_timeout: Duration::from_secs(20),
        ..RetryConfig::default()
    });
    let built: Arc<dyn ObjectStore> = Arc::new(
        builder
            .build()
            .map_err(|e| Error::InvalidArgument(format!("s3://{bucket}: {e}")))?,
    );
    s.built.insert(bucket.to_string(), built.clone());
    Ok(built)
}

/// The runtime every store request runs on.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("spectradb-store")
            .enable_all()
            .build()
            .expect("the object store runtime starts")
    })
}

/// Runs `request` on the store runtime and waits for it.
fn wait<T: Send + 'static>(request: impl Future<Output = T> + Send + 'static) -> T {
    let task = runtime().spawn(request);
    match futures::executor::block_on(task) {
        Ok(v) => v,
        Err(e) => match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => panic!("an object store request was cancelled: {e}"),
        },
    }
}

/// A store error as spectradb's, naming the object and saying what to
/// check for the common causes.
fn store_error(url: &str, e: object_store::Error) -> Error {
    let text = e.to_string();
    let denied = matches!(
        e,
        object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. }
    ) || ["403 Forbidden", "401 Unauthorized"]
        .iter()
        .any(|s| text.contains(s));
    // S3 says why in an XML body: its code and message are the useful part.
    let between = |open: &str, close: &str| {
        let start = text.find(open)? + open.len();
        Some(&text[start..start + text[start..].find(close)?])
    };
    let said = match (
        between("<Code>", "</Code>"),
        between("<Message>", "</Message>"),
    ) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        _ => text.clone(),
    };
    let reason = match e {
        object_store::Error::NotFound { .. } => NOT_FOUND.to_string(),
        // (The Flight server gives this prefix PermissionDenied.)
        _ if denied => format!(
            "access denied ({said}): check the credentials (the aws_access_key_id and aws_secret_access_key options, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
        ),
        _ => said,
    };
    Error::Store {
        url: url.to_string(),
        reason,
    }
}

impl RemoteFile {
    /// The object at `url` (`s3://bucket/key`).
    pub fn new(url: &str) -> Result<Self> {
        let (bucket, key) = split_url(url)?;
        if key.is_empty() || key.ends_with('/') {
            return Err(Error::InvalidArgument(format!(
                "'{url}' names a folder, not an object"
            )));
        }
        let key =
            ObjectPath::parse(key).map_err(|e| Error::InvalidArgument(format!("'{url}': {e}")))?;
        Ok(RemoteFile {
            store: store(bucket)?,
            key,
            url: url.to_string(),
        })
    }

    /// An object of `store` that stands for `url` (tests: an in-memory
    /// store behaves as S3 does, without a server).
    #[cfg(test)]
    pub(crate) fn in_store(store: Arc<dyn ObjectStore>, key: &str, url: &str) -> Self {
        RemoteFile {
            store,
            key: ObjectPath::from(key),
            url: url.to_string(),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Runs the request `call` makes of the object's store and key, and
    /// names the object in its error.
    fn request<T, F>(&self, call: impl FnOnce(Arc<dyn ObjectStore>, ObjectPath) -> F) -> Result<T>
    where
        T: Send + 'static,
        F: Future<Output = object_store::Result<T>> + Send + 'static,
    {
        wait(call(self.store.clone(), self.key.clone())).map_err(|e| store_error(&self.url, e))
    }

    /// The object's size in bytes (one HEAD request).
    pub fn size(&self) -> Result<u64> {
        self.request(|store, key| async move { store.head(&key).await.map(|m| m.size) })
    }

    /// Bytes `range` of the object (one ranged GET).
    pub fn read_range(&self, range: Range<u64>) -> Result<Bytes> {
        self.request(|store, key| async move { store.get_range(&key, range).await })
    }

    /// Bytes `ranges` of the object, up to [`CONCURRENT_GETS`] GETs at a
    /// time: a scan's column chunks in a few round trips, not one each.
    pub fn read_ranges(&self, ranges: Vec<Range<u64>>) -> Result<Vec<Bytes>> {
        self.request(|store, key| async move {
            futures::stream::iter(ranges)
                .map(|r| {
                    let (store, key) = (store.clone(), key.clone());
                    async move { store.get_range(&key, r).await }
                })
                .buffered(CONCURRENT_GETS)
                .try_collect::<Vec<_>>()
                .await
        })
    }

    /// The whole object.
    pub fn read_all(&self) -> Result<Bytes> {
        self.request(|store, key| async move { store.get(&key).await?.bytes().await })
    }

    /// Uploads the local file `from` as this object, in parts of 8 MiB (a
    /// failed upload leaves no object behind: its parts are aborted).
    pub fn upload(&self, from: &Path) -> Result<()> {
        let data = Bytes::from(std::fs::read(from).map_err(|e| Error::io(from, e))?);
        self.request(|store, key| async move {
            if data.len() <= PART_BYTES {
                return store.put(&key, PutPayload::from(data)).await.map(|_| ());
            }
            let mut upload = store.put_multipart(&key).await?;
            let mut outcome = Ok(());
            for at in (0..data.len()).step_by(PART_BYTES) {
                let part = data.slice(at..(at + PART_BYTES).min(data.len()));
                outcome = upload.put_part(PutPayload::from(part)).await;
                if outcome.is_err() {
                    break;
                }
            }
            if outcome.is_ok() {
                outcome = upload.complete().await.map(|_| ());
            }
            if outcome.is_err() {
                let _ = upload.abort().await;
            }
            outcome
        })
    }

    /// Deletes the object (a missing one is not an error).
    pub fn delete(&self) -> Result<()> {
        match self.request(|store, key| async move { store.delete(&key).await }) {
            Err(e) if is_not_found(&e) => Ok(()),
            other => other,
        }
    }
}

/// Most GETs [`RemoteFile::read_ranges`] has in flight.
pub const CONCURRENT_GETS: usize = 16;

/// Size of the parts of a multipart upload.
const PART_BYTES: usize = 8 << 20;

/// Every object under the folder `prefix` (`s3://bucket/photos/`), with
/// its size, sorted by URL.
pub fn list(prefix: &str) -> Result<Vec<(String, u64)>> {
    let (bucket, key) = split_url(prefix)?;
    let store = store(bucket)?;
    let folder = key.trim_end_matches('/');
    let folder = (!folder.is_empty())
        .then(|| ObjectPath::parse(folder))
        .transpose()
        .map_err(|e| Error::InvalidArgument(format!("'{prefix}': {e}")))?;
    let metas = wait(async move { store.list(folder.as_ref()).try_collect::<Vec<_>>().await })
        .map_err(|e| store_error(prefix, e))?;
    let mut out: Vec<(String, u64)> = metas
        .into_iter()
        .map(|m| (format!("{SCHEME}{bucket}/{}", m.location), m.size))
        .collect();
    out.sort();
    Ok(out)
}

/// Whether `e` says that a file or object is not there.
pub fn is_not_found(e: &Error) -> bool {
    match e {
        Error::Io { source, .. } => source.kind() == std::io::ErrorKind::NotFound,
        Error::Store { reason, .. } => reason == NOT_FOUND,
        _ => false,
    }
}

/// The object URL `location` holds, if it is one.
fn url_of(location: &Path) -> Option<&str> {
    location.to_str().filter(|s| s.starts_with(SCHEME))
}

/// The size of the file or object at `location`.
pub fn file_size(location: &Path) -> Result<u64> {
    match url_of(location) {
        Some(url) => RemoteFile::new(url)?.size(),
        None => std::fs::metadata(location)
            .map(|m| m.len())
            .map_err(|e| Error::io(location, e)),
    }
}

/// The whole file or object at `location`.
pub fn read_all(location: &Path) -> Result<Bytes> {
    match url_of(location) {
        Some(url) => RemoteFile::new(url)?.read_all(),
        None => std::fs::read(location)
            .map(Bytes::from)
            .map_err(|e| Error::io(location, e)),
    }
}

/// Deletes the file or object at `location`; true when something was
/// there to delete.
pub fn remove(location: &Path) -> Result<bool> {
    match url_of(location) {
        Some(url) => {
            let object = RemoteFile::new(url)?;
            RemoteFile::delete(&object)?;
            Ok(true)
        }
        None => match std::fs::remove_file(location) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io(location, e)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_bucket_and_key_and_folders_are_not_objects() {
        assert_eq!(split_url("s3://b/a/c.jpg").unwrap(), ("b", "a/c.jpg"));
        assert_eq!(split_url("s3://b").unwrap(), ("b", ""));
        assert!(split_url("s3:///k").is_err());
        assert!(split_url("/tmp/x").is_err());
        let err = RemoteFile::new("s3://b/photos/").unwrap_err().to_string();
        assert!(err.contains("names a folder"), "{err}");
        assert!(is_remote(Path::new("s3://b/k")));
        assert!(!is_remote(Path::new("tables/t/part.parquet")));
    }

    #[test]
    fn secrets_are_not_kept_and_unknown_options_are_refused() {
        let options: BTreeMap<String, String> = [
            ("aws_endpoint", "http://127.0.0.1:1"),
            ("aws_access_key_id", "k"),
            ("aws_secret_access_key", "s"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let kept = public_options(&options);
        assert_eq!(kept.keys().collect::<Vec<_>>(), ["aws_endpoint"]);
        let bad: BTreeMap<String, String> = [("aws_colour".to_string(), "x".to_string())].into();
        let err = configure("s3://unit-test-bucket/x", &bad)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown store option 'aws_colour'"), "{err}");
    }
}
