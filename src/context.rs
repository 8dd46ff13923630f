//! Request-scoped context: who and what a record is about.
//!
//! A [`LogContext`] carries the request's ip, access line, request id, user and session ids,
//! service name, version, environment and custom fields. Every record logged while a context is
//! current carries it, and every formatter writes its fields (flattened at the JSON root).
//!
//! There are two scopes:
//!
//! - **a task-local scope** for async code: [`scope`], the [`WithLogContext`] future extension
//!   and the [`spawn`] / [`spawn_blocking`] helpers, which carry the current context into new
//!   tasks. Like a tokio `task_local!`, the context travels with the future and is current
//!   while the future is polled and while it is dropped;
//! - **a thread-local scope** for synchronous code: [`LogContext::enter`] and [`sync_scope`].
//!
//! A task-local context wins over a thread-local one. Nested scopes merge: the inner scope's
//! fields win, the outer scope's other fields stay.
//!
//! # Examples
//!
//! ```
//! use kakashi::context::{self, LogContext, WithLogContext};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let outer = LogContext::new().with_service_name("billing");
//! let inner = LogContext::new().with_request_id("req-7");
//! let seen = context::scope(outer, async {
//!     async { context::try_current().unwrap() }.with_log_context(inner).await
//! })
//! .await;
//! assert_eq!(seen.service_name(), Some("billing"));
//! assert_eq!(seen.request_id(), Some("req-7"));
//! # }
//! ```

use std::cell::RefCell;
use std::future::Future;
use std::marker::PhantomData;
use std::mem;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::field::{OwnedValue, Value};

/// Contextual information attached to every record logged inside its scope.
///
/// All string fields are reference-counted: cloning a context is cheap.
///
/// # Examples
///
/// ```
/// use kakashi::LogContext;
///
/// let ctx = LogContext::new()
///     .with_request_id("req-1")
///     .with_ip("127.0.0.1")
///     .with_field("tenant", "acme");
/// assert_eq!(ctx.request_id(), Some("req-1"));
///
/// let merged = ctx.merge(&LogContext::new().with_request_id("req-2"));
/// assert_eq!(merged.request_id(), Some("req-2"));
/// assert_eq!(merged.ip(), Some("127.0.0.1"));
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LogContext {
    ip: Option<Arc<str>>,
    access: Option<Arc<str>>,
    request_id: Option<Arc<str>>,
    user_id: Option<Arc<str>>,
    session_id: Option<Arc<str>>,
    service_name: Option<Arc<str>>,
    version: Option<Arc<str>>,
    environment: Option<Arc<str>>,
    custom: Vec<(Arc<str>, OwnedValue)>,
}

