//! The SQL shell: statements end with `;`, lines starting with `.` are
//! shell commands. The same engine runs the interactive REPL, `-c` strings,
//! piped scripts and `.read` files.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::DataType;
use rustyline::error::ReadlineError;
use spectradb::image_value::{binary_values, read_image_header};
use spectradb::sql::functions::png_at_scale;
use spectradb::sql::statements::split_statements;
use spectradb::Database;

use super::output::{print_batches, Format};

const HELP: &str = "\
SQL statements end with ';' and may span lines. Besides DataFusion's SQL:
  CREATE IMAGE TABLE t FROM '<glob or dir>' [WITH (label = 'parent_dir' | '<file.csv>',
      quality = 1..100, chroma = '420' | '444' | 'gray', on_error = 'fail' | 'skip')]
  INSERT INTO t FROM '<glob or dir>' [WITH (label = ..., on_error = ...)]
  DROP TABLE t;  SHOW TABLES;  SELECT * FROM spectradb_ingest_errors;
  width(image), height(image), to_png(image [, scale 1..8]), thumbnail(image, max_side)
  CREATE MODEL m FROM 'model.onnx' WITH (...);  SHOW MODELS;  DROP MODEL m;  m(image)
  CALIBRATE m ON t [USING label_column] [SAMPLE n];  SHOW FORMATS FOR m ON t
  SET spectradb.accuracy_target = 0.95;  SET spectradb.read_format = 'ycc s2 112' | 'auto'
  EXPLAIN [ANALYZE] SELECT ...   shows each model's read format, bands read and why

Shell commands:
  .tables                 list tables
  .schema [table]         columns of a table (all tables without an argument)
  .timer on|off           print how long each statement took
  .format table|csv|json|ndjson   how results are printed
  .read FILE              run the statements in FILE
  .save QUERY DIR         write the images / PNGs a query returns into DIR
  .help                   this text
  .quit                   leave (also Ctrl-D)";

pub struct Shell {
    db: Database,
    runtime: tokio::runtime::Runtime,
    pub format: Format,
    timer: bool,
    /// Text of an unfinished statement.
    pending: String,
}

/// What a line asks the caller to do next.
#[derive(PartialEq, Eq)]
pub enum Flow {
    Continue,
    Quit,
}

