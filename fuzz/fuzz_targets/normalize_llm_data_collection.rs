//! Fuzz the `llm_data_collection` normaliser: arbitrary item images.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    streamfold_fuzz::image_of(
        "acsd2p-prod-LLMDataCollection",
        r#"{"conversation_id":{"S":"c"}}"#,
        data,
    );
});
