//! A [`tracing`] integration (feature `tracing`): a `tracing_subscriber` [`Layer`] that
//! writes `tracing` events through kakashi.
//!
//! [`layer()`] logs through the global pipeline (see [`init`](crate::init)),
//! [`layer_for`] through a given [`Pipeline`]. Compose it with
//! [`tracing_subscriber::registry()`] and any filters, or let [`init()`] install
//! `registry().with(layer())` as the global default subscriber.
//!
//! Every event becomes a kakashi record, logged as a native one is — through the pipeline's
//! filters, enrichers and formatters, with the current [`LogContext`](crate::LogContext)
//! (so a request's `request_id` from [`kakashi::tower`](crate::tower) or
//! [`context::scope`](crate::context::scope) is on it):
//!
//! | tracing | kakashi |
//! |---|---|
//! | level `TRACE` … `ERROR` | [`Level::Trace`] … [`Level::Error`] |
//! | target | logger name |
//! | the `message` field | message |
//! | `i64`, `u64`, `i128`, `u128`, `f64`, `bool` and `str` fields | fields of the same type (numbers stay numbers in JSON) |
//! | other fields (`?value`, `%value`, errors) | [`Value::Debug`] fields, written from the event when the record is formatted; an error with its `source()` chain, joined by `": "` |
//! | file, line and module path | the record's [`Location`] |
//! | the fields of the current span and of its parents | fields after the event's own; one per key, the innermost wins |
//!
//! A span's fields are copied (owned) into the span when it is created and when
//! `Span::record` changes them; entering and leaving a span costs the layer nothing.
//!
//! # Levels
//!
//! The layer's [`enabled`](tracing_subscriber::Layer::enabled) answers with kakashi's one
//! level system, for a logger named by the event's target: its own level if one was set, else
//! the [directives](crate::directives) for the target (`RUST_LOG`-style, from `KAKASHI_LOG`
//! or `RUST_LOG`), else the pipeline's minimum level. For [`layer()`] that logger is
//! [`get_logger`]`(target)`, so [`Logger::set_level`] on it applies; for [`layer_for`] it is
//! one on the given pipeline. A disabled event is not built: its fields are not evaluated and
//! the layer sees nothing of it. Spans are enabled the same way, so a span at a level that is
//! not logged is not created, and its fields are not on the records inside it (`tower_http`'s
//! `TraceLayer` makes its spans at `DEBUG` by default).
//!
//! kakashi's levels change at run time ([`Pipeline::set_min_level`], [`Logger::set_level`],
//! [`directives::handle`](crate::directives::handle)), so the layer asks on every call rather
//! than letting `tracing` cache the answer per call site. A disabled event costs that check: a
//! per-thread lookup of the target's logger by the target's address (no lock, no allocation)
//! and the logger's cached decision (two or three atomic loads). Like any layer's `enabled`,
//! the answer holds for the whole subscriber the layer is part of.
//!
//! # Examples
//!
//! ```
//! use kakashi::format::Json;
//! use kakashi::write::MemoryWriter;
//! use kakashi::{PipelineConfig, SyncPipeline, Writer};
//! use tracing_subscriber::layer::SubscriberExt;
//!
//! let memory = MemoryWriter::new();
//! let config = PipelineConfig::builder()
//!     .formatter(Json::new())
//!     .writer(Writer::memory(&memory))
//!     .build()?;
//! let (pipeline, _guard) = SyncPipeline::start(config)?;
//!
//! let subscriber = tracing_subscriber::registry().with(kakashi::tracing::layer_for(&pipeline));
//! tracing::subscriber::with_default(subscriber, || {
//!     let span = tracing::info_span!("checkout", user = "u-42");
//!     let _entered = span.enter();
//!     tracing::info!(target: "shop", items = 3, total = 9.5, "paid");
//!     tracing::debug!("not logged: the pipeline's level is info");
//! });
//!
//! let lines = memory.lines();
//! assert_eq!(lines.len(), 1);
//! assert!(lines[0].ends_with(
//!     r#""level":"info","logger":"shop","message":"paid","items":3,"total":9.5,"user":"u-42"}"#
//! ));
//! # Ok::<(), kakashi::Error>(())
//! ```
//!
//! [`tracing`]: https://docs.rs/tracing
//! [`Layer`]: tracing_subscriber::Layer
//! [`get_logger`]: crate::get_logger
//! [`Logger::set_level`]: crate::Logger::set_level

