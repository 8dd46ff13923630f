//! The access record: what it needs once the request is over, and how it is built and logged.

use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Instant;

use http::header::{HeaderValue, CONTENT_LENGTH, REFERER, USER_AGENT};
use http::{Request, Response};
use http_body::Body;

use super::config::Config;
use crate::context::{self, LogContext};
use crate::field::{Field, Value};
use crate::level::Level;
use crate::record::Location;

/// The longest query string, user agent or referer an access record holds, in bytes; a longer
/// one is cut at a character boundary and ends in `…`.
pub const MAX_LOGGED_VALUE_LEN: usize = 256;

/// What the access record needs once the request is over.
pub(super) struct Pending {
    pub(super) config: Arc<Config>,
    pub(super) start: Instant,
    pub(super) request_id: HeaderValue,
    /// The path or route is on the skip list: no record when the request succeeds.
    pub(super) skip_listed: bool,
    /// The optional fields, when any is configured.
    pub(super) details: Option<Box<Details>>,
    /// For the record of a cancelled request, logged outside the request's scope.
    pub(super) ctx: Arc<LogContext>,
}

/// The access record's optional fields: the request's query string, user agent and referer,
/// each capped at [`MAX_LOGGED_VALUE_LEN`]. The formatter escapes them like any value.
pub(super) struct Details {
    query: Option<Box<str>>,
    user_agent: Option<Box<str>>,
    referer: Option<Box<str>>,
}

impl Details {
    /// What `config` asks to log of `req`; `None` when nothing (the default).
    pub(super) fn read<B>(config: &Config, req: &Request<B>) -> Option<Box<Details>> {
        if !(config.query || config.user_agent || config.referer) {
            return None;
        }
        let header = |on: bool, name| {
            on.then(|| req.headers().get(name))
                .flatten()
                .map(|v: &HeaderValue| capped(v.as_bytes()))
        };
        Some(Box::new(Details {
            query: config
                .query
                .then(|| req.uri().query())
                .flatten()
                .map(|q| capped(q.as_bytes())),
            user_agent: header(config.user_agent, USER_AGENT),
            referer: header(config.referer, REFERER),
        }))
    }
}

/// `bytes` as text (invalid UTF-8 replaced), at most [`MAX_LOGGED_VALUE_LEN`] bytes of it and
/// `…` when cut.
fn capped(bytes: &[u8]) -> Box<str> {
    let text = String::from_utf8_lossy(bytes);
    if text.len() <= MAX_LOGGED_VALUE_LEN {
        return text.into();
    }
    let mut end = MAX_LOGGED_VALUE_LEN;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut cut = String::with_capacity(end + '…'.len_utf8());
    cut.push_str(&text[..end]);
    cut.push('…');
    cut.into_boxed_str()
}

#[derive(Clone, Copy, Debug)]
pub(super) enum Outcome {
    Responded { status: u16, size: Option<u64> },
    Failed,
    Panicked,
    Cancelled,
}

impl Outcome {
    fn status(self) -> u16 {
        match self {
            Outcome::Responded { status, .. } => status,
            Outcome::Failed | Outcome::Panicked => 500,
            Outcome::Cancelled => 499,
        }
    }
}

// The module path is `kakashi::tower`, the public module, not this private one.
static ACCESS: Location = Location::new(super::MODULE_PATH, file!(), line!());
static NO_PEER: Location = Location::new(super::MODULE_PATH, file!(), line!());

/// Says, once per layer, that requests come without a peer address, so that a missing `ip`
/// is not a silent surprise.
pub(super) fn warn_no_peer(config: &Config) {
    let logger = &config.logger;
    if logger.enabled(Level::Warn) {
        logger.log_at(
            Level::Warn,
            format_args!(
                "a request came without a peer address: access records will have no `ip`; \
                 serve axum apps with `into_make_service_with_connect_info::<SocketAddr>()` \
                 and enable kakashi's `axum` feature, or see `RequestLogLayer::peer_addr` and \
                 `RequestLogService::with_peer_addr`"
            ),
            &[],
            &NO_PEER,
        );
    }
}

impl Pending {
    pub(super) fn responded<B: Body>(self, response: &mut Response<B>) {
        response
            .headers_mut()
            .insert(self.config.header.clone(), self.request_id.clone());
        let size = response
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .or_else(|| response.body().size_hint().exact());
        self.log(Outcome::Responded {
            status: response.status().as_u16(),
            size,
        });
    }

    pub(super) fn cancelled(self) {
        // Dropped outside the request's scope (maybe inside another task's): log in the
        // request's context all the same. Entering a task-local fails only while the thread is
        // being torn down; a drop must not panic then.
        let ctx = Arc::clone(&self.ctx);
        let _ = panic::catch_unwind(AssertUnwindSafe(|| {
            context::sync_scope_shared(ctx, || self.log(Outcome::Cancelled))
        }));
    }

    pub(super) fn log(&self, outcome: Outcome) {
        let status = outcome.status();
        let config = &*self.config;
        let level = config.level_for(status);
        let logger = &config.logger;
        if !logger.enabled(level) {
            return;
        }
        let success = matches!(outcome, Outcome::Responded { .. }) && status < 400;
        if success && (self.skip_listed || config.sampled_out()) {
            return;
        }
        let latency_ms = self.start.elapsed().as_micros() as f64 / 1000.0;
        let mut fields = [Field::new("", Value::Null); 7];
        fields[0] = Field::new("status", Value::U64(u64::from(status)));
        fields[1] = Field::new("latency_ms", Value::F64(latency_ms));
        let mut n = 2;
        let mut push = |key, value| {
            fields[n] = Field::new(key, value);
            n += 1;
        };
        if let Outcome::Responded {
            size: Some(size), ..
        } = outcome
        {
            push("size", Value::U64(size));
        }
        if success && config.sample_successes > 1 {
            push("sampled", Value::U64(u64::from(config.sample_successes)));
        }
        if let Some(details) = &self.details {
            for (key, value) in [
                ("query", &details.query),
                ("user_agent", &details.user_agent),
                ("referer", &details.referer),
            ] {
                if let Some(value) = value {
                    push(key, Value::Str(value));
                }
            }
        }
        // The message is the outcome in words. What was asked and by whom are the context's
        // `access`, `ip` and `request_id`; the status and timing are fields: each once.
        let fields = &fields[..n];
        match outcome {
            Outcome::Responded { .. } => {
                logger.log_at(level, format_args!("request finished"), fields, &ACCESS)
            }
            Outcome::Failed => {
                logger.log_at(level, format_args!("request failed"), fields, &ACCESS)
            }
            Outcome::Panicked => {
                logger.log_at(level, format_args!("request panicked"), fields, &ACCESS)
            }
            Outcome::Cancelled => {
                logger.log_at(level, format_args!("request cancelled"), fields, &ACCESS)
            }
        }
    }
}
