-- Ledger compactions (DESIGN §4, `streamfold compact`): one row per run.
-- horizon: epoch seconds; the run drops ledger rows whose event time is
-- before it. MAX(horizon) over all runs, finished or not, is the store's
-- compaction horizon: a staged row older than it whose identity has no
-- ledger row may have been compacted, so it is not counted again.
-- *_after: the last ledger id the run has examined (a resumed run goes on
-- from there); *_dropped: rows it deleted.
CREATE TABLE ledger_compactions (
    id                   BIGSERIAL PRIMARY KEY,
    horizon              BIGINT      NOT NULL,
    include_unattributed SMALLINT    NOT NULL,
    started_at           VARCHAR(32) NOT NULL,
    finished_at          VARCHAR(32) NULL,
    activity_after       BYTEA NULL,
    llm_after            BYTEA NULL,
    activity_done        SMALLINT    NOT NULL DEFAULT 0,
    activity_dropped     BIGINT      NOT NULL DEFAULT 0,
    llm_dropped          BIGINT      NOT NULL DEFAULT 0
);
