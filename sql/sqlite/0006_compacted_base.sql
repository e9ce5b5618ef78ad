-- What compaction folded away (`streamfold compact`, `streamfold audit`):
-- the contributions of the live ledger rows a compaction deleted, summed
-- per key in the same transaction as each chunk's DELETE, so that the
-- aggregates can still be recomputed: aggregate = these bases + the live
-- ledger rows left. (0005 is MySQL's only: version widening.)
CREATE TABLE compacted_activity_base (
    slack_id    VARCHAR(64) NOT NULL,
    integration CHAR(1)     NOT NULL,
    dow         TINYINT     NOT NULL,
    hours       TINYINT     NOT NULL,
    events      INTEGER     NOT NULL,
    PRIMARY KEY (slack_id, integration, dow, hours)
) WITHOUT ROWID;

-- The LLM requests compaction deleted, keyed like the report tables
-- (llm_reports, llm_report_models, llm_report_functions): a report is these
-- sums plus its live ledger rows'. Decimal sums are exact text, added in Rust as the reports are.
CREATE TABLE compacted_llm_base (
    account_id           TEXT           NOT NULL,
    report_period        TEXT           NOT NULL,
    requests             INTEGER        NOT NULL,
    tokens               INTEGER        NOT NULL,
    cost_usd             TEXT           NOT NULL,
    response_time_ms_sum INTEGER        NOT NULL,
    quality_score_sum    TEXT           NOT NULL,
    quality_scored       INTEGER        NOT NULL,
    PRIMARY KEY (account_id, report_period)
) WITHOUT ROWID;

CREATE TABLE compacted_llm_base_models (
    account_id    TEXT           NOT NULL,
    report_period TEXT           NOT NULL,
    model         TEXT           NOT NULL,
    requests      INTEGER        NOT NULL,
    tokens        INTEGER        NOT NULL,
    cost_usd      TEXT           NOT NULL,
    PRIMARY KEY (account_id, report_period, model)
) WITHOUT ROWID;

CREATE TABLE compacted_llm_base_functions (
    account_id    TEXT           NOT NULL,
    report_period TEXT           NOT NULL,
    function_name TEXT           NOT NULL,
    requests      INTEGER        NOT NULL,
    PRIMARY KEY (account_id, report_period, function_name)
) WITHOUT ROWID;

-- Runs up to this id may have dropped rows before the bases existed: their
-- counts are in the aggregates but in no base, so an audit cannot
-- recompute them (it says so, and `--fix` refuses).
CREATE TABLE compacted_base_origin (
    before_run BIGINT NOT NULL
);
INSERT INTO compacted_base_origin (before_run)
SELECT COALESCE(MAX(id), 0) FROM ledger_compactions;
