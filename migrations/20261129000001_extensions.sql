-- Extensions GOIM relies on. pg_trgm backs fuzzy user search; it ships in PostgreSQL's
-- standard contrib package on every OS and is a "trusted" extension (PostgreSQL 13+),
-- so a database owner without superuser rights may create it.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
