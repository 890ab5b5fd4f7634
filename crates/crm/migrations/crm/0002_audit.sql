-- The audit trail: who asked for each change and from where, and which events it consists of.
ALTER TABLE events ADD COLUMN actor TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN actor_address TEXT NOT NULL DEFAULT '';
-- 1 for an audit event, decided once as it is stored (db.rs, is_audit), so the audit query reads
-- one index range instead of testing every event of the log.
ALTER TABLE events ADD COLUMN audit INTEGER NOT NULL DEFAULT 0;
-- Events logged before actors were recorded: their sessions and instances still belong to the trail.
UPDATE events SET audit = 1
WHERE type IN ('login', 'logout', 'disconnected', 'instance_lost', 'instance_restarted');
-- id breaks ties of received_seq, which rows stored before 0002 may share on PostgreSQL.
CREATE INDEX events_audit ON events (audit, received_seq, id);
