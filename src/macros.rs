//! The logging macros.

/// Logs at a level given as an expression: `log!(Level::Warn, log, "text")`.
///
/// The forms are those of [`info!`](crate::info):
///
/// - `log!(level, "format {}", args; fields)` on the global pipeline (logger named after the
///   module);
/// - `log!(level, logger, "format {}", args; fields)` on a [`Logger`](crate::Logger).
#[macro_export]
macro_rules! log {
    ($level:expr, $fmt:literal $($rest:tt)*) => {
        $crate::__log_global!($level, ($fmt) $($rest)*)
    };
    ($level:expr, $logger:expr, $fmt:literal $($rest:tt)*) => {
        $crate::__log_logger!($level, $logger, ($fmt) $($rest)*)
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __log_global {
    ($level:expr, ($fmt:literal) $(, $arg:expr)* ; $($fields:tt)*) => {{
        let __level: $crate::Level = $level;
        static __CALLSITE: $crate::__private::Callsite =
            $crate::__private::Callsite::new(module_path!());
        if __CALLSITE.enabled(__level) {
            static __LOCATION: $crate::Location =
                $crate::Location::new(module_path!(), file!(), line!());
            $crate::__private::global_log(
                __level,
                module_path!(),
                format_args!($fmt $(, $arg)*),
                &$crate::__fields!(@acc [] $($fields)*),
                &__LOCATION,
            );
        }
    }};
    ($level:expr, ($fmt:literal) $(, $arg:expr)*) => {
        $crate::__log_global!($level, ($fmt) $(, $arg)* ;)
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __log_logger {
    ($level:expr, $logger:expr, ($fmt:literal) $(, $arg:expr)* ; $($fields:tt)*) => {{
        let __level: $crate::Level = $level;
        let __logger = &$logger;
        if __logger.enabled(__level) {
            static __LOCATION: $crate::Location =
                $crate::Location::new(module_path!(), file!(), line!());
            __logger.log_at(
                __level,
                format_args!($fmt $(, $arg)*),
                &$crate::__fields!(@acc [] $($fields)*),
                &__LOCATION,
            );
        }
    }};
    ($level:expr, $logger:expr, ($fmt:literal) $(, $arg:expr)*) => {
        $crate::__log_logger!($level, $logger, ($fmt) $(, $arg)* ;)
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __fields {
    (@acc [$($out:expr,)*]) => { [$($out,)*] };
    (@acc [$($out:expr,)*] $key:tt = % $value:expr $(, $($rest:tt)*)?) => {
        $crate::__fields!(@acc [$($out,)* $crate::Field::new(
            $crate::__key!($key), $crate::Value::Display(&$value)),] $($($rest)*)?)
    };
    (@acc [$($out:expr,)*] $key:tt = ? $value:expr $(, $($rest:tt)*)?) => {
        $crate::__fields!(@acc [$($out,)* $crate::Field::new(
            $crate::__key!($key), $crate::Value::Debug(&$value)),] $($($rest)*)?)
    };
    (@acc [$($out:expr,)*] $key:tt = @ $value:expr $(, $($rest:tt)*)?) => {
        $crate::__fields!(@acc [$($out,)* $crate::Field::new(
            $crate::__key!($key), $crate::Value::Error(&$value)),] $($($rest)*)?)
    };
    (@acc [$($out:expr,)*] $key:tt = $value:expr $(, $($rest:tt)*)?) => {
        $crate::__fields!(@acc [$($out,)* $crate::Field::new(
            $crate::__key!($key), $crate::ToValue::to_value(&$value)),] $($($rest)*)?)
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __key {
    ($key:ident) => {
        stringify!($key)
    };
    ($key:literal) => {
        $key
    };
}

/// Logs at trace level; see [`info!`](crate::info) for the forms.
#[macro_export]
macro_rules! trace {
    ($($tt:tt)+) => { $crate::log!($crate::Level::Trace, $($tt)+) };
}

/// Logs at debug level; see [`info!`](crate::info) for the forms.
#[macro_export]
macro_rules! debug {
    ($($tt:tt)+) => { $crate::log!($crate::Level::Debug, $($tt)+) };
}

/// Logs at warn level; see [`info!`](crate::info) for the forms.
#[macro_export]
macro_rules! warn {
    ($($tt:tt)+) => { $crate::log!($crate::Level::Warn, $($tt)+) };
}

/// Logs at error level; see [`info!`](crate::info) for the forms.
#[macro_export]
macro_rules! error {
    ($($tt:tt)+) => { $crate::log!($crate::Level::Error, $($tt)+) };
}

/// Logs at critical level; see [`info!`](crate::info) for the forms.
#[macro_export]
macro_rules! critical {
    ($($tt:tt)+) => { $crate::log!($crate::Level::Critical, $($tt)+) };
}

/// Logs at info level.
///
/// ```text
/// info!("format {}", args…);                        // global pipeline, logger = module path
/// info!("format {}", args…; key = value, …);        // with fields
/// info!(logger, "format {}", args…; key = value);   // on a Logger
/// ```
///
/// Fields after the `;` are `key = value` pairs, the key an identifier or a string literal:
///
/// | form | captured as |
/// |---|---|
/// | `key = value` | its type: strings, integers, floats, `bool`, `char`, `Option` (`None` is null) |
/// | `key = %value` | its `Display` |
/// | `key = ?value` | its `Debug` |
/// | `key = @error` | an error (`impl Error + 'static`) with its `source()` chain |
///
/// When the level is disabled, nothing after the level check runs: the message is not
/// formatted and no field expression is evaluated. Values are borrowed, not moved.
///
/// # Examples
///
/// ```
/// use kakashi::{info, get_logger};
///
/// let log = get_logger("app");
/// let name = "ann";
/// let addr: std::net::IpAddr = "127.0.0.1".parse().unwrap();
/// let err = std::io::Error::other("disk full");
/// info!(log, "user {} logged in", name; user_id = 42, ip = %addr, path = ?"/x", cause = @err);
/// info!("no logger: named after this module"; "http.status" = 200);
/// ```
#[macro_export]
macro_rules! info {
    ($($tt:tt)+) => { $crate::log!($crate::Level::Info, $($tt)+) };
}
