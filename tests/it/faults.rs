//! Fault injection against the real servers: connections cut mid-batch by a
//! TCP proxy, server-side kills (`KILL` / `pg_terminate_backend`) of the
//! store's sessions. Every failed batch is redelivered, as Lambda would, and
//! the final counts must equal a fault-free run of the same batches:
//! nothing lost, nothing double-counted, nothing partially applied.

use crate::support::{self, Harness};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use streamfold::pipeline::run_batch;
use streamfold::record::lambda_event::parse_event;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;

/// A TCP proxy in front of a server that can drop every open connection.
struct Proxy {
    port: u16,
    cut: broadcast::Sender<()>,
}

impl Proxy {
    async fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (cut, _) = broadcast::channel(16);
        let cut_tx = cut.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let mut cut_rx = cut_tx.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    // As the drivers do: no Nagle delay on either leg.
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut_rx.recv() => {} // dropping both sockets cuts the connection
                    }
                });
            }
        });
        Proxy { port, cut }
    }

    fn cut_all(&self) {
        let _ = self.cut.send(());
    }
}

/// `host:port` of a server URL, and the URL pointed at `port` on loopback.
fn via_proxy(url: &str, port: u16) -> (String, String) {
    let rest = url.split_once("://").unwrap().1;
    let authority = rest.split('/').next().unwrap();
    let hostport = authority.rsplit('@').next().unwrap().to_string();
    (
        hostport.clone(),
        url.replacen(&hostport, &format!("127.0.0.1:{port}"), 1),
    )
}

/// Apply every batch, redelivering a failed one until it succeeds.
/// Returns how many deliveries failed.
async fn deliver_until_applied(h: &Harness, events: &[String]) -> u64 {
    deliver_counting_retries(h, events).await.0
}