impl Shell {
    pub fn new(db: Database, format: Format) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        Ok(Shell {
            db,
            runtime,
            format,
            timer: false,
            pending: String::new(),
        })
    }

    pub fn has_pending(&self) -> bool {
        !self.pending.trim().is_empty()
    }

    /// Feeds one line; runs every statement it completes. Stops at the
    /// first error and returns it.
    pub fn feed_line(&mut self, line: &str) -> Result<Flow> {
        if !self.has_pending() && line.trim_start().starts_with('.') {
            self.pending.clear();
            return self.dot_command(line.trim());
        }
        self.pending.push_str(line);
        self.pending.push('\n');
        let (statements, rest) = split_statements(&self.pending);
        self.pending = rest;
        for sql in statements {
            self.execute(&sql)?;
        }
        Ok(Flow::Continue)
    }

    /// Runs a whole script (the `-c` text, stdin, `.read`); stops at the
    /// first error. A final statement without `;` runs too.
    pub fn run_script(&mut self, text: &str) -> Result<Flow> {
        for line in text.lines() {
            if self.feed_line(line)? == Flow::Quit {
                return Ok(Flow::Quit);
            }
        }
        self.finish_pending()
    }

    /// Runs a statement left without its `;` at the end of a script. One
    /// that ends inside a quote or comment goes to the parser as written,
    /// which says what is unterminated.
    pub fn finish_pending(&mut self) -> Result<Flow> {
        let rest = std::mem::take(&mut self.pending);
        let (statements, open) = split_statements(&format!("{rest}\n;"));
        if !open.is_empty() {
            self.execute(rest.trim())?;
        }
        for sql in statements {
            self.execute(&sql)?;
        }
        Ok(Flow::Continue)
    }

    /// Drops an unfinished statement (Ctrl-C in the REPL).
    pub fn clear_pending(&mut self) {
        self.pending.clear();
    }

    /// Runs one statement. Ctrl-C stops it: a query is dropped at once,
    /// CALIBRATE (which watches the interrupt flag) stops storing nothing,
    /// and a write is waited for (it commits or rolls back whole).
    fn query(&self, sql: &str) -> Result<Vec<RecordBatch>> {
        let flag = self.db.interrupt_flag();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let watcher = self.runtime.spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                flag.store(true, std::sync::atomic::Ordering::Relaxed);
                let _ = tx.send(());
            }
        });
        let result = self.runtime.block_on(async {
            let work = collect(&self.db, sql);
            tokio::pin!(work);
            tokio::select! {
                r = &mut work => r,
                _ = rx => {
                    if reads_only(sql) {
                        // Dropping a query stops its scans and model calls.
                        bail!("interrupted: the query was cancelled");
                    }
                    // CALIBRATE sees the flag and ends by itself; a write
                    // commits or rolls back as one transaction: wait for it.
                    match work.await {
                        Err(e) => Err(e),
                        Ok(_) => bail!("interrupted"),
                    }
                }
            }
        });
        watcher.abort();
        result
    }

    fn execute(&mut self, sql: &str) -> Result<()> {
        let start = Instant::now();
        let batches = self.query(sql).with_context(|| {
            let one_line = sql.split_whitespace().collect::<Vec<_>>().join(" ");
            match one_line.char_indices().nth(80) {
                Some((i, _)) => format!("statement `{} ...`", &one_line[..i]),
                None => format!("statement `{one_line}`"),
            }
        })?;
        for w in self.db.take_warnings() {
            eprintln!("Warning: {w}");
        }
        for n in self.db.take_notices() {
            eprintln!("{n}");
        }
        let mut out = std::io::stdout().lock();
        print_batches(&mut out, &batches, self.format)?;
        out.flush()?;
        if self.timer {
            eprintln!("Run Time: {:.3} s", start.elapsed().as_secs_f64());
        }
        Ok(())
    }

    fn dot_command(&mut self, line: &str) -> Result<Flow> {
        let (cmd, arg) = match line.split_once(char::is_whitespace) {
            Some((c, a)) => (c, a.trim()),
            None => (line, ""),
        };
        match cmd {
            ".quit" | ".exit" => return Ok(Flow::Quit),
            ".help" => println!("{HELP}"),
            ".tables" => self.execute("SHOW TABLES")?,
            ".schema" => {
                let tables: Vec<String> = if arg.is_empty() {
                    let batches = self.query("SHOW TABLES")?;
                    batches
                        .iter()
                        .flat_map(|b| {
                            let names = b.column(0).as_string::<i32>();
                            (0..names.len())
                                .map(|i| names.value(i).to_string())
                                .collect::<Vec<_>>()
                        })
                        .collect()
                } else {
                    vec![arg.to_string()]
                };
                for t in tables {
                    println!("{t}:");
                    self.execute(&format!("DESCRIBE \"{}\"", t.replace('"', "\"\"")))?;
                }
            }
            ".timer" => match arg {
                "on" => self.timer = true,
                "off" => self.timer = false,
                _ => bail!(".timer takes 'on' or 'off'"),
            },
            ".format" | ".mode" => self.format = arg.parse()?,
            ".read" => {
                if arg.is_empty() {
                    bail!(".read needs a file name");
                }
                let text =
                    std::fs::read_to_string(arg).with_context(|| format!("reading {arg}"))?;
                let mut nested = std::mem::take(&mut self.pending);
                let result = self.run_script(&text);
                std::mem::swap(&mut nested, &mut self.pending);
                return result.with_context(|| format!("in {arg}"));
            }
            ".save" => {
                let Some((query, dir)) = arg.rsplit_once(char::is_whitespace) else {
                    bail!(".save needs a query and a directory: .save SELECT id, thumbnail(image, 128) FROM photos out/");
                };
                let batches = self.query(query.trim().trim_end_matches(';'))?;
                let n = save_images(&batches, Path::new(dir))?;
                println!("saved {n} files to {dir}");
            }
            other => bail!("unknown command '{other}' (try .help)"),
        }
        Ok(Flow::Continue)
    }

    /// The interactive loop with history; errors are printed and the shell
    /// carries on.
    pub fn repl(&mut self) -> Result<()> {
        let mut editor = rustyline::DefaultEditor::new()?;
        let history = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".spectradb_history"));
        if let Some(h) = &history {
            let _ = editor.load_history(h);
        }
        let path = if self.db.is_in_memory() {
            "an in-memory database".to_string()
        } else {
            self.db.path().display().to_string()
        };
        println!(
            "spectradb {} on {path}. Enter .help for help.",
            env!("CARGO_PKG_VERSION")
        );
        loop {
            let prompt = if self.has_pending() {
                "        -> "
            } else {
                "spectradb> "
            };
            match editor.readline(prompt) {
                Ok(line) => {
                    if !line.trim().is_empty() {
                        let _ = editor.add_history_entry(line.as_str());
                    }
                    match self.feed_line(&line) {
                        Ok(Flow::Quit) => break,
                        Ok(Flow::Continue) => {}
                        Err(e) => {
                            self.clear_pending();
                            eprintln!("Error: {}", super::output::error_text(&e));
                        }
                    }
                }
                Err(ReadlineError::Interrupted) => self.clear_pending(),
                Err(ReadlineError::Eof) => break,
                Err(e) => return Err(e.into()),
            }
        }
        if let Some(h) = &history {
            let _ = editor.save_history(h);
        }
        Ok(())
    }
}

