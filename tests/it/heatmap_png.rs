//! The heatmap PNG through the binary: a `STREAMFOLD_FONT` that does not
//! exist is named (the image is still written, with a system font if
//! there is one), and the image fits a 1920-pixel screen.

use crate::bin::{command, stderr, stdout, streamfold};

/// Width and height from a PNG header.
fn size(path: &std::path::Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    let be = |r: std::ops::Range<usize>| u32::from_be_bytes(bytes[r].try_into().unwrap());
    (be(16..20), be(20..24))
}

#[test]
fn a_missing_streamfold_font_is_named_and_the_image_still_written() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("h.db").display());
    let replay = streamfold(&["replay", "--database-url", &url, "fixtures/events"]);
    assert!(replay.status.success(), "{}", stderr(&replay));
    let png = dir.path().join("h.png");
    let png_arg = png.display().to_string();
    let args = [
        "stats",
        "--database-url",
        &url,
        "--slack-id",
        "U01ALICE",
        "--integration",
        "all",
        "--png",
        &png_arg,
    ];
    let o = command(&args)
        .env("STREAMFOLD_FONT", "/nonexistent/NoSuchFont.ttf")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("/nonexistent/NoSuchFont.ttf"), "{err}");
    let (w, h) = size(&png);
    assert!(w <= 1920 && h > 200, "{w}×{h}");
    // With the system font (where there is one), nothing is said.
    let o = command(&args)
        .env_remove("STREAMFOLD_FONT")
        .output()
        .unwrap();
    assert!(
        o.status.success() && stdout(&o).contains("wrote"),
        "{}",
        stderr(&o)
    );
}