/// As `deliver_until_applied`, also returning the store's own transaction
/// retries (failures absorbed without failing the delivery).
async fn deliver_counting_retries(h: &Harness, events: &[String]) -> (u64, u64) {
    let mut failures = 0;
    let mut retries = 0;
    for text in events {
        let event = parse_event(text).unwrap();
        let mut attempts = 0;
        loop {
            match run_batch(&h.p, &event.records).await {
                Ok(r) => {
                    retries += r.retries;
                    break;
                }
                Err(e) => {
                    failures += 1;
                    attempts += 1;
                    assert!(attempts < 200, "a batch never got through: {e}");
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }
    }
    (failures, retries)
}

/// Totals and heatmaps. Reads are not retried by the store; a pooled
/// connection the injector cut just before may fail one, so a read that
/// fails is tried again on another connection (a few times).
async fn summary(h: &Harness) -> (streamfold::store::Totals, Vec<Vec<(u8, u8, i64)>>) {
    let mut last = None;
    for _ in 0..5 {
        match try_summary(h).await {
            Ok(s) => return s,
            Err(e) => last = Some(e),
        }
    }
    panic!("reads failed five times: {last:?}")
}

async fn try_summary(
    h: &Harness,
) -> Result<(streamfold::store::Totals, Vec<Vec<(u8, u8, i64)>>), streamfold::store::StoreError> {
    let mut maps = Vec::new();
    for u in ["U01ALICE", "U02BOB", "U03CAROL", "acct-1001", "acct-1002"] {
        maps.push(h.p.store.heatmap(u, None).await?);
    }
    Ok((h.p.store.totals().await?, maps))
}

/// Faults of one kind while 1,500 generated records (30 batches, with
/// duplicates, MODIFYs and REMOVEs) are applied; compared with a clean run.
async fn survives(engine: &str, kind: &str) {
    let events = streamfold::bench::generate_events(1500, 50, 21);
    let Some(clean) = Harness::with_directory(engine, &support::fixture_directory()).await else {
        return;
    };
    assert_eq!(deliver_until_applied(&clean, &events).await, 0);
    let want = summary(&clean).await;

    let Some(mut faulty) = Harness::with_directory(engine, &support::fixture_directory()).await
    else {
        return;
    };
    let stop = AtomicBool::new(false);
    let injected = AtomicU64::new(0);
    let mut proxy = None;
    if kind == "proxy" {
        let (upstream, _) = via_proxy(&faulty.db.url, 0);
        let p = Proxy::start(upstream).await;
        let (_, url) = via_proxy(&faulty.db.url, p.port);
        faulty.p.store = streamfold::store::Store::open(&url).await.unwrap();
        proxy = Some(p);
    }
    let server = faulty.db.server();
    // The injector runs beside the deliveries until they are done.
    let inject = async {
        while !stop.load(Ordering::Relaxed) {
            match &proxy {
                Some(p) => {
                    tokio::time::sleep(Duration::from_millis(30)).await;
                    p.cut_all();
                    injected.fetch_add(1, Ordering::Relaxed);
                }
                None => {
                    tokio::time::sleep(Duration::from_millis(31)).await;
                    let (admin, db) = server.as_ref().unwrap();
                    injected.fetch_add(support::kill_sessions(admin, db).await, Ordering::Relaxed);
                }
            }
        }
    };
    let deliver = async {
        let failures = deliver_until_applied(&faulty, &events).await;
        stop.store(true, Ordering::Relaxed);
        failures
    };
    let (failures, ()) = tokio::join!(deliver, inject);
    let got = summary(&faulty).await;
    eprintln!(
        "{engine}/{kind}: {} faults injected, {failures} batch deliveries failed and were redelivered",
        injected.load(Ordering::Relaxed)
    );
    assert!(injected.load(Ordering::Relaxed) > 0);
    assert_eq!(
        got, want,
        "{engine}/{kind}: counts differ from the fault-free run"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs STREAMFOLD_TEST_MYSQL_URL"]
async fn mysql_survives_cut_connections() {
    survives("mysql", "proxy").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs STREAMFOLD_TEST_POSTGRES_URL"]
async fn postgres_survives_cut_connections() {
    survives("postgres", "proxy").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs STREAMFOLD_TEST_MYSQL_URL"]
async fn mysql_survives_killed_sessions() {
    survives("mysql", "kill").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs STREAMFOLD_TEST_POSTGRES_URL"]
async fn postgres_survives_killed_sessions() {
    survives("postgres", "kill").await;
}

/// A lock timeout: another session holds the ledger rows of a batch longer
/// than the store's `lock_timeout`; the store retries with backoff and the
/// batch lands once the lock is released, counted once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs STREAMFOLD_TEST_POSTGRES_URL"]
async fn postgres_lock_timeouts_are_retried() {
    use sqlx::Connection;
    let Some(mut h) = Harness::with_directory("postgres", &support::fixture_directory()).await
    else {
        return;
    };
    let first = support::gh(
        "INSERT",
        "100",
        "locked-item",
        "alice-gh",
        "2024-03-12T14:00:00Z",
    );
    h.apply(std::slice::from_ref(&first)).await;
    // The store gives up waiting for a lock after 200 ms.
    let url = format!("{}?options=-c%20lock_timeout%3D200", h.db.url);
    h.p.store = streamfold::store::Store::open(&url).await.unwrap();
    let mut holder = sqlx::PgConnection::connect(&h.db.url).await.unwrap();
    let mut tx = holder.begin().await.unwrap();
    sqlx::query("SELECT id FROM activity_ledger FOR UPDATE")
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    let release = async {
        tokio::time::sleep(Duration::from_millis(700)).await;
        tx.rollback().await.unwrap();
    };
    let modify = support::gh(
        "MODIFY",
        "101",
        "locked-item",
        "alice-gh",
        "2024-03-12T20:30:00Z",
    );
    let text = serde_json::json!({ "Records": [modify] }).to_string();
    let event = parse_event(&text).unwrap();
    let started = std::time::Instant::now();
    let (report, ()) = tokio::join!(run_batch(&h.p, &event.records), release);
    let report = report.unwrap();
    // It could only land after the holder let go (lock timeouts, retried).
    assert!(
        started.elapsed() >= Duration::from_millis(650),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(report.total().applied, 1);
    // Moved, not duplicated: Tue 16:30 in New York.
    let cells: Vec<_> =
        h.p.store
            .heatmap("U01ALICE", None)
            .await
            .unwrap()
            .into_iter()
            .filter(|c| c.2 != 0)
            .collect();
    assert_eq!(cells, vec![(2, 16, 1)]);
}

/// A private MariaDB server (its own data directory and port) that the test
/// may kill and restart: the shared server must not be restarted under the
/// other tests.
struct PrivateMariaDb {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<std::process::Child>,
}

impl PrivateMariaDb {
    fn start() -> PrivateMariaDb {
        let dir = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("mariadb-install-db")
            .args(["--no-defaults", "--user=root", "--skip-test-db"])
            .arg(format!("--datadir={}", dir.path().join("data").display()))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("mariadb-install-db (MariaDB server package) is needed for this test");
        assert!(status.success(), "mariadb-install-db failed");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut server = PrivateMariaDb {
            dir,
            port,
            child: None,
        };
        server.boot();
        server
    }

    /// Start the server process and wait until it accepts connections.
    fn boot(&mut self) {
        // Servers live in sbin, which is not on every PATH.
        let exe = [
            "/usr/sbin/mariadbd",
            "/usr/local/sbin/mariadbd",
            "/usr/sbin/mysqld",
        ]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or("mariadbd");
        let child = std::process::Command::new(exe)
            .args([
                "--no-defaults",
                "--user=root",
                "--bind-address=127.0.0.1",
                "--skip-grant-tables",
                "--skip-log-bin",
            ])
            .arg(format!(
                "--datadir={}",
                self.dir.path().join("data").display()
            ))
            .arg(format!(
                "--socket={}",
                self.dir.path().join("s.sock").display()
            ))
            .arg(format!("--port={}", self.port))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("mariadbd");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "mariadbd did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: no shutdown, in-flight transactions die with the process.
    fn crash(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for PrivateMariaDb {
    fn drop(&mut self) {
        self.crash();
    }
}

/// The database server crashes (SIGKILL) in the middle of a run and comes
/// back: batches in flight fail or are retried, failed ones are redelivered,
/// and the counts equal a clean run's. Runs where the MariaDB tests run
/// (`STREAMFOLD_TEST_MYSQL_URL`), on a private server of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs STREAMFOLD_TEST_MYSQL_URL"]
async fn mysql_server_crash_and_restart_mid_run() {
    if support::server_url("mysql").is_none() {
        return;
    }
    let events = streamfold::bench::generate_events(3000, 30, 33);
    let Some(clean) = Harness::with_directory("sqlite", &support::fixture_directory()).await else {
        return;
    };
    assert_eq!(deliver_until_applied(&clean, &events).await, 0);
    let want = summary(&clean).await;

    let mut server = PrivateMariaDb::start();
    let admin = format!("mysql://root@127.0.0.1:{}/mysql", server.port);
    {
        use sqlx::Connection;
        let mut c = sqlx::MySqlConnection::connect(&admin).await.unwrap();
        sqlx::Executor::execute(&mut c, "CREATE DATABASE restart_test")
            .await
            .unwrap();
    }
    let url = format!("mysql://root@127.0.0.1:{}/restart_test", server.port);
    let store = streamfold::store::Store::connect(&url, &Default::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let Some(mut h) = Harness::with_directory("sqlite", &support::fixture_directory()).await else {
        return;
    };
    h.p.store = streamfold::store::Store::open(&url).await.unwrap();

    let done = AtomicBool::new(false);
    let crashes = AtomicU64::new(0);
    let deliver = async {
        let counted = deliver_counting_retries(&h, &events).await;
        done.store(true, Ordering::Relaxed);
        counted
    };
    let crash = async {
        // Twice, while batches are being applied.
        for _ in 0..2 {
            tokio::time::sleep(Duration::from_millis(150)).await;
            if done.load(Ordering::Relaxed) {
                break;
            }
            server.crash();
            crashes.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(300)).await;
            tokio::task::block_in_place(|| server.boot());
        }
    };
    let ((failures, retries), ()) = tokio::join!(deliver, crash);
    let n = crashes.load(Ordering::Relaxed);
    eprintln!(
        "mysql restart: {n} crash(es); {retries} transaction retries inside the store, {failures} failed deliveries redelivered"
    );
    assert!(n > 0, "the run finished before the server could be crashed");
    assert!(retries + failures > 0, "no batch met the crash");
    // Redeliver everything once more: no change.
    assert_eq!(deliver_until_applied(&h, &events).await, 0);
    assert_eq!(
        summary(&h).await,
        want,
        "counts differ from the crash-free run"
    );
}

/// A MySQL batch opens and commits its transaction inside its own text
/// queries: a batch cancelled while it waits for a lock (a Lambda timeout,
/// Ctrl-C) must not hand a connection with an open transaction, and the
/// row locks it took, back to the pool. Another writer of the row it had
/// locked must go through at once, and the redelivered batch counts once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs STREAMFOLD_TEST_MYSQL_URL"]
async fn mysql_a_cancelled_batch_keeps_no_locks() {
    use sqlx::Connection;
    let Some(h) = Harness::with_directory("mysql", &support::fixture_directory()).await else {
        return;
    };
    let item =
        |event: &str, seq: &str, id: &str, ts: &str| support::gh(event, seq, id, "alice-gh", ts);
    h.apply(&[
        item("INSERT", "100", "item-a", "2024-03-12T14:00:00Z"),
        item("INSERT", "101", "item-b", "2024-03-12T14:00:00Z"),
    ])
    .await;
    // The batch locks in identity order: hold the second row, so that it
    // locks the first and then waits.
    let mut holder = sqlx::MySqlConnection::connect(&h.db.url).await.unwrap();
    let ids: Vec<(Vec<u8>,)> = sqlx::query_as("SELECT id FROM activity_ledger ORDER BY id")
        .fetch_all(&mut holder)
        .await
        .unwrap();
    assert_eq!(ids.len(), 2);
    let mut tx = holder.begin().await.unwrap();
    sqlx::query("SELECT id FROM activity_ledger WHERE id = ? FOR UPDATE")
        .bind(&ids[1].0)
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    let modify = vec![
        item("MODIFY", "200", "item-a", "2024-03-12T20:30:00Z"),
        item("MODIFY", "201", "item-b", "2024-03-12T20:30:00Z"),
    ];
    let text = serde_json::json!({ "Records": modify }).to_string();
    let event = parse_event(&text).unwrap();
    let cancelled =
        tokio::time::timeout(Duration::from_millis(500), run_batch(&h.p, &event.records)).await;
    assert!(
        cancelled.is_err(),
        "the batch should still wait for the lock"
    );
    tx.rollback().await.unwrap();
    // A second writer (its own pool) of the first row: it waits for nobody.
    let other = streamfold::pipeline::Pipeline {
        store: streamfold::store::Store::open(&h.db.url).await.unwrap(),
        directory: streamfold::resolve::local::LocalDirectory::load(h.dir.path())
            .unwrap()
            .into(),
        default_tz: chrono_tz::Tz::UTC,
    };
    let first = serde_json::json!({ "Records": [modify[0].clone()] }).to_string();
    let first = parse_event(&first).unwrap();
    let started = std::time::Instant::now();
    let report = tokio::time::timeout(Duration::from_secs(10), run_batch(&other, &first.records))
        .await
        .expect("a lock of the cancelled batch is still held")
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(report.total().applied, 1);
    // The whole batch redelivered: counted once, both moved to Tue 16h.
    let again = run_batch(&h.p, &event.records).await.unwrap();
    assert_eq!(again.total().applied, 1, "{:?}", again.total());
    let cells: Vec<_> =
        h.p.store
            .heatmap("U01ALICE", None)
            .await
            .unwrap()
            .into_iter()
            .filter(|c| c.2 != 0)
            .collect();
    assert_eq!(cells, vec![(2, 16, 2)]);
}
