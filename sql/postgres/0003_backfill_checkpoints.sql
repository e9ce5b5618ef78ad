-- Backfill progress (DESIGN §7): one row per part of a job (a Scan
-- segment, or an export data file). position is where to continue (a Scan's
-- LastEvaluatedKey as DynamoDB JSON); done = 1 once the part is complete.
CREATE TABLE IF NOT EXISTS backfill_checkpoints (
    job        TEXT        NOT NULL,
    part       TEXT        NOT NULL,
    position   TEXT,
    items      BIGINT      NOT NULL,
    done       SMALLINT    NOT NULL,
    updated_at VARCHAR(32) NOT NULL,
    PRIMARY KEY (job, part)
);
