-- Backfill progress (DESIGN §7): one row per part of a job (a Scan
-- segment, or an export data file). position is where to continue (a Scan's
-- LastEvaluatedKey as DynamoDB JSON); done = 1 once the part is complete.
CREATE TABLE IF NOT EXISTS backfill_checkpoints (
    job        VARCHAR(255) NOT NULL,
    part       VARCHAR(512) NOT NULL,
    position   MEDIUMTEXT   NULL,
    items      BIGINT       NOT NULL,
    done       SMALLINT     NOT NULL,
    updated_at VARCHAR(32)  NOT NULL,
    PRIMARY KEY (job, part)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
