//! One statement: spectradb's own statements run here, everything else
//! goes to DataFusion (through `plain` when it changes kept state).

use std::path::PathBuf;

use datafusion::prelude::DataFrame;

use super::ctas;
use super::options::ingest_options;
use super::plain::{self, Effect};
use super::{calibrate, CheckScope, Database, IngestMode};
use crate::error::{Error, Result};
use crate::sql::statements::{parse_command, Command, TableName};
use crate::storage::catalog::Catalog;

impl Database {
    /// Runs `sql`; `catalog` is the version the session was just synced
    /// to (writers re-read it under their lock).
    pub(super) async fn dispatch(&self, sql: &str, catalog: &Catalog) -> Result<DataFrame> {
        match parse_command(sql)? {
            Some(cmd) => self.run_command(cmd, catalog).await,
            None => self.run_datafusion(sql).await,
        }
    }

    /// The table a possibly qualified name means: spectradb keeps every
    /// table in the session's default catalog and schema.
    pub(super) fn resolve(&self, name: &TableName) -> Result<String> {
        let state = self.ctx.state();
        let defaults = &state.config_options().catalog;
        let (catalog, schema) = (&defaults.default_catalog, &defaults.default_schema);
        match name.as_slice() {
            [t] => Ok(t.clone()),
            [s, t] if s == schema => Ok(t.clone()),
            [c, s, t] if c == catalog && s == schema => Ok(t.clone()),
            _ => Err(Error::InvalidArgument(format!(
                "'{}': spectradb keeps every table in {catalog}.{schema}",
                name.join(".")
            ))),
        }
    }

    async fn run_command(&self, cmd: Command, catalog: &Catalog) -> Result<DataFrame> {
        match cmd {
            Command::CreateImageTable {
                name,
                if_not_exists,
                source,
                options,
            } => {
                let name = self.resolve(&name)?;
                if catalog.tables.contains_key(&name) {
                    if if_not_exists {
                        return self.ingest_result(&name, 0, 0);
                    }
                    return Err(Error::InvalidArgument(format!(
                        "image table '{name}' already exists (use INSERT INTO {name} FROM '...' to add images)"
                    )));
                }
                let opts = ingest_options(&options, true, &source)?;
                let r = self
                    .ingest_async(catalog, &name, &source, IngestMode::Create, &opts)
                    .await?;
                self.ingest_result(&name, r.ingested, r.skipped.len() as u64)
            }
            Command::InsertFrom {
                name,
                source,
                options,
            } => {
                let name = self.resolve(&name)?;
                let opts = ingest_options(&options, false, &source)?;
                if !catalog.tables.contains_key(&name) {
                    return Err(Error::InvalidArgument(format!(
                        "no image table named '{name}' (INSERT INTO .. FROM '<files>' adds images to an image table; create one with CREATE IMAGE TABLE)"
                    )));
                }
                let r = self
                    .ingest_async(catalog, &name, &source, IngestMode::Append, &opts)
                    .await?;
                self.ingest_result(&name, r.ingested, r.skipped.len() as u64)
            }
            Command::DropTable { names, if_exists } => {
                let names = names
                    .iter()
                    .map(|n| self.resolve(n))
                    .collect::<Result<Vec<_>>>()?;
                self.drop_tables(catalog, names, if_exists).await?;
                Ok(self.results.read_empty()?)
            }
            Command::ShowTables => self.show_tables(catalog).await,
            Command::Check { names } => {
                let scope = match names {
                    None => CheckScope::Database,
                    Some(names) => CheckScope::Tables(
                        names
                            .iter()
                            .map(|n| self.resolve(n))
                            .collect::<Result<_>>()?,
                    ),
                };
                self.check_result(scope).await
            }
            Command::Vacuum { retain } => {
                let purged = self.vacuum(retain).await?;
                self.vacuum_result(&purged)
            }
            Command::CreateModel {
                name,
                source,
                backbone,
                options,
            } => {
                self.create_model_async(catalog, name, PathBuf::from(source), backbone, options)
                    .await?;
                Ok(self.results.read_empty()?)
            }
            Command::CreateModelFamily {
                name,
                members,
                options,
            } => {
                self.create_model_family_async(catalog, name, members, options)
                    .await?;
                Ok(self.results.read_empty()?)
            }
            Command::DropModel { name, if_exists } => {
                self.drop_model_async(name, if_exists).await?;
                Ok(self.results.read_empty()?)
            }
            Command::ShowModels => self.show_models(catalog),
            Command::Calibrate {
                model,
                table,
                label_column,
                sample,
            } => {
                let profile = self.calibrate(&model, &table, label_column, sample).await?;
                self.profile_table(&profile)
            }
            Command::ShowFormats { model, table } => self.show_formats(&model, &table, catalog),
            Command::CreateMaterializedView {
                name,
                if_not_exists,
                compression,
                query,
            } => {
                self.create_materialized_view(&name, if_not_exists, compression, &query)
                    .await
            }
            Command::RefreshMaterializedView { name } => {
                self.refresh_materialized_view(&name).await
            }
            Command::DropMaterializedView { name, if_exists } => {
                self.drop_materialized_view(&name, if_exists).await?;
                Ok(self.results.read_empty()?)
            }
            Command::ResetOption { name } => {
                self.reset_option(&name)?;
                Ok(self.results.read_empty()?)
            }
        }
    }

    /// Runs a statement DataFusion knows. One that changes ordinary tables,
    /// views or external tables of a file-backed database is kept on disk
    /// (see `plain`).
    async fn run_datafusion(&self, sql: &str) -> Result<DataFrame> {
        if let Some(ctas) = ctas::parse(sql) {
            return self.create_table_as(sql, ctas).await;
        }
        self.check_insert(sql)?;
        let effect = if self.is_in_memory() {
            Effect::None
        } else {
            plain::classify(sql)
        };
        match effect {
            Effect::None if calibrate::is_explain_analyze(sql) => self.explain_analyze(sql).await,
            Effect::None => {
                let frame = self.ctx.sql(sql).await?;
                #[cfg(feature = "distributed")]
                if self.on_cluster {
                    crate::distributed::codec::check_plan_travels(frame.logical_plan())?;
                }
                Ok(frame)
            }
            Effect::Refused(why) => Err(Error::InvalidArgument(why)),
            effect => self.run_kept(sql, effect).await,
        }
    }
}
