//! Splitting an SQL script into its statements, the way PostgreSQL's own lexer sees
//! them: a `;` ends a statement only outside quotes, comments and bodies.
//!
//! Understood: `'…'` strings (with `''`), `E'…'` strings (with backslash escapes too),
//! `"…"` identifiers, `$tag$…$tag$` bodies, `-- …` and nested `/* … */` comments, and
//! the SQL-standard bodies of `CREATE FUNCTION/PROCEDURE … BEGIN ATOMIC … END` (as psql
//! does: `BEGIN`/`CASE` open, `END` closes, within such a statement). Parentheses do not
//! matter to PostgreSQL's split, so not here either.

/// The statements of `sql`, each trimmed and without its `;`; comment-only and empty
/// pieces are left out. Comments inside a statement stay in it.
pub fn split(sql: &str) -> Vec<&str> {
    let bytes = sql.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    // Whether the current statement has anything but whitespace and comments.
    let mut meaningful = false;
    // `BEGIN ATOMIC` depth, counted only in CREATE FUNCTION/PROCEDURE statements.
    let mut words: Vec<String> = Vec::new();
    let mut block_depth = 0usize;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                i = sql[i..].find('\n').map_or(bytes.len(), |n| i + n + 1);
                continue;
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                let mut depth = 1;
                i += 2;
                while i < bytes.len() && depth > 0 {
                    if bytes[i] == b'/' && bytes.get(i + 1) == Some(&b'*') {
                        depth += 1;
                        i += 2;
                    } else if bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/') {
                        depth -= 1;
                        i += 2;
                    } else {
                        i += 1;
                    }
                }
                continue;
            }
            b'\'' => {
                // E'…' (not the end of an identifier such as `some'`, which is no string).
                let escapes = i > 0
                    && matches!(bytes[i - 1], b'e' | b'E')
                    && (i < 2 || !is_ident_byte(bytes[i - 2]));
                i = skip_quoted(bytes, i, b'\'', escapes);
                meaningful = true;
                continue;
            }
            b'"' => {
                i = skip_quoted(bytes, i, b'"', false);
                meaningful = true;
                continue;
            }
            b'$' if i == 0 || !is_ident_byte(bytes[i - 1]) => {
                if let Some(tag_len) = dollar_tag(&bytes[i..]) {
                    let tag = &sql[i..i + tag_len];
                    let body = i + tag_len;
                    i = sql[body..]
                        .find(tag)
                        .map_or(bytes.len(), |n| body + n + tag_len);
                    meaningful = true;
                    continue;
                }
                i += 1;
                meaningful = true;
                continue;
            }
            b';' if block_depth == 0 => {
                push(&mut out, &sql[start..i], meaningful);
                i += 1;
                start = i;
                meaningful = false;
                words.clear();
                continue;
            }
            _ if is_ident_start(b) => {
                let end = bytes[i..]
                    .iter()
                    .position(|&c| !is_ident_byte(c))
                    .map_or(bytes.len(), |n| i + n);
                let word = sql[i..end].to_ascii_lowercase();
                if words.len() < 4 {
                    words.push(word.clone());
                }
                if in_routine_definition(&words) {
                    match word.as_str() {
                        "begin" | "case" => block_depth += 1,
                        "end" => block_depth = block_depth.saturating_sub(1),
                        _ => {}
                    }
                }
                i = end;
                meaningful = true;
                continue;
            }
            _ => {
                if !b.is_ascii_whitespace() {
                    meaningful = true;
                }
            }
        }
        i += 1;
    }
    push(&mut out, &sql[start..], meaningful);
    out
}

/// The first `n` words of `statement` (lower-case), after any leading comments: what
/// kind of statement it is.
pub fn leading_words(statement: &str, n: usize) -> Vec<String> {
    let mut rest = statement;
    loop {
        rest = rest.trim_start();
        if let Some(comment) = rest.strip_prefix("--") {
            rest = comment.split_once('\n').map_or("", |(_, tail)| tail);
        } else if let Some(comment) = rest.strip_prefix("/*") {
            rest = comment.split_once("*/").map_or("", |(_, tail)| tail);
        } else {
            break;
        }
    }
    rest.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .take(n)
        .map(str::to_ascii_lowercase)
        .collect()
}

fn push<'a>(out: &mut Vec<&'a str>, piece: &'a str, meaningful: bool) {
    let piece = piece.trim();
    if meaningful && !piece.is_empty() {
        out.push(piece);
    }
}

