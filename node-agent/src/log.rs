//! One line per event on stderr, prefixed with the wall-clock time in unix seconds. Nothing
//! that is logged ever contains a token.

macro_rules! log {
    ($($arg:tt)*) => {{
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        eprintln!("{}.{:03} {}", now.as_secs(), now.subsec_millis(), format_args!($($arg)*));
    }};
}

pub(crate) use log;
