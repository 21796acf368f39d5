//! The statements spectradb adds to SQL, parsed with sqlparser's parser
//! (so errors carry a line and column), and a splitter for scripts.
//!
//! ```sql
//! CREATE IMAGE TABLE [IF NOT EXISTS] t FROM '<glob or dir>' [WITH (k = v, ...)]
//! INSERT INTO t FROM '<glob or dir>' [WITH (k = v, ...)]
//! DROP TABLE [IF EXISTS] t [, ...] -- image tables here, others to DataFusion
//! SHOW TABLES
//! CHECK TABLE t [, ...] | CHECK DATABASE
//! VACUUM [RETAIN n SECONDS|MINUTES|HOURS|DAYS]
//! CREATE MODEL m FROM '<file.onnx>' [ON FEATURES OF backbone] [WITH (k = v, ...)]
//! CREATE MODEL m FAMILY (FORMAT '<read format>' FROM '<file.onnx>' [WITH (...)], ...) [WITH (...)]
//! DROP MODEL [IF EXISTS] m
//! SHOW MODELS
//! CALIBRATE m ON t [USING label_column] [SAMPLE n]
//! SHOW FORMATS FOR m ON t
//! RESET spectradb.<option>
//! CREATE MATERIALIZED VIEW [IF NOT EXISTS] v [WITH (compression = 'f16' | 'int8')] AS <query>
//! REFRESH MATERIALIZED VIEW v
//! DROP MATERIALIZED VIEW [IF EXISTS] v
//! ```
//! Everything else goes to DataFusion unchanged.

use datafusion::sql::sqlparser::ast::Ident;
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

use crate::error::{Error, Result};
use crate::read_format::model_spec::MemberSource;
use crate::storage::catalog::Compression;

/// A statement DataFusion does not know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    CreateImageTable {
        name: TableName,
        if_not_exists: bool,
        source: String,
        options: Vec<(String, String)>,
    },
    InsertFrom {
        name: TableName,
        source: String,
        options: Vec<(String, String)>,
    },
    /// Image tables are dropped by spectradb, others by DataFusion, all in
    /// one commit.
    DropTable {
        names: Vec<TableName>,
        if_exists: bool,
    },
    ShowTables,
    /// `CHECK TABLE t [, ...]` (`names`) or `CHECK DATABASE` (`None`):
    /// reads and verifies every file.
    Check {
        names: Option<Vec<TableName>>,
    },
    /// Deletes files superseded longer ago than `retain` (the database's
    /// retention period when `None`).
    Vacuum {
        retain: Option<std::time::Duration>,
    },
    CreateModel {
        name: String,
        source: String,
        /// A head: its input is this model's output.
        backbone: Option<String>,
        options: Vec<(String, String)>,
    },
    /// A model family: one function, a member per read format.
    CreateModelFamily {
        name: String,
        members: Vec<MemberSource>,
        options: Vec<(String, String)>,
    },
    DropModel {
        name: String,
        if_exists: bool,
    },
    ShowModels,
    Calibrate {
        model: String,
        table: String,
        label_column: Option<String>,
        sample: Option<usize>,
    },
    ShowFormats {
        model: String,
        table: String,
    },
    /// `RESET spectradb.<name>` (DataFusion resets only its own options).
    ResetOption {
        name: String,
    },
    CreateMaterializedView {
        name: TableName,
        if_not_exists: bool,
        /// `WITH (compression = 'f16' | 'int8' | 'none')`.
        compression: Compression,
        /// The query's text as written.
        query: String,
    },
    RefreshMaterializedView {
        name: TableName,
    },
    DropMaterializedView {
        name: TableName,
        if_exists: bool,
    },
}

/// A table name as written: one to three parts (`t`, `public.t`,
/// `datafusion.public.t`), each normalised like DataFusion does.
pub type TableName = Vec<String>;

fn parse_table_name(p: &mut Parser) -> Result<TableName, ParserError> {
    let name = p.parse_object_name(false)?;
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|part| part.as_ident().map(normalize_ident))
        .collect::<Option<_>>()
        .ok_or_else(|| ParserError::ParserError(format!("'{name}' is not a table name")))?;
    if parts.len() > 3 {
        return Err(ParserError::ParserError(format!(
            "'{name}' has more than three parts (catalog.schema.table)"
        )));
    }
    Ok(parts)
}

