//! Which objects an export's manifests may name. A data file's key must be
//! `<export folder>/data/<name>`: the export's own folder, as its
//! `manifest-summary.json` names it (the folder of `manifestFilesS3Key`,
//! which ends in `AWSDynamoDB/<export id>`), then `data/`, then one plain
//! file name. The file is then read as `data/<name>` inside the export's
//! folder as given (local or `s3://`), never at a path or key the manifest
//! makes up. Keys with `..` or `.` segments, empty segments, a leading
//! `/`, backslashes or NUL are refused outright. All is checked before any
//! data file is opened.

/// Why `key` is not a clean relative key, if it is not.
pub fn unclean(key: &str) -> Option<&'static str> {
    if key.is_empty() {
        Some("it is empty")
    } else if key.starts_with('/') {
        Some("it is an absolute path")
    } else if key.contains('\\') {
        Some("it holds a backslash")
    } else if key.contains('\0') {
        Some("it holds a NUL character")
    } else if key.split('/').any(|s| s == "..") {
        Some("it has a `..` segment")
    } else if key.split('/').any(|s| s == ".") {
        Some("it has a `.` segment")
    } else if key.split('/').any(str::is_empty) {
        Some("it has an empty segment")
    } else {
        None
    }
}

/// The export's own folder key and its manifest's file name, from the
/// summary's `manifestFilesS3Key`; with `export_id` known, the folder must
/// end in `AWSDynamoDB/<export_id>`.
pub fn export_folder<'k>(
    manifest_files_key: &'k str,
    export_id: Option<&str>,
) -> Result<(&'k str, &'k str), String> {
    if let Some(why) = unclean(manifest_files_key) {
        return Err(why.to_string());
    }
    let (folder, name) = manifest_files_key
        .rsplit_once('/')
        .unwrap_or(("", manifest_files_key));
    if let Some(id) = export_id {
        let own = format!("AWSDynamoDB/{id}");
        if folder != own && !folder.ends_with(&format!("/{own}")) {
            return Err(format!("it is not in the export's own folder {own}"));
        }
    }
    Ok((folder, name))
}

/// The data file's name if `key` is `<folder>/data/<name>`; else why not.
pub fn data_file_name<'k>(key: &'k str, folder: &str) -> Result<&'k str, String> {
    let under = if folder.is_empty() {
        "data/".to_string()
    } else {
        format!("{folder}/data/")
    };
    if let Some(why) = unclean(key) {
        return Err(format!(
            "{why}; a data file must be {under}<name> (the export's own data folder)"
        ));
    }
    match key.strip_prefix(&under) {
        Some(name) if !name.contains('/') => Ok(name),
        _ => Err(format!(
            "it is not a file directly under {under}, the export's own data folder"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FOLDER: &str = "p/AWSDynamoDB/0171-abc";

    #[test]
    fn data_files_lie_in_the_exports_own_data_folder() {
        assert_eq!(
            data_file_name("p/AWSDynamoDB/0171-abc/data/f1.json.gz", FOLDER),
            Ok("f1.json.gz")
        );
        assert_eq!(data_file_name("data/f1.json.gz", ""), Ok("f1.json.gz"));
        for (key, why) in [
            (
                "p/AWSDynamoDB/0171-abc/data/../../../../tmp/x.json.gz",
                "`..`",
            ),
            ("/etc/passwd", "absolute"),
            ("p/AWSDynamoDB/0171-abc/data//f.json.gz", "empty segment"),
            ("p/AWSDynamoDB/0171-abc/data/./f.json.gz", "`.`"),
            ("p/AWSDynamoDB/0171-abc/data/..\\f.json.gz", "backslash"),
            (
                "p/AWSDynamoDB/0171-abc/data/sub/f.json.gz",
                "directly under",
            ),
            ("p/AWSDynamoDB/0171-xyz/data/f.json.gz", "directly under"),
            ("q/AWSDynamoDB/0171-abc/data/f.json.gz", "directly under"),
            ("p/AWSDynamoDB/0171-abc/data/", "empty segment"),
            ("", "empty"),
        ] {
            let e = data_file_name(key, FOLDER).unwrap_err();
            assert!(e.contains(why), "{key}: {e}");
        }
    }

    #[test]
    fn the_summary_names_the_exports_folder() {
        let key = "p/AWSDynamoDB/0171-abc/manifest-files.json";
        assert_eq!(
            export_folder(key, Some("0171-abc")),
            Ok((FOLDER, "manifest-files.json"))
        );
        assert_eq!(
            export_folder("AWSDynamoDB/0171-abc/m.json", Some("0171-abc")),
            Ok(("AWSDynamoDB/0171-abc", "m.json"))
        );
        assert!(export_folder(key, Some("0171-xyz")).is_err());
        assert!(export_folder("p/AWSDynamoDB/0171-abc/..", None).is_err());
        assert_eq!(export_folder("m.json", None), Ok(("", "m.json")));
    }
}
