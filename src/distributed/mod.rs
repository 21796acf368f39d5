//! Queries on a Ballista cluster (feature `distributed`): the same SQL, its
//! image scans split by data file and page range over executors.
//!
//! - [`codec`]: image tables, image scans, in-memory tables and model
//!   functions through Ballista's plan serialization (models by catalog
//!   entry and checksum; the receiving process opens the files)
//! - [`cluster`]: a scheduler and executors that know spectradb's codecs
//!   and functions, and the client context of [`crate::Database::open_on_cluster`]
//! - `wire`: the serialized form of each of those nodes
//!
//! The database directory (catalog, models) must be at the same path for
//! the client, the scheduler and every executor (one machine, or a shared
//! file system); image tables' data files may be there or on object
//! storage, which every executor reads directly.

pub mod cluster;
pub mod codec;
mod wire;