fn sql_error(e: ParserError) -> Error {
    Error::Sql(e.to_string())
}

/// Identifiers as DataFusion sees them: unquoted ones are lower-cased.
pub fn normalize_ident(id: &Ident) -> String {
    if id.quote_style.is_some() {
        id.value.clone()
    } else {
        id.value.to_ascii_lowercase()
    }
}

fn is_word(t: &Token, word: &str) -> bool {
    matches!(t, Token::Word(w) if w.value.eq_ignore_ascii_case(word))
}

/// Parses `sql` (one statement) if it is one of spectradb's own;
/// `Ok(None)` hands it to DataFusion.
pub fn parse_command(sql: &str) -> Result<Option<Command>> {
    let dialect = GenericDialect {};
    let tokens: Vec<Token> = match Tokenizer::new(&dialect, sql).tokenize() {
        Ok(t) => t,
        Err(_) => return Ok(None), // DataFusion reports tokenizer errors itself
    };
    let words: Vec<&Token> = tokens
        .iter()
        .filter(|t| !matches!(t, Token::Whitespace(_)))
        .take(4)
        .collect();
    let at = |i: usize, w: &str| words.get(i).is_some_and(|t| is_word(t, w));
    let ours = (at(0, "create") && at(1, "image"))
        || (at(0, "insert") && at(1, "into") && at(3, "from"))
        || (at(0, "drop") && at(1, "table"))
        || (at(0, "show") && at(1, "tables"))
        || (at(0, "create") && at(1, "model"))
        || (at(0, "drop") && at(1, "model"))
        || (at(0, "show") && at(1, "models"))
        || at(0, "calibrate")
        || (at(0, "show") && at(1, "formats"))
        || at(0, "vacuum")
        || (at(0, "check") && (at(1, "table") || at(1, "database")))
        || (at(1, "materialized") && (at(0, "create") || at(0, "refresh") || at(0, "drop")));
    if !ours {
        return Ok(parse_reset(&words));
    }
    let mut p = Parser::new(&dialect).try_with_sql(sql).map_err(sql_error)?;
    let cmd = if at(1, "materialized") {
        parse_materialized_view(&mut p, sql)
    } else if at(0, "check") {
        parse_check(&mut p)
    } else if at(0, "vacuum") {
        parse_vacuum(&mut p)
    } else if at(0, "calibrate") || at(1, "formats") {
        parse_format_statement(&mut p)
    } else if at(1, "model") || at(1, "models") {
        parse_model_statement(&mut p)
    } else {
        parse_other(&mut p)
    }
    .map_err(sql_error)?;
    let _ = p.consume_token(&Token::SemiColon);
    let rest = p.peek_token();
    if rest.token != Token::EOF {
        return Err(sql_error(ParserError::ParserError(format!(
            "Expected: end of statement, found: {rest}"
        ))));
    }
    Ok(Some(cmd))
}

/// `CREATE MODEL`, `DROP MODEL`, `SHOW MODELS` (the second word is checked).
fn parse_model_statement(p: &mut Parser) -> Result<Command, ParserError> {
    if p.parse_keyword(Keyword::CREATE) {
        p.next_token();
        let name = normalize_ident(&p.parse_identifier()?);
        if is_word(&p.peek_token().token, "family") {
            p.next_token();
            let members = parse_family_members(p)?;
            let options = parse_with_options(p)?;
            return Ok(Command::CreateModelFamily {
                name,
                members,
                options,
            });
        }
        p.expect_keyword_is(Keyword::FROM)?;
        let source = parse_quoted(p)?;
        let backbone = if p.parse_keyword(Keyword::ON) {
            let tok = p.next_token();
            if !is_word(&tok.token, "features") {
                return p.expected("FEATURES OF <backbone model> after ON", tok);
            }
            p.expect_keyword_is(Keyword::OF)?;
            Some(normalize_ident(&p.parse_identifier()?))
        } else {
            None
        };
        let options = parse_with_options(p)?;
        Ok(Command::CreateModel {
            name,
            source,
            backbone,
            options,
        })
    } else if p.parse_keyword(Keyword::DROP) {
        p.next_token();
        let if_exists = p.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
        let name = normalize_ident(&p.parse_identifier()?);
        Ok(Command::DropModel { name, if_exists })
    } else {
        p.next_token();
        p.next_token();
        Ok(Command::ShowModels)
    }
}

