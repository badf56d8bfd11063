//! The module graph of each crate, from its sources, and the cycles in it (for
//! `tests/integration/module_cycles.rs`).
//!
//! The scan is textual, on the sources under `crates/*/src`. Each file is a module: `lib.rs` and
//! `main.rs` are the crate root, `foo.rs` and `foo/mod.rs` are `foo`, `foo/bar.rs` is
//! `foo::bar`. Comments (doc comments and their intra-doc links too), strings and characters are
//! dropped first, and so is test code (`#[cfg(test)]` modules and uses: tests may reach any
//! module). A module uses another when its code names it by a path: `use crate::x::..`,
//! `crate::x::..` in code, `super::x` and `self::x`, or `x::..` for a child `x`; the longest
//! prefix of the path that is a module is the one used, so `crate::foo::bar::Baz` uses
//! `foo::bar`. A path to an item that a module only re-exports (`crate::Error`, where `lib.rs`
//! has `pub use error::Error`) is followed to the module that the `use` names. `mod x;` is the
//! parent declaring its child and is no use. Code in inline modules (`mod tests { .. }`) belongs
//! to its file's module, with `super::` counted from the inline module.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};

/// A module's path inside its crate: empty for the crate root.
pub type ModPath = Vec<String>;

/// A token of Rust source, as far as paths need: identifiers, `::`, and single characters.
#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Sep,
    Punct(char),
}

/// The tokens of `source` without comments, strings and character literals.
fn tokens(source: &str) -> Vec<Token> {
    let chars: Vec<char> = source.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            // Block comments nest in Rust.
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if c == '"' {
            i = skip_string(&chars, i + 1);
        } else if c == '\'' {
            // A character literal ('x', '\n', '\u{1F600}'), or else a lifetime or label.
            if next == Some('\\') {
                i += 2;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if chars.get(i + 2) == Some(&'\'') {
                i += 3;
            } else {
                i += 1;
            }
        } else if c == ':' && next == Some(':') {
            out.push(Token::Sep);
            i += 2;
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let raw_string = matches!(word.as_str(), "r" | "br" | "cr")
                && matches!(chars.get(i), Some('"' | '#'));
            if raw_string {
                let hashes = chars[i..].iter().take_while(|&&c| c == '#').count();
                i += hashes;
                if chars.get(i) == Some(&'"') {
                    i = skip_raw_string(&chars, i + 1, hashes);
                } else {
                    // `r#ident`: a raw identifier.
                    let start = i;
                    while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                        i += 1;
                    }
                    out.push(Token::Ident(chars[start..i].iter().collect()));
                }
            } else if matches!(word.as_str(), "b" | "c") && chars.get(i) == Some(&'"') {
                i = skip_string(&chars, i + 1);
            } else if word == "b" && chars.get(i) == Some(&'\'') {
                i += 1;
                while i < chars.len() && chars[i] != '\'' {
                    i += if chars[i] == '\\' { 2 } else { 1 };
                }
                i += 1;
            } else {
                out.push(Token::Ident(word));
            }
        } else if c.is_ascii_digit() {
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
        } else {
            if !c.is_whitespace() {
                out.push(Token::Punct(c));
            }
            i += 1;
        }
    }
    out
}

/// The index just past the string whose contents start at `i`.
fn skip_string(chars: &[char], mut i: usize) -> usize {
    while i < chars.len() && chars[i] != '"' {
        i += if chars[i] == '\\' { 2 } else { 1 };
    }
    i + 1
}

/// The index just past the raw string (closed by `"` and `hashes` times `#`) starting at `i`.
fn skip_raw_string(chars: &[char], mut i: usize, hashes: usize) -> usize {
    while i < chars.len() {
        if chars[i] == '"'
            && chars[i + 1..].iter().take(hashes).filter(|&&c| c == '#').count() == hashes
        {
            return i + 1 + hashes;
        }
        i += 1;
    }
    i
}

/// A path that a module's code names, and the inline module (below the file's) it is named in.
#[derive(Debug)]
struct Named {
    inline: Vec<String>,
    path: Vec<String>,
    /// The path as written, to show in a failure.
    text: String,
    /// For a `use`: the name it brings in (its last segment or its `as` alias).
    imports: Option<String>,
}

