//! Running a planned query for a client: batch by batch, with
//! back-pressure, under the server's limits, on the CPU runtime.
//!
//! Plans run on a tokio runtime of their own ([`CpuRuntime`]), not on the
//! one that serves gRPC: model inference and scans keep every core busy
//! for seconds, and the calls of other clients (`SELECT 1`, metadata) must
//! not wait behind them. Each `DoGet` runs its plan in a task there that
//! hands batches through a channel of two to a task on the network
//! runtime, which encodes them and hands them to the response through a
//! channel of two. The network task waits while the client is not reading
//! (HTTP/2 flow control fills the channel), stops when the client drops
//! the stream, gives up on a client that reads nothing for the idle
//! timeout, and stops when the server shuts down past its grace period.
//! Whenever it stops early it cancels the query's [`QueryCancel`] and
//! drops its end of the channel, so the plan's task drops the plan (which
//! stops its partitions and scans) and a model function inside a batch
//! stops before its next chunk of images. The plan's task holds one of the
//! server's query permits while it runs.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::FlightData;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::{execute_stream, ExecutionPlan};
use futures::{Future, Stream, StreamExt, TryStreamExt};
use tokio::runtime::{Handle, Runtime};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tonic::Status;

use super::status::to_status;
use crate::cancel::QueryCancel;
use crate::error::{Error, Result};

/// The response stream of `DoGet`.
pub(super) type FlightStream = Pin<Box<dyn Stream<Item = Result<FlightData, Status>> + Send>>;

/// What the server is doing, for monitoring and tests.
#[derive(Debug, Default)]
pub struct ServeStats {
    running: AtomicUsize,
    finished: AtomicU64,
}

impl ServeStats {
    /// Queries whose results are being produced right now.
    pub fn running_queries(&self) -> usize {
        self.running.load(Ordering::SeqCst)
    }

    /// Queries that ended (completed, failed, cancelled or abandoned).
    pub fn finished_queries(&self) -> u64 {
        self.finished.load(Ordering::SeqCst)
    }
}

/// Counts a running query until dropped.
struct Running(Arc<ServeStats>);

impl Running {
    fn new(stats: Arc<ServeStats>) -> Self {
        stats.running.fetch_add(1, Ordering::SeqCst);
        Running(stats)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
        self.0.finished.fetch_add(1, Ordering::SeqCst);
    }
}

/// The runtime queries run on, apart from the network's (see the module
/// docs). Dropping it does not wait for its tasks: a runtime cannot be
/// dropped inside another one, and the server has stopped them by then.
pub(super) struct CpuRuntime(Option<Runtime>);

impl CpuRuntime {
    /// A multi-threaded runtime with `threads` workers.
    pub(super) fn new(threads: usize) -> Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("spectradb-cpu")
            .enable_all()
            .build()
            .map_err(|e| Error::Internal(format!("cannot start the query runtime: {e}")))?;
        Ok(CpuRuntime(Some(rt)))
    }

    pub(super) fn handle(&self) -> Handle {
        self.0
            .as_ref()
            .expect("the runtime lives until drop")
            .handle()
            .clone()
    }
}

impl Drop for CpuRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// The limits every query runs under.
pub(super) struct Limits {
    pub(super) permits: Arc<Semaphore>,
    pub(super) max_queries: usize,
    pub(super) idle_timeout: Duration,
    /// Batches are split into messages of about this many bytes.
    pub(super) max_flight_data: usize,
    /// Becomes true when running queries must stop (shutdown).
    pub(super) stop: watch::Receiver<bool>,
    pub(super) stats: Arc<ServeStats>,
    /// Where plans run (see [`CpuRuntime`]).
    pub(super) cpu: Handle,
}