use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;

use tracing_core::dispatcher::SetGlobalDefaultError;
use tracing_core::field::{Field as TracingField, Visit};
use tracing_core::span::{Attributes, Id, Record};
use tracing_core::{Event, Interest, Metadata, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use crate::field::{Field, OwnedValue, Value};
use crate::level::Level;
use crate::pipeline::Pipeline;
use crate::record::Location;

use crate::bridge::inline::{Fields, Inline};
use crate::bridge::target_level::Destination;

/// Inline room for an event's own fields; more go to the heap.
const EVENT_FIELDS: usize = 16;
/// Inline room for the spans (with fields) an event is in.
const SPANS: usize = 8;
/// Inline room for all of a record's fields.
const RECORD_FIELDS: usize = 24;
/// The per-thread buffer for string fields is let go when it grew past this.
const MAX_KEPT_TEXT: usize = 16 * 1024;

/// A `tracing_subscriber` [`Layer`](tracing_subscriber::Layer) that writes events through a
/// kakashi pipeline; made by [`layer()`] and [`layer_for`]. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct KakashiLayer {
    destination: Destination,
}

/// A layer that logs through the global pipeline, with the levels of the loggers named by the
/// events' targets ([`get_logger`](crate::get_logger)`(target)`).
///
/// # Examples
///
/// ```
/// use tracing_subscriber::layer::SubscriberExt;
/// use tracing_subscriber::util::SubscriberInitExt;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let _guard = kakashi::try_init(kakashi::PipelineConfig::builder().build()?)?;
/// tracing_subscriber::registry()
///     .with(tracing_subscriber::EnvFilter::new("info,hyper=warn"))
///     .with(kakashi::tracing::layer())
///     .try_init()?;
/// tracing::info!(port = 8080, "listening");
/// # Ok(())
/// # }
/// ```
pub fn layer() -> KakashiLayer {
    KakashiLayer {
        destination: Destination::Global,
    }
}

/// A layer that logs through `pipeline`: the [directives](crate::directives) for each event's
/// target decide, else the pipeline's minimum level.
///
/// The own levels of [`get_logger`](crate::get_logger) loggers do not apply: those loggers
/// belong to the global pipeline.
pub fn layer_for(pipeline: &Pipeline) -> KakashiLayer {
    KakashiLayer {
        destination: Destination::pipeline_of(pipeline),
    }
}

/// Installs `tracing_subscriber::registry().with(layer())` as the global default
/// subscriber: every `tracing` event in the program, on every thread, goes to the global
/// pipeline.
///
/// # Errors
///
/// When a global default subscriber is already set (by this function or another).
///
/// # Examples
///
/// ```
/// kakashi::tracing::init().expect("the first global subscriber");
/// tracing::warn!(target: "app", retries = 3, "upstream slow"); // to the global pipeline
/// assert!(kakashi::tracing::init().is_err());
/// ```
pub fn init() -> Result<(), SetGlobalDefaultError> {
    use tracing_subscriber::layer::SubscriberExt as _;

    let subscriber = tracing_subscriber::registry().with(layer());
    tracing_core::dispatcher::set_global_default(tracing_core::Dispatch::new(subscriber))
}

/// kakashi's level for a `tracing` level.
fn level_of(level: &tracing_core::Level) -> Level {
    match *level {
        tracing_core::Level::TRACE => Level::Trace,
        tracing_core::Level::DEBUG => Level::Debug,
        tracing_core::Level::INFO => Level::Info,
        tracing_core::Level::WARN => Level::Warn,
        _ => Level::Error,
    }
}

