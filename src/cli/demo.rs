//! `spectradb demo`: builds a database from the bundled photos with SQL and
//! runs a few queries, showing what each one read.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use spectradb::sql::display::human_bytes;
use spectradb::Database;

use super::output::{print_batches, Format};
use super::progress::Bar;
use super::shell::{collect, save_images};

pub fn run(photos: &Path, out: &Path) -> Result<()> {
    if !photos.is_dir() {
        anyhow::bail!(
            "{} is not a directory (run the demo from the repository root, or pass --photos)",
            photos.display()
        );
    }
    let db_path = out.join("photos.db");
    if db_path.exists() {
        std::fs::remove_dir_all(&db_path).with_context(|| {
            format!("removing the previous demo database {}", db_path.display())
        })?;
    }
    let db = Database::open(&db_path)?;
    db.set_progress(Some(Arc::new(Bar::default())));
    let runtime = tokio::runtime::Runtime::new()?;
    let glob = format!("{}/**/*", photos.display());
    let steps: Vec<(&str, String)> = vec![
        (
            "Ingest every bundled photo; the folder name becomes the label, undecodable files are skipped and listed",
            format!(
                "CREATE IMAGE TABLE photos FROM '{glob}' WITH (label = 'parent_dir', quality = 90, on_error = 'skip')"
            ),
        ),
        ("What the database holds", "SHOW TABLES".into()),
        (
            "Plain SQL on plain columns reads no frequency band at all",
            "SELECT label, count(*) AS images, min(width) AS min_w, max(width) AS max_w, round(avg(height), 1) AS avg_h FROM photos GROUP BY label ORDER BY label".into(),
        ),
        (
            "Files the ingest skipped, and why",
            "SELECT uri, reason FROM spectradb_ingest_errors ORDER BY uri LIMIT 5".into(),
        ),
        (
            "Image functions rebuild pixels from the bands: PNG at 1/4 scale, and thumbnails",
            "SELECT id, uri, width(image) AS w, height(image) AS h, to_png(image, 2) AS quarter, thumbnail(image, 96) AS thumb FROM photos WHERE label = 'imagenet-labeled' ORDER BY id LIMIT 5".into(),
        ),
    ];
    for (what, sql) in &steps {
        println!("\n-- {what}\nspectradb> {sql};");
        let before = db.scan_stats().bytes_read();
        let batches = runtime.block_on(collect(&db, sql))?;
        print_batches(&mut std::io::stdout(), &batches, Format::Table)?;
        let read = db.scan_stats().bytes_read() - before;
        if read > 0 {
            println!("(read {} of image table files)", human_bytes(read));
        }
    }
    let thumbs = out.join("thumbnails");
    let sql = "SELECT id, thumbnail(image, 160) AS thumb FROM photos ORDER BY id";
    let batches = runtime.block_on(collect(&db, sql))?;
    let n = save_images(&batches, &thumbs)?;
    println!(
        "\nspectradb> .save {sql} {}\nsaved {n} thumbnails to {}",
        thumbs.display(),
        thumbs.display()
    );
    println!(
        "\nExplore it yourself:  cargo run --release -- {}",
        db_path.display()
    );
    Ok(())
}