/// `(FORMAT '<format>' FROM '<file>' [WITH (...)], ...)` of a family.
fn parse_family_members(p: &mut Parser) -> Result<Vec<MemberSource>, ParserError> {
    p.expect_token(&Token::LParen)?;
    let members = p.parse_comma_separated(|p| {
        p.expect_keyword_is(Keyword::FORMAT)?;
        let tok = p.next_token();
        let format = match tok.token {
            Token::SingleQuotedString(s) => s,
            _ => return p.expected("a quoted read format such as 'y s4 14'", tok),
        };
        p.expect_keyword_is(Keyword::FROM)?;
        let source = parse_quoted(p)?;
        let options = parse_with_options(p)?;
        Ok(MemberSource {
            format,
            source,
            options,
        })
    })?;
    p.expect_token(&Token::RParen)?;
    Ok(members)
}

/// `RESET spectradb.<name>` from its first tokens.
fn parse_reset(words: &[&Token]) -> Option<Command> {
    let [first, ns, Token::Period, Token::Word(name)] = words else {
        return None;
    };
    (is_word(first, "reset") && is_word(ns, "spectradb")).then(|| Command::ResetOption {
        name: name.value.to_ascii_lowercase(),
    })
}

/// `CALIBRATE m ON t [USING col] [SAMPLE n]`, `SHOW FORMATS FOR m ON t`.
fn parse_format_statement(p: &mut Parser) -> Result<Command, ParserError> {
    let calibrate = is_word(&p.peek_token().token, "calibrate");
    if calibrate {
        p.next_token();
    } else {
        p.next_token(); // SHOW
        p.next_token(); // FORMATS
        p.expect_keyword_is(Keyword::FOR)?;
    }
    let model = normalize_ident(&p.parse_identifier()?);
    p.expect_keyword_is(Keyword::ON)?;
    let table = normalize_ident(&p.parse_identifier()?);
    if !calibrate {
        return Ok(Command::ShowFormats { model, table });
    }
    let mut label_column = None;
    let mut sample = None;
    loop {
        if label_column.is_none() && p.parse_keyword(Keyword::USING) {
            label_column = Some(normalize_ident(&p.parse_identifier()?));
        } else if sample.is_none() && is_word(&p.peek_token().token, "sample") {
            p.next_token();
            let tok = p.next_token();
            let n = match &tok.token {
                Token::Number(n, _) => n.parse::<usize>().ok().filter(|&n| n > 0),
                _ => None,
            };
            match n {
                Some(n) => sample = Some(n),
                None => return p.expected("a positive number of images after SAMPLE", tok),
            }
        } else {
            break;
        }
    }
    Ok(Command::Calibrate {
        model,
        table,
        label_column,
        sample,
    })
}

fn parse_other(p: &mut Parser) -> Result<Command, ParserError> {
    if p.parse_keyword(Keyword::CREATE) {
        p.next_token(); // IMAGE, checked by the caller
        p.expect_keyword_is(Keyword::TABLE)?;
        let if_not_exists = p.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
        let name = parse_table_name(p)?;
        p.expect_keyword_is(Keyword::FROM)?;
        let source = parse_quoted(p)?;
        let options = parse_with_options(p)?;
        Ok(Command::CreateImageTable {
            name,
            if_not_exists,
            source,
            options,
        })
    } else if p.parse_keywords(&[Keyword::INSERT, Keyword::INTO]) {
        let name = parse_table_name(p)?;
        p.expect_keyword_is(Keyword::FROM)?;
        let source = parse_quoted(p)?;
        let options = parse_with_options(p)?;
        Ok(Command::InsertFrom {
            name,
            source,
            options,
        })
    } else if p.parse_keywords(&[Keyword::DROP, Keyword::TABLE]) {
        let if_exists = p.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
        let names = p.parse_comma_separated(parse_table_name)?;
        if p.parse_keyword(Keyword::CASCADE) || p.parse_keyword(Keyword::RESTRICT) {
            return Err(ParserError::ParserError(
                "DROP TABLE takes no CASCADE or RESTRICT: views over a dropped table stop working and are reported".into(),
            ));
        }
        Ok(Command::DropTable { names, if_exists })
    } else {
        p.next_token();
        p.next_token();
        Ok(Command::ShowTables)
    }
}

