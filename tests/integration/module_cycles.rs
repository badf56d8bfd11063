//! No crate of the workspace has a cycle among its modules: within each crate, the modules that
//! name one another form a DAG, so each module can be read, tested and changed with only the
//! ones below it in mind. A cycle fails the test, shown with the path behind each of its steps.
//! How modules and their uses are read: `support/modules.rs`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use fcgi_tests::modules::{crate_modules, cycles, describe, uses, ModPath};

#[test]
fn no_crate_has_a_module_cycle() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates");
    let mut found = Vec::new();
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
            found.push(format!("{krate}: {}", describe(&cycle)));
        }
    }
    assert!(scanned > 50, "only {scanned} modules under {}", crates.display());
    assert!(found.is_empty(), "module cycles:\n{}", found.join("\n"));
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
