//! The SDK clients' HTTPS client (`streamfold::aws_http`) verifies servers
//! as strictly as the SDK's default: a DynamoDB endpoint whose certificate
//! comes from a CA it does not trust is refused during the handshake, and
//! no HTTP request reaches it. The same server, with its CA trusted,
//! answers: the refusal is the trust decision, not a broken server.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use streamfold::aws_http::{https_client, shared_https_client, trust_store};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// What the test server saw.
#[derive(Default)]
struct Seen {
    connections: AtomicUsize,
    handshakes: AtomicUsize,
    requests: AtomicUsize,
}

/// A CA no one trusts, and a TLS server on 127.0.0.1 with a certificate it
/// signed for `localhost`: its port, the CA's PEM, and what it saw.
async fn server() -> (u16, String, Arc<Seen>) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "streamfold untrusted test CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    let key = rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![leaf.der().clone()], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Seen::default());
    let s = seen.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            s.connections.fetch_add(1, Ordering::SeqCst);
            let (acceptor, s) = (acceptor.clone(), s.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                s.handshakes.fetch_add(1, Ordering::SeqCst);
                // One request: its head, then its body; then `ListTables`' answer.
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let head_end = loop {
                    let Ok(n) = tls.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                while buf.len() < head_end + length {
                    match tls.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                s.requests.fetch_add(1, Ordering::SeqCst);
                let body = br#"{"TableNames":["streamfold-tls-probe"]}"#;
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.0\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = tls.write_all(answer.as_bytes()).await;
                let _ = tls.write_all(body).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (port, ca.pem(), seen)
}

/// A DynamoDB client of `https://localhost:port` over `http`, one attempt.
fn dynamodb(
    port: u16,
    http: aws_sdk_dynamodb::config::SharedHttpClient,
) -> aws_sdk_dynamodb::Client {
    use aws_sdk_dynamodb::config::{Credentials, SharedCredentialsProvider};
    let config = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .endpoint_url(format!("https://localhost:{port}"))
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "testing", "testing", None, None, "test",
        )))
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .http_client(http)
        .build();
    aws_sdk_dynamodb::Client::new(&config)
}

/// Every message of an error's chain, outermost first, with its `Debug`
/// form (the SDK's `Display` of a dispatch failure names no cause).
fn chain(e: &(dyn std::error::Error + 'static)) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = Some(e);
    while let Some(e) = cur {
        out.push(format!("{e} / {e:?}"));
        cur = e.source();
    }
    out
}

#[tokio::test]
async fn a_certificate_from_an_untrusted_ca_is_refused_before_any_http() {
    // The binaries' client (whatever this environment's trust settings),
    // and the compiled-in roots explicitly.
    let clients = [
        ("shared", shared_https_client()),
        ("compiled-in roots", https_client(trust_store(|_| None))),
    ];
    for (which, http) in clients {
        let (port, _ca, seen) = server().await;
        let err = dynamodb(port, http)
            .list_tables()
            .send()
            .await
            .expect_err("an untrusted CA must be refused");
        let messages = chain(&err);
        let all = messages.join("\n");
        assert!(
            messages
                .iter()
                .any(|m| m.contains("invalid peer certificate") && m.contains("UnknownIssuer")),
            "{which}: the error chain does not name the unknown issuer:\n{all}"
        );
        assert!(
            matches!(err, aws_sdk_dynamodb::error::SdkError::DispatchFailure(_)),
            "{which}: {all}"
        );
        assert!(
            seen.connections.load(Ordering::SeqCst) >= 1,
            "{which}: never connected"
        );
        assert_eq!(seen.handshakes.load(Ordering::SeqCst), 0, "{which}");
        assert_eq!(seen.requests.load(Ordering::SeqCst), 0, "{which}");
    }
}

#[tokio::test]
async fn the_same_server_answers_a_client_that_trusts_its_ca() {
    let (port, ca, seen) = server().await;
    let trust = aws_smithy_http_client::tls::TrustStore::empty().with_pem_certificate(ca);
    let out = dynamodb(port, https_client(trust))
        .list_tables()
        .send()
        .await
        .expect("a trusted CA's certificate is accepted");
    assert_eq!(out.table_names(), ["streamfold-tls-probe"]);
    assert_eq!(seen.handshakes.load(Ordering::SeqCst), 1);
    assert_eq!(seen.requests.load(Ordering::SeqCst), 1);
}
