//! Fuzz the `dropbox_file_changes` normaliser: arbitrary item images.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    streamfold_fuzz::image_of(
        "icarus-prod-dropbox_file_changes",
        r#"{"account_id":{"S":"dbid:A"}}"#,
        data,
    );
});
