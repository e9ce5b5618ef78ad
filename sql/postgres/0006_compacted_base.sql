-- What compaction folded away (`streamfold compact`, `streamfold audit`):
-- the contributions of the live ledger rows a compaction deleted, summed
-- per key in the same transaction as each chunk's DELETE, so that the
-- aggregates can still be recomputed: aggregate = these bases + the live
-- ledger rows left. (0005 is MySQL's only: version widening.)
CREATE TABLE IF NOT EXISTS compacted_activity_base (
    slack_id    VARCHAR(64) NOT NULL,
    integration CHAR(1)     NOT NULL,
    dow         SMALLINT    NOT NULL,
    hours       SMALLINT    NOT NULL,
    events      BIGINT      NOT NULL,
    PRIMARY KEY (slack_id, integration, dow, hours)
);

-- The LLM requests compaction deleted, keyed like the report tables
-- (llm_reports, llm_report_models, llm_report_functions): a report is these
-- sums plus its live ledger rows'.
CREATE TABLE IF NOT EXISTS compacted_llm_base (
    account_id           TEXT           NOT NULL,
    report_period        CHAR(7)        NOT NULL,
    requests             BIGINT         NOT NULL,
    tokens               BIGINT         NOT NULL,
    cost_usd             NUMERIC(38,18) NOT NULL,
    response_time_ms_sum BIGINT         NOT NULL,
    quality_score_sum    NUMERIC(38,18) NOT NULL,
    quality_scored       BIGINT         NOT NULL,
    PRIMARY KEY (account_id, report_period)
);

CREATE TABLE IF NOT EXISTS compacted_llm_base_models (
    account_id    TEXT           NOT NULL,
    report_period CHAR(7)        NOT NULL,
    model         TEXT           NOT NULL,
    requests      BIGINT         NOT NULL,
    tokens        BIGINT         NOT NULL,
    cost_usd      NUMERIC(38,18) NOT NULL,
    PRIMARY KEY (account_id, report_period, model)
);

CREATE TABLE IF NOT EXISTS compacted_llm_base_functions (
    account_id    TEXT           NOT NULL,
    report_period CHAR(7)        NOT NULL,
    function_name TEXT           NOT NULL,
    requests      BIGINT         NOT NULL,
    PRIMARY KEY (account_id, report_period, function_name)
);

-- Runs up to this id may have dropped rows before the bases existed: their
-- counts are in the aggregates but in no base, so an audit cannot
-- recompute them (it says so, and `--fix` refuses).
CREATE TABLE compacted_base_origin (
    before_run BIGINT NOT NULL
);
INSERT INTO compacted_base_origin (before_run)
SELECT COALESCE(MAX(id), 0) FROM ledger_compactions;
