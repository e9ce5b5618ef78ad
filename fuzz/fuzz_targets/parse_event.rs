//! Fuzz Lambda event parsing and normalisation of every record.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    streamfold_fuzz::event(data);
});
