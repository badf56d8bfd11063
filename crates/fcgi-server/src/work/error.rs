//! The error application code fails with ([`Error`]): what a handler returns, and what ends an
//! exchange, written once for both.

/// What a handler may fail with: any error. The server logs it with the request and answers
/// 500 if no header has gone out yet.
pub type Error = Box<dyn std::error::Error + Send + Sync>;