impl Limits {
    /// A query permit; waits for one up to the idle timeout.
    pub(super) async fn permit(&self) -> Result<OwnedSemaphorePermit, Status> {
        match tokio::time::timeout(self.idle_timeout, self.permits.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) => Err(Status::unavailable("the server is shutting down")),
            Err(_) => Err(Status::resource_exhausted(format!(
                "the server runs at most {} queries at a time and none finished within {} s: try again later",
                self.max_queries,
                self.idle_timeout.as_secs()
            ))),
        }
    }

    /// Runs `work` (planning, a statement that changes the database) on
    /// the CPU runtime. It runs to its end even if the caller goes away: a
    /// write commits or rolls back whole.
    pub(super) async fn on_cpu<T: Send + 'static>(
        &self,
        work: impl Future<Output = T> + Send + 'static,
    ) -> Result<T, Status> {
        self.cpu
            .spawn(work)
            .await
            .map_err(|e| match e.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                Err(e) => Status::cancelled(format!("the statement was cancelled: {e}")),
            })
    }

    /// Streams the results of `plan` to the client (see the module docs).
    pub(super) fn stream(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        task: Arc<TaskContext>,
        schema: SchemaRef,
        permit: OwnedSemaphorePermit,
    ) -> FlightStream {
        let cancel = QueryCancel::of_task(&task);
        let (batch_tx, batch_rx) = mpsc::channel(2);
        let running = Running::new(self.stats.clone());
        self.cpu.spawn(async move {
            let _permit = permit;
            let _running = running;
            let mut batches = match execute_stream(plan, task) {
                Ok(s) => s,
                Err(e) => {
                    let _ = batch_tx.send(Err(e)).await;
                    return;
                }
            };
            loop {
                let next = tokio::select! {
                    next = batches.next() => next,
                    _ = batch_tx.closed() => return,
                };
                let Some(item) = next else { return };
                if batch_tx.send(item).await.is_err() {
                    return;
                }
            }
        });
        let batches = tokio_stream_from(batch_rx)
            .map_err(|e| FlightError::Tonic(Box::new(to_status(Error::from(e)))));
        let (tx, rx) = mpsc::channel::<Result<FlightData, Status>>(2);
        // Why the task gave up, for the client once it reads again.
        let abandoned: Arc<Mutex<Option<Status>>> = Arc::default();
        let idle = self.idle_timeout;
        let mut stop = self.stop.clone();
        let max_size = self.max_flight_data;
        let why = abandoned.clone();
        tokio::spawn(async move {
            // However this task ends, nothing of the query may run on.
            let _cancel = CancelOnDrop(cancel);
            let mut flight = FlightDataEncoderBuilder::new()
                .with_schema(schema)
                .with_max_flight_data_size(max_size)
                .build(batches);
            loop {
                let next = tokio::select! {
                    next = flight.next() => next,
                    _ = tx.closed() => return, // the client dropped the stream
                    Ok(_) = stop.wait_for(|s| *s) => {
                        *why.lock().expect("abandoned lock") =
                            Some(Status::cancelled("the server is shutting down; the query was cancelled"));
                        return;
                    }
                };
                let Some(item) = next else { return };
                let item = item.map_err(Status::from);
                let failed = item.is_err();
                match tokio::time::timeout(idle, tx.send(item)).await {
                    Ok(Ok(())) if !failed => {}
                    Ok(_) => return,
                    Err(_) => {
                        *why.lock().expect("abandoned lock") = Some(Status::deadline_exceeded(format!(
                            "the client read nothing for {} s (the server's idle timeout); the query was stopped",
                            idle.as_secs()
                        )));
                        return;
                    }
                }
            }
        });
        let tail = futures::stream::once(async move {
            abandoned.lock().expect("abandoned lock").take().map(Err)
        })
        .filter_map(futures::future::ready);
        Box::pin(tokio_stream_from(rx).chain(tail))
    }
}

/// Cancels a query when dropped (a finished one has nothing left to stop).
struct CancelOnDrop(Option<QueryCancel>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(c) = &self.0 {
            c.cancel();
        }
    }
}

/// A receiver as a stream.
fn tokio_stream_from<T: Send + 'static>(
    mut rx: mpsc::Receiver<T>,
) -> impl Stream<Item = T> + Send + 'static {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// A stream of batches already in memory (metadata answers).
pub(super) fn batches_stream(schema: SchemaRef, batch: RecordBatch) -> FlightStream {
    let flight = FlightDataEncoderBuilder::new()
        .with_schema(schema)
        .build(futures::stream::once(async { Ok(batch) }))
        .map_err(Status::from);
    Box::pin(flight)
}
