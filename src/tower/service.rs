//! [`RequestLogService`] and its [`ResponseFuture`]: run the inner service's future in the
//! request's log context, and hand the access record its outcome — including a panic, and a
//! drop before the future finished.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http::header::HeaderValue;
use http::{Request, Response};
use http_body::Body;
use tower_service::Service;

use super::access_log::{warn_no_peer, Details, Outcome, Pending};
use super::config::Config;
use super::request_id::{generate_request_id, given_request_id};
use crate::context::{self, WithContext};

/// The service made by [`RequestLogLayer`](super::RequestLogLayer): runs the inner service's
/// future in the request's [`LogContext`](crate::context::LogContext) and logs its access
/// record.
#[derive(Clone, Debug)]
pub struct RequestLogService<S> {
    pub(super) inner: S,
    pub(super) config: Arc<Config>,
    pub(super) peer: Option<SocketAddr>,
}

impl<S> RequestLogService<S> {
    /// Uses `peer` as the connection's peer address for requests whose extensions hold none.
    /// For servers that make one service per connection, such as a plain hyper server.
    ///
    /// # Examples
    ///
    /// ```
    /// use kakashi::tower::RequestLogLayer;
    /// use tower_layer::Layer;
    ///
    /// let peer = "192.0.2.7:50000".parse().unwrap();
    /// let service = RequestLogLayer::new().layer(()).with_peer_addr(peer);
    /// # let _ = service;
    /// ```
    #[must_use]
    pub fn with_peer_addr(mut self, peer: SocketAddr) -> Self {
        self.peer = Some(peer);
        self
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RequestLogService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Body,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let start = Instant::now();
        let config = &*self.config;

        let peer = config.peer(req.extensions()).or(self.peer);
        if peer.is_none() && config.first_request_without_peer() {
            warn_no_peer(config);
        }
        let ip = config.client_ip(peer, req.headers());

        let given = given_request_id(req.headers(), &config.header)
            .and_then(|v| Some((Arc::<str>::from(v.to_str().ok()?), v.clone())));
        let (request_id, header_value) = match given {
            Some(given) => given,
            None => {
                let id = generate_request_id();
                let value = HeaderValue::from_str(&id).unwrap_or(HeaderValue::from_static("-"));
                // Downstream code that reads the header sees the id that is logged: `insert`
                // replaces every line of it, a malformed one or several.
                req.headers_mut()
                    .insert(config.header.clone(), value.clone());
                (Arc::from(id), value)
            }
        };

        // The route template when axum matched one (feature `axum`), else the path; never
        // the query string, which may hold secrets.
        let raw_path = req.uri().path();
        let route = config.route(req.extensions());
        let skip_listed = config.skip_listed(raw_path, route);
        let path = route.unwrap_or(raw_path);
        let method = req.method().as_str();
        let mut access = String::with_capacity(method.len() + 1 + path.len());
        access.push_str(method);
        access.push(' ');
        access.push_str(path);
        let details = Details::read(config, &req);

        let mut ctx = config
            .context
            .clone()
            .with_access(access)
            .with_request_id(request_id);
        if let Some(ip) = ip {
            ctx = ctx.with_ip(ip.to_string());
        }
        let ctx = context::merge_with_current(ctx);

        let pending = Pending {
            config: Arc::clone(&self.config),
            start,
            request_id: header_value,
            skip_listed,
            details,
            ctx: Arc::clone(&ctx),
        };
        // Inner middleware may log in `call` itself (tower-http's `on_request` does): that
        // runs in the request's context too.
        let inner = &mut self.inner;
        let future = context::sync_scope_shared(Arc::clone(&ctx), || inner.call(req));
        ResponseFuture {
            inner: context::scope_shared(
                ctx,
                Access {
                    future,
                    pending: Some(pending),
                },
            ),
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`RequestLogService`]: the inner service's future, run in the request's
    /// log context.
    ///
    /// # Cancel safety
    ///
    /// Dropping it before it finishes logs the access record with status 499 and the message
    /// `request cancelled`.
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: WithContext<Access<F>>,
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Body,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().inner.poll(cx)
    }
}

pin_project_lite::pin_project! {
    /// Runs inside the request's scope, so that the access record carries its context.
    struct Access<F> {
        #[pin]
        future: F,
        // `Some` until the access record is logged.
        pending: Option<Pending>,
    }

    impl<F> PinnedDrop for Access<F> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(pending) = this.project().pending.take() {
                pending.cancelled();
            }
        }
    }
}

impl<F, B, E> Future for Access<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Body,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let future = this.future;
        match panic::catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(Ok(mut response))) => {
                if let Some(pending) = this.pending.take() {
                    pending.responded(&mut response);
                }
                Poll::Ready(Ok(response))
            }
            Ok(Poll::Ready(Err(error))) => {
                if let Some(pending) = this.pending.take() {
                    pending.log(Outcome::Failed);
                }
                Poll::Ready(Err(error))
            }
            Err(payload) => {
                if let Some(pending) = this.pending.take() {
                    pending.log(Outcome::Panicked);
                }
                panic::resume_unwind(payload)
            }
        }
    }
}
