-- Writers append to the message-search index's pending list and never merge it:
-- GOIM merges it every second from a background task (src/search_upkeep.rs), so no
-- writer transaction pays for a merge. 64 MB is only the backstop for when no GOIM
-- instance is running the task.
ALTER INDEX messages_body_trgm SET (gin_pending_list_limit = 65536);
