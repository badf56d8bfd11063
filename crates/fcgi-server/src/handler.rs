//! The `Handler` trait: where application code lives.

use std::sync::Arc;

use fcgi_codec::Role;

use crate::{Request, Response};

/// What a handler may fail with: any error. The server logs it with the request and answers
/// 500 if no header has gone out yet.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// Application code: answers one request at a time, on a pool thread.
///
/// Any `Fn(&mut Request, &mut Response) -> Result<(), Error>` that is `Send + Sync` is a
/// handler. A handler that panics is answered with 500 (if no header went out), logged with its
/// request, and affects nothing else.
///
/// ```
/// use std::io::Write;
/// use fcgi_server::{Handler, Request, Response};
///
/// struct Hello;
///
/// impl Handler for Hello {
///     fn handle(&self, _: &mut Request, response: &mut Response) -> Result<(), fcgi_server::Error> {
///         response.header("Content-Type", "text/plain")?;
///         response.write_all(b"Hello, world!")?;
///         Ok(())
///     }
/// }
///
/// // A closure works too.
/// let echo_method = |request: &mut Request, response: &mut Response| -> Result<(), fcgi_server::Error> {
///     response.write_all(request.method().unwrap_or("?").as_bytes())?;
///     Ok(())
/// };
/// # fn is_handler<H: Handler>(_: H) {}
/// # is_handler(Hello);
/// # is_handler(echo_method);
/// ```
pub trait Handler: Send + Sync + 'static {
    /// Answers `request` through `response`.
    fn handle(&self, request: &mut Request, response: &mut Response) -> Result<(), Error>;
}

impl<F> Handler for F
where
    F: Fn(&mut Request, &mut Response) -> Result<(), Error> + Send + Sync + 'static,
{
    fn handle(&self, request: &mut Request, response: &mut Response) -> Result<(), Error> {
        self(request, response)
    }
}

/// One handler per role; a role without one is refused with `FCGI_UNKNOWN_ROLE`.
#[derive(Clone, Default)]
pub(crate) struct Handlers {
    pub(crate) responder: Option<Arc<dyn Handler>>,
    pub(crate) authorizer: Option<Arc<dyn Handler>>,
    pub(crate) filter: Option<Arc<dyn Handler>>,
}

impl Handlers {
    pub(crate) fn for_role(&self, role: Role) -> Option<&Arc<dyn Handler>> {
        match role {
            Role::Responder => self.responder.as_ref(),
            Role::Authorizer => self.authorizer.as_ref(),
            Role::Filter => self.filter.as_ref(),
            Role::Unknown(_) => None,
        }
    }
}
