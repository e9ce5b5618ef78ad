//! Test support: fresh databases per engine, a local directory in a temp
//! folder, and builders for stream records shaped as Lambda delivers them.

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use streamfold::pipeline::{BatchReport, Pipeline, run_batch};
use streamfold::resolve::local::LocalDirectory;
use streamfold::store::Store;

/// A fresh, empty, migrated database of the engine named by `engine`, kept
/// alive (and, for servers, dropped) with the test.
pub struct TestDb {
    pub url: String,
    admin: Option<(String, String)>,
    _dir: tempfile::TempDir,
}

/// Server URL for `engine` from the environment (`None` for an engine
/// without a server). The tests that call this for a server are
/// `#[ignore = "needs VARIABLE"]`, so they run only when asked for
/// (`--include-ignored`); then the variable unset fails the test (as does
/// its server unreachable), rather than passing as "ok" without running.
pub fn server_url(engine: &str) -> Option<String> {
    let var = match engine {
        "mysql" => "STREAMFOLD_TEST_MYSQL_URL",
        "postgres" => "STREAMFOLD_TEST_POSTGRES_URL",
        _ => return None,
    };
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => not_set(var),
    }
}

/// A test that needs `var` was run without it: fail, naming it.
pub fn not_set(var: &'static str) -> ! {
    panic!(
        "{var} is not set: this test needs it (such tests are #[ignore]d; \
         `cargo test` runs them only with --include-ignored, README \"Try it\")"
    )
}

static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// A migrated database of `engine` (always `Some`: a server engine whose
/// variable is unset fails the test in `server_url`).
pub async fn fresh_db(engine: &str) -> Option<TestDb> {
    let db = fresh_unmigrated_db(engine).await?;
    if db.admin.is_some() {
        let store = streamfold::store::Store::connect(&db.url, &Default::default())
            .await
            .unwrap();
        store.migrate().await.unwrap();
    }
    Some(db)
}

/// A fresh database with no schema (SQLite: a path not yet created).
pub async fn fresh_unmigrated_db(engine: &str) -> Option<TestDb> {
    let dir = tempfile::tempdir().unwrap();
    if engine == "sqlite" {
        return Some(TestDb {
            url: format!("sqlite://{}", dir.path().join("t.db").display()),
            admin: None,
            _dir: dir,
        });
    }
    let admin = server_url(engine)?;
    let name = format!(
        "sf_test_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_micros()
    );
    admin_execute(&admin, &format!("CREATE DATABASE {name}")).await;
    let url = streamfold::bench::replace_database(&admin, &name);
    Some(TestDb {
        url,
        admin: Some((admin, name)),
        _dir: dir,
    })
}

async fn admin_execute(admin_url: &str, statement: &str) {
    use sqlx::Connection;
    if admin_url.starts_with("postgres") {
        let mut c = sqlx::PgConnection::connect(admin_url)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL test server unreachable: {e}"));
        sqlx::raw_sql(statement).execute(&mut c).await.unwrap();
    } else {
        let mut c = sqlx::MySqlConnection::connect(admin_url)
            .await
            .unwrap_or_else(|e| panic!("MySQL test server unreachable: {e}"));
        sqlx::raw_sql(statement).execute(&mut c).await.unwrap();
    }
}

impl TestDb {
    /// (admin URL, database name) of a server database.
    pub fn server(&self) -> Option<(String, String)> {
        self.admin.clone()
    }
}

/// Kill every server session of `db` (not the admin's own); returns how many.
pub async fn kill_sessions(admin_url: &str, db: &str) -> u64 {
    use sqlx::Connection;
    if admin_url.starts_with("postgres") {
        let mut c = sqlx::PgConnection::connect(admin_url).await.unwrap();
        let n: i64 = sqlx::query_scalar(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
        )
        .bind(db)
        .fetch_one(&mut c)
        .await
        .unwrap();
        n as u64
    } else {
        let mut c = sqlx::MySqlConnection::connect(admin_url).await.unwrap();
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = ? AND ID <> CONNECTION_ID()",
        )
        .bind(db)
        .fetch_all(&mut c)
        .await
        .unwrap();
        let mut killed = 0;
        for id in ids {
            if sqlx::raw_sql(&format!("KILL {id}"))
                .execute(&mut c)
                .await
                .is_ok()
            {
                killed += 1;
            }
        }
        killed
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin, name)) = self.admin.take() {
            let drop_sql = if admin.starts_with("postgres") {
                format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            } else {
                format!("DROP DATABASE IF EXISTS {name}")
            };
            // Best effort, on a thread of its own: Drop cannot await.
            let _ = std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(admin_execute(&admin, &drop_sql));
            })
            .join();
        }
    }
}

