-- User search runs in tiers (prefix, then substring, then similarity; see
-- db::users::search), and each tier gets the index that suits it:
--
-- * substrings (`LIKE '%…%'`) go to GIN, which intersects the query's trigram posting
--   lists in about a millisecond at 100k users;
-- * nearest-first similarity (`<->`) needs GiST. Its default 12-byte signatures are so
--   lossy for names that inner pages match almost every query and a scan reads most of
--   the index; 256-byte signatures halve the time of a nearest-first scan.
DROP INDEX users_username_trgm;
DROP INDEX users_nickname_trgm;
CREATE INDEX users_username_trgm ON users USING gist (lower(username) gist_trgm_ops (siglen = 256));
CREATE INDEX users_nickname_trgm ON users USING gist (lower(nickname) gist_trgm_ops (siglen = 256));
CREATE INDEX users_username_substring ON users USING gin (lower(username) gin_trgm_ops);
CREATE INDEX users_nickname_substring ON users USING gin (lower(nickname) gin_trgm_ops);
