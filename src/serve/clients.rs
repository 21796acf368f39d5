//! One [`Connection`] per client, so that `SET` stays with the client.
//!
//! Flight SQL has no session call; a client (an ADBC connection, a
//! `pyarrow.flight` client) keeps one HTTP/2 connection open, so the
//! client's address and port name its session. Sessions unused for the
//! idle timeout are forgotten.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use datafusion::execution::runtime_env::RuntimeEnv;

use crate::db::{Connection, DataRoot};
use crate::Database;

/// A client's session and when it was last used, by the client's address.
type Sessions = HashMap<Option<SocketAddr>, (Arc<Connection>, Instant)>;

/// The sessions of the server's clients.
pub(super) struct Clients {
    db: Arc<Database>,
    runtime: Arc<RuntimeEnv>,
    data_root: Option<DataRoot>,
    idle_timeout: Duration,
    sessions: Mutex<Sessions>,
}

impl Clients {
    pub(super) fn new(
        db: Arc<Database>,
        runtime: Arc<RuntimeEnv>,
        data_root: Option<DataRoot>,
        idle_timeout: Duration,
    ) -> Self {
        Clients {
            db,
            runtime,
            data_root,
            idle_timeout,
            sessions: Mutex::new(HashMap::new()),
        }
    }

    /// The session of the client at `peer` (a new one for a new client).
    pub(super) fn session(&self, peer: Option<SocketAddr>) -> Arc<Connection> {
        let now = Instant::now();
        let mut sessions = self.sessions.lock().expect("sessions lock");
        sessions.retain(|_, (_, used)| now.duration_since(*used) < self.idle_timeout);
        let (conn, used) = sessions.entry(peer).or_insert_with(|| {
            let mut conn = self.db.connect().with_runtime(self.runtime.clone());
            if let Some(root) = &self.data_root {
                conn = conn.with_data_root(root.clone());
            }
            (Arc::new(conn), now)
        });
        *used = now;
        conn.clone()
    }
}
