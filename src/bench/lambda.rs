//! Lambda rows of `streamfold bench`: the real `streamfold-lambda` binary
//! (and a bare `lambda_runtime` hello-world, built with the same profile)
//! run against a fake Lambda Runtime API served here, on loopback.
//!
//! * init: process start → its first `GET /runtime/invocation/next`;
//! * first invocation after a cold start: process start → the response to
//!   its first event, against a DynamoDB stand-in (`fake_dynamodb`);
//! * peak RSS (`VmHWM`) after handling one 10,000-record event;
//! * per-invocation overhead of 100-record batches: the handler's own
//!   latency minus its SQL time, both from the EMF line it prints.
//!
//! Every answer says `connection: close`: the runtime's HTTP client would
//! otherwise reuse a connection this minimal server has already dropped.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// A request the fake Runtime API received.
#[derive(Debug)]
enum Call {
    /// `GET …/invocation/next`, with the socket to answer on.
    Next(TcpStream, Instant),
    /// `POST …/response` or `…/error` (the body), and when it arrived.
    Result {
        error: bool,
        body: String,
        at: Instant,
    },
}

async fn read_request(stream: TcpStream) -> std::io::Result<(String, String, TcpStream)> {
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).await?;
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).await?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).await?;
    Ok((
        request_line,
        String::from_utf8_lossy(&body).into_owned(),
        reader.into_inner(),
    ))
}

/// Serve the Runtime API on a loopback port; calls arrive on the channel.
async fn runtime_api() -> std::io::Result<(u16, mpsc::UnboundedReceiver<Call>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let at = Instant::now();
                let Ok((line, body, mut stream)) = read_request(stream).await else {
                    return;
                };
                if line.starts_with("GET") && line.contains("/invocation/next") {
                    let _ = tx.send(Call::Next(stream, at));
                } else {
                    let _ = stream
                        .write_all(b"HTTP/1.1 202 Accepted\r\nconnection: close\r\ncontent-length: 2\r\n\r\n{}")
                        .await;
                    if line.contains("/response") || line.contains("/error") {
                        let _ = tx.send(Call::Result {
                            error: line.contains("/error"),
                            body,
                            at: Instant::now(),
                        });
                    }
                }
            });
        }
    });
    Ok((port, rx))
}

async fn answer_next(mut stream: TcpStream, id: usize, event: &str) -> std::io::Result<()> {
    let deadline = chrono::Utc::now().timestamp_millis() + 900_000;
    let head = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\
         lambda-runtime-aws-request-id: bench-{id}\r\n\
         lambda-runtime-deadline-ms: {deadline}\r\n\
         lambda-runtime-invoked-function-arn: arn:aws:lambda:us-east-1:123456789012:function:streamfold\r\n\
         lambda-runtime-trace-id: Root=1-00000000-000000000000000000000000\r\n\
         content-length: {}\r\n\r\n",
        event.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(event.as_bytes()).await?;
    stream.flush().await
}

fn spawn(
    binary: &Path,
    port: u16,
    env: &[(&str, String)],
) -> std::io::Result<tokio::process::Child> {
    let mut cmd = tokio::process::Command::new(binary);
    cmd.env("AWS_LAMBDA_RUNTIME_API", format!("127.0.0.1:{port}"))
        .env("AWS_LAMBDA_FUNCTION_NAME", "streamfold")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "bench")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "bench")
        .env("AWS_SECRET_ACCESS_KEY", "bench")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn()
}

/// Environment for `streamfold-lambda` on a SQLite file with the local
/// directory (no AWS calls).
pub fn lambda_env(db: &Path, directory: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("DATABASE_URL", format!("sqlite://{}", db.display())),
        ("ICARUS_TABLE_PREFIX", "icarus-prod-".into()),
        ("ACS_TABLE_PREFIX", "acsd2p-prod-".into()),
        (
            "STREAMFOLD_LOCAL_DIRECTORY",
            directory.display().to_string(),
        ),
        ("STREAMFOLD_LOG", "warn".into()),
    ]
}

/// Environment for `streamfold-lambda` as deployed (DynamoDB lookups and
/// report projection); `spawn` sets region and credentials in the
/// environment, as Lambda does. `endpoint` is every AWS service's URL:
/// init makes no AWS call, so a closed local port serves for init, and
/// `fake_dynamodb` for invocations.
pub fn lambda_env_deployed(db: &Path, endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("DATABASE_URL", format!("sqlite://{}", db.display())),
        ("ICARUS_TABLE_PREFIX", "icarus-prod-".into()),
        ("ACS_TABLE_PREFIX", "acsd2p-prod-".into()),
        ("STREAMFOLD_LOG", "warn".into()),
        ("AWS_ENDPOINT_URL", endpoint.into()),
    ]
}

/// A DynamoDB stand-in on loopback, plain HTTP: every request is answered
/// `200 {}`, which is a valid answer to each call the function makes
/// (`BatchGetItem` and `Query` find nothing, `PutItem` succeeds). Its URL.
pub async fn fake_dynamodb() -> std::io::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                if let Ok((_, _, mut stream)) = read_request(stream).await {
                    let _ = stream
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.0\r\n\
                              connection: close\r\ncontent-length: 2\r\n\r\n{}",
                        )
                        .await;
                }
            });
        }
    });
    Ok(url)
}

