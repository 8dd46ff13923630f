//! The access record: what it needs once the request is over, and how it is built and logged.

use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Instant;

use http::header::{HeaderValue, CONTENT_LENGTH};
use http::Response;
use http_body::Body;

use super::config::Config;
use crate::context::{self, LogContext};
use crate::field::{Field, Value};
use crate::record::Location;

/// What the access record needs once the request is over.
pub(super) struct Pending {
    pub(super) config: Arc<Config>,
    pub(super) start: Instant,
    /// `"METHOD /path"`.
    pub(super) access: Arc<str>,
    pub(super) method_len: usize,
    pub(super) request_id: HeaderValue,
    /// For the record of a cancelled request, logged outside the request's scope.
    pub(super) ctx: Arc<LogContext>,
}

#[derive(Clone, Copy)]
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

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Responded { status, .. } => write!(f, "{status}"),
            Outcome::Failed => f.write_str("500 (service error)"),
            Outcome::Panicked => f.write_str("500 (panicked)"),
            Outcome::Cancelled => f.write_str("499 (cancelled)"),
        }
    }
}

// The module path is `kakashi::tower`, the public module, not this private one.
static ACCESS: Location = Location::new(super::MODULE_PATH, file!(), line!());

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
        let level = self.config.level_for(status);
        let logger = &self.config.logger;
        if !logger.enabled(level) {
            return;
        }
        let latency_ms = self.start.elapsed().as_micros() as f64 / 1000.0;
        let (method, path) = self
            .access
            .split_at_checked(self.method_len)
            .map_or(("", &*self.access), |(m, p)| (m, p.get(1..).unwrap_or("")));
        let mut fields = [Field::new("", Value::Null); 6];
        fields[0] = Field::new("method", Value::Str(method));
        fields[1] = Field::new("path", Value::Str(path));
        fields[2] = Field::new("status", Value::U64(u64::from(status)));
        fields[3] = Field::new("latency_ms", Value::F64(latency_ms));
        let mut n = 4;
        let flag = match outcome {
            Outcome::Responded { size, .. } => {
                if let Some(size) = size {
                    fields[n] = Field::new("size", Value::U64(size));
                    n += 1;
                }
                None
            }
            Outcome::Failed => Some("error"),
            Outcome::Panicked => Some("panic"),
            Outcome::Cancelled => Some("cancelled"),
        };
        if let Some(flag) = flag {
            fields[n] = Field::new(flag, Value::Bool(true));
            n += 1;
        }
        logger.log_at(
            level,
            format_args!("{} {}", self.access, outcome),
            &fields[..n],
            &ACCESS,
        );
    }
}
