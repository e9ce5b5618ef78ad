//! Fuzz event-time parsing: strings, epoch numbers, sequence numbers.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = streamfold::record::event_time::parse_time_str(s);
        let _ = streamfold::record::event_time::parse_epoch(s);
        let _ = streamfold::domain::Version::from_sequence_number(s);
    }
});
