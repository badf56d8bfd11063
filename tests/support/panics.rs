//! The panic hook, of which a test binary has one for all its tests: tests that panic on
//! purpose add a filter to it, so that their panics stay out of the output.
//!
//! Tests of one binary run at once on several threads, and replacing the hook is two steps
//! (take the old one, set the new one that calls it): two tests adding filters side by side could
//! each take the same old hook, and the filter set first would be lost. [`quiet`] takes both
//! steps under one lock, so every filter added stays in the chain.

use std::panic::PanicHookInfo;
use std::sync::Mutex;

/// Held while the hook is replaced.
static REPLACING: Mutex<()> = Mutex::new(());

/// Adds a filter to the panic hook: the panics for which `deliberate` is true are not reported;
/// every other panic goes to the hook there was before (in the end, the standard one). A test
/// calls this once (behind a `std::sync::Once`): each call adds one more link to the chain.
pub fn quiet(deliberate: impl Fn(&PanicHookInfo<'_>) -> bool + Send + Sync + 'static) {
    let _one_at_a_time = REPLACING.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !deliberate(info) {
            report(info);
        }
    }));
}