/// Identity items for the local directory.
pub const DIRECTORY: &[(&str, &str)] = &[
    (
        "integrations",
        r#"{"slack_id":{"S":"U_ALICE"},"integration":{"S":"G"},"account_id":{"S":"alice"}}"#,
    ),
    (
        "integrations",
        r#"{"slack_id":{"S":"U_ALICE"},"integration":{"S":"D"},"account_id":{"S":"dbid:A"}}"#,
    ),
    (
        "github_accounts",
        r#"{"Item":{"slack_id":{"S":"U_BOB"},"githubId":{"S":"bob"}}}"#,
    ),
    (
        "accounts",
        r#"{"slack_id":{"S":"U_ALICE"},"tz":{"S":"America/New_York"}}"#,
    ),
    (
        "accounts",
        r#"{"slack_id":{"S":"U_BOB"},"tz":{"S":"Australia/Sydney"}}"#,
    ),
    (
        "Users",
        r#"{"id":{"S":"acct-1"},"timezone":{"S":"Europe/Madrid"}}"#,
    ),
    (
        "Threads",
        r#"{"conversation_id":{"S":"conv-1"},"associated_account":{"S":"acct-1"}}"#,
    ),
];

pub fn write_directory(dir: &Path, items: &[(&str, &str)]) {
    let mut files: BTreeMap<&str, String> = BTreeMap::new();
    for (table, line) in items {
        let f = files.entry(table).or_default();
        f.push_str(line);
        f.push('\n');
    }
    std::fs::create_dir_all(dir).unwrap();
    for (table, text) in files {
        std::fs::write(dir.join(format!("{table}.jsonl")), text).unwrap();
    }
}

/// A pipeline on a fresh database with the standard directory.
pub struct Harness {
    /// The database, kept alive (and dropped) with the harness.
    pub db: TestDb,
    pub dir: tempfile::TempDir,
    pub p: Pipeline,
}

impl Harness {
    /// A harness on `engine` (always `Some`; see `fresh_db`).
    pub async fn new(engine: &str) -> Option<Harness> {
        Harness::with_directory(engine, DIRECTORY).await
    }

    pub async fn with_directory(engine: &str, items: &[(&str, &str)]) -> Option<Harness> {
        let db = fresh_db(engine).await?;
        let dir = tempfile::tempdir().unwrap();
        write_directory(dir.path(), items);
        let p = Pipeline {
            store: Store::open(&db.url).await.unwrap(),
            directory: LocalDirectory::load(dir.path()).unwrap().into(),
            default_tz: chrono_tz::Tz::UTC,
        };
        Some(Harness { db, dir, p })
    }

    /// Reload the directory after its files changed (a user got linked).
    pub fn relink(&mut self, items: &[(&str, &str)]) {
        write_directory(self.dir.path(), items);
        self.p.directory = LocalDirectory::load(self.dir.path()).unwrap().into();
    }

    pub async fn apply(&self, records: &[Value]) -> BatchReport {
        let text = json!({ "Records": records }).to_string();
        let event = streamfold::record::lambda_event::parse_event(&text).unwrap();
        run_batch(&self.p, &event.records).await.unwrap()
    }

    /// Heatmap cells of a user: (dow, hour) → count, zero cells dropped.
    pub async fn cells(&self, slack: &str, integration: Option<&str>) -> BTreeMap<(u8, u8), i64> {
        cells(&self.p, slack, integration).await
    }

    pub async fn total(&self) -> i64 {
        self.p.store.totals().await.unwrap().events_counted
    }
}

/// Heatmap cells of a user in `p`'s store: (dow, hour) → count, zero cells
/// dropped.
pub async fn cells(
    p: &Pipeline,
    slack: &str,
    integration: Option<&str>,
) -> BTreeMap<(u8, u8), i64> {
    p.store
        .heatmap(slack, integration)
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.2 != 0)
        .map(|(d, h, n)| ((d, h), n))
        .collect()
}