/// Whether the tokens at `i` are `#[cfg(test)]`.
fn is_cfg_test(tokens: &[Token], i: usize) -> bool {
    let ident = |t: Option<&Token>, word: &str| matches!(t, Some(Token::Ident(w)) if w == word);
    tokens.get(i) == Some(&Token::Punct('#'))
        && tokens.get(i + 1) == Some(&Token::Punct('['))
        && ident(tokens.get(i + 2), "cfg")
        && tokens.get(i + 3) == Some(&Token::Punct('('))
        && ident(tokens.get(i + 4), "test")
        && tokens.get(i + 5) == Some(&Token::Punct(')'))
        && tokens.get(i + 6) == Some(&Token::Punct(']'))
}

/// The index past the `#[cfg(test)]` item at `i` when it is a module written inline or a
/// `use`, which test code alone sees; `None` for any other item.
fn skip_test_item(tokens: &[Token], i: usize) -> Option<usize> {
    let mut j = past_visibility(tokens, i + 7);
    match tokens.get(j) {
        Some(Token::Ident(w)) if w == "use" => {
            while j < tokens.len() && tokens[j] != Token::Punct(';') {
                j += 1;
            }
            Some(j + 1)
        }
        Some(Token::Ident(w)) if w == "mod" && tokens.get(j + 2) == Some(&Token::Punct('{')) => {
            j += 2;
            let mut depth = 0usize;
            while j < tokens.len() {
                match tokens[j] {
                    Token::Punct('{') => depth += 1,
                    Token::Punct('}') => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            Some(j)
        }
        _ => None,
    }
}

/// The index past a visibility (`pub`, `pub(crate)`, `pub(in path)`) at `j`, or `j`.
fn past_visibility(tokens: &[Token], j: usize) -> usize {
    if !matches!(tokens.get(j), Some(Token::Ident(w)) if w == "pub") {
        return j;
    }
    if tokens.get(j + 1) != Some(&Token::Punct('(')) {
        return j + 1;
    }
    (j + 2..tokens.len()).find(|&k| tokens[k] == Token::Punct(')')).map_or(tokens.len(), |k| k + 1)
}

/// The child modules a module declares for its tests alone (`#[cfg(test)] mod x;`).
fn test_children(tokens: &[Token]) -> Vec<String> {
    (0..tokens.len())
        .filter(|&i| is_cfg_test(tokens, i))
        .filter_map(|i| match (tokens.get(i + 7), tokens.get(i + 8), tokens.get(i + 9)) {
            (Some(Token::Ident(m)), Some(Token::Ident(name)), Some(Token::Punct(';')))
                if m == "mod" =>
            {
                Some(name.clone())
            }
            _ => None,
        })
        .collect()
}

/// Every path that the tokens name, from `use` trees and from code; test code (`#[cfg(test)]`
/// modules and uses) is left out: tests may reach any module, and the graph is the code's.
fn named_paths(tokens: &[Token]) -> Vec<Named> {
    let mut out = Vec::new();
    // Inline modules open at a brace depth and close when it is back to it.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < tokens.len() {
        let here: Vec<String> = inline.iter().map(|(name, _)| name.clone()).collect();
        if is_cfg_test(tokens, i) {
            if let Some(past) = skip_test_item(tokens, i) {
                i = past;
                continue;
            }
        }
        match &tokens[i] {
            Token::Punct('{') => {
                depth += 1;
                i += 1;
            }
            Token::Punct('}') => {
                depth = depth.saturating_sub(1);
                if inline.last().is_some_and(|&(_, d)| d == depth) {
                    inline.pop();
                }
                i += 1;
            }
            Token::Ident(word) if word == "mod" => {
                if let (Some(Token::Ident(name)), Some(Token::Punct('{'))) =
                    (tokens.get(i + 1), tokens.get(i + 2))
                {
                    inline.push((name.clone(), depth));
                    depth += 1;
                    i += 3;
                } else {
                    i += 1;
                }
            }
            Token::Ident(word)
                if word == "use" && tokens.get(i.wrapping_sub(1)) != Some(&Token::Sep) =>
            {
                let mut trees = Vec::new();
                i = use_tree(tokens, i + 1, &[], &mut trees);
                for (path, imports) in trees {
                    let text = format!("use {}", path.join("::"));
                    out.push(Named { inline: here.clone(), path, text, imports });
                }
            }
            Token::Ident(first)
                if tokens.get(i + 1) == Some(&Token::Sep)
                    && tokens.get(i.wrapping_sub(1)) != Some(&Token::Sep) =>
            {
                let mut path = vec![first.clone()];
                i += 1;
                while let (Some(Token::Sep), Some(Token::Ident(segment))) =
                    (tokens.get(i), tokens.get(i + 1))
                {
                    path.push(segment.clone());
                    i += 2;
                }
                let text = path.join("::");
                out.push(Named { inline: here.clone(), path, text, imports: None });
            }
            _ => i += 1,
        }
    }
    out
}

/// Reads the use tree at `i` below `prefix` into `out` (each path with the name it imports),
/// and returns the index past it.
fn use_tree(
    tokens: &[Token],
    mut i: usize,
    prefix: &[String],
    out: &mut Vec<(Vec<String>, Option<String>)>,
) -> usize {
    let mut path = prefix.to_vec();
    loop {
        match tokens.get(i) {
            Some(Token::Ident(name)) => {
                path.push(name.clone());
                i += 1;
                if tokens.get(i) == Some(&Token::Sep) {
                    i += 1;
                    continue;
                }
                let mut imported = if name == "self" {
                    path.iter().rev().nth(1).cloned()
                } else {
                    Some(name.clone())
                };
                if let (Some(Token::Ident(kw)), Some(Token::Ident(alias))) =
                    (tokens.get(i), tokens.get(i + 1))
                {
                    if kw == "as" {
                        imported = Some(alias.clone());
                        i += 2;
                    }
                }
                out.push((path, imported));
                return i;
            }
            Some(Token::Punct('*')) => {
                out.push((path, None));
                return i + 1;
            }
            Some(Token::Punct('{')) => {
                i += 1;
                loop {
                    match tokens.get(i) {
                        Some(Token::Punct('}')) => return i + 1,
                        Some(Token::Punct(',')) => i += 1,
                        None => return i,
                        Some(_) => i = use_tree(tokens, i, &path, out),
                    }
                }
            }
            // A leading `::`.
            Some(Token::Sep) => i += 1,
            _ => {
                out.push((path, None));
                return i;
            }
        }
    }
}

/// The modules of the crate whose sources are under `src`, with their sources.
pub fn crate_modules(src: &Path) -> BTreeMap<ModPath, (PathBuf, String)> {
    let mut modules = BTreeMap::new();
    let mut dirs = vec![src.to_owned()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let file = entry.unwrap().path();
            if file.is_dir() {
                dirs.push(file);
                continue;
            }
            if file.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = file.strip_prefix(src).unwrap();
            let mut path: ModPath =
                rel.iter().map(|part| part.to_string_lossy().into_owned()).collect();
            let last = path.pop().unwrap();
            let stem = last.trim_end_matches(".rs");
            let root = path.is_empty() && (stem == "lib" || stem == "main");
            if !root && stem != "mod" {
                path.push(stem.to_owned());
            }
            let source = fs::read_to_string(&file).unwrap();
            modules.insert(path, (rel.to_owned(), source));
        }
    }
    modules
}

