//! [`App`]: what a served app adds to `fcgi serve`'s options, and how each process gets its
//! handlers.

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;

use clap::{Args, FromArgMatches};
use fcgi_server::{Handler, ListenAddr, Listener, Role, ServerBuilder};
use slog::Logger;

use crate::checks::Problem;
use crate::processes::Processes;

/// An app that [`Program::run`](crate::Program::run) serves with all of `fcgi serve`'s
/// options: its own options, checks of them, and its handlers.
///
/// Only [`install`](App::install) is required; [`run`](crate::run) and `fcgi_http::run` give
/// a ready-made `App` for a handler or a tower service.
///
/// ```
/// use clap::Args;
/// use fcgi_serve::{App, Problem, Serving, Severity};
///
/// /// The options of a greeting app: `--greeting TEXT`.
/// #[derive(Debug, Args)]
/// struct Greeting {
///     /// What to answer.
///     #[arg(long, default_value = "Hello")]
///     greeting: String,
/// }
///
/// struct Greeter;
///
/// impl App for Greeter {
///     type Options = Greeting;
///
///     fn check(&self, options: &Greeting, _: &Serving<'_>) -> Vec<Problem> {
///         if options.greeting.is_empty() {
///             return vec![Problem::error("greeting", "--greeting must not be empty")];
///         }
///         Vec::new()
///     }
///
///     fn install(
///         &self,
///         options: &Greeting,
///         builder: fcgi_server::ServerBuilder,
///         _: &slog::Logger,
///     ) -> Result<fcgi_server::ServerBuilder, String> {
///         let text = format!("{}, world!", options.greeting);
///         Ok(builder.responder(move |_, response| {
///             use std::io::Write;
///             response.write_all(text.as_bytes())?;
///             Ok(())
///         }))
///     }
/// }
/// ```
pub trait App: Send + Sync + 'static {
    /// The app's own options, added to `fcgi serve`'s on the command line, in `--help` and in
    /// the config file: a `#[derive(clap::Args)]` struct, or [`NoOptions`].
    type Options: Args + FromArgMatches + fmt::Debug + Send + Sync + 'static;

    /// The app's name in process titles (`fcgi: worker 3 [NAME]`); empty (the default) for
    /// none, where the binary's own name says it.
    fn name(&self, options: &Self::Options) -> String {
        let _ = options;
        String::new()
    }

    /// Problems of the options, checked at start, by `--check` and on each reload (SIGHUP):
    /// an error refuses them (exit status 2, or the reload keeps the running workers), a
    /// warning is logged. The messages name options as `--name`, so that the config file's
    /// line for it is found.
    fn check(&self, options: &Self::Options, serving: &Serving<'_>) -> Vec<Problem> {
        let _ = (options, serving);
        Vec::new()
    }

    /// Called once the listening sockets exist and the log is open, before anything is
    /// served: an error refuses to start (exit status 2), with this message. For checks that
    /// need the sockets themselves (inherited ones included), and start-up warnings.
    fn started(
        &self,
        options: &Self::Options,
        serving: &Serving<'_>,
        listeners: &[Listener],
        log: &Logger,
    ) -> Result<(), String> {
        let _ = (options, serving, listeners, log);
        Ok(())
    }

    /// Installs the app's handlers on `builder`, in each process that serves (after any fork),
    /// as often as that process builds its server; an error (naming the option that is wrong)
    /// stops that process with exit status 2. `log` is the process's logger.
    fn install(
        &self,
        options: &Self::Options,
        builder: ServerBuilder,
        log: &Logger,
    ) -> Result<ServerBuilder, String>;

    /// Whether the app runs processes of its own (`fcgi serve --app exec`: the program's),
    /// which the process options size instead of fcgi-serve's workers (`--workers`,
    /// `--process-model`, `--max-requests`, `--request-timeout` ...). fcgi-serve then runs a
    /// master with one serving worker, replaced on a reload, and installs the app with
    /// [`install_programs`](App::install_programs). False by default.
    fn runs_programs(&self, options: &Self::Options) -> bool {
        let _ = options;
        false
    }

    /// Whether the app starts its programs inside a chroot directory (`--app exec --chroot`).
    /// A serving process that switches to `--user` then keeps one capability, CAP_SYS_CHROOT,
    /// for that alone: each program loses it at its exec. False by default.
    fn chroots_programs(&self, options: &Self::Options) -> bool {
        let _ = options;
        false
    }

    /// [`install`](App::install) for an app that [runs programs](App::runs_programs), with
    /// the process options that size them; by default, `install`.
    fn install_programs(
        &self,
        options: &Self::Options,
        processes: &Processes,
        builder: ServerBuilder,
        log: &Logger,
    ) -> Result<ServerBuilder, String> {
        let _ = processes;
        self.install(options, builder, log)
    }
}

/// What an [`App`] may know of the serve options around its own.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct Serving<'a> {
    /// The `--listen` addresses (empty when the sockets are inherited).
    pub listen: &'a [ListenAddr],
    /// `--allow`.
    pub allow: &'a [IpAddr],
    /// `--user`.
    pub user: Option<&'a str>,
    /// The long names of the options given explicitly (on the command line or in the file),
    /// rather than left at their defaults.
    pub given: &'a BTreeSet<String>,
    /// The process options.
    pub processes: Processes,
}

/// The options of an app that has none of its own.
#[derive(Clone, Copy, Debug, Default, Args)]
pub struct NoOptions {}

/// The [`App`] that [`run`](crate::run) serves: a function that makes a [`Handler`] for the
/// Responder role, called in each process that serves.
///
/// ```no_run
/// let app = fcgi_serve::HandlerApp::new(|| {
///     |_: &mut fcgi_server::Request, response: &mut fcgi_server::Response| {
///         response.write_all(b"Hello, world!")?;
///         Ok::<(), fcgi_server::Error>(())
///     }
/// });
/// fcgi_serve::Program::from_env().run(app);
/// # use std::io::Write;
/// ```
pub struct HandlerApp<F> {
    make: F,
}

impl<F> HandlerApp<F> {
    /// The app whose handler `make` makes.
    pub fn new(make: F) -> HandlerApp<F> {
        HandlerApp { make }
    }
}

impl<F> fmt::Debug for HandlerApp<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandlerApp").finish_non_exhaustive()
    }
}

impl<F, H> App for HandlerApp<F>
where
    F: Fn() -> H + Send + Sync + 'static,
    H: Handler,
{
    type Options = NoOptions;

    fn install(
        &self,
        _: &NoOptions,
        builder: ServerBuilder,
        _: &Logger,
    ) -> Result<ServerBuilder, String> {
        Ok(builder.handler(Role::Responder, (self.make)()))
    }
}
