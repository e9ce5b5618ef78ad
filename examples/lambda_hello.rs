//! A bare `lambda_runtime` function that answers every event with `{}`:
//! the baseline of `streamfold bench`'s Lambda init row (same runtime, same
//! build profile, same harness).

use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|_: LambdaEvent<serde_json::Value>| async {
        Ok::<_, Error>(serde_json::json!({}))
    }))
    .await
}
