//! Configuration parsing and validation: any text, no panic, and an error always names a path.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tokenmint::config::{self, Env, Source};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Keep file: references from reading the fuzzing machine's files.
    if text.contains("file:") {
        return;
    }
    let source = Source::text(text).with_env(Env::Fixed(Default::default()));
    if let Err(error) = config::load(&source) {
        assert!(!error.problems.is_empty());
        assert!(error.problems.iter().all(|p| !p.path.is_empty()));
    }
});
