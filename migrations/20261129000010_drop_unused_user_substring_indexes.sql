-- Measured at 100k users (goim bench accounts): with GOIM's planner settings
-- (random_page_cost 1.1) the substring tier reads the GiST trigram indexes, whose
-- 256-byte signatures answer `LIKE '%…%'` in well under a millisecond, and the GIN
-- indexes added by 0008 were not used. They only cost writes and space.
DROP INDEX users_username_substring;
DROP INDEX users_nickname_substring;