macro_rules! context_fields {
    ($($field:ident, $with:ident, $doc:literal;)*) => {
        impl LogContext {
            $(
                #[doc = concat!("The ", $doc, ", if set.")]
                pub fn $field(&self) -> Option<&str> {
                    self.$field.as_deref()
                }

                #[doc = concat!("Sets the ", $doc, ".")]
                #[must_use]
                pub fn $with(mut self, value: impl Into<Arc<str>>) -> Self {
                    self.$field = Some(value.into());
                    self
                }
            )*

            /// Calls `visit` with each set field, standard fields first (in the order ip,
            /// access, request_id, user_id, session_id, service_name, version, environment),
            /// then custom fields in insertion order.
            pub fn for_each_field(&self, mut visit: impl FnMut(&str, Value<'_>)) {
                $(
                    if let Some(v) = &self.$field {
                        visit(stringify!($field), Value::Str(v));
                    }
                )*
                for (key, value) in &self.custom {
                    visit(key, value.as_value());
                }
            }

            /// A context with every field of `self`, overridden by each field set in `inner`.
            #[must_use]
            pub fn merge(&self, inner: &LogContext) -> LogContext {
                let mut merged = LogContext {
                    $($field: inner.$field.clone().or_else(|| self.$field.clone()),)*
                    custom: self.custom.clone(),
                };
                for (key, value) in &inner.custom {
                    merged.set_custom(key.clone(), value.clone());
                }
                merged
            }

            /// True when no field is set.
            pub fn is_empty(&self) -> bool {
                $(self.$field.is_none() &&)* self.custom.is_empty()
            }
        }
    };
}

context_fields! {
    ip, with_ip, "client IP address";
    access, with_access, "access line (for example `GET /users`)";
    request_id, with_request_id, "request id";
    user_id, with_user_id, "user id";
    session_id, with_session_id, "session id";
    service_name, with_service_name, "service name";
    version, with_version, "service version";
    environment, with_environment, "environment (for example `production`)";
}

impl LogContext {
    /// An empty context.
    pub fn new() -> Self {
        LogContext::default()
    }

    /// Adds (or replaces) a custom field.
    #[must_use]
    pub fn with_field(mut self, key: impl Into<Arc<str>>, value: impl Into<OwnedValue>) -> Self {
        self.set_custom(key.into(), value.into());
        self
    }

    /// The custom fields, in insertion order.
    pub fn custom(&self) -> &[(Arc<str>, OwnedValue)] {
        &self.custom
    }

    fn set_custom(&mut self, key: Arc<str>, value: OwnedValue) {
        match self.custom.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.custom.push((key, value)),
        }
    }

    /// Makes this context (merged into the thread's current one) current on this thread until
    /// the returned guard is dropped. For synchronous code; async code uses [`scope`].
    ///
    /// # Examples
    ///
    /// ```
    /// use kakashi::LogContext;
    ///
    /// let _guard = LogContext::new().with_user_id("u-1").enter();
    /// assert_eq!(kakashi::context::try_current().unwrap().user_id(), Some("u-1"));
    /// ```
    pub fn enter(self) -> ContextGuard {
        let merged = match thread_current() {
            Some(outer) => Arc::new(outer.merge(&self)),
            None => Arc::new(self),
        };
        let previous = THREAD_CONTEXT
            .try_with(|slot| slot.replace(Some(merged)))
            .ok()
            .flatten();
        ContextGuard {
            previous,
            _not_send: PhantomData,
        }
    }
}

thread_local! {
    static THREAD_CONTEXT: RefCell<Option<Arc<LogContext>>> = const { RefCell::new(None) };

    /// The context of the task-local scope being polled (or dropped) on this thread. It works
    /// like a tokio `task_local!` (a thread-local swapped in around each poll), but it is
    /// entered with [`enter_task_scope`], which fails instead of panicking when the thread's
    /// locals are being destroyed. It is only ever borrowed to clone or swap the `Arc`, never
    /// while other code runs, so scopes can be entered from anywhere, even from inside a log
    /// call (a `Display` impl or a writer).
    static TASK_CONTEXT: RefCell<Option<Arc<LogContext>>> = const { RefCell::new(None) };
}

fn thread_current() -> Option<Arc<LogContext>> {
    THREAD_CONTEXT
        .try_with(|slot| slot.try_borrow().ok().and_then(|c| c.clone()))
        .ok()
        .flatten()
}

fn task_current() -> Option<Arc<LogContext>> {
    TASK_CONTEXT
        .try_with(|slot| slot.try_borrow().ok().and_then(|c| c.clone()))
        .ok()
        .flatten()
}

