//! Crash points for the fault tests. `FAILPOINTS="relay.before-mark=return" dijkwacht run`
//! ends the process at that point as abruptly as a SIGKILL would (the `fail` crate reads
//! the variable at start), so a test can prove that a restart makes up for whatever was
//! cut short there. Without the variable every point is a map lookup that finds nothing.

/// A crash point: ends the process here when `FAILPOINTS` sets `name` to `return`
/// (e.g. `dispatch.after-post=2*off->return` lets two pass and ends at the third).
pub fn point(name: &str) {
    if fail::eval(name, |_| ()).is_some() {
        now(name);
    }
}

/// Ends the process now, without unwinding or flushing anything.
pub fn now(point: &str) -> ! {
    eprintln!("dijkwacht: crash point {point} reached; aborting");
    std::process::abort()
}

/// Reads `FAILPOINTS`; keep the returned value alive for the life of the process.
pub fn setup() -> fail::FailScenario<'static> {
    fail::FailScenario::setup()
}