/// Runs `sql` and collects its result; an empty result keeps its schema
/// (one empty batch) so that its header can be printed.
pub async fn collect(db: &Database, sql: &str) -> Result<Vec<RecordBatch>> {
    let df = db.sql(sql).await?;
    let schema = std::sync::Arc::new(df.schema().as_arrow().clone());
    let mut batches = df.collect().await?;
    if batches.is_empty() {
        batches.push(RecordBatch::new_empty(schema));
    }
    Ok(batches)
}

/// Writes every image value (as PNG at the scale it carries) and every PNG
/// of `batches` into `dir`, named `<id>_<column>.png` after the row's `id`
/// (or row number) and the column's alias or name. Returns the number of
/// files written.
pub fn save_images(batches: &[RecordBatch], dir: &Path) -> Result<usize> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut written = 0;
    let mut row_no = 0usize;
    let mut used = std::collections::HashSet::new();
    for batch in batches {
        // File names use the `id` column when it reads as text, else the row number.
        let ids = batch
            .column_by_name("id")
            .and_then(|c| arrow::compute::cast(c, &DataType::Utf8).ok());
        for (field, col) in batch.schema().fields().iter().zip(batch.columns()) {
            let Some(values) = binary_values(col.as_ref()) else {
                continue;
            };
            let column = column_file_name(field.name());
            for (i, v) in values.into_iter().enumerate() {
                let Some(bytes) = v else { continue };
                let png = if bytes.starts_with(b"\x89PNG") {
                    bytes.to_vec()
                } else if let Ok(h) = read_image_header(bytes) {
                    png_at_scale(bytes, h.max_scale().max(1))?
                } else {
                    continue;
                };
                let key = match &ids {
                    Some(ids) if !ids.is_null(i) => file_name_part(ids.as_string::<i32>().value(i)),
                    _ => String::new(),
                };
                let key = if key.is_empty() {
                    (row_no + i).to_string()
                } else {
                    key
                };
                // Ids that differ only in replaced characters do not overwrite each other.
                let mut name = format!("{key}_{column}.png");
                let mut n = 1;
                while !used.insert(name.clone()) {
                    n += 1;
                    name = format!("{key}_{column}_{n}.png");
                }
                let path = dir.join(name);
                std::fs::write(&path, png)
                    .with_context(|| format!("writing {}", path.display()))?;
                written += 1;
            }
        }
        row_no += batch.num_rows();
    }
    Ok(written)
}

/// `text` as one safe piece of a file name: ASCII letters, digits, `-` and
/// `_`; everything else (`/`, `.`, spaces) becomes `_`, so an id such as
/// `../x` cannot leave the folder.
fn file_name_part(text: &str) -> String {
    let s: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    s.trim_matches('_').to_string()
}

/// A result column's part of a file name: its alias or column name
/// (`thumb`, `image` for `photos.image`), or for an expression left without
/// an alias its function's name (`thumbnail`, not
/// `thumbnail_photos_image_Int64_256`).
fn column_file_name(name: &str) -> String {
    let short = match name.split_once('(') {
        Some((function, _)) if !function.is_empty() => function,
        _ => name.rsplit('.').next().unwrap_or(name),
    };
    match file_name_part(short) {
        s if s.is_empty() => "image".to_string(),
        s => s,
    }
}

/// Whether a statement only reads (so Ctrl-C may simply drop it).
fn reads_only(sql: &str) -> bool {
    let first = sql.split_whitespace().next().unwrap_or("");
    ["select", "with", "explain", "show", "values", "describe"]
        .iter()
        .any(|w| first.eq_ignore_ascii_case(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_stay_in_the_folder_and_use_short_column_names() {
        assert_eq!(file_name_part("../x"), "x");
        assert_eq!(file_name_part("a/../../b c"), "a_______b_c");
        assert_eq!(file_name_part("/etc/passwd"), "etc_passwd");
        assert_eq!(file_name_part(".."), "");
        assert_eq!(column_file_name("thumb"), "thumb");
        assert_eq!(column_file_name("photos.image"), "image");
        assert_eq!(
            column_file_name("thumbnail(photos.image,Int64(256))"),
            "thumbnail"
        );
        assert_eq!(column_file_name("\"..\""), "image");
    }
}
