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
//! | other fields (`?value`, `%value`, errors) | [`Value::Str`] fields: the value written with `Debug` (which is `Display` for `%value`), an error with its `source()` chain, joined by `": "` |
//! | a field name given twice in one event | as for a native record: the last one is written |
//! | file, line and module path | the record's [`Location`] |
//! | the fields of the current span and of its parents | fields after the event's own; one per key, the event's own and then the innermost span's win |
//!
//! `tracing` lends an event's values for the duration of one visit, so the layer visits the
//! event once and writes each value that is not a number or a boolean (and the message) into
//! a per-thread buffer, which the record borrows: each `Debug` or `Display` impl runs once,
//! whatever the number of sinks, and nothing is allocated once the buffer has grown.
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
//! The layer gives `tracing` the same answer per call site when the call site registers
//! ([`Interest`] `always` or `never`), which `tracing` keeps: an enabled event is not asked
//! about again, and a disabled one costs the call site's cached interest check. kakashi's
//! levels change at run time ([`Pipeline::set_min_level`], [`Logger::set_level`],
//! [`directives::handle`](crate::directives::handle), installing the global pipeline), and
//! each change makes `tracing` ask every call site again
//! ([`rebuild_interest_cache`](tracing_core::callsite::rebuild_interest_cache), which takes
//! `tracing`'s registry locks: a level change is not free, a logging call stays lock-free).
//! When `tracing` still asks per call ([`enabled`](tracing_subscriber::Layer::enabled): another
//! layer or subscriber wants that, such as an `EnvFilter`), the check is a per-thread lookup
//! of the target's logger by the target's address (no lock, no allocation) and the logger's
//! cached decision (two or three atomic loads). Like any layer's answer, it holds for the whole
//! subscriber the layer is part of.
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

use crate::bridge::target_level::Destination;

/// The per-thread buffer for an event's text is let go when it grew past this.
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

/// Makes `tracing` ask every layer about every call site again (the layer's answer, kept per
/// call site, follows kakashi's levels): called by each change of a level decision.
pub(crate) fn levels_changed() {
    tracing_core::callsite::rebuild_interest_cache();
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
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        // `tracing` keeps this per call site until `levels_changed` has it ask again.
        if self
            .destination
            .enabled(level_of(metadata.level()), metadata.target())
        {
            Interest::always()
        } else {
            Interest::never()
        }
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
        with_scratch(|scratch| self.log_event(event, &ctx, scratch));
    }
}

impl KakashiLayer {
    /// Logs `event`, copying what it lends into `scratch` (emptied).
    fn log_event<S>(&self, event: &Event<'_>, ctx: &Context<'_, S>, scratch: &mut Scratch)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let Scratch {
            text,
            slots,
            spans,
            fields,
        } = scratch;
        let metadata = event.metadata();

        // One visit: `tracing` lends each value for the duration of one visitor call, so the
        // values that are not numbers are written into `text` now (once, whatever the number
        // of sinks), and the record borrows them from there.
        let mut visitor = EventVisitor {
            slots,
            text,
            message: None,
        };
        event.record(&mut visitor);
        let message = visitor.message;
        let text: &str = text;

        // The spans' fields, innermost span first: one reference count each, so that no
        // span's lock is held while the record is formatted (a `Display` impl may record
        // into a span). `event_span` and `parent` rather than `event_scope`, which would look
        // the event's span up once more.
        let mut next = ctx.event_span(event);
        while let Some(span) = next {
            if let Some(values) = span.extensions().get::<SpanFields>() {
                spans.push(Arc::clone(&values.0));
            }
            next = span.parent();
        }