impl<S> tracing_subscriber::Layer<S> for KakashiLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
        // Not `always`/`never`: `tracing` would keep that per call site, and kakashi's levels
        // change at run time. `enabled` answers on each call.
        Interest::sometimes()
    }

    fn enabled(&self, metadata: &Metadata<'_>, _: Context<'_, S>) -> bool {
        self.destination
            .enabled(level_of(metadata.level()), metadata.target())
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = SpanFields::default();
        attrs.record(&mut fields);
        if fields.is_empty() {
            return;
        }
        if let Some(span) = ctx.span(id) {
            // `replace`, not `insert` (which panics when the span has one): two kakashi
            // layers in a stack share it.
            span.extensions_mut().replace(fields);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        let mut extensions = span.extensions_mut();
        if let Some(fields) = extensions.get_mut::<SpanFields>() {
            values.record(fields);
            return;
        }
        let mut fields = SpanFields::default();
        values.record(&mut fields);
        if !fields.is_empty() {
            extensions.replace(fields);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        with_text(|text| self.log_event(event, &ctx, text));
    }
}

impl KakashiLayer {
    /// Logs `event`; `text` is an empty buffer for its string fields.
    fn log_event<S>(&self, event: &Event<'_>, ctx: &Context<'_, S>, text: &mut String)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let metadata = event.metadata();
        let mut slots: Inline<Slot<'_, '_>, EVENT_FIELDS> = Inline::new();
        let mut message = None;
        event.record(&mut EventVisitor {
            event,
            slots: &mut slots,
            message: &mut message,
            text,
        });
        let text: &str = text;

        // The spans' fields, innermost span first: one reference count each, so that no
        // span's lock is held while the record is formatted (a `Debug` impl may record into
        // a span). `event_span` and `parent` rather than `event_scope`, which would look the
        // event's span up once more.
        let mut spans: Inline<Arc<SpanValues>, SPANS> = Inline::new();
        let mut next = ctx.event_span(event);
        while let Some(span) = next {
            if let Some(fields) = span.extensions().get::<SpanFields>() {
                spans.push(Arc::clone(&fields.0));
            }
            next = span.parent();
        }

        // One field per key: the event's own first, then the innermost span's.
        let mut fields: Fields<'_, RECORD_FIELDS> = Fields::new();
        for slot in slots.iter() {
            let field = slot.field(text);
            if !fields.contains(field.key()) {
                fields.push(field);
            }
        }
        for span in spans.iter() {
            for (key, value) in span.iter() {
                if !fields.contains(key) {
                    fields.push(Field::new(key, value.as_value()));
                }
            }
        }

        let location = Location::new(
            metadata.module_path().unwrap_or(""),
            metadata.file().unwrap_or(""),
            metadata.line().unwrap_or(0),
        );
        let level = level_of(metadata.level());
        let pipeline = self.destination.pipeline();
        let fields = fields.as_slice();
        match &message {
            Some(message) => pipeline.log(
                level,
                metadata.target(),
                format_args!("{message}"),
                fields,
                &location,
            ),
            None => pipeline.log(
                level,
                metadata.target(),
                format_args!(""),
                fields,
                &location,
            ),
        }
    }
}

/// Calls `f` with this thread's (emptied) buffer for string fields, or with a new one when
/// it is in use (an event logged while another is formatted) or gone (thread exit).
fn with_text(f: impl FnOnce(&mut String)) {
    thread_local! {
        static TEXT: RefCell<String> = const { RefCell::new(String::new()) };
    }
    let mut f = Some(f);
    let _ = TEXT.try_with(|cell| {
        let Ok(mut text) = cell.try_borrow_mut() else {
            return;
        };
        let Some(f) = f.take() else {
            return;
        };
        text.clear();
        f(&mut text);
        if text.capacity() > MAX_KEPT_TEXT {
            *text = String::new();
        }
    });
    if let Some(f) = f.take() {
        f(&mut String::new());
    }
}

