//! `LLMDataCollection`: the item (key `conversation_id`) is overwritten by
//! every new generation, so one request is identified by `conversation_id` +
//! `generated_at`. Tokens are integers, cost is an exact decimal.

use super::table::SourceTable;
use super::{TimeContext, parse_time_value};
use crate::bounds;
use crate::domain::{Fact, LlmRequest, SourceKind};
use crate::record::attrs;
use crate::record::item::Item;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

/// The `LLMDataCollection` table: keyed by `conversation_id`; a request is
/// named by it and its `generated_at`. Its items are LLM requests (no
/// heatmap integration).
pub(crate) static TABLE: SourceTable = SourceTable {
    kind: SourceKind::LlmDataCollection,
    suffix: "LLMDataCollection",
    code: 4,
    integration: None,
    key_attributes: &["conversation_id"],
    identity_attributes: &[("conversation_id", true)],
    identity_extra: Some(request_time),
    fact,
};

/// The request's `generated_at`, appended to its identity.
fn request_time(image: Option<&Item<'_>>, canon: &mut Vec<u8>) -> Result<(), String> {
    let at = generated_at(image)?;
    attrs::push_field(
        canon,
        &at.timestamp_nanos_opt().unwrap_or_default().to_be_bytes(),
    );
    Ok(())
}

/// `generated_at` of the image that names the request. Required: without it
/// the request cannot be told apart from the conversation's other requests.
fn generated_at(image: Option<&Item<'_>>) -> Result<DateTime<Utc>, String> {
    let image = image.ok_or(
        "LLMDataCollection REMOVE has no OldImage, so the request to retract is unknown (use NEW_AND_OLD_IMAGES)",
    )?;
    let v = attrs::get(image, "generated_at")
        .ok_or("missing attribute `generated_at`: the LLM request cannot be identified")?;
    parse_time_value(v, "generated_at")
}

