//! `fcgi import-fpm FILE...`: PHP-FPM's configuration as an fcgi-rs config file, on stdout.
//!
//! The data flow, in three steps, each in its own file:
//!
//! ```text
//! FILE... ──▶ load.rs: read each file (and each file its `include = GLOB` lines name, in
//!    │        place), keep `[global]`'s entries and each pool's, `$pool` replaced
//!    │            └── ini.rs: one file's text ──▶ its sections and `key = value` lines
//!    ▼
//! translate.rs: FPM's sections ──▶ the text of a config file with pools (pure)
//!    │
//!    ▼
//! stdout, for `fcgi serve --config FILE --check`, then `fcgi serve --config FILE`
//! ```
//!
//! Only the loader touches the file system (through [`load::Files`], which the tests replace)
//! and the environment (`${VAR}`); the parser and the translator are functions of their input.
//! A file that cannot be read, a line that is not FPM's ini, and an include loop are usage
//! errors (exit status 2) that name the file and the line; anything FPM reads that fcgi-rs has
//! no option for is a comment in the output, never an error.

mod ini;
mod load;
mod translate;

use std::io::{self, Write};

use crate::args::ImportFpmArgs;
use crate::Failure;

/// Runs `fcgi import-fpm`.
pub(crate) fn run(args: ImportFpmArgs) -> Result<(), Failure> {
    let env = |name: &str| std::env::var(name).ok();
    let fpm = load::load(&args.files, &load::System, &env)
        .map_err(|e| Failure::Usage(format!("import-fpm: {e}")))?;
    let text = translate::translate(
        &fpm,
        &translate::Options { php_cgi: args.php_cgi, prefix: args.prefix },
    );
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        // A reader that stopped reading (`| head`) is not a failure.
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
            Err(Failure::Runtime(format!("import-fpm: writing the config: {e}")))
        }
        _ => Ok(()),
    }
}
