//! Running a planned query for a client: batch by batch, with
//! back-pressure, under the server's limits.
//!
//! Each `DoGet` runs its plan in a task that hands encoded batches to the
//! response through a channel of two. The task waits while the client is
//! not reading (HTTP/2 flow control fills the channel), stops when the
//! client drops the stream (the channel closes and the plan is dropped,
//! which stops its partitions and scans), gives up on a client that reads
//! nothing for the idle timeout, and is cancelled when the server shuts
//! down past its grace period. It holds one of the server's query permits
//! while it runs.

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
use futures::{Stream, StreamExt, TryStreamExt};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tonic::Status;

use super::status::to_status;
use crate::error::Error;

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

    /// Streams the results of `plan` to the client (see the module docs).
    pub(super) fn stream(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        task: Arc<TaskContext>,
        schema: SchemaRef,
        permit: OwnedSemaphorePermit,
    ) -> FlightStream {
        let (tx, rx) = mpsc::channel::<Result<FlightData, Status>>(2);
        // Why the task gave up, for the client once it reads again.
        let abandoned: Arc<Mutex<Option<Status>>> = Arc::default();
        let idle = self.idle_timeout;
        let mut stop = self.stop.clone();
        let max_size = self.max_flight_data;
        let running = Running::new(self.stats.clone());
        let why = abandoned.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let _running = running;
            let batches = match execute_stream(plan, task) {
                Ok(s) => s.map_err(|e| FlightError::Tonic(Box::new(to_status(Error::from(e))))),
                Err(e) => {
                    let _ = tx.send(Err(to_status(e.into()))).await;
                    return;
                }
            };
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