/// Byte offset of a 1-based (line, column) location in `sql`.
fn byte_offset(sql: &str, line: u64, column: u64) -> usize {
    let mut offset = 0;
    for (i, text) in sql.split_inclusive('\n').enumerate() {
        if i as u64 + 1 == line {
            return offset
                + text
                    .char_indices()
                    .nth(column.saturating_sub(1) as usize)
                    .map_or(text.len(), |(b, _)| b);
        }
        offset += text.len();
    }
    sql.len()
}

/// `CREATE MATERIALIZED VIEW [IF NOT EXISTS] v AS <query>`,
/// `REFRESH MATERIALIZED VIEW v`, `DROP MATERIALIZED VIEW [IF EXISTS] v`.
fn parse_materialized_view(p: &mut Parser, sql: &str) -> Result<Command, ParserError> {
    let verb = p.next_token();
    p.next_token(); // MATERIALIZED, checked by the caller
    p.expect_keyword_is(Keyword::VIEW)?;
    if is_word(&verb.token, "refresh") {
        let name = parse_table_name(p)?;
        return Ok(Command::RefreshMaterializedView { name });
    }
    if is_word(&verb.token, "drop") {
        let if_exists = p.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
        let name = parse_table_name(p)?;
        return Ok(Command::DropMaterializedView { name, if_exists });
    }
    let if_not_exists = p.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
    let name = parse_table_name(p)?;
    let mut compression = Compression::None;
    if p.parse_keyword(Keyword::WITH) {
        p.expect_token(&Token::LParen)?;
        loop {
            let option = p.parse_identifier()?.value.to_ascii_lowercase();
            p.expect_token(&Token::Eq)?;
            let value = p.parse_literal_string()?;
            match option.as_str() {
                "compression" => {
                    compression = Compression::parse(&value).map_err(ParserError::ParserError)?
                }
                other => {
                    return Err(ParserError::ParserError(format!(
                        "unknown materialized view option '{other}' (known: compression)"
                    )))
                }
            }
            if !p.consume_token(&Token::Comma) {
                break;
            }
        }
        p.expect_token(&Token::RParen)?;
    }
    p.expect_keyword_is(Keyword::AS)?;
    let start = p.peek_token().span.start;
    let begin = byte_offset(sql, start.line, start.column);
    p.parse_query()?;
    let end = match p.peek_token() {
        t if t.token == Token::EOF => sql.len(),
        t => byte_offset(sql, t.span.start.line, t.span.start.column),
    };
    let query = sql[begin..end]
        .trim()
        .trim_end_matches(';')
        .trim()
        .to_string();
    Ok(Command::CreateMaterializedView {
        name,
        if_not_exists,
        compression,
        query,
    })
}

/// `VACUUM [RETAIN n SECONDS|MINUTES|HOURS|DAYS]`.
fn parse_vacuum(p: &mut Parser) -> Result<Command, ParserError> {
    p.next_token(); // VACUUM
    if !is_word(&p.peek_token().token, "retain") {
        return Ok(Command::Vacuum { retain: None });
    }
    p.next_token();
    let tok = p.next_token();
    let Token::Number(n, _) = &tok.token else {
        return p.expected("a number after RETAIN (VACUUM RETAIN 1 HOURS)", tok);
    };
    let Ok(n) = n.parse::<u64>() else {
        return p.expected("a whole number after RETAIN", tok);
    };
    let unit = p.next_token();
    let secs = match &unit.token {
        Token::Word(w) => match w.value.to_ascii_lowercase().trim_end_matches('s') {
            "second" => 1,
            "minute" => 60,
            "hour" => 3600,
            "day" => 86400,
            _ => return p.expected("SECONDS, MINUTES, HOURS or DAYS", unit),
        },
        _ => return p.expected("SECONDS, MINUTES, HOURS or DAYS", unit),
    };
    let retain = n
        .checked_mul(secs)
        .map(std::time::Duration::from_secs)
        .ok_or_else(|| ParserError::ParserError(format!("RETAIN {n} {unit} is too long")))?;
    Ok(Command::Vacuum {
        retain: Some(retain),
    })
}

