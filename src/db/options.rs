//! Option parsing: `WITH (...)` of the ingest statements and `RESET` of
//! spectradb's session settings.

use std::path::{Path, PathBuf};

use super::Database;
use crate::codec::Chroma;
use crate::error::{Error, Result};
use crate::ingest::{IngestOptions, Label, OnError};
use crate::planner::PlannerOptions;
use crate::storage::remote;

/// Ingest options from `WITH (...)`; `create` allows the layout options
/// and `location`. Store options (`aws_*`) configure the store of an
/// `s3://` `source`, and of a new table's `location`.
pub(super) fn ingest_options(
    options: &[(String, String)],
    create: bool,
    source: &str,
) -> Result<IngestOptions> {
    let mut opts = IngestOptions::default();
    for (key, value) in options {
        match key.as_str() {
            k if remote::is_store_option(k) => {
                opts.store_options.insert(k.to_string(), value.clone());
            }
            "location" if create => {
                remote::check_location(value)?;
                opts.location = Some(value.clone());
            }
            "label" => {
                opts.label = match value.to_ascii_lowercase().as_str() {
                    "parent_dir" => Label::ParentDir,
                    "none" => Label::None,
                    _ if value.to_ascii_lowercase().ends_with(".csv") => {
                        Label::Csv(PathBuf::from(value))
                    }
                    _ => {
                        return Err(Error::InvalidArgument(format!(
                            "label = '{value}': expected 'parent_dir', 'none' or the path of a .csv file of file,label lines"
                        )))
                    }
                }
            }
            "on_error" => {
                opts.on_error = match value.to_ascii_lowercase().as_str() {
                    "fail" => OnError::Fail,
                    "skip" => OnError::Skip,
                    _ => {
                        return Err(Error::InvalidArgument(format!(
                            "on_error = '{value}': expected 'fail' or 'skip'"
                        )))
                    }
                }
            }
            "quality" | "chroma" if !create => {
                return Err(Error::InvalidArgument(format!(
                    "{key} is fixed when the table is created; INSERT INTO uses the table's own"
                )))
            }
            "quality" => {
                opts.source.encode.quality = value
                    .parse::<u8>()
                    .ok()
                    .filter(|q| (1..=100).contains(q))
                    .ok_or_else(|| {
                        Error::InvalidArgument(format!("quality = '{value}': expected 1..100"))
                    })?;
            }
            "chroma" => opts.source.encode.chroma = Chroma::parse(value)?,
            other => {
                let valid = if create {
                    "label, quality, chroma, on_error, location, aws_*"
                } else {
                    "label, on_error, aws_*"
                };
                return Err(Error::InvalidArgument(format!(
                    "unknown option '{other}' (valid options: {valid})"
                )));
            }
        }
    }
    if remote::is_remote(Path::new(source)) {
        remote::configure(source, &opts.store_options)?;
    }
    if let Some(location) = &opts.location {
        remote::configure(location, &opts.store_options)?;
    }
    Ok(opts)
}

impl Database {
    /// The session's spectradb settings.
    pub(super) fn planner_options(&self) -> PlannerOptions {
        self.ctx
            .state()
            .config_options()
            .extensions
            .get::<PlannerOptions>()
            .cloned()
            .unwrap_or_default()
    }

    /// Sizes the database's cache as a connection's settings say (a size
    /// that does not parse is an error and changes nothing).
    pub(super) fn apply_cache_size_of(&self, opts: &PlannerOptions) -> Result<()> {
        self.reuse.cache.resize(opts.cache_bytes()?);
        Ok(())
    }

    /// Sizes the database's cache as `spectradb.cache_size` says (after a
    /// statement that may have set it).
    pub(super) fn apply_cache_size(&self) -> Result<()> {
        match self.planner_options().cache_bytes() {
            Ok(bytes) => {
                self.reuse.cache.resize(bytes);
                Ok(())
            }
            Err(e) => {
                // Keep the size in force rather than a value that fails
                // every later statement.
                let state = self.ctx.state_ref();
                let mut state = state.write();
                if let Some(o) = state
                    .config_mut()
                    .options_mut()
                    .extensions
                    .get_mut::<PlannerOptions>()
                {
                    o.cache_size = self.reuse.cache.capacity().to_string();
                }
                Err(e)
            }
        }
    }

    /// `RESET spectradb.<name>`: back to the default.
    pub(super) fn reset_option(&self, name: &str) -> Result<()> {
        let state = self.ctx.state_ref();
        let mut state = state.write();
        let opts = state
            .config_mut()
            .options_mut()
            .extensions
            .get_mut::<PlannerOptions>()
            .ok_or_else(|| Error::Internal("planner options missing".into()))?;
        reset_planner_option(opts, name)?;
        drop(state);
        self.apply_cache_size()
    }
}

/// Sets spectradb setting `name` back to its default.
pub(super) fn reset_planner_option(opts: &mut PlannerOptions, name: &str) -> Result<()> {
    let default = PlannerOptions::default();
    match name {
        "accuracy_target" => opts.accuracy_target = default.accuracy_target,
        "confidence" => opts.confidence = default.confidence,
        "read_format" => opts.read_format = default.read_format,
        "cache_size" => opts.cache_size = default.cache_size,
        other => {
            return Err(Error::InvalidArgument(format!(
                "unknown option spectradb.{other} (options: accuracy_target, confidence, read_format, cache_size)"
            )))
        }
    }
    Ok(())
}
