//! `DATABASE_SECRET_ARN`: RDS credentials from Secrets Manager (moto), used
//! to reach the local MariaDB; the password never shows in output.

use crate::moto::{self, Moto};
use crate::support;
use std::str::FromStr;

fn client(endpoint: &str) -> aws_sdk_secretsmanager::Client {
    aws_sdk_secretsmanager::Client::new(&moto::moto_config(endpoint))
}

/// RDS secret JSON for the database behind `url` (test servers have no password).
fn secret_for(url: &str, password: &str) -> String {
    let o = sqlx::mysql::MySqlConnectOptions::from_str(url).unwrap();
    serde_json::json!({
        "engine": "mysql", "host": o.get_host(), "port": o.get_port(),
        "username": o.get_username(), "password": password,
        "dbname": o.get_database().unwrap_or_default(), "dbInstanceIdentifier": "streamfold-test"
    })
    .to_string()
}

async fn put_secret(moto: &Moto, name: &str, value: &str) -> String {
    let out = client(&moto.endpoint)
        .create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await
        .unwrap();
    out.arn().unwrap().to_string()
}

#[tokio::test]
#[ignore = "needs STREAMFOLD_TEST_MOTO and STREAMFOLD_TEST_MYSQL_URL"]
async fn secret_resolves_to_a_working_mysql_store() {
    let Some(moto) = Moto::start() else { return };
    let Some(db) = support::fresh_db("mysql").await else {
        return;
    };
    let arn = put_secret(&moto, "streamfold/db", &secret_for(&db.url, "")).await;
    let url =
        streamfold::store::secret::database_url_from_secret(&client(&moto.endpoint), &arn, None)
            .await
            .unwrap();
    let store = streamfold::store::Store::open(&url).await.unwrap();
    assert_eq!(store.totals().await.unwrap().events_counted, 0);
}

#[test]
#[ignore = "needs STREAMFOLD_TEST_MOTO and STREAMFOLD_TEST_MYSQL_URL"]
fn cli_reads_the_secret_and_never_prints_its_password() {
    let Some(moto) = Moto::start() else { return };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Some(db) = rt.block_on(support::fresh_db("mysql")) else {
        return;
    };
    let good = rt.block_on(put_secret(
        &moto,
        "streamfold/good",
        &secret_for(&db.url, ""),
    ));
    let bad = rt.block_on(put_secret(
        &moto,
        "streamfold/bad",
        &secret_for(&db.url, "Sup3rSecretPw"),
    ));
    let run = |arn: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_streamfold"))
            .args(["replay", "--connect-timeout", "2", "fixtures/events"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("DATABASE_SECRET_ARN", arn)
            .env("AWS_ENDPOINT_URL", &moto.endpoint)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
            .env("STREAMFOLD_LOG", "debug")
            .env_remove("DATABASE_URL")
            .output()
            .unwrap()
    };
    let ok = run(&good);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("database now holds: 13 event(s)"));
    let denied = run(&bad);
    assert!(!denied.status.success());
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&denied.stdout),
        String::from_utf8_lossy(&denied.stderr)
    );
    assert!(!all.contains("Sup3rSecretPw"), "{all}");
    assert!(all.contains("***"), "{all}");
}

/// A secret whose fields have the wrong JSON type is refused with the
/// field and the type it must have, never with the value it holds.
#[test]
fn a_mistyped_secret_field_is_named_without_its_value() {
    for (secret, field) in [
        (
            r#"{"engine":"mysql","host":"h","username":"u","password":98765432123}"#,
            "password",
        ),
        (
            r#"{"engine":"mysql","host":"h","username":"u","password":98765432123.5}"#,
            "password",
        ),
        (
            r#"{"engine":"mysql","host":"h","username":98765432123,"password":"p"}"#,
            "username",
        ),
        (
            r#"{"engine":"mysql","host":["98765432123"],"username":"u","password":"p"}"#,
            "host",
        ),
        (
            r#"{"engine":"mysql","host":"h","username":"u","password":{"v":"98765432123"}}"#,
            "password",
        ),
        (
            r#"{"engine":"mysql","host":"h","username":"u","password":true,"dbname":"d"}"#,
            "password",
        ),
    ] {
        let e = streamfold::store::secret::url_from_secret(secret, None)
            .unwrap_err()
            .to_string();
        assert!(!e.contains("98765432123"), "the value is shown: {e}");
        assert!(!e.contains("true"), "the value is shown: {e}");
        assert!(
            e.contains(&format!("`{field}`")) && e.contains("a string"),
            "the field and its type are not named: {e}"
        );
    }
}
