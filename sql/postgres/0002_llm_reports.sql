-- Monthly LLM usage reports (DESIGN §6): sums per account and UTC month,
-- moved by the LLM ledger's deltas in the batch transaction. Money and score
-- sums are exact NUMERIC(38,18) (inputs carry at most 18 fractional digits).
-- revision counts the report's changes and is the projected item's version;
-- published_revision is the last revision written to LLMReportData and
-- pending = 1 while it is behind revision (indexed: what to project next).
CREATE TABLE IF NOT EXISTS llm_reports (
    account_id           TEXT           NOT NULL,
    report_period        CHAR(7)        NOT NULL,
    total_requests       BIGINT         NOT NULL,
    total_tokens         BIGINT         NOT NULL,
    total_cost_usd       NUMERIC(38,18) NOT NULL,
    response_time_ms_sum BIGINT         NOT NULL,
    quality_score_sum    NUMERIC(38,18) NOT NULL,
    quality_scored       BIGINT         NOT NULL,
    revision             BIGINT         NOT NULL,
    published_revision   BIGINT         NOT NULL DEFAULT 0,
    pending              SMALLINT       NOT NULL DEFAULT 1,
    updated_at           VARCHAR(32)    NOT NULL,
    PRIMARY KEY (account_id, report_period)
);
CREATE INDEX IF NOT EXISTS llm_reports_pending ON llm_reports (pending);

CREATE TABLE IF NOT EXISTS llm_report_models (
    account_id    TEXT           NOT NULL,
    report_period CHAR(7)        NOT NULL,
    model         TEXT           NOT NULL,
    requests      BIGINT         NOT NULL,
    tokens        BIGINT         NOT NULL,
    cost_usd      NUMERIC(38,18) NOT NULL,
    PRIMARY KEY (account_id, report_period, model)
);

CREATE TABLE IF NOT EXISTS llm_report_functions (
    account_id    TEXT NOT NULL,
    report_period CHAR(7)      NOT NULL,
    function_name TEXT NOT NULL,
    requests      BIGINT       NOT NULL,
    PRIMARY KEY (account_id, report_period, function_name)
);