/// Milliseconds from spawning `binary` to its first `GET next`.
pub async fn init_ms(binary: &Path, env: &[(&str, String)]) -> std::io::Result<f64> {
    let (port, mut calls) = runtime_api().await?;
    let started = Instant::now();
    let mut child = spawn(binary, port, env)?;
    let first = tokio::time::timeout(Duration::from_secs(30), calls.recv()).await;
    let _ = child.kill().await;
    match first {
        Ok(Some(Call::Next(_, at))) => Ok((at - started).as_secs_f64() * 1e3),
        _ => Err(std::io::Error::other(format!(
            "{} never asked for an invocation",
            binary.display()
        ))),
    }
}

/// Milliseconds from spawning `binary` to its answer to `event`, its first
/// invocation; an error when it answered with a failure (of the batch or
/// of a record).
pub async fn first_response_ms(
    binary: &Path,
    env: &[(&str, String)],
    event: &str,
) -> std::io::Result<f64> {
    let (port, mut calls) = runtime_api().await?;
    let started = Instant::now();
    let mut child = spawn(binary, port, env)?;
    let wait = Duration::from_secs(60);
    let mut sent = false;
    let answer = loop {
        match tokio::time::timeout(wait, calls.recv()).await {
            // The first `GET next` gets the event; a later one (it may
            // arrive before the answer's `POST`) waits until the end.
            Ok(Some(Call::Next(stream, _))) if !sent => {
                answer_next(stream, 0, event).await?;
                sent = true;
            }
            Ok(Some(Call::Next(..))) => {}
            Ok(Some(Call::Result { error, body, at })) => break Some((error, body, at)),
            _ => break None,
        }
    };
    let _ = child.kill().await;
    match answer {
        Some((false, body, at)) if !body.contains("\"itemIdentifier\"") => {
            Ok((at - started).as_secs_f64() * 1e3)
        }
        Some((_, body, _)) => Err(std::io::Error::other(format!(
            "{}'s first invocation failed: {body}",
            binary.display()
        ))),
        None => Err(std::io::Error::other(format!(
            "{} never answered its first invocation",
            binary.display()
        ))),
    }
}

/// What a run of invocations measured.
#[derive(Debug, Default)]
pub struct Invocations {
    /// Peak resident set (kB, `VmHWM`) after the last invocation.
    pub peak_rss_kb: u64,
    /// Per invocation: handler latency minus SQL time, ms (from EMF).
    pub overhead_ms: Vec<f64>,
    pub errors: usize,
    /// Per invocation, in order: whether it failed (`POST …/error`) and the
    /// body posted (the response, or the error's `errorType` and message).
    pub answers: Vec<(bool, String)>,
}

/// Run `events` through one `streamfold-lambda` process, one invocation
/// each.
pub async fn invoke(
    binary: &Path,
    env: &[(&str, String)],
    events: &[String],
) -> std::io::Result<Invocations> {
    let (port, mut calls) = runtime_api().await?;
    let mut child = spawn(binary, port, env)?;
    let pid = child.id();
    let stdout = child.stdout.take().expect("piped stdout");
    let emf = tokio::spawn(async move {
        let mut lines = BufReader::new(stdout).lines();
        let mut overhead = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                && let (Some(l), Some(d)) = (v["BatchLatency"].as_f64(), v["DatabaseTime"].as_f64())
            {
                overhead.push(l - d);
            }
        }
        overhead
    });
    let mut out = Invocations::default();
    let mut sent = 0;
    let wait = Duration::from_secs(60);
    while sent <= events.len() {
        match tokio::time::timeout(wait, calls.recv()).await {
            Ok(Some(Call::Next(stream, _))) => {
                if sent == events.len() {
                    // The last answer may arrive after this request.
                    while out.answers.len() < sent {
                        match tokio::time::timeout(wait, calls.recv()).await {
                            Ok(Some(Call::Result { error, body, .. })) => {
                                if error || body.contains("\"itemIdentifier\"") {
                                    out.errors += 1;
                                }
                                out.answers.push((error, body));
                            }
                            Ok(Some(Call::Next(..))) => {}
                            _ => return Err(std::io::Error::other("the function never answered")),
                        }
                    }
                    // All done: read the peak before stopping the process.
                    if let Some(pid) = pid
                        && let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status"))
                    {
                        out.peak_rss_kb = status
                            .lines()
                            .find(|l| l.starts_with("VmHWM:"))
                            .and_then(|l| l.split_whitespace().nth(1))
                            .and_then(|n| n.parse().ok())
                            .unwrap_or(0);
                    }
                    drop(stream);
                    break;
                }
                answer_next(stream, sent, &events[sent]).await?;
                sent += 1;
            }
            Ok(Some(Call::Result { error, body, .. })) => {
                if error || body.contains("\"itemIdentifier\"") {
                    out.errors += 1;
                }
                out.answers.push((error, body));
            }
            Ok(None) => return Err(std::io::Error::other("the fake Runtime API stopped")),
            Err(_) => {
                let status = child.try_wait().ok().flatten();
                return Err(std::io::Error::other(format!(
                    "the function stopped answering after {sent} invocation(s) (exit: {status:?})"
                )));
            }
        }
    }
    let _ = child.kill().await;
    out.overhead_ms = emf.await.unwrap_or_default();
    Ok(out)
}
