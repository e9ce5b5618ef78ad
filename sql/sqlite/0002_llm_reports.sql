-- Monthly LLM usage reports (DESIGN §6): sums per account and UTC month,
-- moved by the LLM ledger's deltas. Money and score sums are exact decimal
-- text (SQLite has no exact decimal type; the store adds them in Rust).
-- revision counts the report's changes and is the projected item's version;
-- published_revision is the last revision written to LLMReportData and
-- pending = 1 while it is behind revision (indexed: what to project next).
CREATE TABLE llm_reports (
    account_id           TEXT    NOT NULL,
    report_period        TEXT    NOT NULL,
    total_requests       INTEGER NOT NULL,
    total_tokens         INTEGER NOT NULL,
    total_cost_usd       TEXT    NOT NULL,
    response_time_ms_sum INTEGER NOT NULL,
    quality_score_sum    TEXT    NOT NULL,
    quality_scored       INTEGER NOT NULL,
    revision             INTEGER NOT NULL,
    published_revision   INTEGER NOT NULL DEFAULT 0,
    pending              INTEGER        NOT NULL DEFAULT 1,
    updated_at           TEXT    NOT NULL,
    PRIMARY KEY (account_id, report_period)
) WITHOUT ROWID;
CREATE INDEX llm_reports_pending ON llm_reports (pending);

CREATE TABLE llm_report_models (
    account_id    TEXT    NOT NULL,
    report_period TEXT    NOT NULL,
    model         TEXT    NOT NULL,
    requests      INTEGER NOT NULL,
    tokens        INTEGER NOT NULL,
    cost_usd      TEXT    NOT NULL,
    PRIMARY KEY (account_id, report_period, model)
) WITHOUT ROWID;

CREATE TABLE llm_report_functions (
    account_id    TEXT    NOT NULL,
    report_period TEXT    NOT NULL,
    function_name TEXT    NOT NULL,
    requests      INTEGER NOT NULL,
    PRIMARY KEY (account_id, report_period, function_name)
) WITHOUT ROWID;
