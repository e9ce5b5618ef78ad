-- streamfold schema, MySQL 8 / MariaDB 10.11 dialect (the RDS target).

-- The activity heatmap, exactly as the seed DDL (000_*.txt).
CREATE TABLE IF NOT EXISTS user_event_counts (
    slack_id VARCHAR(64) NOT NULL,
    integration CHAR(1) NOT NULL,
    dow TINYINT NOT NULL,
    hours TINYINT NOT NULL,
    event_count INTEGER NOT NULL  DEFAULT 0,
    PRIMARY KEY (slack_id, integration, dow, hours),
    INDEX (slack_id),
    INDEX (slack_id, dow),
    INDEX (slack_id, hours),
    INDEX (slack_id, dow, hours)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- Contribution ledger of activity items: one row per source item identity.
-- id: 128-bit identity hash; version: see domain::Version (byte order =
-- numeric order); state: 1 live, 2 unattributed, 3 tombstone.
CREATE TABLE IF NOT EXISTS activity_ledger (
    id          BINARY(16)    NOT NULL PRIMARY KEY,
    version     VARBINARY(18) NOT NULL,
    state       TINYINT       NOT NULL,
    integration CHAR(1)       NOT NULL,
    subject     VARCHAR(255)  NULL,
    dow         TINYINT       NULL,
    hours       TINYINT       NULL,
    event_at    BIGINT        NULL,
    INDEX activity_ledger_state (state, id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Contribution ledger of LLM requests: one row per (conversation_id, generated_at).
CREATE TABLE IF NOT EXISTS llm_ledger (
    id               BINARY(16)     NOT NULL PRIMARY KEY,
    version          VARBINARY(18)  NOT NULL,
    state            TINYINT        NOT NULL,
    subject          VARCHAR(255)   NULL,
    conversation_id  VARCHAR(255)   NULL,
    report_period    CHAR(7)        NULL,
    model            VARCHAR(255)   NULL,
    function_name    VARCHAR(255)   NULL,
    prompt_tokens    BIGINT         NULL,
    response_tokens  BIGINT         NULL,
    total_tokens     BIGINT         NULL,
    cost_usd         DECIMAL(38,28) NULL,
    response_time_ms BIGINT         NULL,
    quality_score    DECIMAL(38,28) NULL,
    event_at         BIGINT         NULL,
    INDEX llm_ledger_state (state, id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Quarantined records (DESIGN §5).
CREATE TABLE IF NOT EXISTS rejected_records (
    id              BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    record_key      BINARY(16)   NOT NULL,
    source          VARCHAR(64)  NULL,
    table_name      VARCHAR(255) NULL,
    event_id        VARCHAR(255) NULL,
    sequence_number VARCHAR(64)  NULL,
    reason          TEXT         NOT NULL,
    raw_record      LONGTEXT     NOT NULL,
    rejected_at     VARCHAR(32)  NOT NULL,
    UNIQUE KEY rejected_records_key (record_key)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