        // The event's own fields (a name given twice is left to the formatter's rule, as
        // for a native record: the last is written), then the spans' that no field before
        // them has, innermost first. The vector is this thread's, lent for this record: no
        // allocation once it has grown.
        let mut record_fields: Vec<Field<'_>> = std::mem::take(fields);
        record_fields.extend(slots.iter().map(|slot| slot.field(text)));
        for span in spans.iter() {
            for (key, value) in span.iter() {
                if !has_key(&record_fields, key) {
                    record_fields.push(Field::new(key, value.as_value()));
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
        let message = message.map_or("", |(start, end)| text.get(start..end).unwrap_or(""));
        pipeline.log_text(level, metadata.target(), message, &record_fields, &location);

        *fields = emptied(record_fields);
        // Let the spans go now: a span holding the only reference changes its fields in
        // place (`Arc::make_mut`), without a copy.
        spans.clear();
    }
}

/// True if one of `fields` is named `key`.
#[inline]
fn has_key(fields: &[Field<'_>], key: &str) -> bool {
    fields.iter().any(|f| f.key() == key)
}

/// `fields`, emptied, as a vector that may be kept beyond the borrows its fields had. The
/// collection happens in place (same element layout), so the allocation is kept for reuse;
/// the closure never runs (there is nothing left to map).
fn emptied(mut fields: Vec<Field<'_>>) -> Vec<Field<'static>> {
    fields.clear();
    fields
        .into_iter()
        .map(|_| Field::new("", Value::Null))
        .collect()
}

/// The most fields (and spans) whose room a thread keeps between events.
const MAX_KEPT_FIELDS: usize = 256;

/// A thread's reusable room for the event being logged: what the event lends (its string,
/// `Debug` and `Display` values, its message), its fields, and the spans' fields.
#[derive(Default)]
struct Scratch {
    /// The event's string values, one after the other; [`Slot`]s and the message point in.
    text: String,
    /// The event's own fields, in order.
    slots: Vec<Slot>,
    /// The fields of the spans the event is in, innermost first.
    spans: Vec<Arc<SpanValues>>,
    /// The record's fields; empty between events.
    fields: Vec<Field<'static>>,
}

impl Scratch {
    const fn new() -> Self {
        Scratch {
            text: String::new(),
            slots: Vec::new(),
            spans: Vec::new(),
            fields: Vec::new(),
        }
    }

    #[inline]
    fn clear(&mut self) {
        self.text.clear();
        self.slots.clear();
        self.spans.clear();
        self.fields.clear();
    }

    /// Lets go of room that one unusual event made grow.
    #[inline]
    fn trim(&mut self) {
        if self.text.capacity() > MAX_KEPT_TEXT {
            self.text = String::new();
        }
        if self.slots.capacity() > MAX_KEPT_FIELDS {
            self.slots = Vec::new();
        }
        if self.spans.capacity() > MAX_KEPT_FIELDS {
            self.spans = Vec::new();
        }
        if self.fields.capacity() > MAX_KEPT_FIELDS {
            self.fields = Vec::new();
        }
    }
}

/// Calls `f` with this thread's (emptied) [`Scratch`], or with a new one when it is in use
/// (an event logged while another is visited or formatted) or gone (thread exit).
fn with_scratch(f: impl FnOnce(&mut Scratch)) {
    thread_local! {
        static SCRATCH: RefCell<Scratch> = const { RefCell::new(Scratch::new()) };
    }
    let mut f = Some(f);
    let _ = SCRATCH.try_with(|cell| {
        let Ok(mut scratch) = cell.try_borrow_mut() else {
            return;
        };
        let Some(f) = f.take() else {
            return;
        };
        scratch.clear();
        f(&mut scratch);
        scratch.trim();
    });
    if let Some(f) = f.take() {
        f(&mut Scratch::default());
    }
}

/// One of an event's own fields, as the visit found it.
#[derive(Clone, Copy)]
struct Slot {
    key: &'static str,
    value: SlotValue,
}

#[derive(Clone, Copy)]
enum SlotValue {
    /// A number or a boolean.
    Typed(Value<'static>),
    /// Text written into the scratch text at `start..end`: a string, or a value written
    /// with `Debug` (`?value`, `%value`, which `tracing` gives as `Debug`), or an error and
    /// its sources.
    Text(usize, usize),
}

impl Slot {
    #[inline]
    fn field<'a>(&self, text: &'a str) -> Field<'a> {
        match self.value {
            SlotValue::Typed(value) => Field::new(self.key, value),
            SlotValue::Text(start, end) => {
                Field::new(self.key, Value::Str(text.get(start..end).unwrap_or("")))
            }
        }
    }
}

/// The visit of an event: numbers and booleans are taken as they are, everything else is
/// written into the text buffer (strings as they are, errors with their `source()` chain,
/// other values with `Debug`, as `tracing` writes them).
struct EventVisitor<'b> {
    slots: &'b mut Vec<Slot>,
    text: &'b mut String,
    /// Where the message is in `text`.
    message: Option<(usize, usize)>,
}

impl EventVisitor<'_> {
    /// A number or a boolean; the message is written with `Debug` instead.
    fn typed(&mut self, field: &TracingField, value: Value<'static>, debug: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.record_debug(field, debug);
        } else {
            self.slots.push(Slot {
                key: field.name(),
                value: SlotValue::Typed(value),
            });
        }
    }

