//! An app for the unit tests: `fcgi serve`'s shape (an `--app` that the config file may give
//! instead), without fcgi-cli's apps.

use std::ffi::OsString;

use clap::{Args, Command, FromArgMatches};
use fcgi_server::ServerBuilder;
use slog::Logger;

use crate::app::App;
use crate::options::ServeArgs;
use crate::program::Program;

/// The test app's options.
#[derive(Debug, Args)]
pub(crate) struct TestOptions {
    /// Which app.
    #[arg(long, required = false, required_unless_present = "config")]
    pub(crate) app: String,
}

/// The test app.
pub(crate) struct TestApp;

impl App for TestApp {
    type Options = TestOptions;

    fn install(
        &self,
        _: &TestOptions,
        b: ServerBuilder,
        _: &Logger,
    ) -> Result<ServerBuilder, String> {
        Ok(b)
    }
}

/// `fcgi serve`'s command, with the test app's options.
pub(crate) fn command() -> Command {
    Program::new("fcgi").subcommand("serve").command::<TestApp>()
}

/// `line`'s words as arguments.
pub(crate) fn argv(line: &str) -> Vec<OsString> {
    line.split_whitespace().map(OsString::from).collect()
}

/// The typed options of `fcgi serve LINE`, and the long names it gives.
pub(crate) fn parse(line: &str) -> (ServeArgs<TestOptions>, std::collections::BTreeSet<String>) {
    let matches = command()
        .try_get_matches_from(std::iter::once(OsString::from("serve")).chain(argv(line)))
        .expect("parses");
    let given = command()
        .get_arguments()
        .filter(|a| {
            matches.value_source(a.get_id().as_str())
                == Some(clap::parser::ValueSource::CommandLine)
        })
        .filter_map(|a| a.get_long().map(str::to_owned))
        .collect();
    (ServeArgs::from_arg_matches(&matches).expect("typed"), given)
}

#[test]
fn program_gives_the_packages_version() {
    let command = crate::program!().command::<TestApp>();
    assert_eq!(command.get_version(), Some(env!("CARGO_PKG_VERSION")));
    assert_eq!(Program::from_env().command::<TestApp>().get_version(), None);
}
