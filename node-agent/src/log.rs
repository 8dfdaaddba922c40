//! One line per event on stderr, prefixed with the local date and time (RFC 3339, to the
//! millisecond, with the offset: readable, and sortable and parseable by tools). Nothing that
//! is logged ever contains a token.

macro_rules! log {
    ($($arg:tt)*) => {{
        eprintln!("{} {}", chrono::Local::now().format("%Y-%m-%dT%H:%M:%S%.3f%:z"), format_args!($($arg)*));
    }};
}

pub(crate) use log;