/// `CHECK TABLE t [, ...]` or `CHECK DATABASE` (the words are checked).
fn parse_check(p: &mut Parser) -> Result<Command, ParserError> {
    p.next_token(); // CHECK
    if p.parse_keyword(Keyword::DATABASE) {
        return Ok(Command::Check { names: None });
    }
    p.expect_keyword_is(Keyword::TABLE)?;
    let mut names = vec![parse_table_name(p)?];
    while p.consume_token(&Token::Comma) {
        names.push(parse_table_name(p)?);
    }
    Ok(Command::Check { names: Some(names) })
}

/// A single-quoted string (file patterns must be quoted, as in COPY).
fn parse_quoted(p: &mut Parser) -> Result<String, ParserError> {
    let tok = p.next_token();
    match tok.token {
        Token::SingleQuotedString(s) => Ok(s),
        _ => p.expected("a quoted file pattern such as 'photos/*.jpg'", tok),
    }
}

/// `WITH (key = value, ...)`; values are strings, numbers or bare words.
fn parse_with_options(p: &mut Parser) -> Result<Vec<(String, String)>, ParserError> {
    if !p.parse_keyword(Keyword::WITH) {
        return Ok(Vec::new());
    }
    p.expect_token(&Token::LParen)?;
    let options = p.parse_comma_separated(|p| {
        let key = p.parse_identifier()?.value.to_ascii_lowercase();
        p.expect_token(&Token::Eq)?;
        let tok = p.next_token();
        let value = match &tok.token {
            Token::SingleQuotedString(s) | Token::DoubleQuotedString(s) => s.clone(),
            Token::Number(n, _) => n.clone(),
            Token::Word(w) => w.value.clone(),
            _ => return p.expected("an option value (a string or a number)", tok),
        };
        Ok((key, value))
    })?;
    p.expect_token(&Token::RParen)?;
    Ok(options)
}

