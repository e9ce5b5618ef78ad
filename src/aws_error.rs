//! AWS SDK errors as one short line an operator can act on: the service's
//! error code and message when it answered; otherwise the innermost cause
//! of the failure to send (no credentials, a refused connection, a
//! timeout), with the fix where it is known. The SDK's own `Display` of a
//! dispatch failure is a nested debug dump of well over a kilobyte.

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

/// One line for an SDK error of any AWS service client.
pub fn describe<E, R>(e: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    if let (Some(code), message) = (e.code(), e.message()) {
        return match message {
            Some(m) if !m.is_empty() => format!("{code}: {m}"),
            _ => code.to_string(),
        };
    }
    let what = match e {
        SdkError::ConstructionFailure(_) => "the request could not be built",
        SdkError::TimeoutError(_) => "the request timed out",
        SdkError::DispatchFailure(_) => "the request could not be sent",
        SdkError::ResponseError(_) => "the response could not be read",
        _ => "the service refused the request",
    };
    let cause = innermost(e);
    let hint = if cause.contains("credentials") || cause.contains("IMDS") {
        " (no AWS credentials found: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and \
         AWS_SECRET_ACCESS_KEY, or run where an IAM role is available)"
    } else if cause.contains("region") {
        " (set AWS_REGION)"
    } else {
        ""
    };
    format!("{what}: {cause}{hint}")
}

/// The deepest `source()` of an error that has a message.
fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut last = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let text = c.to_string();
        if !text.is_empty() {
            last = text;
        }
        cur = c.source();
    }
    // A debug dump is no message: keep its first line at most.
    last.lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(300)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::operation::describe_table::DescribeTableError;

    #[test]
    fn a_service_error_is_its_code_and_message() {
        let err = aws_sdk_dynamodb::types::error::ResourceNotFoundException::builder()
            .message("Requested resource not found")
            .meta(
                aws_sdk_dynamodb::error::ErrorMetadata::builder()
                    .code("ResourceNotFoundException")
                    .message("Requested resource not found")
                    .build(),
            )
            .build();
        let e: SdkError<DescribeTableError, ()> =
            SdkError::service_error(DescribeTableError::ResourceNotFoundException(err), ());
        assert_eq!(
            describe(&e),
            "ResourceNotFoundException: Requested resource not found"
        );
    }

    #[test]
    fn a_send_failure_is_its_innermost_cause_with_the_fix() {
        #[derive(Debug)]
        struct NoCreds;
        impl std::fmt::Display for NoCreds {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("no providers in chain provided credentials")
            }
        }
        impl std::error::Error for NoCreds {}
        let e: SdkError<DescribeTableError, ()> = SdkError::construction_failure(NoCreds);
        let text = describe(&e);
        assert!(
            text.starts_with("the request could not be built: no providers in chain"),
            "{text}"
        );
        assert!(text.contains("AWS_PROFILE"), "{text}");
        assert!(text.len() < 300, "{text}");
    }
}
