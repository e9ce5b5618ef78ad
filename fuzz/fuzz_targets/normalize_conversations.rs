//! Fuzz the `conversations` normaliser: arbitrary item images.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    streamfold_fuzz::image_of(
        "acsd2p-prod-Conversations",
        r#"{"conversation_id":{"S":"c"},"response_id":{"S":"r"}}"#,
        data,
    );
});