/// Splits a script into statements at top-level `;` (not inside quotes or
/// comments). Returns the complete statements, comments removed (line
/// breaks kept) and those that hold nothing else skipped, and the
/// unfinished rest exactly as written, so that the caller can append the
/// next line to it and split again; the rest is empty when nothing but
/// whitespace and finished comments follows the last `;`.
pub fn split_statements(script: &str) -> (Vec<String>, String) {
    let mut out = Vec::new();
    // The current statement without its comments.
    let mut cur = String::new();
    // Where the current statement's text starts in `script`.
    let mut start = 0;
    // The script ends inside a quote or a block comment.
    let mut open = false;
    let mut chars = script.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '\'' | '"' | '`' => {
                cur.push(c);
                open = true;
                for (_, d) in chars.by_ref() {
                    cur.push(d);
                    if d == c {
                        open = false;
                        break;
                    }
                }
            }
            '-' if chars.peek().is_some_and(|&(_, d)| d == '-') => {
                for (_, d) in chars.by_ref() {
                    if d == '\n' {
                        cur.push('\n');
                        break;
                    }
                }
            }
            '/' if chars.peek().is_some_and(|&(_, d)| d == '*') => {
                chars.next();
                cur.push(' ');
                open = true;
                let mut prev = ' ';
                for (_, d) in chars.by_ref() {
                    if d == '\n' {
                        cur.push('\n');
                    }
                    if prev == '*' && d == '/' {
                        open = false;
                        break;
                    }
                    prev = d;
                }
            }
            ';' => {
                let stmt = cur.trim();
                if !stmt.is_empty() {
                    out.push(stmt.to_string());
                }
                cur.clear();
                start = i + 1;
            }
            _ => cur.push(c),
        }
    }
    let rest = if open || !cur.trim().is_empty() {
        script[start..].trim_start().to_string()
    } else {
        String::new()
    };
    (out, rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_materialized_view_statements() {
        let sql = "create materialized view if not exists Feats as\n  SELECT id, m(image) AS f FROM photos WHERE id > 2;";
        assert_eq!(
            parse_command(sql).unwrap(),
            Some(Command::CreateMaterializedView {
                name: vec!["feats".into()],
                if_not_exists: true,
                compression: Compression::None,
                query: "SELECT id, m(image) AS f FROM photos WHERE id > 2".into(),
            })
        );
        assert_eq!(
            parse_command("CREATE MATERIALIZED VIEW f WITH (Compression = 'INT8') AS SELECT 1")
                .unwrap(),
            Some(Command::CreateMaterializedView {
                name: vec!["f".into()],
                if_not_exists: false,
                compression: Compression::Int8,
                query: "SELECT 1".into(),
            })
        );
        for (sql, why) in [
            (
                "CREATE MATERIALIZED VIEW f WITH (compression = 'zip') AS SELECT 1",
                "unknown compression 'zip'",
            ),
            (
                "CREATE MATERIALIZED VIEW f WITH (level = '3') AS SELECT 1",
                "unknown materialized view option 'level'",
            ),
        ] {
            let e = parse_command(sql).unwrap_err().to_string();
            assert!(e.contains(why), "{sql}: {e}");
        }
        assert_eq!(
            parse_command("REFRESH MATERIALIZED VIEW feats").unwrap(),
            Some(Command::RefreshMaterializedView {
                name: vec!["feats".into()]
            })
        );
        assert_eq!(
            parse_command("DROP MATERIALIZED VIEW IF EXISTS public.feats").unwrap(),
            Some(Command::DropMaterializedView {
                name: vec!["public".into(), "feats".into()],
                if_exists: true
            })
        );
        let err = parse_command("CREATE MATERIALIZED VIEW v AS SELEC 1")
            .unwrap_err()
            .to_string();
        assert!(err.contains("Expected"), "{err}");
        let err = parse_command("CREATE MATERIALIZED VIEW v SELECT 1")
            .unwrap_err()
            .to_string();
        assert!(err.contains("AS"), "{err}");
        assert_eq!(
            parse_command(
                "CREATE MODEL f FAMILY (FORMAT 'y s8 28' FROM 'a.onnx', \
                 FORMAT 'y k6 coef' FROM 'b.onnx' WITH (bands = 6)) WITH (labels = 'l.txt')"
            )
            .unwrap(),
            Some(Command::CreateModelFamily {
                name: "f".into(),
                members: vec![
                    MemberSource {
                        format: "y s8 28".into(),
                        source: "a.onnx".into(),
                        options: vec![],
                    },
                    MemberSource {
                        format: "y k6 coef".into(),
                        source: "b.onnx".into(),
                        options: vec![("bands".into(), "6".into())],
                    },
                ],
                options: vec![("labels".into(), "l.txt".into())],
            })
        );
        for (sql, why) in [
            (
                "CREATE MODEL f FAMILY FORMAT 'y s8 28' FROM 'a.onnx'",
                "Expected: (",
            ),
            (
                "CREATE MODEL f FAMILY (FORMAT y FROM 'a.onnx')",
                "quoted read format",
            ),
            (
                "CREATE MODEL f FAMILY (FORMAT 'y s8 28' 'a.onnx')",
                "Expected: FROM",
            ),
            (
                "CREATE MODEL f FAMILY (FORMAT 'y s8 28' FROM 'a.onnx'",
                "Expected: )",
            ),
        ] {
            let e = parse_command(sql).unwrap_err().to_string();
            assert!(e.contains(why), "{sql}: {e}");
        }
        assert_eq!(
            parse_command("CREATE MODEL h FROM 'h.onnx' ON FEATURES OF b WITH (output = 'class')")
                .unwrap(),
            Some(Command::CreateModel {
                name: "h".into(),
                source: "h.onnx".into(),
                backbone: Some("b".into()),
                options: vec![("output".into(), "class".into())],
            })
        );
        let err = parse_command("CREATE MODEL h FROM 'h.onnx' ON b")
            .unwrap_err()
            .to_string();
        assert!(err.contains("FEATURES OF"), "{err}");
    }

    #[test]
    fn parses_create_image_table_with_options() {
        let cmd = parse_command(
            "CREATE IMAGE TABLE IF NOT EXISTS Photos FROM 'a/**/*.jpg' \
             WITH (label = 'parent_dir', quality = 90, chroma = '444', on_error = skip);",
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            cmd,
            Command::CreateImageTable {
                name: vec!["photos".into()],
                if_not_exists: true,
                source: "a/**/*.jpg".into(),
                options: vec![
                    ("label".into(), "parent_dir".into()),
                    ("quality".into(), "90".into()),
                    ("chroma".into(), "444".into()),
                    ("on_error".into(), "skip".into()),
                ],
            }
        );
    }

    #[test]
    fn leaves_other_statements_to_datafusion() {
        for sql in [
            "SELECT 1",
            "INSERT INTO t VALUES (1)",
            "INSERT INTO t SELECT * FROM u",
            "CREATE TABLE t AS SELECT 1",
        ] {
            assert_eq!(parse_command(sql).unwrap(), None, "{sql}");
        }
        assert_eq!(
            parse_command("insert into t from 'x/*.png'").unwrap(),
            Some(Command::InsertFrom {
                name: vec!["t".into()],
                source: "x/*.png".into(),
                options: vec![]
            })
        );
        assert_eq!(
            parse_command("DROP TABLE IF EXISTS \"Mixed\"").unwrap(),
            Some(Command::DropTable {
                names: vec![vec!["Mixed".into()]],
                if_exists: true
            })
        );
        assert_eq!(
            parse_command("drop table a, public.B, datafusion.public.c").unwrap(),
            Some(Command::DropTable {
                names: vec![
                    vec!["a".into()],
                    vec!["public".into(), "b".into()],
                    vec!["datafusion".into(), "public".into(), "c".into()]
                ],
                if_exists: false
            })
        );
        let err = parse_command("DROP TABLE a.b.c.d").unwrap_err().to_string();
        assert!(err.contains("more than three parts"), "{err}");
        let err = parse_command("DROP TABLE t CASCADE")
            .unwrap_err()
            .to_string();
        assert!(err.contains("CASCADE"), "{err}");
        assert_eq!(
            parse_command("show tables").unwrap(),
            Some(Command::ShowTables)
        );
    }

    #[test]
    fn parses_check_table_and_database() {
        assert_eq!(
            parse_command("CHECK DATABASE;").unwrap(),
            Some(Command::Check { names: None })
        );
        assert_eq!(
            parse_command("check table Photos, public.notes").unwrap(),
            Some(Command::Check {
                names: Some(vec![
                    vec!["photos".into()],
                    vec!["public".into(), "notes".into()]
                ])
            })
        );
        for bad in ["CHECK TABLE", "CHECK TABLE t u", "CHECK DATABASE d"] {
            let err = parse_command(bad).unwrap_err().to_string();
            assert!(err.starts_with("SQL error"), "{bad}: {err}");
        }
        // Anything else starting with CHECK is DataFusion's to refuse.
        assert_eq!(parse_command("CHECK something").unwrap(), None);
    }

    #[test]
    fn parses_vacuum_with_and_without_retention() {
        assert_eq!(
            parse_command("VACUUM;").unwrap(),
            Some(Command::Vacuum { retain: None })
        );
        assert_eq!(
            parse_command("vacuum retain 2 hours").unwrap(),
            Some(Command::Vacuum {
                retain: Some(std::time::Duration::from_secs(7200))
            })
        );
        assert_eq!(
            parse_command("VACUUM RETAIN 0 SECONDS").unwrap(),
            Some(Command::Vacuum {
                retain: Some(std::time::Duration::ZERO)
            })
        );
        for bad in [
            "VACUUM RETAIN",
            "VACUUM RETAIN 3 weeks",
            "VACUUM RETAIN -1 days",
        ] {
            let err = parse_command(bad).unwrap_err().to_string();
            assert!(
                err.contains("RETAIN") || err.contains("SECONDS"),
                "{bad}: {err}"
            );
        }
        let err = parse_command("VACUUM RETAIN 99999999999999999 DAYS")
            .unwrap_err()
            .to_string();
        assert!(err.contains("too long"), "{err}");
    }

    #[test]
    fn errors_carry_the_position() {
        let err = parse_command("CREATE IMAGE TABLE t FROM photos")
            .unwrap_err()
            .to_string();
        assert!(err.contains("Line: 1, Column: 27"), "{err}");
        let err = parse_command("SHOW TABLES extra").unwrap_err().to_string();
        assert!(err.contains("end of statement"), "{err}");
    }

    #[test]
    fn parses_calibrate_and_show_formats() {
        assert_eq!(
            parse_command("CALIBRATE Mobilenet ON photos USING label SAMPLE 50;").unwrap(),
            Some(Command::Calibrate {
                model: "mobilenet".into(),
                table: "photos".into(),
                label_column: Some("label".into()),
                sample: Some(50),
            })
        );
        assert_eq!(
            parse_command("calibrate m on t sample 10").unwrap(),
            Some(Command::Calibrate {
                model: "m".into(),
                table: "t".into(),
                label_column: None,
                sample: Some(10),
            })
        );
        assert_eq!(
            parse_command("SHOW FORMATS FOR m ON t").unwrap(),
            Some(Command::ShowFormats {
                model: "m".into(),
                table: "t".into()
            })
        );
        assert_eq!(
            parse_command("RESET spectradb.accuracy_target").unwrap(),
            Some(Command::ResetOption {
                name: "accuracy_target".into()
            })
        );
        assert_eq!(parse_command("RESET datafusion.x.y").unwrap(), None);
        for (sql, want) in [
            ("CALIBRATE m ON t SAMPLE 0", "positive number"),
            ("CALIBRATE m t", "ON"),
            ("SHOW FORMATS m ON t", "FOR"),
            ("CALIBRATE m ON t SAMPLE 5 extra", "end of statement"),
        ] {
            let err = parse_command(sql).unwrap_err().to_string();
            assert!(err.contains(want), "{sql}: {err}");
        }
    }

    #[test]
    fn splits_scripts_outside_quotes_and_comments() {
        let (stmts, rest) =
            split_statements("SELECT ';' AS a; -- c;\nSELECT 2 /* ; */ ;\n SELECT 3");
        assert_eq!(stmts, vec!["SELECT ';' AS a", "SELECT 2"]);
        assert_eq!(rest, "SELECT 3");
    }

    /// Feeds `script` a line at a time as the shell does: each line is
    /// appended to the unfinished rest, which is split again.
    fn split_by_lines(script: &str) -> (Vec<String>, String) {
        let (mut all, mut pending) = (Vec::new(), String::new());
        for line in script.lines() {
            pending.push_str(line);
            pending.push('\n');
            let (stmts, rest) = split_statements(&pending);
            all.extend(stmts);
            pending = rest;
        }
        (all, pending)
    }

    #[test]
    fn splits_scripts_as_people_write_them() {
        let cases: &[(&str, &[&str], &str)] = &[
            // A clause per line, no indentation: the line break separates words.
            (
                "SELECT count(*) AS n\nFROM t\nWHERE n > 1;\n",
                &["SELECT count(*) AS n\nFROM t\nWHERE n > 1"],
                "",
            ),
            // Comments at line ends, and between statements.
            (
                "SELECT a, -- the first\nb -- the second\nFROM t; -- done\n-- next: the count\nSELECT 2;\n",
                &["SELECT a, \nb \nFROM t", "SELECT 2"],
                "",
            ),
            // A `;` inside strings and quoted names, also across lines.
            (
                "SELECT 'a;b' AS \"x;y\";\nSELECT 'two\nlines;' AS s;\n",
                &["SELECT 'a;b' AS \"x;y\"", "SELECT 'two\nlines;' AS s"],
                "",
            ),
            // A block comment over several lines, with a `;` in it.
            (
                "/* set up;\n   the table */\nSELECT 1\n/* a\n;b */ AS one;\n",
                &["SELECT 1\n \n AS one"],
                "",
            ),
            // The last statement has no `;`: it is the rest, as written.
            (
                "SELECT 1;\nSELECT x -- why\nFROM t\n",
                &["SELECT 1"],
                "SELECT x -- why\nFROM t\n",
            ),
            // Nothing but comments and empty statements.
            ("-- only a comment\n;\n/* and; this */ ;\n\n", &[], ""),
        ];
        for (script, want, rest) in cases {
            let want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
            let want = (want, rest.to_string());
            assert_eq!(split_statements(script), want, "{script:?}");
            assert_eq!(split_by_lines(script), want, "by lines: {script:?}");
        }
    }

    #[test]
    fn an_unfinished_quote_or_block_comment_is_kept_as_written() {
        for text in [
            "SELECT 1 /* still\n  open ;\n",
            "SELECT 'still\nopen ;\n",
            "/* a comment\n",
        ] {
            let (stmts, rest) = split_statements(text);
            assert!(stmts.is_empty(), "{text:?}: {stmts:?}");
            assert_eq!(rest, text);
        }
        let (stmts, rest) = split_statements("SELECT 1; /* open\n");
        assert_eq!(
            (stmts, rest.as_str()),
            (vec!["SELECT 1".to_string()], "/* open\n")
        );
    }
}
