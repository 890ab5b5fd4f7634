-- `switchboard crm export` reads the interactions that began in a window (db/export.rs): by this
-- index, a range instead of the whole table.
CREATE INDEX interactions_started ON interactions (started_ms);
