-- Timed versions (domain::Version, tag 0x02: time, kind, tiebreak) are 27
-- bytes; untimed ones (tag 0x01) were 18. Widening a VARBINARY within 255
-- bytes keeps its one length byte: InnoDB does it in place.
ALTER TABLE activity_ledger MODIFY version VARBINARY(32) NOT NULL;
ALTER TABLE llm_ledger MODIFY version VARBINARY(32) NOT NULL;
