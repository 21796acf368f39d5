//! `connect()`: a database and one client of it.
//!
//! Connections to the same directory in one process share one
//! [`Database`] (its catalog lock, cache and loaded models), as two
//! `duckdb.connect(path)` calls do; each connection keeps its own `SET`
//! settings.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, Weak};

use pyo3::prelude::*;
use spectradb::Database;

use crate::errors::{self, interrupted, statement_error};
use crate::relation::Relation;
use crate::tensors::{self, LoaderOptions, TensorLoader};
use crate::waiting::{runtime, wait, OnStop, Stopped};

/// Databases open in this process, by absolute directory.
static OPEN: Mutex<Option<HashMap<PathBuf, Weak<Database>>>> = Mutex::new(None);

/// The open database in `path`, or a newly opened one.
fn shared_database(path: PathBuf) -> spectradb::Result<Arc<Database>> {
    let key = std::path::absolute(&path).unwrap_or(path);
    let mut open = OPEN.lock().unwrap_or_else(|e| e.into_inner());
    let open = open.get_or_insert_with(HashMap::new);
    if let Some(db) = open.get(&key).and_then(Weak::upgrade) {
        return Ok(db);
    }
    let db = Arc::new(Database::open(&key)?);
    open.retain(|_, db| db.strong_count() > 0);
    open.insert(key, Arc::downgrade(&db));
    Ok(db)
}

/// Opens the database in directory `path` (created when missing), or an
/// in-memory one without a path.
#[pyfunction]
#[pyo3(signature = (path=None))]
pub fn connect(py: Python<'_>, path: Option<PathBuf>) -> PyResult<Connection> {
    let rt = runtime()?;
    let shown = path.as_ref().map(|p| p.display().to_string());
    let db = py
        .detach(|| {
            let _inside = rt.enter();
            match path {
                Some(p) => shared_database(p),
                None => Database::in_memory().map(Arc::new),
            }
        })
        .map_err(|e| match &shown {
            Some(p) => errors::error(format!("cannot open database {p}: {e}")),
            None => errors::error(format!("cannot open an in-memory database: {e}")),
        })?;
    Ok(Connection {
        open: Mutex::new(Some(Open {
            client: Arc::new(db.connect()),
            db,
        })),
        interrupt: Arc::new(AtomicBool::new(false)),
    })
}

struct Open {
    db: Arc<Database>,
    client: Arc<spectradb::db::Connection>,
}

/// A connection to a spectradb database (see `spectradb.connect`).
#[pyclass(module = "spectradb._spectradb", frozen)]
pub struct Connection {
    /// `None` once closed.
    open: Mutex<Option<Open>>,
    /// Set by `interrupt()`, watched by whatever this connection runs.
    interrupt: Arc<AtomicBool>,
}

impl Connection {
    fn parts(&self) -> PyResult<(Arc<Database>, Arc<spectradb::db::Connection>)> {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        match open.as_ref() {
            Some(o) => Ok((o.db.clone(), o.client.clone())),
            None => Err(errors::error("the connection is closed")),
        }
    }
}

#[pymethods]
impl Connection {
    /// Runs one statement. A query's result is computed when it is read
    /// (`.arrow()`, `.fetchall()`, ...); a statement that changes the
    /// database runs now, and its result is its summary.
    fn sql(&self, py: Python<'_>, query: &str) -> PyResult<Relation> {
        let (db, client) = self.parts()?;
        let owned = query.to_string();
        let run = client.clone();
        let outcome = wait(
            py,
            async move { run.sql(&owned).await },
            &self.interrupt,
            OnStop::Finish(db.interrupt_flag()),
        )?;
        for warning in db.take_warnings() {
            PyErr::warn(
                py,
                py.get_type::<pyo3::exceptions::PyUserWarning>().as_any(),
                &std::ffi::CString::new(warning).unwrap_or_default(),
                1,
            )?;
        }
        match outcome {
            Ok(Ok(df)) => Ok(Relation::new(df, query, self.interrupt.clone())),
            Ok(Err(e)) => Err(statement_error(py, query, e)),
            Err(Stopped::Signal(signal)) => Err(signal),
            Err(Stopped::Interrupt) => Err(interrupted(py, query)),
        }
    }

    /// Stops the statement this connection is running (from another
    /// thread): it raises `spectradb.Interrupted`.
    fn interrupt(&self) {
        self.interrupt
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Closes the connection; the database closes with its last one.
    fn close(&self) {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).take();
    }

    /// Whether `close()` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_none()
    }

    /// The database directory (a temporary one for an in-memory database).
    #[getter]
    fn path(&self) -> PyResult<PathBuf> {
        Ok(self.parts()?.0.path().to_path_buf())
    }

    /// The input tensor of model `model` (or ImageNet's at `size`) for
    /// one image value.
    #[pyo3(signature = (value, *, model=None, size=None))]
    fn tensor<'py>(
        &self,
        py: Python<'py>,
        value: &[u8],
        model: Option<String>,
        size: Option<u32>,
    ) -> PyResult<Bound<'py, numpy::PyArray3<f32>>> {
        let (db, _) = self.parts()?;
        let args = tensors::tensor_spec(&db, model.as_deref(), size)?;
        crate::images::tensor_array(py, value, &args)
    }

    /// A loader of training batches from `query` (see the Python docs of
    /// `Connection.tensors`): the query runs now, batches decode later.
    #[pyo3(signature = (query, *, size=None, batch=64, shuffle=false, seed=0, workers=None, model=None, image=None, drop_last=false))]
    #[allow(clippy::too_many_arguments)] // Python keyword arguments, one each
    fn tensors(
        &self,
        py: Python<'_>,
        query: &str,
        size: Option<u32>,
        batch: usize,
        shuffle: bool,
        seed: u64,
        workers: Option<usize>,
        model: Option<String>,
        image: Option<String>,
        drop_last: bool,
    ) -> PyResult<TensorLoader> {
        let (db, _) = self.parts()?;
        let spec = tensors::tensor_spec(&db, model.as_deref(), size)?;
        let relation = self.sql(py, query)?;
        let batches = relation.collect_batches(py)?;
        let options = LoaderOptions {
            spec,
            batch,
            shuffle,
            seed,
            workers: workers.unwrap_or_else(spectradb::model::default_threads),
            drop_last,
        };
        TensorLoader::new(py, query, batches, image.as_deref(), options)
    }
}
