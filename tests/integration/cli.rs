//! The `spectradb` binary: `-c`, stdin scripts, `--format`, exit codes,
//! dot commands, a second writer, and the interactive REPL through a
//! pseudo-terminal.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use spectradb::storage::catalog::DatabaseDir;

use super::common::{create_mobilenet, files_under};

const BIN: &str = env!("CARGO_BIN_EXE_spectradb");

fn run(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spectradb starts");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const CREATE: &str = "CREATE IMAGE TABLE photos FROM 'tests/data/photos/imagenet-labeled' WITH (label = 'parent_dir')";

#[test]
fn dash_c_runs_statements_in_order_and_prints_csv() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("p.db");
    let db = db.to_str().unwrap();
    let out = run(
        &[
            db,
            "-c",
            CREATE,
            "-c",
            "SELECT label, count(*) AS n, min(id) AS first FROM photos GROUP BY label",
            "--format",
            "csv",
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "table,ingested,skipped\nphotos,20,0\nlabel,n,first\nimagenet-labeled,20,0\n"
    );
    // A second process sees the committed table.
    let out = run(
        &[
            db,
            "-c",
            "SELECT count(*) AS n FROM photos",
            "--format",
            "json",
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), r#"[{"n":20}]"#);
}

#[test]
fn errors_exit_non_zero_and_stop_the_script() {
    // -c: the statement after the failing one does not run.
    let out = run(&["-c", "SELECT 1 AS a; SELECT nope; SELECT 3 AS c"], None);
    assert_eq!(out.status.code(), Some(1));
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(
        stdout.contains("| a |") && !stdout.contains("| c |"),
        "{stdout}"
    );
    assert!(
        stderr.contains("Error: statement `SELECT nope`: Schema error: No field named nope"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr}"
    );

    // stdin script: the same, and a final statement without ';' still runs.
    let out = run(&["--format", "csv"], Some("SELECT 1 AS a;\nSELECT 2 AS b"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "a\n1\nb\n2\n");
    let out = run(
        &[],
        Some("SELECT 1 AS a;\nCREATE IMAGE TABLE t FROM 'no/such/*.jpg';\nSELECT 3 AS c;\n"),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no files match 'no/such/*.jpg'"));
    assert!(!text(&out.stdout).contains("| c |"));

    // Bad flags and unknown dot commands are errors too.
    let out = run(&["--format", "xml", "-c", "SELECT 1"], None);
    assert_eq!(out.status.code(), Some(2));
    let out = run(&[], Some(".frobnicate\n"));
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("unknown command '.frobnicate' (try .help)"));
}

#[test]
fn dot_commands_read_save_and_schema() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("setup.sql");
    std::fs::write(
        &script,
        format!("{CREATE};\n-- a comment; with a semicolon\nSELECT count(*) AS n FROM photos;\n"),
    )
    .unwrap();
    let out_dir = dir.path().join("thumbs");
    let input = format!(
        ".read {}\n.tables\n.schema photos\n.format csv\n.save SELECT id, thumbnail(image, 40) AS t FROM photos WHERE id < 3 {}\n.timer on\nSELECT 7 AS seven;\n",
        script.display(),
        out_dir.display()
    );
    let out = run(&[], Some(&input));
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("| 20 |"), "{stdout}");
    assert!(
        stdout.contains("| photos | image | 20   | 420    | 90      |"),
        "{stdout}"
    );
    assert!(
        stdout.contains("| image       | LargeBinary | YES         |"),
        "{stdout}"
    );
    assert!(stdout.contains("saved 3 files to"), "{stdout}");
    assert!(stdout.ends_with("seven\n7\n"), "{stdout}");
    assert!(stderr.contains("Run Time: "), "{stderr}");
    for id in 0..3 {
        let png = out_dir.join(format!("{id}_t.png"));
        let img = image::open(&png).unwrap();
        assert_eq!(img.width().max(img.height()), 40, "{}", png.display());
    }
}

/// A script written as people write SQL: a clause per line without
/// indentation, comments at line ends and between statements, a `;` inside
/// strings, a block comment over several lines, and a last statement
/// without `;`.
const SCRIPT: &str = "-- set up
CREATE TABLE t AS VALUES (1, 'a;b'), (2, 'c');
/* a block comment
over several lines; with a semicolon */
SELECT count(*) AS n
FROM t; -- two rows
SELECT column2 AS s -- the text column
FROM t
WHERE column1 = 1;
-- the last statement has no semicolon
SELECT 'x;y' AS q
FROM t
WHERE column1 = 2
";

/// What SCRIPT prints as CSV.
const SCRIPT_OUT: &str = "n\n2\ns\na;b\nq\nx;y\n";

#[test]
fn scripts_over_several_lines_run_from_dash_c_stdin_and_read() {
    let out = run(&["--format", "csv", "-c", SCRIPT], None);
    assert!(out.status.success(), "-c: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout), SCRIPT_OUT, "-c");

    let out = run(&["--format", "csv"], Some(SCRIPT));
    assert!(out.status.success(), "stdin: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout), SCRIPT_OUT, "stdin");

    // The same without the final line break, and the reported shape itself.
    let out = run(&["--format", "csv"], Some(SCRIPT.trim_end()));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), SCRIPT_OUT);
    let out = run(
        &["--format", "csv"],
        Some("SELECT count(*) AS n\nFROM (VALUES (1), (2)) AS t(x);\n"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "n\n2\n");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("script.sql");
    std::fs::write(&file, SCRIPT).unwrap();
    let input = format!(
        ".format csv\n.read {}\nSELECT 'after' AS done;\n",
        file.display()
    );
    let out = run(&[], Some(&input));
    assert!(out.status.success(), ".read: {}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!("{SCRIPT_OUT}done\nafter\n"),
        ".read"
    );

    // A comment line does not hide the dot command after it; an unfinished
    // block comment does, until it ends.
    let out = run(
        &[],
        Some("-- first\n.format csv\n/* open\n.format json\n*/ SELECT 1 AS a;\n"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "a\n1\n");

    // A script ending inside a string or comment is an error that says so.
    let out = run(&[], Some("SELECT 1 AS a;\nSELECT 'open\n"));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("Unterminated string literal"),
        "{}",
        text(&out.stderr)
    );
    let out = run(&[], Some("SELECT 1 /* open\n"));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("comment"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn save_names_files_after_the_column_and_keeps_them_in_the_folder() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("p.db");
    let out_dir = dir.path().join("out");
    let input = format!(
        "{CREATE};\n\
         .save SELECT '../x' AS id, thumbnail(image, 16) AS thumb FROM photos WHERE id = 0 {out}\n\
         .save SELECT id, thumbnail(image, 16), image AS original FROM photos WHERE id < 2 {out}\n",
        out = out_dir.display()
    );
    let out = run(&[db.to_str().unwrap()], Some(&input));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut names: Vec<String> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "0_original.png",
            "0_thumbnail.png",
            "1_original.png",
            "1_thumbnail.png",
            "x_thumb.png"
        ]
    );
    // Nothing was written next to the folder.
    assert!(!dir.path().join("x_thumb.png").exists());
    let img = image::open(out_dir.join("0_original.png")).unwrap();
    assert_eq!((img.width(), img.height()), (512, 512));
}

#[test]
fn a_second_writer_is_refused_with_the_holders_pid() {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("p.db");
    let db = DatabaseDir::open(&db_path).unwrap();
    let _tx = db.begin().unwrap();
    let out = run(&[db_path.to_str().unwrap(), "-c", CREATE], None);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("database is locked by pid {}", std::process::id())),
        "{stderr}"
    );
    // Readers are not blocked by the writer.
    let out = run(&[db_path.to_str().unwrap(), "-c", "SHOW TABLES"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn repl_in_a_terminal_keeps_going_after_errors_and_saves_history() {
    let home = tempfile::tempdir().unwrap();
    let db = home.path().join("p.db");
    let cmd = format!("env HOME={} {BIN} {}", home.path().display(), db.display());
    let mut p = rexpect::spawn(&cmd, Some(60_000)).unwrap();
    p.exp_string("Enter .help for help.").unwrap();
    p.exp_string("spectradb> ").unwrap();
    p.send_line("SELECT 40 + 2 AS answer;").unwrap();
    p.exp_string("| 42     |").unwrap();
    p.exp_string("spectradb> ").unwrap();
    // A statement over several lines gets the continuation prompt.
    p.send_line("SELECT 'multi' AS kind,").unwrap();
    p.exp_string("-> ").unwrap();
    p.send_line("  'line' AS how;").unwrap();
    p.exp_string("| multi | line |").unwrap();
    p.exp_string("spectradb> ").unwrap();
    // A clause per line without indentation, comments and a `;` in a string.
    p.send_line("SELECT count(*) AS n -- how many").unwrap();
    p.exp_string("-> ").unwrap();
    p.send_line("FROM (VALUES ('a;b'), ('c')) AS t(s)").unwrap();
    p.exp_string("-> ").unwrap();
    p.send_line("WHERE s <> ';';").unwrap();
    p.exp_string("| 2 |").unwrap();
    p.exp_string("spectradb> ").unwrap();
    p.send_line("/* a comment").unwrap();
    p.exp_string("-> ").unwrap();
    p.send_line("over two lines; */ SELECT 'after the comment' AS c;")
        .unwrap();
    p.exp_string("| after the comment |").unwrap();
    p.exp_string("spectradb> ").unwrap();
    p.send_line("-- a comment alone").unwrap();
    p.exp_string("spectradb> ").unwrap();
    // An error is one clear message, and the shell carries on.
    p.send_line("SELECT * FROM missing_table;").unwrap();
    p.exp_string("Error: statement `SELECT * FROM missing_table`")
        .unwrap();
    p.exp_string("spectradb> ").unwrap();
    // Ctrl-C cancels a long query at once (it would run for minutes).
    p.send_line("SELECT count(*) FROM generate_series(1, 100000000000);")
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(800));
    p.send_control('c').unwrap();
    p.exp_string("interrupted: the query was cancelled")
        .unwrap();
    p.exp_string("spectradb> ").unwrap();
    // Ingest in a terminal reports how it went (the bar itself is cleared).
    p.send_line(&format!("{CREATE};")).unwrap();
    p.exp_string("ingested 20 images").unwrap();
    p.exp_string("spectradb> ").unwrap();
    p.send_line(".help").unwrap();
    p.exp_string("CREATE IMAGE TABLE").unwrap();
    p.exp_string("spectradb> ").unwrap();
    p.send_line("SELECT 'still here' AS s;").unwrap();
    p.exp_string("still here").unwrap();
    p.exp_string("spectradb> ").unwrap();
    p.send_line(".quit").unwrap();
    p.exp_eof().unwrap();
    let history = std::fs::read_to_string(home.path().join(".spectradb_history")).unwrap();
    assert!(history.contains("SELECT 40 + 2 AS answer;"), "{history}");
    assert!(Path::new(&db).join("catalog.json").exists() || Path::new(&db).is_dir());
}

#[test]
fn ordinary_tables_views_and_external_tables_persist() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("p.db");
    let db = db.to_str().unwrap();
    let setup = format!(
        "{CREATE};
         CREATE TABLE notes (photo_id BIGINT, note VARCHAR) AS VALUES (3, 'apple'), (4, 'baboon');
         INSERT INTO notes VALUES (5, 'third');
         CREATE VIEW noted AS SELECT p.id, n.note FROM photos p JOIN notes n ON p.id = n.photo_id;
         CREATE EXTERNAL TABLE captions STORED AS CSV LOCATION 'tests/data/captions.csv' OPTIONS ('format.has_header' 'true');
         CREATE TABLE scratch AS SELECT 1 AS x;
         DROP TABLE scratch;"
    );
    let out = run(&[db], Some(&setup));
    assert!(out.status.success(), "{}", text(&out.stderr));
    // A new process sees all of it.
    let out = run(
        &[
            db,
            "--format",
            "csv",
            "-c",
            "SELECT id, note FROM noted ORDER BY id",
            "-c",
            "SELECT count(*) AS captions FROM captions",
            "-c",
            "SHOW TABLES",
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "id,note\n3,apple\n4,baboon\n5,third\ncaptions\n2\n\
         name,kind,rows,chroma,quality,status\ncaptions,external,,,,\nnoted,view,,,,\nnotes,table,3,,,\nphotos,image,20,420,90,\n"
    );
    // A failing statement changes nothing that was committed.
    let out = run(
        &[db, "-c", "INSERT INTO notes VALUES ('not a number', 1, 2)"],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let out = run(&[db, "--format", "csv", "-c", "DELETE FROM notes WHERE photo_id = 4; DROP VIEW noted; SELECT count(*) AS n FROM notes"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run(
        &[
            db,
            "--format",
            "csv",
            "-c",
            "SELECT photo_id FROM notes ORDER BY 1",
            "-c",
            "SELECT * FROM noted",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "photo_id\n3\n5\n");
    assert!(text(&out.stderr).contains("noted"), "{}", text(&out.stderr));
}

#[test]
fn ctrl_c_stops_calibrate_in_the_repl_and_stores_nothing() {
    let home = tempfile::tempdir().unwrap();
    let db = home.path().join("p.db");
    let cmd = format!("env HOME={} {BIN} {}", home.path().display(), db.display());
    let mut p = rexpect::spawn(&cmd, Some(120_000)).unwrap();
    p.exp_string("spectradb> ").unwrap();
    p.send_line(&format!("{CREATE};")).unwrap();
    p.exp_string("spectradb> ").unwrap();
    p.send_line(&format!("{};", create_mobilenet())).unwrap();
    p.exp_string("spectradb> ").unwrap();
    p.send_line("CALIBRATE mobilenet ON photos SAMPLE 20;")
        .unwrap();
    // The progress bar shows once the first format is measured; then Ctrl-C.
    p.exp_string("formats x 20 images").unwrap();
    p.send_control('c').unwrap();
    p.exp_string("interrupted; no profile stored").unwrap();
    p.exp_string("spectradb> ").unwrap();
    p.send_line("SHOW FORMATS FOR mobilenet ON photos;")
        .unwrap();
    p.exp_string("run CALIBRATE mobilenet ON photos first")
        .unwrap();
    p.exp_string("spectradb> ").unwrap();
    p.send_line(".quit").unwrap();
    p.exp_eof().unwrap();
}

/// `spectradb info` describes a data file: rows, layout, format version
/// (2 for photos, whose low bands are coded as two halves) and the bytes
/// per channel.
#[test]
fn info_describes_a_data_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("p.db");
    let out = run(&[db.to_str().unwrap(), "-c", CREATE], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let data: Vec<_> = files_under(&db)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    assert!(!data.is_empty());
    let out = run(&["info", data[0].to_str().unwrap()], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(shown.contains("images, chroma 420"), "{shown}");
    assert!(shown.contains("format version 2"), "{shown}");
    assert!(shown.contains("image.y.*"), "{shown}");
}

#[test]
fn a_model_family_over_several_lines_and_a_compressed_view_from_the_shell() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("f.db");
    let db = db.to_str().unwrap();
    let script = "CREATE IMAGE TABLE fashion FROM 'tests/data/fashion' \
                  WITH (label = 'parent_dir', chroma = 'gray');\n\
        CREATE MODEL fam FAMILY (\n\
          FORMAT 'y s8 28' FROM 'tests/data/models/fashion_mnist_cnn.onnx',\n\
          FORMAT 'y s4 14' FROM 'tests/data/models/fashion_mnist_cnn_14.onnx',\n\
          FORMAT 'y s2 7' FROM 'tests/data/models/fashion_mnist_cnn_7.onnx'\n\
        ) WITH (labels = 'tests/data/models/fashion_mnist_classes.txt');\n\
        SET spectradb.read_format = 'y s4 14';\n\
        SELECT count(*) AS right FROM fashion WHERE fam(image) = label;\n";
    let out = run(&[db, "--format", "csv"], Some(script));
    assert!(out.status.success(), "{}", text(&out.stderr));
    // The 14-pixel member is right on 37 of the 40 images (sql/families.slt).
    assert!(
        text(&out.stdout).ends_with("right\n37\n"),
        "{}",
        text(&out.stdout)
    );

    // A member's error names the member and keeps what was committed.
    let out = run(
        &[
            db,
            "-c",
            "CREATE MODEL bad FAMILY (FORMAT 'y s8 28' FROM 'tests/data/models/fashion_mnist_cnn.onnx', \
             FORMAT 'y s4 14' FROM 'tests/data/models/missing.onnx')",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains(
            "model family bad, member 2 (FORMAT 'y s4 14' FROM 'tests/data/models/missing.onnx'): \
             tests/data/models/missing.onnx: no such model file"
        ),
        "{}",
        text(&out.stderr)
    );

    let out = run(
        &[
            db,
            "--format",
            "csv",
            "-c",
            "CREATE IMAGE TABLE colors FROM 'tests/data/colors'",
            "-c",
            "CREATE MODEL tiny FROM 'tests/data/models/tiny_rgb.onnx' \
             WITH (labels = 'tests/data/models/tiny_rgb_labels.txt')",
            "-c",
            "CREATE MATERIALIZED VIEW s8 WITH (compression = 'int8') \
             AS SELECT id, tiny_scores(image) AS s FROM colors",
            "-c",
            "SHOW MODELS",
            "-c",
            "SHOW TABLES",
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("fam,\"family: y s8 28, y s4 14, y s2 7"),
        "{stdout}"
    );
    assert!(
        stdout.contains("s8,materialized view,3,,,\"fresh; int8 vectors,"),
        "{stdout}"
    );
}
