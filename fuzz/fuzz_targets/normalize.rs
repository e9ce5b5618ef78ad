//! Fuzz every registered table's normaliser (`normalize::TABLES`):
//! arbitrary item images, each through every table, so a table added to
//! the registry is fuzzed with no change here.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    streamfold_fuzz::image_of_every_table(data);
});
