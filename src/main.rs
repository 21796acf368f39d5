//! The `spectradb` command line. For now it writes and inspects image table
//! files; the SQL shell arrives with the database issue.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use spectradb::codec::encode::EncodeOptions;
use spectradb::codec::Chroma;
use spectradb::source::{load_file, SourceOptions, SourcePath};
use spectradb::storage::{write_image_file, ImageFileReader, ImageRow, WriteOptions};

#[derive(Parser)]
#[command(
    name = "spectradb",
    version,
    about = "An embedded SQL database for image AI"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Encode images (JPEG, PNG, WebP) into one image table file.
    Ingest {
        /// The Parquet file to write.
        out: PathBuf,
        /// Image files or directories (directories are read non-recursively).
        inputs: Vec<PathBuf>,
        /// Chroma layout: 420, 444 or gray.
        #[arg(long, default_value = "420")]
        chroma: String,
        /// Quality for images that are not taken over as JPEG coefficients.
        #[arg(long, default_value_t = 90)]
        quality: u8,
    },
    /// Show the layout and per-channel sizes of an image table file.
    Info { file: PathBuf },
    /// Ingest the bundled photos and show what each read scale costs.
    Demo {
        /// Folder of photos to ingest.
        #[arg(long, default_value = "tests/data/photos/imagenet-labeled")]
        photos: PathBuf,
        /// Where the table file and the decoded previews go.
        #[arg(long, default_value = "target/demo")]
        out: PathBuf,
    },
}

fn main() {
    if let Err(e) = run(Cli::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Ingest {
            out,
            inputs,
            chroma,
            quality,
        } => ingest(out, inputs, Chroma::parse(&chroma)?, quality),
        Command::Info { file } => info(file),
        Command::Demo { photos, out } => demo(photos, out),
    }
}

fn demo(photos: PathBuf, out: PathBuf) -> Result<()> {
    use spectradb::codec::decode::decode_rgb;
    use spectradb::codec::tensor::{choose_scale, to_tensor, TensorSpec};
    use spectradb::storage::BandSelection;
    use std::time::Instant;

    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let table = out.join("photos.parquet");
    let source_bytes: u64 = std::fs::read_dir(&photos)
        .with_context(|| {
            format!(
                "reading {} (run the demo from the repository root)",
                photos.display()
            )
        })?
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    ingest(table.clone(), vec![photos.clone()], Chroma::Yuv420, 90)?;
    println!("source files: {source_bytes} bytes");
    info(table.clone())?;

    let reader = ImageFileReader::open(&table)?;
    let file_bytes = std::fs::metadata(&table)?.len();
    println!("\nreading tensors for a model: only the s x s low bands of each block are read");
    println!(
        "{:>10} {:>6} {:>12} {:>8} {:>10}",
        "tensor", "scale", "bytes read", "of file", "ms/image"
    );
    for size in [28u32, 56, 112, 224] {
        let spec = TensorSpec::imagenet(size);
        let s = choose_scale(512, 512, size, size);
        let reader = ImageFileReader::open(&table)?;
        let start = Instant::now();
        let mut n = 0;
        for batch in reader.scan(&[], &BandSelection::for_scale(s), 64)? {
            let batch = batch?;
            for r in 0..batch.num_rows() {
                to_tensor(&batch.image(r)?, &spec)?;
                n += 1;
            }
        }
        let ms = start.elapsed().as_secs_f64() * 1000.0 / n.max(1) as f64;
        let read = reader.bytes_read();
        println!(
            "{:>10} {:>6} {:>12} {:>7.1}% {:>10.3}",
            format!("{size}x{size}"),
            format!("{s}/8"),
            read,
            100.0 * read as f64 / file_bytes as f64,
            ms
        );
    }
    let first = reader
        .scan(&["uri"], &BandSelection::all(), 1)?
        .next()
        .context("the table is empty")??;
    let img = first.image(0)?;
    println!("\nthe first photo decoded at every scale (DCT-domain downscaling):");
    for s in [1, 2, 4, 8] {
        let rgb = decode_rgb(&img, s)?;
        let path = out.join(format!("first_s{s}.png"));
        image::RgbImage::from_raw(rgb.width, rgb.height, rgb.data)
            .context("decoded buffer has the wrong size")?
            .save(&path)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("  {} ({}x{})", path.display(), rgb.width, rgb.height);
    }
    Ok(())
}

fn ingest(out: PathBuf, inputs: Vec<PathBuf>, chroma: Chroma, quality: u8) -> Result<()> {
    if !(1..=100).contains(&quality) {
        bail!("--quality must be 1..=100, got {quality}");
    }
    let mut files = Vec::new();
    for input in inputs {
        if input.is_dir() {
            let mut v: Vec<PathBuf> = std::fs::read_dir(&input)
                .with_context(|| format!("reading directory {}", input.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect();
            v.sort();
            files.extend(v);
        } else {
            files.push(input);
        }
    }
    if files.is_empty() {
        bail!("no input images given");
    }
    let opts = SourceOptions {
        encode: EncodeOptions { quality, chroma },
        ..Default::default()
    };
    let mut rows = Vec::with_capacity(files.len());
    let mut passthrough = 0;
    for (id, path) in files.iter().enumerate() {
        let (image, how) = load_file(path, &opts)?;
        passthrough += (how == SourcePath::JpegCoefficients) as usize;
        rows.push(ImageRow {
            id: id as u64,
            uri: path.display().to_string(),
            image,
        });
    }
    let write = WriteOptions {
        chroma,
        quality,
        ..Default::default()
    };
    let stats = write_image_file(&out, &write, &rows, &[])?;
    println!(
        "wrote {} images ({} as JPEG coefficients) to {}: {} bytes",
        stats.rows,
        passthrough,
        out.display(),
        stats.file_bytes
    );
    Ok(())
}

fn info(file: PathBuf) -> Result<()> {
    let reader = ImageFileReader::open(&file)?;
    println!(
        "{}: {} images, chroma {}, quality {}",
        file.display(),
        reader.num_rows(),
        reader.chroma().name(),
        reader.quality()
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