fn fact(image: &Item<'_>, _: &TimeContext<'_>) -> Result<(Fact, bool), String> {
    let conversation_id = attrs::opt_str(attrs::get(image, "conversation_id"), "conversation_id")?
        .ok_or("missing attribute `conversation_id`")?;
    let conversation_id = bounds::check(conversation_id, "conversation_id", bounds::TEXT)?;
    let generated_at = generated_at(Some(image))?;
    let model = attrs::opt_str(attrs::get(image, "model_used"), "model_used")?.unwrap_or("unknown");
    let function = match attrs::opt_str(attrs::get(image, "function_name"), "function_name")? {
        Some(f) => f,
        None => attrs::opt_str(
            attrs::get_nested(image, "metadata", "function_name"),
            "metadata.function_name",
        )?
        .unwrap_or("unspecified"),
    };
    let model = bounds::check(model, "model_used", bounds::TEXT)?;
    let function = bounds::check(function, "function_name", bounds::TEXT)?;
    let prompt_tokens =
        attrs::opt_int(attrs::get(image, "prompt_tokens"), "prompt_tokens")?.unwrap_or(0);
    let response_tokens =
        attrs::opt_int(attrs::get(image, "response_tokens"), "response_tokens")?.unwrap_or(0);
    let total_tokens = match attrs::opt_int(attrs::get(image, "total_tokens"), "total_tokens")? {
        Some(t) => t,
        None => prompt_tokens
            .checked_add(response_tokens)
            .ok_or("prompt_tokens + response_tokens overflows")?,
    };
    for (name, v) in [
        ("prompt_tokens", prompt_tokens),
        ("response_tokens", response_tokens),
        ("total_tokens", total_tokens),
    ] {
        if v < 0 {
            return Err(format!("attribute `{name}` is negative"));
        }
    }
    let cost_usd = match attrs::opt_decimal(
        attrs::get_nested(image, "metadata", "cost_usd"),
        "metadata.cost_usd",
    )? {
        Some(c) => c,
        None => {
            attrs::opt_decimal(attrs::get(image, "cost_usd"), "cost_usd")?.unwrap_or(Decimal::ZERO)
        }
    };
    let cost_usd = attrs::amount(cost_usd, "cost_usd")?;
    let response_time_ms =
        match attrs::opt_decimal(attrs::get(image, "response_time_ms"), "response_time_ms")? {
            Some(d) => i64::try_from(d.round())
                .map_err(|_| "attribute `response_time_ms` is out of range".to_string())?,
            None => 0,
        };
    let quality_score = attrs::opt_decimal(attrs::get(image, "quality_score"), "quality_score")?
        .map(|q| attrs::amount(q, "quality_score"))
        .transpose()?;
    let request = LlmRequest {
        conversation_id: conversation_id.to_string(),
        generated_at,
        model: model.to_string(),
        function: function.to_string(),
        prompt_tokens,
        response_tokens,
        total_tokens,
        cost_usd,
        response_time_ms,
        quality_score,
    };
    Ok((Fact::Llm(request), false))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use crate::domain::Fact;
    use serde_json::{Value, json};

    fn rec(image: Value) -> Value {
        record(
            "acsd2p-prod-LLMDataCollection",
            "INSERT",
            "700",
            image,
            json!({"conversation_id":{"S":"conv-1"}}),
        )
    }

    fn base() -> Value {
        json!({
            "conversation_id":{"S":"conv-1"},
            "model_used":{"S":"meta-llama/Llama-3.3-70B-Instruct-Turbo"},
            "prompt_tokens":{"N":"150"},"response_tokens":{"N":"200"},"total_tokens":{"N":"350"},
            "response_time_ms":{"N":"2500"},"quality_score":{"N":"0.88"},
            "generated_at":{"S":"2024-01-31T23:59:59Z"},
            "prompt":{"S":"p"},"response":{"S":"r"},
            "metadata":{"M":{"temperature":{"N":"0.7"},"cost_usd":{"N":"0.0025"},"function_name":{"S":"generate_email"}}}
        })
    }

    #[test]
    fn full_item() {
        let (fact, _) = upsert(run(&rec(base())));
        let Fact::Llm(r) = fact else { panic!() };
        assert_eq!(r.total_tokens, 350);
        assert_eq!(r.cost_usd.to_string(), "0.0025");
        assert_eq!(r.function, "generate_email");
        assert_eq!(r.report_period(), "2024-01");
        assert_eq!(r.quality_score.unwrap().to_string(), "0.88");
    }

    #[test]
    fn defaults_and_variants() {
        let mut v = base();
        v.as_object_mut().unwrap().remove("quality_score");
        v.as_object_mut().unwrap().remove("total_tokens");
        v["metadata"] = json!({"M":{"cost_usd":{"N":"1234567890.000000000000000001"}}});
        v["generated_at"] = json!({"N":"1706745600"});
        let (fact, _) = upsert(run(&rec(v)));
        let Fact::Llm(r) = fact else { panic!() };
        assert_eq!(r.quality_score, None);
        assert_eq!(r.total_tokens, 350);
        assert_eq!(r.function, "unspecified");
        assert_eq!(r.cost_usd.to_string(), "1234567890.000000000000000001");
        assert_eq!(r.report_period(), "2024-02");
    }

    #[test]
    fn rejections() {
        let mut v = base();
        v.as_object_mut().unwrap().remove("generated_at");
        assert!(rejected(run(&rec(v))).contains("generated_at"));
        let mut v = base();
        v["total_tokens"] = json!({"N": "9".repeat(38)});
        assert!(rejected(run(&rec(v))).contains("out of range"));
        let mut v = base();
        v["prompt_tokens"] = json!({"N": "-5"});
        assert!(rejected(run(&rec(v))).contains("negative"));
        let mut v = base();
        v["metadata"] = json!({"M":{"cost_usd":{"N":"12345678901"}}});
        assert!(rejected(run(&rec(v))).contains("out of range"));
        let mut v = base();
        v["model_used"] = json!({"S": "m".repeat(256)});
        assert!(rejected(run(&rec(v))).contains("longer than 255"));
        let mut v = base();
        v["metadata"] = json!({"M":{"cost_usd":{"S":"free"}}});
        assert!(rejected(run(&rec(v))).contains("cost_usd"));
    }

    #[test]
    fn money_precision() {
        // 38 significant digits, all but 2 of them trailing zeros: exact.
        let mut v = base();
        v["metadata"] = json!({"M":{"cost_usd":{"N":format!("0.0025{}", "0".repeat(34))}}});
        let (fact, _) = upsert(run(&rec(v)));
        let Fact::Llm(r) = fact else { panic!() };
        assert_eq!(r.cost_usd.to_string(), "0.0025");
        // 19 fractional digits: would not sum exactly, quarantined by name.
        let mut v = base();
        v["metadata"] = json!({"M":{"cost_usd":{"N":"0.0000000000000000001"}}});
        assert!(rejected(run(&rec(v))).contains("more than 18 fractional digits"));
        let mut v = base();
        v["quality_score"] = json!({"N":"0.1234567890123456789"});
        assert!(rejected(run(&rec(v))).contains("quality_score"));
        let mut v = base();
        v["metadata"] = json!({"M":{"cost_usd":{"N":"-0.5"}}});
        assert!(rejected(run(&rec(v))).contains("negative"));
    }

    #[test]
    fn remove_needs_old_image() {
        let mut v = rec(base());
        v["eventName"] = json!("REMOVE");
        v["dynamodb"]["NewImage"].take();
        assert!(rejected(run(&v)).contains("no OldImage"));
    }

    #[test]
    fn same_conversation_new_generation_is_a_new_identity() {
        let id = |v: &Value| match run(v) {
            super::super::Normalized::Change(c) => c.identity,
            other => panic!("{other:?}"),
        };
        let a = rec(base());
        let mut b = base();
        b["quality_score"] = json!({"N":"0.5"});
        let b = rec(b);
        let mut c = base();
        c["generated_at"] = json!({"S":"2024-02-01T00:00:00Z"});
        let c = rec(c);
        assert_eq!(id(&a), id(&b));
        assert_ne!(id(&a), id(&c));
    }
}
