//! The ledgers' column lists, in the order every batch writer binds them,
//! and the assignments built from them.

pub const ACTIVITY_COLUMNS: &str = "id, version, state, integration, subject, dow, hours, event_at";

pub const LLM_COLUMNS: &str = "id, version, state, subject, conversation_id, report_period, model, function_name, \
     prompt_tokens, response_tokens, total_tokens, cost_usd, response_time_ms, quality_score, event_at";

/// `<each(c)>, …` for every column of `columns` but `id` (the assignments of
/// an upsert or an update).
pub fn but_id(columns: &str, each: impl Fn(&str) -> String) -> String {
    columns
        .split(',')
        .map(str::trim)
        .filter(|c| *c != "id")
        .map(each)
        .collect::<Vec<_>>()
        .join(", ")
}
