//! Shared support for the tests of fcgi-rs: starting real processes (`fcgi serve`, nginx) in a
//! temporary directory, servers in the test process, and raw FastCGI and HTTP clients.
//!
//! Every process a test starts is stopped by PID when its guard drops, and every file lives in
//! a temporary directory removed afterwards. Only loopback addresses, Unix sockets and the
//! addresses inside network namespaces a test creates ([`netns`]) are used.
//!
//! - [`addr`]: where a server listens, in every form the tests need.
//! - [`axum_app`]: the axum app that `make bench` serves on hyper, tokio-fastcgi and fcgi-rs.
//! - [`data`]: test bodies, and comparing them.
//! - [`exec`]: `fcgi serve --app exec` running the fault program, with nginx in front.
//! - [`http`]: the HTTP client, and the header parsing shared with [`raw`].
//! - [`inproc`]: a server with a test's own handlers on a thread of the test.
//! - [`load`]: heavy loads (attacks, wrk), one at a time in a test binary.
//! - [`master`]: a prefork master under test, its workers and signals.
//! - [`netns`]: network namespaces with a veth pair each, for tests with several hosts.
//! - [`nginx`]: a real nginx started from the configurations in `nginx/`.
//! - [`panics`]: filters on the panic hook that all tests of a binary share.
//! - [`php`]: a real PHP-FPM of the test's own.
//! - [`php_cgi`]: `fcgi serve --app exec -- php-cgi`, its program processes and its log.
//! - [`process`]: child processes (the `fcgi` binary among them), and bounded waits.
//! - [`programs`]: real FastCGI programs (php-cgi, libfcgi, FCGI.pm, flup) for `--app exec`.
//! - [`raw`]: a raw FastCGI record client.
//! - [`settings`]: `FCGI_TEST_STRICT` (no skipping) and `FCGI_TEST_TIME_SCALE` (slower machines).
//! - [`wrk`]: load from wrk, and its summary.

pub mod addr;
pub mod axum_app;
pub mod data;
pub mod exec;
pub mod http;
pub mod inproc;
pub mod load;
pub mod master;
pub mod modules;
pub mod netns;
pub mod nginx;
pub mod panics;
pub mod php;
pub mod php_cgi;
pub mod process;
pub mod programs;
pub mod raw;
pub mod settings;
pub mod wrk;