/// `CREATE [OR REPLACE] FUNCTION|PROCEDURE`: only there do BEGIN … END nest (a plain
/// `BEGIN;` or a PL/pgSQL body in `$$` is not counted).
fn in_routine_definition(words: &[String]) -> bool {
    let kind = match words {
        [create, or, replace, kind, ..]
            if create == "create" && or == "or" && replace == "replace" =>
        {
            kind
        }
        [create, kind, ..] if create == "create" => kind,
        _ => return false,
    };
    kind == "function" || kind == "procedure"
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

fn is_ident_byte(b: u8) -> bool {
    is_ident_start(b) || b.is_ascii_digit() || b == b'$'
}

/// The end (exclusive) of the quoted text opening at `open`; the doubled quote is an
/// escaped quote, and with `backslash` so is `\` followed by anything.
fn skip_quoted(bytes: &[u8], open: usize, quote: u8, backslash: bool) -> usize {
    let mut i = open + 1;
    while i < bytes.len() {
        if backslash && bytes[i] == b'\\' {
            i += 2;
        } else if bytes[i] == quote {
            if bytes.get(i + 1) == Some(&quote) {
                i += 2;
            } else {
                return i + 1;
            }
        } else {
            i += 1;
        }
    }
    bytes.len()
}

/// The length of a dollar-quote tag (`$$`, `$body$`) at the start of `bytes`, if one is
/// there (`$1`, a parameter, is not: a tag does not start with a digit).
fn dollar_tag(bytes: &[u8]) -> Option<usize> {
    let mut i = 1;
    if bytes.get(i).is_some_and(|&b| is_ident_start(b)) {
        while bytes
            .get(i)
            .is_some_and(|&b| is_ident_start(b) || b.is_ascii_digit())
        {
            i += 1;
        }
    }
    (bytes.get(i) == Some(&b'$')).then_some(i + 1)
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn plain_statements_split_at_semicolons_and_empty_pieces_go() {
        assert_eq!(
            split("create table a (x int);\n\n  insert into a values (1) ;;\nselect 1"),
            vec![
                "create table a (x int)",
                "insert into a values (1)",
                "select 1"
            ]
        );
        assert!(split("  ;\n-- only a comment\n/* and another */;").is_empty());
    }

    #[test]
    fn semicolons_in_strings_identifiers_and_comments_do_not_split() {
        let sql = "select 'a;b', 'it''s; fine', \"odd;name\" from t; -- a comment; still\n\
                   select /* one; /* nested; */ still; */ 2;";
        assert_eq!(
            split(sql),
            vec![
                "select 'a;b', 'it''s; fine', \"odd;name\" from t",
                "-- a comment; still\nselect /* one; /* nested; */ still; */ 2"
            ]
        );
    }

    #[test]
    fn escape_strings_honour_backslashes() {
        assert_eq!(
            split(r"select E'a\';b'; select 'c\'; select 3"),
            vec![r"select E'a\';b'", r"select 'c\'", "select 3"]
        );
        // A name ending in e before a quote is no escape string opener.
        assert_eq!(split("select 1 as some'"), vec!["select 1 as some'"]);
    }

    #[test]
    fn dollar_quoted_bodies_are_one_statement() {
        let sql = "create function f() returns int language plpgsql as $$\n\
                   begin\n  perform 1; return 2;\nend\n$$;\n\
                   create function g() returns text language sql as $body$ select '$$;' $body$;\n\
                   do $x$ begin raise notice 'a;b'; end $x$;\n\
                   prepare p as select $1::int; select 4";
        let statements = split(sql);
        assert_eq!(statements.len(), 5, "{statements:#?}");
        assert!(statements[0].ends_with("end\n$$"));
        assert!(statements[1].ends_with("$body$ select '$$;' $body$"));
        assert_eq!(statements[2], "do $x$ begin raise notice 'a;b'; end $x$");
        assert_eq!(statements[3], "prepare p as select $1::int");
        assert_eq!(statements[4], "select 4");
    }

    #[test]
    fn sql_standard_bodies_nest_begin_and_case_until_end() {
        let sql = "create or replace function f(x int) returns int language sql\n\
                   begin atomic\n  select case when x > 0 then 1 else 0 end;\n  select 2;\nend;\n\
                   begin; commit;";
        assert_eq!(
            split(sql),
            vec![
                "create or replace function f(x int) returns int language sql\n\
                 begin atomic\n  select case when x > 0 then 1 else 0 end;\n  select 2;\nend",
                "begin",
                "commit"
            ]
        );
    }

    #[test]
    fn identifiers_with_dollars_are_not_dollar_quotes() {
        assert_eq!(
            split("select a$b$ from t; select 2"),
            vec!["select a$b$ from t", "select 2"]
        );
    }

    #[test]
    fn leading_words_skip_comments() {
        assert_eq!(
            super::leading_words("-- a table\n/* of ours */ Create  TABLE app.x(y int)", 3),
            vec!["create", "table", "app"]
        );
    }

    #[test]
    fn an_unterminated_body_is_kept_whole() {
        assert_eq!(split("select $$ a; b"), vec!["select $$ a; b"]);
    }
}