pub fn arn(table: &str) -> String {
    format!("arn:aws:dynamodb:us-east-1:123456789012:table/{table}/stream/2024-01-01T00:00:00.000")
}

/// A stream record of `table` with full Lambda shape.
pub fn record(
    table: &str,
    event_name: &str,
    seq: &str,
    keys: Value,
    new: Option<Value>,
    old: Option<Value>,
) -> Value {
    let mut ddb = json!({
        "ApproximateCreationDateTime": 1710063000.0,
        "Keys": keys,
        "SequenceNumber": seq,
        "SizeBytes": 100,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    });
    if let Some(n) = new {
        ddb["NewImage"] = n;
    }
    if let Some(o) = old {
        ddb["OldImage"] = o;
    }
    json!({
        "eventID": format!("evt-{seq}"),
        "eventName": event_name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": ddb,
        "eventSourceARN": arn(table),
    })
}

pub fn gh_item(id: &str, user: &str, ts: &str) -> Value {
    json!({"id":{"S":id},"username":{"S":user},"timestamp":{"S":ts},"eventType":{"S":"commit"}})
}

pub fn gh(event_name: &str, seq: &str, id: &str, user: &str, ts: &str) -> Value {
    let item = gh_item(id, user, ts);
    let keys = json!({"id":{"S":id}});
    match event_name {
        "REMOVE" => record(
            "icarus-dev-github_events",
            "REMOVE",
            seq,
            keys,
            None,
            Some(item),
        ),
        _ => record(
            "icarus-dev-github_events",
            event_name,
            seq,
            keys,
            Some(item),
            None,
        ),
    }
}

pub fn ttl_remove(mut rec: Value) -> Value {
    rec["userIdentity"] = json!({"type":"Service","principalId":"dynamodb.amazonaws.com"});
    rec
}

pub fn llm(event_name: &str, seq: &str, conv: &str, generated_at: &str, quality: &str) -> Value {
    let item = json!({
        "conversation_id":{"S":conv},"model_used":{"S":"m1"},"prompt_tokens":{"N":"10"},
        "response_tokens":{"N":"20"},"total_tokens":{"N":"30"},"response_time_ms":{"N":"100"},
        "quality_score":{"N":quality},"generated_at":{"S":generated_at},
        "metadata":{"M":{"cost_usd":{"N":"0.001"}}}
    });
    let keys = json!({"conversation_id":{"S":conv}});
    match event_name {
        "REMOVE" => record(
            "acsd2p-dev-LLMDataCollection",
            "REMOVE",
            seq,
            keys,
            None,
            Some(item),
        ),
        _ => record(
            "acsd2p-dev-LLMDataCollection",
            event_name,
            seq,
            keys,
            Some(item),
            None,
        ),
    }
}

/// The texts of the committed fixture events (`fixtures/events/*.json`),
/// in name order: one Lambda event each.
pub fn fixture_event_texts() -> Vec<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/events");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect()
}

/// The committed fixture directory, as (table, line) pairs.
pub fn fixture_directory() -> Vec<(&'static str, &'static str)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/directory");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let table: &'static str = Box::leak(
            path.file_stem()
                .unwrap()
                .to_string_lossy()
                .into_owned()
                .into_boxed_str(),
        );
        let text: &'static str =
            Box::leak(std::fs::read_to_string(&path).unwrap().into_boxed_str());
        out.extend(
            text.lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| (table, l)),
        );
    }
    out
}

