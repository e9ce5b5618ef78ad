//! Database credentials from AWS Secrets Manager: an RDS-managed secret
//! (JSON with `host`, `port`, `username`, `password`, `dbname`, `engine`)
//! turned into a database URL. The password only ever lives in that URL,
//! which is printed redacted (`redact::redact_url`).

use super::StoreError;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Map, Value};

/// Characters kept as they are in URL user-info and path segments.
const USERINFO: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The fields of an RDS secret that matter here; anything else is ignored.
pub struct RdsSecret {
    pub engine: Option<String>,
    pub host: String,
    pub port: Option<serde_json::Value>,
    pub username: String,
    pub password: String,
    /// `dbname`, or its aliases `database` and `dbName`.
    pub dbname: Option<String>,
}

/// The JSON type of a value, as said in a message (never the value).
fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The string field `name` (or the first of its `aliases` present): absent
/// or null is `None`; any other type is an error naming the field and the
/// type it has, never its value.
fn string_field(
    object: &Map<String, Value>,
    name: &str,
    aliases: &[&str],
) -> Result<Option<String>, StoreError> {
    let found = std::iter::once(name)
        .chain(aliases.iter().copied())
        .find_map(|k| object.get(k).map(|v| (k, v)));
    match found {
        None | Some((_, Value::Null)) => Ok(None),
        Some((_, Value::String(s))) => Ok(Some(s.clone())),
        Some((key, other)) => Err(StoreError::Secret(format!(
            "the secret's `{key}` must be a string, not {}",
            json_type(other)
        ))),
    }
}

fn required(value: Option<String>, name: &str) -> Result<String, StoreError> {
    value.ok_or_else(|| {
        StoreError::Secret(format!(
            "the secret is not RDS credentials JSON: it has no `{name}` (host, username and password are required)"
        ))
    })
}

impl RdsSecret {
    /// Read a secret's JSON text. Errors name the field and the type it
    /// must have; neither serde's messages (which quote values) nor any
    /// value of the secret reach them.
    pub fn parse(json: &str) -> Result<RdsSecret, StoreError> {
        let value: Value = serde_json::from_str(json).map_err(|e| {
            StoreError::Secret(format!(
                "the secret is not JSON (a {:?} error at line {}, column {})",
                e.classify(),
                e.line(),
                e.column()
            ))
        })?;
        let Value::Object(o) = value else {
            return Err(StoreError::Secret(format!(
                "the secret is not RDS credentials JSON: it is {}, not an object with host, username and password",
                json_type(&value)
            )));
        };
        Ok(RdsSecret {
            engine: string_field(&o, "engine", &[])?,
            host: required(string_field(&o, "host", &[])?, "host")?,
            port: o.get("port").cloned(),
            username: required(string_field(&o, "username", &[])?, "username")?,
            password: required(string_field(&o, "password", &[])?, "password")?,
            dbname: string_field(&o, "dbname", &["database", "dbName"])?,
        })
    }
}

/// Build a database URL from an RDS secret's JSON text. `default_engine`
/// applies when the secret has no `engine`.
pub fn url_from_secret(json: &str, default_engine: Option<&str>) -> Result<String, StoreError> {
    let s = RdsSecret::parse(json)?;
    let engine = s.engine.as_deref().or(default_engine).ok_or_else(|| {
        StoreError::Secret("the secret names no engine (mysql or postgres)".into())
    })?;
    let (scheme, default_port) = match engine.to_ascii_lowercase().as_str() {
        "mysql" | "mariadb" | "aurora" | "aurora-mysql" => ("mysql", 3306),
        "postgres" | "postgresql" | "aurora-postgresql" => ("postgres", 5432),
        other => {
            return Err(StoreError::Secret(format!(
                "unsupported engine {other:?} in the secret"
            )));
        }
    };
    let port = match &s.port {
        None => default_port,
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or(default_port),
        Some(Value::String(p)) => p.parse().unwrap_or(default_port),
        Some(_) => default_port,
    };
    let db = s
        .dbname
        .as_deref()
        .unwrap_or(if scheme == "postgres" { "postgres" } else { "" });
    Ok(format!(
        "{scheme}://{}:{}@{}:{port}/{}",
        utf8_percent_encode(&s.username, USERINFO),
        utf8_percent_encode(&s.password, USERINFO),
        s.host,
        utf8_percent_encode(db, USERINFO),
    ))
}

/// Fetch the secret `arn` and build its database URL.
pub async fn database_url_from_secret(
    client: &aws_sdk_secretsmanager::Client,
    arn: &str,
    default_engine: Option<&str>,
) -> Result<String, StoreError> {
    let out = client
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .map_err(|e| {
            StoreError::Secret(format!(
                "cannot read secret {arn}: {}",
                crate::aws_error::describe(&e)
            ))
        })?;
    let text = out
        .secret_string()
        .ok_or_else(|| StoreError::Secret(format!("secret {arn} has no SecretString")))?;
    url_from_secret(text, default_engine)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rds_secret_to_url() {
        let url = url_from_secret(
            r#"{"engine":"mysql","host":"db.abc.us-east-1.rds.amazonaws.com","port":3306,
                "username":"admin","password":"p@ss:w/rd%","dbname":"icarus","dbInstanceIdentifier":"x"}"#,
            None,
        )
        .unwrap();
        assert_eq!(
            url,
            "mysql://admin:p%40ss%3Aw%2Frd%25@db.abc.us-east-1.rds.amazonaws.com:3306/icarus"
        );
        assert_eq!(
            crate::redact::redact_url(&url),
            "mysql://admin:***@db.abc.us-east-1.rds.amazonaws.com:3306/icarus"
        );
        let pg = url_from_secret(
            r#"{"engine":"postgres","host":"h","port":"5433","username":"u","password":"p"}"#,
            None,
        )
        .unwrap();
        assert_eq!(pg, "postgres://u:p@h:5433/postgres");
        let dflt = url_from_secret(
            r#"{"host":"h","username":"u","password":"p","dbname":"d"}"#,
            Some("mysql"),
        )
        .unwrap();
        assert_eq!(dflt, "mysql://u:p@h:3306/d");
    }

    #[test]
    fn bad_secrets_never_echo_the_password() {
        for bad in [
            r#"{"engine":"mysql","host":"h","username":"u"}"#,
            r#"{"engine":"oracle","host":"h","username":"u","password":"Sup3rSecretPw"}"#,
            r#"{"host":"h","username":"u","password":"Sup3rSecretPw"}"#,
            r#"{"engine":"mysql","host":"h","username":"u","password":7}"#,
            "Sup3rSecretPw",
        ] {
            let e = url_from_secret(bad, None).unwrap_err().to_string();
            assert!(!e.contains("Sup3rSecretPw"), "{e}");
        }
    }
}
