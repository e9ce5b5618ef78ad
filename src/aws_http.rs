//! The AWS SDK configuration of both binaries: one HTTPS client, built once
//! and shared by every SDK client, that trusts the Mozilla root
//! certificates compiled into the binary (`webpki-root-certs`) instead of
//! parsing the system trust store when the first client is built (half of
//! the Lambda's init, BENCHMARKS.md "Lambda rows").
//!
//! Verification is the SDK default client's, unchanged: rustls on aws-lc-rs
//! with the SDK's cipher suites, the whole chain verified to a trusted root
//! and the name checked (rustls' WebPKI verifier), proxies from the
//! environment. Only where the roots come from differs. An operator who
//! set `SSL_CERT_FILE` or `SSL_CERT_DIR` (a private CA, an inspecting
//! proxy) gets the system store as before, which honours both.

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_dynamodb::config::SharedHttpClient;
use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::{Provider, TlsContext, TrustStore, rustls_provider::CryptoMode};
use aws_smithy_http_client::{Builder, ConnectorBuilder};
use base64::Engine;
use std::sync::OnceLock;

/// The environment variables that name a CA file or folder of the system
/// store (read by `rustls-native-certs`).
pub const SYSTEM_STORE_VARS: [&str; 2] = ["SSL_CERT_FILE", "SSL_CERT_DIR"];

/// The compiled-in roots as one PEM text (the SDK's `TrustStore` takes PEM).
pub fn webpki_roots_pem() -> String {
    let engine = base64::engine::general_purpose::STANDARD;
    let mut pem = String::new();
    for cert in webpki_root_certs::TLS_SERVER_ROOT_CERTS {
        pem.push_str("-----BEGIN CERTIFICATE-----\n");
        let b64 = engine.encode(cert.as_ref());
        for line in b64.as_bytes().chunks(64) {
            // Base64 is ASCII: every chunk is valid UTF-8.
            pem.push_str(std::str::from_utf8(line).unwrap_or_default());
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
    }
    pem
}

/// The trust store the SDK clients use, given the environment: the system
/// store when one of `SYSTEM_STORE_VARS` is set, else the compiled-in roots.
pub fn trust_store(env: impl Fn(&str) -> Option<String>) -> TrustStore {
    if SYSTEM_STORE_VARS.iter().any(|v| env(v).is_some()) {
        TrustStore::default()
    } else {
        TrustStore::empty().with_pem_certificate(webpki_roots_pem())
    }
}

/// An HTTPS client for SDK clients that trusts exactly `trust`, otherwise
/// configured as the SDK's default client (rustls on aws-lc-rs, proxies
/// from the environment, the SDK's connect and read timeouts and sleep).
pub fn https_client(trust: TrustStore) -> SharedHttpClient {
    let context = TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .expect("a TLS context without extra server names always builds");
    Builder::new().build_with_connector_fn(move |settings, components| {
        // Without settings and components this is the SDK's warm-up call
        // at client construction (`validate_base_client_config`), whose
        // connector is dropped unused: it exists to parse the system store
        // early. Skipping it keeps the roots' parsing out of init; the
        // connector that sends is built, with TLS, on the first request.
        // (Were such a connector ever used, an `https` URL would fail on
        // it, not go out unverified.)
        if settings.is_none() && components.is_none() {
            return ConnectorBuilder::default().build_http();
        }
        let mut conn = ConnectorBuilder::default()
            .tls_provider(Provider::Rustls(CryptoMode::AwsLc))
            .tls_context(context.clone());
        conn.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            conn.set_sleep_impl(components.sleep_impl());
        }
        conn.set_proxy_config(Some(ProxyConfig::from_env()));
        conn.build()
    })
}

/// The process's one HTTPS client for SDK clients (`https_client` of
/// `trust_store` over the process environment), built on first use.
pub fn shared_https_client() -> SharedHttpClient {
    static CLIENT: OnceLock<SharedHttpClient> = OnceLock::new();
    CLIENT
        .get_or_init(|| https_client(trust_store(|k| std::env::var(k).ok())))
        .clone()
}

/// The SDK configuration from the environment (region, credentials,
/// endpoint, as `aws_config::load_defaults`) with the shared HTTPS client,
/// which the credential providers use too.
pub async fn load_sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(shared_https_client())
        .load()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;

    #[test]
    fn the_pem_text_holds_every_compiled_in_root_and_each_parses() {
        let pem = webpki_roots_pem();
        let ders: Vec<CertificateDer> = CertificateDer::pem_slice_iter(pem.as_bytes())
            .collect::<Result<_, _>>()
            .expect("valid PEM");
        assert_eq!(ders.len(), webpki_root_certs::TLS_SERVER_ROOT_CERTS.len());
        assert!(ders.len() > 100, "{} roots", ders.len());
        for (a, b) in ders.iter().zip(webpki_root_certs::TLS_SERVER_ROOT_CERTS) {
            assert_eq!(a.as_ref(), b.as_ref());
        }
        let mut roots = rustls::RootCertStore::empty();
        let (valid, invalid) = roots.add_parsable_certificates(ders);
        assert_eq!(invalid, 0);
        assert_eq!(valid, webpki_root_certs::TLS_SERVER_ROOT_CERTS.len());
    }

    #[test]
    fn the_system_store_only_when_the_environment_names_one() {
        let store = |vars: &'static [(&'static str, &'static str)]| {
            format!(
                "{:?}",
                trust_store(|k| vars
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string()))
            )
        };
        assert!(store(&[]).contains("enable_native_roots: false"));
        assert!(store(&[("HOME", "/root")]).contains("enable_native_roots: false"));
        for var in SYSTEM_STORE_VARS {
            let s = store(if var == "SSL_CERT_FILE" {
                &[("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt")]
            } else {
                &[("SSL_CERT_DIR", "/etc/ssl/certs")]
            });
            assert!(s.contains("enable_native_roots: true"), "{var}");
        }
    }
}