/// Makes `slot`'s context the task-local one while `f` runs, and puts it back into `slot`
/// afterwards (also when `f` panics); the task-local context of before is current again.
///
/// Hands `f` back, not run, when the task-local cannot be entered: the thread's locals are
/// being destroyed (or the slot is borrowed, which this module never lets happen while other
/// code runs). The caller then runs it without the context. Never panics.
fn enter_task_scope<R, F: FnOnce() -> R>(slot: &mut Option<Arc<LogContext>>, f: F) -> Result<R, F> {
    struct Restore<'a> {
        slot: &'a mut Option<Arc<LogContext>>,
    }

    impl Drop for Restore<'_> {
        fn drop(&mut self) {
            // Cannot fail: the thread-local was alive and not borrowed on entry, and nothing
            // keeps a borrow across other code. If it ever did, the context would be dropped
            // with this thread's locals instead of going back to its future; nothing panics.
            let _ = TASK_CONTEXT.try_with(|current| {
                if let Ok(mut current) = current.try_borrow_mut() {
                    mem::swap(self.slot, &mut *current);
                }
            });
        }
    }

    let entered = TASK_CONTEXT
        .try_with(|current| match current.try_borrow_mut() {
            Ok(mut current) => {
                mem::swap(slot, &mut *current);
                true
            }
            Err(_) => false,
        })
        .unwrap_or(false);
    if !entered {
        return Err(f);
    }
    let _restore = Restore { slot };
    Ok(f())
}

/// Runs `f` with `ctx` as the task-local context if the task-local can be entered, else
/// without it.
fn in_task_scope<R>(ctx: Arc<LogContext>, f: impl FnOnce() -> R) -> R {
    enter_task_scope(&mut Some(ctx), f).unwrap_or_else(|f| f())
}

/// Restores the previous thread-local context when dropped. Returned by [`LogContext::enter`].
#[must_use = "the context is current only until the guard is dropped"]
#[derive(Debug)]
pub struct ContextGuard {
    previous: Option<Arc<LogContext>>,
    _not_send: PhantomData<*const ()>,
}

impl Drop for ContextGuard {
    fn drop(&mut self) {
        let previous = self.previous.take();
        let _ = THREAD_CONTEXT.try_with(|slot| {
            if let Ok(mut slot) = slot.try_borrow_mut() {
                *slot = previous;
            }
        });
    }
}

/// The current context: the task-local one if inside a [`scope`], else the thread-local one.
pub fn try_current() -> Option<Arc<LogContext>> {
    task_current().or_else(thread_current)
}

/// Calls `f` with the current context. The logging path uses this.
///
/// The context's `Arc` is cloned out first (one atomic increment, no allocation), so no
/// thread-local is borrowed while `f` runs: a `Display` impl of a logged field, or a writer,
/// may enter a nested scope ([`sync_scope_shared`], polling a [`WithContext`]) and log there.
pub(crate) fn with_current<R>(f: impl FnOnce(Option<&LogContext>) -> R) -> R {
    let current = try_current();
    f(current.as_deref())
}

/// `ctx` merged into the current context (its fields win), shared, ready for
/// [`scope_shared`] and [`sync_scope_shared`].
pub fn merge_with_current(ctx: LogContext) -> Arc<LogContext> {
    match try_current() {
        Some(outer) => Arc::new(outer.merge(&ctx)),
        None => Arc::new(ctx),
    }
}

/// Like [`scope`], with a context that is already shared: it is used as given, not merged
/// (see [`merge_with_current`]).
pub fn scope_shared<F: Future>(ctx: Arc<LogContext>, future: F) -> WithContext<F> {
    WithContext::new(future, Some(ctx))
}

/// Runs `f` with `ctx` as the task-local context, used as given. For code that logs on behalf
/// of a request from outside the request's future, such as a `Drop` impl that may run inside
/// another task. Scopes may nest, also from inside a log call (a `Display` impl of a logged
/// field, or a writer).
///
/// Does not panic: if called while the thread's locals are being destroyed, `f` runs without
/// the context.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use kakashi::context::{self, LogContext};
///
/// let ctx = Arc::new(LogContext::new().with_request_id("r-9"));
/// let id = context::sync_scope_shared(ctx, || context::try_current().unwrap().request_id().map(str::to_owned));
/// assert_eq!(id.as_deref(), Some("r-9"));
/// ```
pub fn sync_scope_shared<R>(ctx: Arc<LogContext>, f: impl FnOnce() -> R) -> R {
    in_task_scope(ctx, f)
}

