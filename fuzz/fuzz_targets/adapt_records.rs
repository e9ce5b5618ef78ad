//! Fuzz the source adapters (a Kinesis record's change record, an
//! incremental-export line) and normalisation of what they make.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    streamfold_fuzz::adapted(data);
});
