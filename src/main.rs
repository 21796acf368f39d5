//! The `spectradb` command line: a SQL shell over a database directory
//! (or an in-memory database), scripts from `-c` or stdin, the demo, and a
//! data-file inspector.

mod cli;

use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use clap::{Parser, Subcommand};
use spectradb::db::CheckScope;
use spectradb::storage::ImageFileReader;
use spectradb::{BlockingDatabase, Database};

use cli::output::Format;
use cli::shell::{Flow, Shell};

#[derive(Parser)]
#[command(
    name = "spectradb",
    version,
    about = "An embedded SQL database for image AI",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Database directory (created when missing); in-memory when omitted.
    database: Option<PathBuf>,
    /// Run these statements and exit (repeatable); exits non-zero on the first error.
    #[arg(short = 'c', long = "command", allow_hyphen_values = true)]
    commands: Vec<String>,
    /// How results are printed.
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    /// Run queries on the Ballista cluster whose scheduler this names
    /// (df://host:port); the database directory must be at the same path
    /// for the scheduler and executors.
    #[cfg(feature = "distributed")]
    #[arg(long, requires = "database")]
    cluster: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Ingest the bundled photos into a database and run a few queries.
    Demo {
        /// Folder of photos to ingest (searched recursively).
        #[arg(long, default_value = "tests/data/photos")]
        photos: PathBuf,
        /// Where the demo database and thumbnails go.
        #[arg(long, default_value = "target/demo")]
        out: PathBuf,
    },
    /// Show the layout and per-channel sizes of one image table data file.
    Info { file: PathBuf },
    /// Read and verify every file of a database (after a disk incident):
    /// one line per file; exits with 1 when any file is damaged.
    Check {
        /// The database directory.
        database: PathBuf,
        /// How the report is printed.
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Serve a database to Arrow Flight SQL clients (ADBC, JDBC, pyarrow).
    #[cfg(feature = "serve")]
    Serve(cli::serve::ServeArgs),
    /// Run a Ballista scheduler for spectradb queries (`--cluster` clients
    /// send it their plans).
    #[cfg(feature = "distributed")]
    Scheduler(cli::cluster::SchedulerArgs),
    /// Run a Ballista executor for spectradb queries.
    #[cfg(feature = "distributed")]
    Executor(cli::cluster::ExecutorArgs),
}

fn main() {
    match run(Cli::parse()) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("Error: {}", cli::output::error_text(&e));
            std::process::exit(1);
        }
    }
}

fn run(cli: Cli) -> Result<i32> {
    match cli.command {
        Some(Command::Demo { photos, out }) => {
            cli::demo::run(&photos, &out)?;
            return Ok(0);
        }
        Some(Command::Info { file }) => {
            info(file)?;
            return Ok(0);
        }
        Some(Command::Check { database, format }) => return check(&database, format),
        #[cfg(feature = "serve")]
        Some(Command::Serve(args)) => {
            cli::serve::run(args)?;
            return Ok(0);
        }
        #[cfg(feature = "distributed")]
        Some(Command::Scheduler(args)) => {
            cli::cluster::scheduler(args)?;
            return Ok(0);
        }
        #[cfg(feature = "distributed")]
        Some(Command::Executor(args)) => {
            cli::cluster::executor(args)?;
            return Ok(0);
        }
        None => {}
    }
    let db = open(&cli)?;
    db.set_progress(Some(Arc::new(cli::progress::Bar::default())));
    db.set_calibration_progress(Some(Arc::new(cli::progress::CalibrationBar::default())));
    let mut shell = Shell::new(db, cli.format)?;
    if !cli.commands.is_empty() {
        for c in &cli.commands {
            if shell.run_script(c)? == Flow::Quit {
                break;
            }
        }
        return Ok(0);
    }
    if std::io::stdin().is_terminal() {
        shell.repl()?;
    } else {
        let mut script = String::new();
        std::io::stdin().read_to_string(&mut script)?;
        shell.run_script(&script)?;
    }
    Ok(0)
}

/// The database the shell works on: the directory given (its queries on a
/// cluster with `--cluster`), else an in-memory one.
fn open(cli: &Cli) -> Result<Database> {
    #[cfg(feature = "distributed")]
    if let (Some(path), Some(url)) = (&cli.database, &cli.cluster) {
        return Ok(Database::open_on_cluster(path, url)?);
    }
    Ok(match &cli.database {
        Some(path) => Database::open(path)?,
        None => Database::in_memory()?,
    })
}

/// `spectradb check <db>`: CHECK DATABASE, printed, and a summary.
fn check(database: &std::path::Path, format: Format) -> Result<i32> {
    if !database
        .join(spectradb::storage::catalog::CATALOG_FILE)
        .exists()
    {
        anyhow::bail!(
            "{}: not a spectradb database (no catalog)",
            database.display()
        );
    }
    let db = BlockingDatabase::open(database)?;
    let checks = db
        .runtime()
        .block_on(db.database().check(CheckScope::Database))?;
    let report = spectradb::db::check_report(&checks)?;
    cli::output::print_batches(&mut std::io::stdout(), &[report], format)?;
    let damaged = checks.iter().filter(|c| !c.is_ok()).count();
    eprintln!("{} files checked, {damaged} damaged", checks.len());
    Ok(if damaged == 0 { 0 } else { 1 })
}

fn info(file: PathBuf) -> Result<()> {
    let reader = ImageFileReader::open(&file)?;
    println!(
        "{}: {} images, chroma {}, quality {}, format version {}",
        file.display(),
        reader.num_rows(),
        reader.chroma().name(),
        reader.quality(),
        reader.format_version()
    );
    let mut per_channel = std::collections::BTreeMap::<String, u64>::new();
    let mut low = 0;
    for (name, bytes) in reader.column_bytes() {
        let key = match spectradb::storage::layout::parse_band_column(&name) {
            Some((plane, k)) => {
                if spectradb::codec::quant::scale_band_mask(4) >> k & 1 == 1 {
                    low += bytes;
                }
                format!("image.{}.*", spectradb::codec::CHANNEL_NAMES[plane])
            }
            None => name,
        };
        *per_channel.entry(key).or_default() += bytes;
    }
    for (k, v) in &per_channel {
        println!("  {k:<14} {v:>12} bytes");
    }
    println!("  (4x4 corner of every block: {low} bytes)");
    Ok(())
}