/// Runs `future` with `ctx` (merged into the current context) as its task-local context.
///
/// The merge happens when `scope` is called: call it inside the outer scope to nest.
///
/// # Examples
///
/// ```
/// use kakashi::context::{self, LogContext};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let id = context::scope(LogContext::new().with_request_id("r-1"), async {
///     tokio::task::yield_now().await;
///     context::try_current().and_then(|c| c.request_id().map(str::to_owned))
/// })
/// .await;
/// assert_eq!(id.as_deref(), Some("r-1"));
/// # }
/// ```
pub fn scope<F: Future>(ctx: LogContext, future: F) -> WithContext<F> {
    WithContext::new(future, Some(merge_with_current(ctx)))
}

/// Runs `f` with `ctx` (merged into the current context) as the context of this thread.
pub fn sync_scope<R>(ctx: LogContext, f: impl FnOnce() -> R) -> R {
    let _guard = ctx.enter();
    f()
}

pin_project_lite::pin_project! {
    /// A future that runs with a log context. Made by [`scope`] and [`WithLogContext`].
    ///
    /// The context is current while the inner future is polled and while it is dropped: the
    /// inner future is dropped inside the context as soon as it completes, or when this
    /// wrapper is dropped before that (cancelled by `select!` or a timeout, or never polled),
    /// so `Drop` impls that log keep the request's fields. (Should the thread's locals be
    /// being destroyed already, it is polled or dropped without the context; nothing panics.)
    #[derive(Debug)]
    #[must_use = "futures do nothing unless polled"]
    pub struct WithContext<F> {
        // `None` once completed (and dropped).
        #[pin]
        inner: Option<F>,
        ctx: Option<Arc<LogContext>>,
    }

    impl<F> PinnedDrop for WithContext<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if !mem::needs_drop::<F>() || this.inner.is_none() {
                return;
            }
            let mut inner = this.inner;
            if this.ctx.is_some() {
                // If the scope cannot be entered, the inner future is dropped with the
                // wrapper's fields, without the context.
                let _ = enter_task_scope(this.ctx, || inner.set(None));
            }
        }
    }
}

impl<F> WithContext<F> {
    fn new(inner: F, ctx: Option<Arc<LogContext>>) -> Self {
        WithContext {
            inner: Some(inner),
            ctx,
        }
    }
}

impl<F: Future> Future for WithContext<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let mut inner = this.inner;
        let mut poll = move || {
            let Some(future) = inner.as_mut().as_pin_mut() else {
                panic!("`WithContext` polled after completion");
            };
            let output = future.poll(cx);
            if output.is_ready() {
                // Dropped here, inside the context.
                inner.set(None);
            }
            output
        };
        if this.ctx.is_none() {
            return poll();
        }
        // The context moves into the task-local for the poll and back afterwards: no clone.
        enter_task_scope(this.ctx, &mut poll).unwrap_or_else(|poll| poll())
    }
}

/// Extension methods that attach a log context to any future.
pub trait WithLogContext: Future + Sized {
    /// Runs this future with `ctx` merged into the context current now.
    fn with_log_context(self, ctx: LogContext) -> WithContext<Self> {
        scope(ctx, self)
    }

    /// Runs this future with the context current now (for example before handing the future
    /// to `tokio::spawn`).
    fn in_current_log_context(self) -> WithContext<Self> {
        WithContext::new(self, try_current())
    }
}

impl<F: Future> WithLogContext for F {}

/// Spawns `future` on the current tokio runtime with the current log context.
///
/// # Panics
///
/// Like `tokio::spawn`, when called outside a tokio runtime.
pub fn spawn<F>(future: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(future.in_current_log_context())
}

/// Runs `f` on tokio's blocking pool with the current log context.
///
/// # Panics
///
/// Like `tokio::task::spawn_blocking`, when called outside a tokio runtime.
pub fn spawn_blocking<F, R>(f: F) -> tokio::task::JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let ctx = try_current();
    tokio::task::spawn_blocking(move || match ctx {
        Some(ctx) => in_task_scope(ctx, f),
        None => f(),
    })
}
