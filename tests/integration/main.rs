//! The integration tests of fcgi-rs, one test binary: each module was a test binary of its own,
//! and all of them link the same support library, tokio, axum and slog, once here rather than
//! once per file. The tests of all modules run side by side (one thread per core), so none of
//! them may take a fixed port, path, socket name, user or namespace: each takes its own (port 0,
//! a temporary directory, a name with the test's pid), and what there is one of in the process
//! is shared through `tests/support`: the network namespaces' numbers (`netns`), the heavy
//! loads that would measure each other (`load`), the panic hook (`panics`).
//!
//! Tests that must own their process (a process-wide setting of the test process itself) are
//! binaries of their own, listed with their reasons in tests/Cargo.toml.
//!
//! One module or one test: `cargo test -p fcgi-tests --test integration exec::` (or
//! `-- exec::ops::a_test_name`).

/// FastCGI records against a server in the test process: every record type, the order they come
/// in, kept connections, multiplexing, aborts, roles, malformed input, a peer's attacks and
/// bounds, slow clients, overload, handlers' output, large bodies, statuses, graceful shutdown,
/// faults around the server.
mod protocol {
    mod abort;
    mod abuse;
    mod any_order;
    mod bodies;
    mod common;
    mod faults;
    mod graceful;
    mod handlers;
    mod keep_conn;
    mod limits;
    mod malformed;
    mod management;
    mod multiplexing;
    mod overload;
    mod roles;
    mod slow_clients;
    mod status;
}

/// Behind real web servers: nginx, Caddy, lighttpd and Apache's authorizer, several hosts
/// behind one nginx.
mod web {
    mod authorizer;
    mod authorizer_no_stdin;
    mod caddy;
    mod http_params;
    mod multihost;
    mod nginx;
}

/// Applications built on the crates: axum through fcgi-http, app binaries with all of `fcgi
/// serve`, `Server::builder()`, the first hour.
mod app {
    mod app_binary;
    mod app_binary_ops;
    mod axum;
    mod axum_async;
    mod axum_serve;
    mod builder_app;
    mod first_hour;
}

/// `fcgi serve --app exec`: real FastCGI programs, their conformance, their faults, an
/// operator's reloads and signals, the scale of their processes.
mod exec {
    mod conformance;
    mod faults;
    mod ops;
    mod programs;
    mod scale;
    mod start_faults;
}

/// `fcgi serve --app cgi`: the gateway, and what a peer may not put in a program's environment.
mod cgi {
    mod gateway;
    mod hardening;
}

/// The prefork master: reloads, the crash back-off, the watchdog, busy workers, process titles.
mod prefork {
    mod backoff;
    mod busy_workers;
    mod master;
    mod pool_after_load;
    mod reload_posts;
    mod titles;
    mod watchdog;
}

/// The pools of a configuration file under one master, and pools of different users.
mod pools {
    mod master;
    mod users;
}

/// The operator's side: configuration and `--check`, install, systemd, `import-fpm`,
/// privileges, timeouts, refused peers, `fcgi request` and `fcgi bench`.
mod ops {
    mod bench;
    mod config;
    mod import_fpm;
    mod install;
    mod privileges;
    mod refused_peers;
    mod request;
    mod request_timeout;
    mod systemd;
}

/// What the server tells: access log, forged log values, log level, the slow log and its
/// rotation, the status page and the ping.
mod logs {
    mod access_log;
    mod log_forging;
    mod log_level;
    mod slowlog;
    mod slowlog_rotation;
    mod status_page;
    mod status_page_escaping;
}

/// The module graph of each crate under crates/ is a DAG.
mod module_cycles;