/// One use of a module by another, with the path that shows it.
#[derive(Debug, Clone)]
pub struct Edge {
    /// The module used.
    pub to: ModPath,
    /// The path that uses it, as written.
    pub text: String,
}

/// The module a `path` named in `module` (inside its inline modules `inline`) refers to, and the
/// item it names past that module, if any.
fn resolve(
    known: &BTreeSet<ModPath>,
    module: &[String],
    inline: &[String],
    path: &[String],
) -> Option<(ModPath, Option<String>)> {
    let mut here: Vec<String> = module.iter().chain(inline).cloned().collect();
    let mut rest = path;
    match rest.first()?.as_str() {
        "crate" => {
            here.clear();
            rest = &rest[1..];
        }
        "super" => {
            while rest.first().is_some_and(|s| s == "super") {
                here.pop()?;
                rest = &rest[1..];
            }
        }
        "self" => rest = &rest[1..],
        // A bare path names a module only when its first segment is a child of this one.
        first => {
            let mut child = here.clone();
            child.push(first.to_owned());
            if !known.contains(&child) {
                return None;
            }
        }
    }
    let full: Vec<String> =
        here.into_iter().chain(rest.iter().filter(|s| *s != "self").cloned()).collect();
    let len = (0..=full.len()).rev().find(|&n| known.contains(&full[..n]))?;
    Some((full[..len].to_vec(), full.get(len).cloned()))
}

