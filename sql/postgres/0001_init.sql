-- streamfold schema, PostgreSQL dialect.

-- The activity heatmap, as the seed DDL (000_*.txt) in PostgreSQL types.
CREATE TABLE IF NOT EXISTS user_event_counts (
    slack_id    VARCHAR(64) NOT NULL,
    integration CHAR(1)     NOT NULL,
    dow         SMALLINT    NOT NULL,
    hours       SMALLINT    NOT NULL,
    event_count INTEGER     NOT NULL DEFAULT 0,
    PRIMARY KEY (slack_id, integration, dow, hours)
);
CREATE INDEX IF NOT EXISTS user_event_counts_slack_id ON user_event_counts (slack_id);
CREATE INDEX IF NOT EXISTS user_event_counts_slack_id_dow ON user_event_counts (slack_id, dow);
CREATE INDEX IF NOT EXISTS user_event_counts_slack_id_hours ON user_event_counts (slack_id, hours);
CREATE INDEX IF NOT EXISTS user_event_counts_slack_id_dow_hours ON user_event_counts (slack_id, dow, hours);

-- Contribution ledger of activity items (see sql/mysql/0001_init.sql).
CREATE TABLE IF NOT EXISTS activity_ledger (
    id          BYTEA    NOT NULL PRIMARY KEY,
    version     BYTEA    NOT NULL,
    state       SMALLINT NOT NULL,
    integration CHAR(1)  NOT NULL,
    subject     TEXT,
    dow         SMALLINT,
    hours       SMALLINT,
    event_at    BIGINT
);
CREATE INDEX IF NOT EXISTS activity_ledger_unattributed ON activity_ledger (id) WHERE state = 2;

CREATE TABLE IF NOT EXISTS llm_ledger (
    id               BYTEA    NOT NULL PRIMARY KEY,
    version          BYTEA    NOT NULL,
    state            SMALLINT NOT NULL,
    subject          TEXT,
    conversation_id  TEXT,
    report_period    CHAR(7),
    model            TEXT,
    function_name    TEXT,
    prompt_tokens    BIGINT,
    response_tokens  BIGINT,
    total_tokens     BIGINT,
    cost_usd         NUMERIC(38,28),
    response_time_ms BIGINT,
    quality_score    NUMERIC(38,28),
    event_at         BIGINT
);
CREATE INDEX IF NOT EXISTS llm_ledger_unattributed ON llm_ledger (id) WHERE state = 2;

CREATE TABLE IF NOT EXISTS rejected_records (
    id              BIGSERIAL PRIMARY KEY,
    record_key      BYTEA     NOT NULL UNIQUE,
    source          TEXT,
    table_name      TEXT,
    event_id        TEXT,
    sequence_number TEXT,
    reason          TEXT      NOT NULL,
    raw_record      TEXT      NOT NULL,
    rejected_at     TEXT      NOT NULL
);