/// One of an event's fields, as the first pass over the event found it.
#[derive(Clone, Copy)]
enum Slot<'e, 'v> {
    /// A number or a boolean.
    Typed(&'static str, Value<'static>),
    /// A string, copied into the text buffer at `start..end`.
    Str(&'static str, usize, usize),
    /// Any other value: written from the event when the record is formatted.
    Lazy(LazyField<'e, 'v>),
}

impl Slot<'_, '_> {
    fn field<'a>(&'a self, text: &'a str) -> Field<'a> {
        match self {
            Slot::Typed(key, value) => Field::new(key, *value),
            Slot::Str(key, start, end) => {
                Field::new(key, Value::Str(text.get(*start..*end).unwrap_or("")))
            }
            Slot::Lazy(lazy) => Field::new(lazy.name, Value::Debug(lazy)),
        }
    }
}

/// The first pass over an event: typed values and strings are taken, the rest is left in the
/// event for [`LazyField`].
struct EventVisitor<'e, 'v, 'b> {
    event: &'e Event<'v>,
    slots: &'b mut Inline<Slot<'e, 'v>, EVENT_FIELDS>,
    message: &'b mut Option<LazyField<'e, 'v>>,
    text: &'b mut String,
}

impl EventVisitor<'_, '_, '_> {
    fn typed(&mut self, field: &TracingField, value: Value<'static>) {
        if field.name() == "message" {
            self.lazy(field);
        } else {
            self.slots.push(Slot::Typed(field.name(), value));
        }
    }

    fn lazy(&mut self, field: &TracingField) {
        let lazy = LazyField {
            event: self.event,
            name: field.name(),
            index: field.index(),
        };
        if lazy.name == "message" {
            *self.message = Some(lazy);
        } else {
            self.slots.push(Slot::Lazy(lazy));
        }
    }
}

impl Visit for EventVisitor<'_, '_, '_> {
    fn record_f64(&mut self, field: &TracingField, value: f64) {
        self.typed(field, Value::F64(value));
    }

    fn record_i64(&mut self, field: &TracingField, value: i64) {
        self.typed(field, Value::I64(value));
    }

    fn record_u64(&mut self, field: &TracingField, value: u64) {
        self.typed(field, Value::U64(value));
    }

    fn record_i128(&mut self, field: &TracingField, value: i128) {
        self.typed(field, Value::I128(value));
    }

    fn record_u128(&mut self, field: &TracingField, value: u128) {
        self.typed(field, Value::U128(value));
    }

    fn record_bool(&mut self, field: &TracingField, value: bool) {
        self.typed(field, Value::Bool(value));
    }

    fn record_str(&mut self, field: &TracingField, value: &str) {
        if field.name() == "message" {
            self.lazy(field);
            return;
        }
        let start = self.text.len();
        self.text.push_str(value);
        self.slots
            .push(Slot::Str(field.name(), start, self.text.len()));
    }

    fn record_error(&mut self, field: &TracingField, _: &(dyn std::error::Error + 'static)) {
        self.lazy(field);
    }

    fn record_debug(&mut self, field: &TracingField, _: &dyn fmt::Debug) {
        self.lazy(field);
    }
}

/// A field of an event, written by visiting the event again when it is formatted: `tracing`
/// lends a value only for the duration of one visitor call, and copying it to a string up
/// front would cost an allocation the formatter does not need.
#[derive(Clone, Copy)]
struct LazyField<'e, 'v> {
    event: &'e Event<'v>,
    name: &'static str,
    /// The field's index in the event's field set.
    index: usize,
}

impl fmt::Display for LazyField<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut writer = FieldWriter {
            index: self.index,
            f,
            result: Ok(()),
        };
        self.event.record(&mut writer);
        writer.result
    }
}

impl fmt::Debug for LazyField<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Writes one field of an event: strings as they are, errors with their `source()` chain,
/// everything else with `Debug` (as `tracing` writes them).
struct FieldWriter<'a, 'f> {
    /// The field's index (all the fields an event visits are of its own field set).
    index: usize,
    f: &'a mut fmt::Formatter<'f>,
    result: fmt::Result,
}