/// Everything a run leaves counted: every user's cells per integration
/// (zero cells dropped) and every LLM report's sums. Two runs that should
/// agree compare equal on this.
pub type CountedState = (
    BTreeMap<(String, &'static str, u8, u8), i64>,
    BTreeMap<
        streamfold::aggregate::llm_rollup::ReportKey,
        streamfold::aggregate::llm_rollup::ReportSums,
    >,
);

pub async fn counted_state(p: &Pipeline) -> CountedState {
    let mut cells = BTreeMap::new();
    for (slack, _) in p.store.top_users(u32::MAX).await.unwrap() {
        for code in ["G", "D", "E"] {
            for (dow, hour, n) in p.store.heatmap(&slack, Some(code)).await.unwrap() {
                if n != 0 {
                    cells.insert((slack.clone(), code, dow, hour), n);
                }
            }
        }
    }
    let reports = p
        .store
        .reports(&streamfold::store::reports::ReportFilter {
            limit: u32::MAX,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.sums.requests != 0 || !r.sums.is_zero())
        .map(|r| (r.key, r.sums))
        .collect();
    (cells, reports)
}

/// `rec` (a DynamoDB stream record of the Lambda shape) as Lambda delivers
/// it from Kinesis Data Streams for DynamoDB: DynamoDB's change record
/// (with `tableName`, no `SequenceNumber`, `ApproximateCreationDateTime`
/// in microseconds) base64-encoded in `kinesis.data`, under Kinesis
/// sequence number `kinesis_seq`.
pub fn kinesis_record(rec: &Value, micros: u64, kinesis_seq: &str) -> Value {
    use base64::Engine;
    let arn = rec["eventSourceARN"].as_str().unwrap_or_default();
    let table = arn
        .split_once(":table/")
        .map(|(_, rest)| rest.split('/').next().unwrap_or_default())
        .unwrap_or_default();
    let ddb = &rec["dynamodb"];
    let mut change_ddb = json!({
        "ApproximateCreationDateTime": micros,
        "ApproximateCreationDateTimePrecision": "MICROSECOND",
        "Keys": ddb["Keys"],
        "SizeBytes": ddb["SizeBytes"],
    });
    for image in ["NewImage", "OldImage"] {
        if !ddb[image].is_null() {
            change_ddb[image] = ddb[image].clone();
        }
    }
    let mut change = json!({
        "awsRegion": rec["awsRegion"],
        "eventID": rec["eventID"],
        "eventName": rec["eventName"],
        "recordFormat": "application/json",
        "tableName": table,
        "dynamodb": change_ddb,
        "eventSource": "aws:dynamodb",
    });
    if !rec["userIdentity"].is_null() {
        change["userIdentity"] = rec["userIdentity"].clone();
    }
    let data = base64::engine::general_purpose::STANDARD.encode(change.to_string());
    json!({
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": "00000000000000000000000000000000",
            "sequenceNumber": kinesis_seq,
            "data": data,
            "approximateArrivalTimestamp": micros as f64 / 1e6 + 0.2,
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": format!("shardId-000000000000:{kinesis_seq}"),
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": "arn:aws:iam::123456789012:role/streamfold",
        "awsRegion": "us-east-1",
        "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/icarus-prod-changes",
    })
}

/// Microseconds for each stream record of `records` as Kinesis would
/// stamp them: its `ApproximateCreationDateTime` second, plus its rank in
/// `SequenceNumber` order (so the changes of one item keep their order, as
/// distinct writes do at microsecond precision). Equal records (a
/// redelivery) get equal times.
pub fn kinesis_micros(records: &[Value]) -> Vec<u64> {
    let key = |r: &Value| {
        let seq = r["dynamodb"]["SequenceNumber"].as_str().unwrap_or("0");
        (seq.len(), seq.to_string())
    };
    let mut seqs: Vec<_> = records.iter().map(key).collect();
    seqs.sort();
    seqs.dedup();
    records
        .iter()
        .map(|r| {
            let secs = r["dynamodb"]["ApproximateCreationDateTime"]
                .as_f64()
                .unwrap_or(1_710_063_000.0) as u64;
            let rank = seqs.binary_search(&key(r)).unwrap() as u64;
            secs * 1_000_000 + rank
        })
        .collect()
}

/// Record in the SQLite database at `db` a finished compaction run that
/// announced the horizon `days` ago, `secs` seconds ago.
pub fn announced_compaction(db: &Path, days: i64, secs: i64) {
    let now = chrono::Utc::now();
    let started = (now - chrono::Duration::seconds(secs)).to_rfc3339();
    let horizon = (now - chrono::Duration::days(days)).timestamp();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use sqlx::Connection;
        let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO ledger_compactions (horizon, include_unattributed, started_at, \
             finished_at, activity_done) VALUES (?, 0, ?, ?, 1)",
        )
        .bind(horizon)
        .bind(&started)
        .bind(&started)
        .execute(&mut c)
        .await
        .unwrap();
    });
}
