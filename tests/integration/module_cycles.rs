//! No crate of the workspace has a cycle among its modules: within each crate, the modules that
//! name one another form a DAG, so each module can be read, tested and changed with only the
//! ones below it in mind. The cycles not broken yet are listed ([`STILL_TO_BREAK`]): a new one
//! fails the test, and so does a listed one that is gone. How modules and their uses are read:
//! `support/modules.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use fcgi_tests::modules::{crate_modules, cycles, describe, name, uses, ModPath};

/// The cycles still to break, each as its crate and its modules: the list only shrinks. A cycle
/// not in it fails the test, and so does one in it that is gone (take it out).
const STILL_TO_BREAK: &[(&str, &[&str])] = &[];

#[test]
fn no_crate_has_a_module_cycle() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates");
    let mut new = Vec::new();
    let mut found = BTreeSet::new();
    let mut dirs: Vec<PathBuf> =
        fs::read_dir(&crates).unwrap().map(|e| e.unwrap().path().join("src")).collect();
    dirs.sort();
    let mut scanned = 0;
    for src in dirs.iter().filter(|src| src.is_dir()) {
        let modules = crate_modules(src);
        scanned += modules.len();
        let sources = modules.iter().map(|(m, (_, source))| (m.clone(), source.clone())).collect();
        let krate = src.parent().unwrap().file_name().unwrap().to_string_lossy().into_owned();
        for cycle in cycles(&uses(&sources)) {
            let mut members: Vec<String> = cycle.iter().map(|(m, _)| name(m)).collect();
            members.sort();
            let known = STILL_TO_BREAK.iter().any(|(k, ms)| {
                *k == krate && ms.iter().copied().eq(members.iter().map(String::as_str))
            });
            if !known {
                new.push(format!("{krate}: {}", describe(&cycle)));
            }
            found.insert((krate.clone(), members));
        }
    }
    assert!(scanned > 50, "only {scanned} modules under {}", crates.display());
    assert!(new.is_empty(), "module cycles:\n{}", new.join("\n"));
    let gone: Vec<String> = STILL_TO_BREAK
        .iter()
        .filter(|(k, ms)| {
            !found
                .iter()
                .any(|(fk, fm)| fk == k && ms.iter().copied().eq(fm.iter().map(String::as_str)))
        })
        .map(|(k, ms)| format!("{k}: {}", ms.join(", ")))
        .collect();
    assert!(gone.is_empty(), "broken since, to take out of STILL_TO_BREAK:\n{}", gone.join("\n"));
}

/// The scan itself, on small crates written here: it sees each way of naming a module, and
/// nothing in comments, strings or a test module's `super`.
#[test]
fn the_scan_finds_cycles_and_only_cycles() {
    let krate = |files: &[(&str, &str)]| -> BTreeMap<ModPath, String> {
        files
            .iter()
            .map(|(m, s)| {
                (
                    m.split("::").filter(|p| !p.is_empty()).map(str::to_owned).collect(),
                    s.to_string(),
                )
            })
            .collect()
    };
    let found = |files: &[(&str, &str)]| -> Vec<String> {
        cycles(&uses(&krate(files))).iter().map(|c| describe(c)).collect()
    };

    let grouped = [
        ("", "mod a; mod b;"),
        ("a", "use crate::{b::{self, X}, c};"),
        ("b", "fn f() { crate::a::g() }"),
    ];
    assert_eq!(found(&grouped), ["a -> b (`use crate::b::self`), b -> a (`crate::a::g`)"]);

    let nested = [
        ("", "mod foo; mod baz;"),
        ("foo", "mod bar;"),
        ("foo::bar", "use super::super::baz::Q;"),
        ("baz", "fn f() -> crate::foo::bar::T { todo!() }"),
    ];
    assert_eq!(
        found(&nested),
        ["baz -> foo::bar (`crate::foo::bar::T`), foo::bar -> baz (`use super::super::baz::Q`)"]
    );

    let re_exported = [
        ("", "mod e; mod p; pub use e::Error;"),
        ("p", "fn f() -> crate::Error {}"),
        ("e", "use crate::p::P;"),
    ];
    assert_eq!(found(&re_exported), ["e -> p (`use crate::p::P`), p -> e (`crate::Error`)"]);

    let none = [
        ("", "mod a; mod b; pub use a::A;"),
        ("a", "use crate::b::B; // crate::b is below a\n /// [`crate::a`]\n"),
        ("b", "const S: &str = \"crate::a::A\"; const R: &str = r#\"crate::a\"#; #[cfg(test)] mod tests { use super::*; fn t() { let _ = 'a'; } }"),
    ];
    assert_eq!(found(&none), Vec::<String>::new());

    // Test code reaches anywhere: a test-only module and a module's tests are no uses.
    let tests_only = [
        ("", "mod a; mod b; #[cfg(test)] mod support;"),
        ("a", "use crate::b::B; #[cfg(test)] mod tests { use crate::support::S; }"),
        (
            "b",
            "#[cfg(test)] use crate::a::A; #[cfg(test)] pub(super) mod tests { use crate::a::A; }",
        ),
        ("support", "use crate::a::A;"),
    ];
    assert_eq!(found(&tests_only), Vec::<String>::new());
}