impl FieldWriter<'_, '_> {
    fn wanted(&self, field: &TracingField) -> bool {
        self.result.is_ok() && field.index() == self.index
    }
}

impl Visit for FieldWriter<'_, '_> {
    fn record_str(&mut self, field: &TracingField, value: &str) {
        if self.wanted(field) {
            self.result = self.f.write_str(value);
        }
    }

    fn record_error(&mut self, field: &TracingField, value: &(dyn std::error::Error + 'static)) {
        if self.wanted(field) {
            self.result = (|| {
                write!(self.f, "{value}")?;
                for source in crate::field::error_sources(value) {
                    write!(self.f, ": {source}")?;
                }
                Ok(())
            })();
        }
    }

    fn record_debug(&mut self, field: &TracingField, value: &dyn fmt::Debug) {
        if self.wanted(field) {
            self.result = fmt::Debug::fmt(value, self.f);
        }
    }
}

/// A span's fields, owned: one per key (the last recorded value).
type SpanValues = Vec<(&'static str, OwnedValue)>;

/// A span's fields, kept in the span's extensions; shared with the events being logged in the
/// span, which take a reference each.
#[derive(Debug, Default)]
struct SpanFields(Arc<SpanValues>);

impl SpanFields {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn set(&mut self, field: &TracingField, value: OwnedValue) {
        let key = field.name();
        // Copies the fields only if an event on another thread holds them right now.
        let values = Arc::make_mut(&mut self.0);
        match values.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => values.push((key, value)),
        }
    }
}

impl Visit for SpanFields {
    fn record_f64(&mut self, field: &TracingField, value: f64) {
        self.set(field, OwnedValue::F64(value));
    }

    fn record_i64(&mut self, field: &TracingField, value: i64) {
        self.set(field, OwnedValue::I64(value));
    }

    fn record_u64(&mut self, field: &TracingField, value: u64) {
        self.set(field, OwnedValue::U64(value));
    }

    fn record_i128(&mut self, field: &TracingField, value: i128) {
        self.set(field, OwnedValue::I128(value));
    }

    fn record_u128(&mut self, field: &TracingField, value: u128) {
        self.set(field, OwnedValue::U128(value));
    }

    fn record_bool(&mut self, field: &TracingField, value: bool) {
        self.set(field, OwnedValue::Bool(value));
    }

    fn record_str(&mut self, field: &TracingField, value: &str) {
        self.set(field, OwnedValue::Str(Arc::from(value)));
    }

    fn record_error(&mut self, field: &TracingField, value: &(dyn std::error::Error + 'static)) {
        let text = crate::field::error_chain_string(value);
        self.set(field, OwnedValue::Str(Arc::from(text)));
    }

    fn record_debug(&mut self, field: &TracingField, value: &dyn fmt::Debug) {
        self.set(field, OwnedValue::Str(Arc::from(format!("{value:?}"))));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_map_one_to_one() {
        assert_eq!(level_of(&tracing_core::Level::TRACE), Level::Trace);
        assert_eq!(level_of(&tracing_core::Level::DEBUG), Level::Debug);
        assert_eq!(level_of(&tracing_core::Level::INFO), Level::Info);
        assert_eq!(level_of(&tracing_core::Level::WARN), Level::Warn);
        assert_eq!(level_of(&tracing_core::Level::ERROR), Level::Error);
    }

    #[test]
    fn a_nested_use_of_the_text_buffer_gets_its_own() {
        let mut ran = 0;
        with_text(|outer| {
            outer.push_str("outer");
            with_text(|inner| {
                assert!(inner.is_empty());
                inner.push_str("inner");
                ran += 1;
            });
            assert_eq!(outer, "outer");
            ran += 1;
        });
        with_text(|again| {
            assert!(again.is_empty(), "emptied before reuse");
            ran += 1;
        });
        assert_eq!(ran, 3);
    }
}
