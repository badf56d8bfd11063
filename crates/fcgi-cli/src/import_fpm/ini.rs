//! PHP-FPM's ini dialect, one file's text at a time: its sections and its `key = value` lines,
//! each kept with its number and its text for the comments of the translation.
//!
//! What is read (PHP's ini scanner as PHP-FPM uses it, less what FPM files never hold):
//!
//! - `[NAME]` starts a section (a `;` comment may follow the `]`);
//! - `key = value`: the key is everything before the first `=`, trimmed (`php_value[x]` and
//!   `env[X]` are keys like any other); the value is trimmed, and may be written in double
//!   quotes (`\"` and `\\` escaped inside; `;` does not end it there) or single quotes (taken
//!   as written), or be pieces of both, joined;
//! - `;` starts a comment, at the start of a line or after a value (outside quotes); `#` only
//!   at the start of a line;
//! - `${VAR}` is the environment's VAR, in bare and double-quoted text (an unset VAR is empty,
//!   as in PHP).
//!
//! What PHP's scanner does beyond that is left to php-cgi: constants and expressions
//! (`E_ALL & ~E_NOTICE`) stay as written, and so do `yes`/`no`, which php-cgi's `-d` reads as
//! FPM would have. `include` lines and FPM's `$pool` are the loader's (`load.rs`).

use std::fmt;

/// One line that means something: a section's start or an entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Line {
    /// Its number in the file, from 1.
    pub(crate) number: usize,
    /// Its text, trimmed: what a comment of the translation quotes.
    pub(crate) raw: String,
    /// What it says.
    pub(crate) kind: LineKind,
}

/// What a [`Line`] says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum LineKind {
    /// `[NAME]`: the lines after it belong to section NAME.
    Section(String),
    /// `key = value`, the value unquoted and its `${VAR}`s replaced.
    Entry {
        /// The key as written, trimmed.
        key: String,
        /// The value, ready to use.
        value: String,
    },
}

/// Why a line is not PHP-FPM's ini.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SyntaxError {
    /// `[` with no `]`, or text after the `]` that is not a comment.
    BadSection,
    /// `[]`: a section needs a name.
    EmptySection,
    /// A line that is neither a section nor `key = value`.
    NoEquals,
    /// `= value` with no key.
    EmptyKey,
    /// A value whose quote is not closed on its line.
    UnclosedQuote,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SyntaxError::BadSection => "not a section header `[NAME]`",
            SyntaxError::EmptySection => "a section header `[]` with no name",
            SyntaxError::NoEquals => "not `key = value`",
            SyntaxError::EmptyKey => "`= value` with no key",
            SyntaxError::UnclosedQuote => "a quote that is not closed on its line",
        })
    }
}

/// The lines of `text` that mean something, in order; the first bad line's number and why.
/// `env` looks up `${VAR}`.
pub(crate) fn parse(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<Line>, (usize, SyntaxError)> {
    let mut lines = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let number = index + 1;
        let content = raw.trim();
        if content.is_empty() || content.starts_with(';') || content.starts_with('#') {
            continue;
        }
        let kind = parse_line(content, env).map_err(|e| (number, e))?;
        lines.push(Line { number, raw: content.to_owned(), kind });
    }
    Ok(lines)
}