/// The uses among the modules of one crate: for each module, the modules it names.
pub fn uses(modules: &BTreeMap<ModPath, String>) -> BTreeMap<ModPath, Vec<Edge>> {
    // Modules declared for tests alone are test code too, with what they contain.
    let test_only: Vec<ModPath> = modules
        .iter()
        .flat_map(|(module, source)| {
            test_children(&tokens(source)).into_iter().map(move |child| {
                let mut path = module.clone();
                path.push(child);
                path
            })
        })
        .collect();
    let modules: BTreeMap<ModPath, String> = modules
        .iter()
        .filter(|(module, _)| !test_only.iter().any(|t| module.starts_with(t)))
        .map(|(m, s)| (m.clone(), s.clone()))
        .collect();
    let modules = &modules;
    let known: BTreeSet<ModPath> = modules.keys().cloned().collect();
    let named: BTreeMap<&ModPath, Vec<Named>> =
        modules.iter().map(|(module, source)| (module, named_paths(&tokens(source)))).collect();
    // What each module brings in by `use` (re-exports among them), to follow `crate::Item`:
    // the module of this crate it comes from, or `None` for another crate (`pub use
    // fcgi_codec::Role`), which is no use of a module here.
    let mut imports: BTreeMap<(ModPath, String), Option<ModPath>> = BTreeMap::new();
    for (module, paths) in &named {
        for n in paths.iter().filter(|n| n.inline.is_empty()) {
            if let Some(name) = &n.imports {
                let from = resolve(&known, module, &[], &n.path).map(|(to, _)| to);
                imports.insert(((*module).clone(), name.clone()), from);
            }
        }
    }
    let mut graph = BTreeMap::new();
    for (module, paths) in &named {
        let mut edges: Vec<Edge> = Vec::new();
        for n in paths.iter() {
            let Some((mut to, item)) = resolve(&known, module, &n.inline, &n.path) else {
                continue;
            };
            if let Some(through) = item.and_then(|item| imports.get(&(to.clone(), item))) {
                if to == **module {
                    continue;
                }
                match through {
                    Some(from) => to = from.clone(),
                    None => continue,
                }
            }
            if to != **module && !edges.iter().any(|e| e.to == to) {
                edges.push(Edge { to, text: n.text.clone() });
            }
        }
        graph.insert((*module).clone(), edges);
    }
    graph
}

/// The cycles of `graph`: a shortest cycle through each module on one, but none for a module
/// that an earlier cycle already shows.
pub fn cycles(graph: &BTreeMap<ModPath, Vec<Edge>>) -> Vec<Vec<(ModPath, Edge)>> {
    let reaches = |from: &ModPath| -> BTreeSet<ModPath> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.clone()];
        while let Some(m) = todo.pop() {
            for e in graph.get(&m).into_iter().flatten() {
                if seen.insert(e.to.clone()) {
                    todo.push(e.to.clone());
                }
            }
        }
        seen
    };
    let mut done: BTreeSet<ModPath> = BTreeSet::new();
    let mut found = Vec::new();
    for start in graph.keys() {
        if done.contains(start) || !reaches(start).contains(start) {
            continue;
        }
        // Breadth first from `start` back to it: the shortest cycle through it.
        let mut back: BTreeMap<ModPath, (ModPath, Edge)> = BTreeMap::new();
        let mut queue = VecDeque::from([start.clone()]);
        'search: while let Some(m) = queue.pop_front() {
            for e in graph.get(&m).into_iter().flatten() {
                if back.contains_key(&e.to) {
                    continue;
                }
                back.insert(e.to.clone(), (m.clone(), e.clone()));
                if e.to == *start {
                    break 'search;
                }
                queue.push_back(e.to.clone());
            }
        }
        let mut cycle = Vec::new();
        let mut at = start.clone();
        loop {
            let (from, edge) = back[&at].clone();
            cycle.push((from.clone(), edge));
            at = from;
            if at == *start {
                break;
            }
        }
        cycle.reverse();
        done.extend(cycle.iter().map(|(from, _)| from.clone()));
        found.push(cycle);
    }
    found
}

/// A module's path as Rust writes it, `crate` for the root.
pub fn name(module: &[String]) -> String {
    if module.is_empty() {
        "crate".to_owned()
    } else {
        module.join("::")
    }
}

/// A cycle as one line: `a -> b -> a`, each step with the path that shows it.
pub fn describe(cycle: &[(ModPath, Edge)]) -> String {
    let steps: Vec<String> = cycle
        .iter()
        .map(|(from, edge)| format!("{} -> {} (`{}`)", name(from), name(&edge.to), edge.text))
        .collect();
    steps.join(", ")
}
