-- Monthly LLM usage reports (DESIGN §6): sums per account and UTC month,
-- moved by the LLM ledger's deltas in the batch transaction. Money and score
-- sums are exact DECIMAL(38,18) (inputs carry at most 18 fractional digits).
-- revision counts the report's changes and is the projected item's version;
-- published_revision is the last revision written to LLMReportData and
-- pending = 1 while it is behind revision (indexed: what to project next).
CREATE TABLE IF NOT EXISTS llm_reports (
    account_id           VARCHAR(255)   NOT NULL,
    report_period        CHAR(7)        NOT NULL,
    total_requests       BIGINT         NOT NULL,
    total_tokens         BIGINT         NOT NULL,
    total_cost_usd       DECIMAL(38,18) NOT NULL,
    response_time_ms_sum BIGINT         NOT NULL,
    quality_score_sum    DECIMAL(38,18) NOT NULL,
    quality_scored       BIGINT         NOT NULL,
    revision             BIGINT         NOT NULL,
    published_revision   BIGINT         NOT NULL DEFAULT 0,
    pending              SMALLINT       NOT NULL DEFAULT 1,
    updated_at           VARCHAR(32)    NOT NULL,
    PRIMARY KEY (account_id, report_period),
    INDEX llm_reports_pending (pending)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE IF NOT EXISTS llm_report_models (
    account_id    VARCHAR(255)   NOT NULL,
    report_period CHAR(7)        NOT NULL,
    model         VARCHAR(255)   NOT NULL,
    requests      BIGINT         NOT NULL,
    tokens        BIGINT         NOT NULL,
    cost_usd      DECIMAL(38,18) NOT NULL,
    PRIMARY KEY (account_id, report_period, model)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE IF NOT EXISTS llm_report_functions (
    account_id    VARCHAR(255) NOT NULL,
    report_period CHAR(7)      NOT NULL,
    function_name VARCHAR(255) NOT NULL,
    requests      BIGINT       NOT NULL,
    PRIMARY KEY (account_id, report_period, function_name)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
