-- Backfill progress (DESIGN §7): one row per part of a job (a Scan
-- segment, or an export data file). position is where to continue (a Scan's
-- LastEvaluatedKey as DynamoDB JSON); done = 1 once the part is complete.
CREATE TABLE backfill_checkpoints (
    job        TEXT    NOT NULL,
    part       TEXT    NOT NULL,
    position   TEXT,
    items      INTEGER NOT NULL,
    done       INTEGER NOT NULL,
    updated_at TEXT    NOT NULL,
    PRIMARY KEY (job, part)
) WITHOUT ROWID;
