//! One line per event on stderr, prefixed with the local date and time (RFC 3339, to the
//! millisecond, with the offset: readable, and sortable and parseable by tools). Nothing that
//! is logged ever contains a token. The simulation catches the lines of the thread it runs on
//! instead ([`catch_lines`]): its agents' logs belong in its trace, not on stderr.

use std::cell::RefCell;

thread_local! {
    static CAUGHT: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
}

macro_rules! log {
    ($($arg:tt)*) => {{
        $crate::log::emit(format_args!($($arg)*));
    }};
}

pub(crate) use log;

pub fn emit(line: std::fmt::Arguments<'_>) {
    let caught = CAUGHT.with(|caught| caught.borrow_mut().as_mut().map(|lines| lines.push(line.to_string())).is_some());
    if !caught {
        eprintln!("{} {}", chrono::Local::now().format("%Y-%m-%dT%H:%M:%S%.3f%:z"), line);
    }
}

/// From now on this thread's log lines are kept (for [`take_lines`]) instead of printed.
#[cfg(test)]
pub fn catch_lines() {
    CAUGHT.with(|caught| *caught.borrow_mut() = Some(Vec::new()));
}

/// The lines caught on this thread since the last call.
#[cfg(test)]
pub fn take_lines() -> Vec<String> {
    CAUGHT.with(|caught| caught.borrow_mut().as_mut().map(std::mem::take).unwrap_or_default())
}
