//! The runtime statements run on, and waiting for them from Python.
//!
//! A statement runs as a task on one multi-threaded runtime per process;
//! the calling thread releases the GIL (other Python threads go on) and
//! takes it back every [`TICK`] only to look for Ctrl-C (a pending
//! `SIGINT`) and for `Connection.interrupt()`. A query that is stopped is
//! dropped and its model functions are told to stop between chunks; a
//! statement that writes is told to stop (CALIBRATE stores nothing) and
//! waited for, since it commits or rolls back as one transaction.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use spectradb::cancel::QueryCancel;
use tokio::runtime::Runtime;

/// How often a waiting thread looks for Ctrl-C and interrupts.
const TICK: Duration = Duration::from_millis(50);

/// The process's runtime and the process it was started in.
static RUNTIME: OnceLock<std::result::Result<(Runtime, u32), String>> = OnceLock::new();

/// The runtime, started on first use.
pub fn runtime() -> PyResult<&'static Runtime> {
    let (runtime, pid) = RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_name("spectradb")
                .build()
                .map(|rt| (rt, std::process::id()))
                .map_err(|e| format!("cannot start spectradb's runtime: {e}"))
        })
        .as_ref()
        .map_err(|e| PyRuntimeError::new_err(e.clone()))?;
    if *pid != std::process::id() {
        // A fork copies the runtime's state but none of its threads.
        return Err(PyRuntimeError::new_err(
            "spectradb was started before this process was forked, and a forked child \
             cannot use it: connect in the child, or load batches in the parent \
             (`Connection.tensors(..., workers=N)` decodes on threads; a PyTorch \
             DataLoader over it needs num_workers=0)",
        ));
    }
    Ok(runtime)
}

/// What to do with a statement once the user asked it to stop.
pub enum OnStop {
    /// Drop it at once (a query), cancelling its model functions.
    Abort(Option<QueryCancel>),
    /// Set the database's interrupt flag and wait for its end (a write).
    Finish(Arc<AtomicBool>),
}

/// Why a statement stopped before its end.
pub enum Stopped {
    /// Ctrl-C: `KeyboardInterrupt` (or what the signal handler raised).
    Signal(PyErr),
    /// `Connection.interrupt()`.
    Interrupt,
}

/// Runs `work` to its end with the GIL released, unless Ctrl-C or
/// `interrupt` stops it first (then `on_stop` says how).
pub fn wait<T: Send + 'static>(
    py: Python<'_>,
    work: impl Future<Output = T> + Send + 'static,
    interrupt: &AtomicBool,
    on_stop: OnStop,
) -> PyResult<Result<T, Stopped>> {
    let rt = runtime()?;
    // An interrupt asked for while nothing ran was for an earlier statement.
    interrupt.store(false, Ordering::Relaxed);
    let mut task = rt.spawn(work);
    let mut stopped: Option<Stopped> = None;
    loop {
        // The timer is made inside `block_on`: it needs the runtime's clock.
        let polled =
            py.detach(|| rt.block_on(async { tokio::time::timeout(TICK, &mut task).await }));
        if let Ok(joined) = polled {
            let value = joined.map_err(|e| {
                if e.is_panic() {
                    PyRuntimeError::new_err(format!("spectradb panicked: {e}"))
                } else {
                    PyRuntimeError::new_err(format!("the statement's task ended early: {e}"))
                }
            })?;
            return Ok(match stopped {
                Some(why) => Err(why),
                None => Ok(value),
            });
        }
        if stopped.is_some() {
            continue;
        }
        let why = match py.check_signals() {
            Err(signal) => Some(Stopped::Signal(signal)),
            Ok(()) if interrupt.swap(false, Ordering::Relaxed) => Some(Stopped::Interrupt),
            Ok(()) => None,
        };
        if let Some(why) = why {
            match &on_stop {
                OnStop::Abort(cancel) => {
                    if let Some(cancel) = cancel {
                        cancel.cancel();
                    }
                    task.abort();
                    return Ok(Err(why));
                }
                OnStop::Finish(flag) => {
                    flag.store(true, Ordering::Relaxed);
                    stopped = Some(why);
                }
            }
        }
    }
}
