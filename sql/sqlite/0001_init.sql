-- streamfold schema, SQLite dialect.

-- The activity heatmap, as in the seed DDL (000_*.txt).
CREATE TABLE user_event_counts (
    slack_id    VARCHAR(64) NOT NULL,
    integration CHAR(1)     NOT NULL,
    dow         TINYINT     NOT NULL,
    hours       TINYINT     NOT NULL,
    event_count INTEGER     NOT NULL DEFAULT 0,
    PRIMARY KEY (slack_id, integration, dow, hours)
);
CREATE INDEX user_event_counts_slack_id_dow ON user_event_counts (slack_id, dow);
CREATE INDEX user_event_counts_slack_id_hours ON user_event_counts (slack_id, hours);

-- Contribution ledger of activity items: one row per source item identity.
-- id: 128-bit identity hash (big-endian); version: see domain::Version;
-- state: 1 live, 2 unattributed, 3 tombstone.
CREATE TABLE activity_ledger (
    id          BLOB    NOT NULL PRIMARY KEY,
    version     BLOB    NOT NULL,
    state       INTEGER NOT NULL,
    integration TEXT    NOT NULL,
    subject     TEXT,
    dow         INTEGER,
    hours       INTEGER,
    event_at    INTEGER
) WITHOUT ROWID;
CREATE INDEX activity_ledger_unattributed ON activity_ledger (id) WHERE state = 2;

-- Contribution ledger of LLM requests: one row per (conversation_id, generated_at).
CREATE TABLE llm_ledger (
    id               BLOB    NOT NULL PRIMARY KEY,
    version          BLOB    NOT NULL,
    state            INTEGER NOT NULL,
    subject          TEXT,
    conversation_id  TEXT,
    report_period    TEXT,
    model            TEXT,
    function_name    TEXT,
    prompt_tokens    INTEGER,
    response_tokens  INTEGER,
    total_tokens     INTEGER,
    cost_usd         TEXT,
    response_time_ms INTEGER,
    quality_score    TEXT,
    event_at         INTEGER
) WITHOUT ROWID;
CREATE INDEX llm_ledger_unattributed ON llm_ledger (id) WHERE state = 2;

-- Quarantined records (DESIGN §5).
CREATE TABLE rejected_records (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    record_key      BLOB    NOT NULL UNIQUE,
    source          TEXT,
    table_name      TEXT,
    event_id        TEXT,
    sequence_number TEXT,
    reason          TEXT    NOT NULL,
    raw_record      TEXT    NOT NULL,
    rejected_at     TEXT    NOT NULL
);
