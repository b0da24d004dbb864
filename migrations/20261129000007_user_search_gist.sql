-- User search ranks candidates and keeps the best: GiST trigram indexes can return
-- rows nearest first (`<->`) and stop after a LIMIT, where GIN must first collect every
-- match — with a common prefix or shared trigrams that is most of the table.
DROP INDEX users_username_trgm;
DROP INDEX users_nickname_trgm;
CREATE INDEX users_username_trgm ON users USING gist (lower(username) gist_trgm_ops);
CREATE INDEX users_nickname_trgm ON users USING gist (lower(nickname) gist_trgm_ops);
