//! moto, the AWS emulator, for the tests that need DynamoDB, Streams,
//! Secrets Manager or S3: one server per test, the SDK configuration of
//! its endpoint, and a simple table.

use crate::support::not_set;

/// A moto server (DynamoDB, Streams, Secrets Manager emulator) started for
/// one test and killed with it. `STREAMFOLD_TEST_MOTO` names the
/// `moto_server` executable; the tests that start one are
/// `#[ignore = "needs STREAMFOLD_TEST_MOTO"]`, and run without it they fail.
pub struct Moto {
    pub endpoint: String,
    child: std::process::Child,
}

impl Moto {
    pub fn start() -> Option<Moto> {
        let Ok(exe) = std::env::var("STREAMFOLD_TEST_MOTO") else {
            not_set("STREAMFOLD_TEST_MOTO");
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new(&exe)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {exe}: {e}"));
        let moto = Moto {
            endpoint: format!("http://127.0.0.1:{port}"),
            child,
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "moto_server did not start on port {port}"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Some(moto)
    }
}

/// SDK configuration for a moto endpoint (region us-east-1, dummy keys),
/// shared by every service's client in the tests.
pub fn moto_config(endpoint: &str) -> aws_config::SdkConfig {
    use aws_sdk_dynamodb::config::{Credentials, SharedCredentialsProvider};
    aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "testing", "testing", None, None, "test",
        )))
        .build()
}

/// A DynamoDB client of a moto endpoint.
pub fn dynamodb_client(endpoint: &str) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(&moto_config(endpoint))
}

/// Create a table keyed by the string attribute `id`, with a
/// NEW_AND_OLD_IMAGES stream when `stream` is set.
pub async fn create_id_table(c: &aws_sdk_dynamodb::Client, table: &str, stream: bool) {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, KeySchemaElement, KeyType, ScalarAttributeType, StreamSpecification,
        StreamViewType,
    };
    let mut req = c
        .create_table()
        .table_name(table)
        .billing_mode(aws_sdk_dynamodb::types::BillingMode::PayPerRequest)
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("id")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("id")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        );
    if stream {
        req = req.stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewAndOldImages)
                .build()
                .unwrap(),
        );
    }
    req.send().await.unwrap();
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