/// One trimmed line that is neither blank nor a comment.
fn parse_line(
    content: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<LineKind, SyntaxError> {
    if let Some(inner) = content.strip_prefix('[') {
        let (name, rest) = inner.split_once(']').ok_or(SyntaxError::BadSection)?;
        let rest = rest.trim_start();
        if !rest.is_empty() && !rest.starts_with(';') {
            return Err(SyntaxError::BadSection);
        }
        let name = name.trim();
        if name.is_empty() {
            return Err(SyntaxError::EmptySection);
        }
        return Ok(LineKind::Section(name.to_owned()));
    }
    let (key, value) = content.split_once('=').ok_or(SyntaxError::NoEquals)?;
    let key = key.trim();
    if key.is_empty() {
        return Err(SyntaxError::EmptyKey);
    }
    Ok(LineKind::Entry { key: key.to_owned(), value: parse_value(value, env)? })
}

/// Where [`parse_value`] is within a value.
#[derive(PartialEq)]
enum Quoting {
    /// Outside quotes: `;` ends the value, white space at its end is dropped.
    Bare,
    /// Inside `"..."`: `\"` and `\\` are escapes, `${VAR}` is replaced.
    Double,
    /// Inside `'...'`: every character as written.
    Single,
}

/// A value's text (after the `=`) unquoted and trimmed, up to a `;` comment outside quotes.
fn parse_value(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, SyntaxError> {
    let mut value = String::new();
    // The length of `value` up to its last character that is not bare trailing white space.
    let mut kept = 0;
    let mut quoting = Quoting::Bare;
    let mut chars = text.trim_start().chars().peekable();
    while let Some(c) = chars.next() {
        match (&quoting, c) {
            (Quoting::Bare, ';') => break,
            (Quoting::Bare, '"') => quoting = Quoting::Double,
            (Quoting::Bare, '\'') => quoting = Quoting::Single,
            (Quoting::Double, '"') | (Quoting::Single, '\'') => quoting = Quoting::Bare,
            (Quoting::Double, '\\') => match chars.peek() {
                Some(&next @ ('"' | '\\')) => {
                    chars.next();
                    value.push(next);
                }
                _ => value.push('\\'),
            },
            (Quoting::Bare | Quoting::Double, '$') if chars.peek() == Some(&'{') => {
                let rest: String = chars.clone().skip(1).collect();
                match rest.split_once('}') {
                    Some((name, _)) => {
                        value.push_str(&env(name).unwrap_or_default());
                        // `{`, the name and `}`.
                        for _ in 0..name.chars().count() + 2 {
                            chars.next();
                        }
                    }
                    None => value.push('$'),
                }
            }
            (Quoting::Bare, c) if c.is_whitespace() => {
                value.push(c);
                continue;
            }
            (_, c) => value.push(c),
        }
        kept = value.len();
    }
    if quoting != Quoting::Bare {
        return Err(SyntaxError::UnclosedQuote);
    }
    value.truncate(kept);
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOME" => Some("/home/fpm".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn values_as_fpm_reads_them() {
        let table = [
            ("5", "5"),
            ("  5  ", "5"),
            ("dynamic ; a comment", "dynamic"),
            ("dynamic;comment", "dynamic"),
            ("/run/php/php8.2-fpm.sock", "/run/php/php8.2-fpm.sock"),
            (r#""%R - %u \"%m %r\" %s""#, r#"%R - %u "%m %r" %s"#),
            (r#""a;b" ; c"#, "a;b"),
            (r#""  spaced  ""#, "  spaced  "),
            (r#""a\\b\n""#, r"a\b\n"),
            ("'raw \\\" ${HOME}'", "raw \\\" ${HOME}"),
            (r#"".:"/usr/share/php"#, ".:/usr/share/php"),
            (r#""""#, ""),
            ("", ""),
            ("; only a comment", ""),
            ("${HOME}/log", "/home/fpm/log"),
            (r#""${HOME} x""#, "/home/fpm x"),
            ("a${UNSET}b", "ab"),
            ("a${EMPTY}b", "ab"),
            ("${HOME", "${HOME"),
            ("$pool.sock", "$pool.sock"),
            ("E_ALL & ~E_NOTICE", "E_ALL & ~E_NOTICE"),
            ("#not a comment here", "#not a comment here"),
        ];
        for (text, want) in table {
            assert_eq!(parse_value(text, &env), Ok(want.to_owned()), "{text:?}");
        }
        for text in [r#""open"#, "'open", r#""a\""#] {
            assert_eq!(parse_value(text, &env), Err(SyntaxError::UnclosedQuote), "{text:?}");
        }
    }

    #[test]
    fn lines_as_fpm_reads_them() {
        let entry = |key: &str, value: &str| {
            Ok(LineKind::Entry { key: key.to_owned(), value: value.to_owned() })
        };
        let table = [
            ("[www]", Ok(LineKind::Section("www".into()))),
            ("[ www ] ; the pool", Ok(LineKind::Section("www".into()))),
            ("[global]", Ok(LineKind::Section("global".into()))),
            ("[www", Err(SyntaxError::BadSection)),
            ("[www] x", Err(SyntaxError::BadSection)),
            ("[]", Err(SyntaxError::EmptySection)),
            ("pm = dynamic", entry("pm", "dynamic")),
            ("pm=dynamic", entry("pm", "dynamic")),
            ("php_value[error_log] = /var/log/x", entry("php_value[error_log]", "/var/log/x")),
            ("env[PATH] = $PATH", entry("env[PATH]", "$PATH")),
            (
                "include=/etc/php/8.2/fpm/pool.d/*.conf",
                entry("include", "/etc/php/8.2/fpm/pool.d/*.conf"),
            ),
            ("a = b = c", entry("a", "b = c")),
            ("listen", Err(SyntaxError::NoEquals)),
            ("= 5", Err(SyntaxError::EmptyKey)),
        ];
        for (text, want) in table {
            assert_eq!(parse_line(text, &env), want, "{text:?}");
        }
    }

    #[test]
    fn a_file_keeps_numbers_and_text_and_names_its_bad_line() {
        let text =
            "; a comment\n# another\n\n[www]\n  user = www-data ; who\npm.max_children = 5\n";
        let lines = parse(text, &env).unwrap();
        let got: Vec<(usize, &str)> = lines.iter().map(|l| (l.number, &*l.raw)).collect();
        assert_eq!(got, [(4, "[www]"), (5, "user = www-data ; who"), (6, "pm.max_children = 5")]);
        assert_eq!(parse("[www]\nuser = \"x\n", &env), Err((2, SyntaxError::UnclosedQuote)));
        assert_eq!(parse("[www]\nuser\n", &env), Err((2, SyntaxError::NoEquals)));
    }
}
