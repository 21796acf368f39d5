//! spectradb's errors as Python exceptions.
//!
//! One base class, `spectradb.Error`, so that `except spectradb.Error`
//! catches whatever the database refused; a failed statement's exception
//! carries the statement and the reason apart (`.statement`, `.reason`)
//! as well as in its message.

use pyo3::exceptions::PyException;
use pyo3::prelude::*;

pyo3::create_exception!(
    spectradb,
    Error,
    PyException,
    "A statement or call that spectradb refused: the message says what and where."
);
pyo3::create_exception!(
    spectradb,
    Interrupted,
    Error,
    "A statement stopped by `Connection.interrupt()`; nothing it wrote was committed."
);

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("Error", py.get_type::<Error>())?;
    m.add("Interrupted", py.get_type::<Interrupted>())?;
    Ok(())
}

/// The statement on one line, cut after 80 characters (as the shell shows it).
pub fn one_line(sql: &str) -> String {
    let line = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(80) {
        Some((i, _)) => format!("{} ...", &line[..i]),
        None => line,
    }
}

/// `Error` for statement `sql` that failed with `reason`.
pub fn statement_error(py: Python<'_>, sql: &str, reason: impl std::fmt::Display) -> PyErr {
    with_statement(
        py,
        Error::new_err(format!("statement `{}`: {reason}", one_line(sql))),
        sql,
        &reason.to_string(),
    )
}

/// `Interrupted` for statement `sql`.
pub fn interrupted(py: Python<'_>, sql: &str) -> PyErr {
    let reason = "interrupted: the statement was cancelled";
    with_statement(
        py,
        Interrupted::new_err(format!("statement `{}`: {reason}", one_line(sql))),
        sql,
        reason,
    )
}

fn with_statement(py: Python<'_>, err: PyErr, sql: &str, reason: &str) -> PyErr {
    let value = err.value(py);
    // Setting attributes on a fresh exception object cannot fail.
    let _ = value.setattr("statement", sql);
    let _ = value.setattr("reason", reason);
    err
}

/// `Error` for a call that names no statement (an image value, say).
pub fn error(reason: impl std::fmt::Display) -> PyErr {
    Error::new_err(reason.to_string())
}
