//! `cargo test` never reports a test that did not run as passed: every test
//! that needs a server or moto is `#[ignore = "needs VARIABLE"]` (run with
//! `--include-ignored`), checked here on the test sources.

/// A test function: its name, attributes and body.
struct TestFn {
    name: String,
    attrs: Vec<String>,
    body: String,
}

/// Every test function in `text` (also those in `macro_rules!` bodies).
fn tests_in(text: &str) -> Vec<TestFn> {
    let mut out = Vec::new();
    let mut attrs: Vec<String> = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    for (i, raw) in lines.iter().enumerate() {
        let line = raw.trim();
        if line.starts_with("#[") || line.starts_with("$(#[") {
            attrs.push(line.to_string());
            continue;
        }
        if let Some(rest) = line
            .strip_prefix("async fn ")
            .or_else(|| line.strip_prefix("fn "))
            && attrs.iter().any(|a| a.contains("test"))
        {
            let indent = &raw[..raw.len() - raw.trim_start().len()];
            let close = format!("{indent}}}");
            let body: Vec<&str> = lines[i..]
                .iter()
                .take_while(|l| **l != close)
                .copied()
                .collect();
            out.push(TestFn {
                name: rest.split('(').next().unwrap_or_default().to_string(),
                attrs: std::mem::take(&mut attrs),
                body: body.join("\n"),
            });
            continue;
        }
        if !line.starts_with("//") {
            attrs.clear();
        }
    }
    out
}

#[test]
fn server_and_moto_tests_are_ignored_unless_asked_for() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it");
    let mut files = vec![std::path::PathBuf::from(root).join("properties/mod.rs")];
    files.extend(
        std::fs::read_dir(root)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "rs")),
    );
    let mut unmarked = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        if file.ends_with("ignored.rs") {
            continue;
        }
        for t in tests_in(&text) {
            let needs = |var: &str| {
                t.attrs
                    .iter()
                    .any(|a| a.starts_with("#[ignore = \"needs ") && a.contains(var))
            };
            // By its name, or an engine passed or listed in its body
            // (`fresh_db("mysql")`, `["postgres", "mysql"]`), or moto.
            let engine = |e: &str| {
                t.name.contains(e)
                    || [
                        format!("(\"{e}\""),
                        format!("[\"{e}\""),
                        format!("\"{e}\"]"),
                    ]
                    .iter()
                    .any(|p| t.body.contains(p.as_str()))
            };
            let (mysql, postgres) = (engine("mysql"), engine("postgres"));
            let moto = t.body.contains("Moto::start()");
            if (mysql && !needs("STREAMFOLD_TEST_MYSQL_URL"))
                || (postgres && !needs("STREAMFOLD_TEST_POSTGRES_URL"))
                || (moto && !needs("STREAMFOLD_TEST_MOTO"))
            {
                unmarked.push(format!("{}: {}", file.display(), t.name));
            }
        }
    }
    assert!(unmarked.is_empty(), "not ignored: {unmarked:#?}");

    // The per-engine suites: every server invocation carries its ignore.
    let main = std::fs::read_to_string(format!("{root}/main.rs")).unwrap();
    for line in main.lines().filter(|l| l.contains("_tests!(")) {
        let ok = if line.contains("\"mysql\"") {
            line.contains("#[ignore = \"needs STREAMFOLD_TEST_MYSQL_URL\"]")
        } else if line.contains("\"postgres\"") {
            line.contains("#[ignore = \"needs STREAMFOLD_TEST_POSTGRES_URL\"]")
        } else {
            true
        };
        assert!(ok, "not ignored: {line}");
    }
}