    /// Writes a value with `write` into the text buffer and keeps it as the field's.
    fn text(&mut self, field: &TracingField, write: impl FnOnce(&mut String) -> fmt::Result) {
        use std::fmt::Write as _;

        let start = self.text.len();
        if write(self.text).is_err() {
            // As the formatters write a value whose `Display` failed.
            let _ = self.text.write_str("<formatting error>");
        }
        let end = self.text.len();
        if field.name() == "message" {
            self.message = Some((start, end));
        } else {
            self.slots.push(Slot {
                key: field.name(),
                value: SlotValue::Text(start, end),
            });
        }
    }
}

impl Visit for EventVisitor<'_> {
    fn record_f64(&mut self, field: &TracingField, value: f64) {
        self.typed(field, Value::F64(value), &value);
    }

    fn record_i64(&mut self, field: &TracingField, value: i64) {
        self.typed(field, Value::I64(value), &value);
    }

    fn record_u64(&mut self, field: &TracingField, value: u64) {
        self.typed(field, Value::U64(value), &value);
    }

    fn record_i128(&mut self, field: &TracingField, value: i128) {
        self.typed(field, Value::I128(value), &value);
    }

    fn record_u128(&mut self, field: &TracingField, value: u128) {
        self.typed(field, Value::U128(value), &value);
    }

    fn record_bool(&mut self, field: &TracingField, value: bool) {
        self.typed(field, Value::Bool(value), &value);
    }

    fn record_str(&mut self, field: &TracingField, value: &str) {
        self.text(field, |text| {
            text.push_str(value);
            Ok(())
        });
    }

    fn record_error(&mut self, field: &TracingField, value: &(dyn std::error::Error + 'static)) {
        use std::fmt::Write as _;

        self.text(field, |text| {
            write!(text, "{value}")?;
            for source in crate::field::error_sources(value) {
                write!(text, ": {source}")?;
            }
            Ok(())
        });
    }

    fn record_debug(&mut self, field: &TracingField, value: &dyn fmt::Debug) {
        use std::fmt::Write as _;

        self.text(field, |text| write!(TextWriter(text), "{value:?}"));
    }
}

/// `fmt::Write` into the text buffer, with a `write_char` that measured cheaper than
/// `String`'s (padding such as `{:016x}` or `{:>8}` writes its fill one `char` at a time).
struct TextWriter<'a>(&'a mut String);

impl fmt::Write for TextWriter<'_> {
    #[inline]
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.push_str(s);
        Ok(())
    }

    #[inline]
    fn write_char(&mut self, c: char) -> fmt::Result {
        if c.is_ascii() {
            // One byte: `push_str` of it measured cheaper than `push` (and than encoding
            // into a four-byte buffer).
            self.0.push_str(c.encode_utf8(&mut [0; 1]));
        } else {
            self.0.push(c);
        }
        Ok(())
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
    fn a_nested_use_of_the_scratch_gets_its_own() {
        let mut ran = 0;
        with_scratch(|outer| {
            outer.text.push_str("outer");
            outer.fields.push(Field::new("k", Value::U64(1)));
            with_scratch(|inner| {
                assert!(inner.text.is_empty() && inner.fields.is_empty());
                inner.text.push_str("inner");
                ran += 1;
            });
            assert_eq!(outer.text, "outer");
            assert_eq!(outer.fields.len(), 1);
            ran += 1;
        });
        with_scratch(|again| {
            assert!(again.text.is_empty(), "emptied before reuse");
            assert!(again.fields.is_empty() && again.slots.is_empty() && again.spans.is_empty());
            ran += 1;
        });
        assert_eq!(ran, 3);
    }

    #[test]
    fn the_text_writer_pads_with_any_fill() {
        use std::fmt::Write as _;

        let mut text = String::from("a");
        write!(
            TextWriter(&mut text),
            "{:016x}|{:é>4}|{:<3}|",
            42u64,
            7,
            'ß'
        )
        .unwrap();
        assert_eq!(text, "a000000000000002a|ééé7|ß  |");
    }

    #[test]
    fn emptied_fields_keep_their_room() {
        let text = String::from("borrowed");
        let mut fields = Vec::with_capacity(8);
        fields.push(Field::new("k", Value::Str(&text)));
        let address = fields.as_ptr() as usize;
        let kept = emptied(fields);
        assert!(kept.is_empty());
        assert_eq!(kept.capacity(), 8);
        assert_eq!(kept.as_ptr() as usize, address, "the allocation is reused");
    }
}
