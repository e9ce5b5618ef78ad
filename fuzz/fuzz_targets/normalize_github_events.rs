//! Fuzz the `github_events` normaliser: arbitrary item images.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    streamfold_fuzz::image_of("icarus-prod-github_events", r#"{"id":{"S":"e1"}}"#, data);
});
