-- Every instance keeps the sessions revoked within the last access-token lifetime in
-- memory, so a request is authorised without a connection of its own (issue #15, "one
-- acquire per request"). The database tells them, here rather than in the code paths
-- that revoke: logout, "sign out other sessions", password change and reset, account
-- deactivation and deletion, refresh-token reuse, and any path added later. The
-- notification is sent at commit, and only if the transaction commits.
--
-- The payload is the session id. A deleted session is announced too unless it was
-- already revoked (announced then) or expired (no access token outlives its session:
-- a token's `exp` is set by the same request that moves the session's expiry further).

CREATE FUNCTION notify_session_revoked() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('goim_session_revoked', OLD.id::text);
    RETURN NULL;
END;
$$;

CREATE TRIGGER sessions_notify_revoked
    AFTER UPDATE OF revoked_at ON sessions
    FOR EACH ROW
    WHEN (OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL)
    EXECUTE FUNCTION notify_session_revoked();

CREATE TRIGGER sessions_notify_deleted
    AFTER DELETE ON sessions
    FOR EACH ROW
    WHEN (OLD.revoked_at IS NULL AND OLD.expires_at > now() - interval '1 minute')
    EXECUTE FUNCTION notify_session_revoked();

-- After a gap in listening, an instance reloads the recent revocations: revoked rows
-- by revoked_at, and deleted accounts (whose sessions rows are gone) by deleted_at.
CREATE INDEX sessions_revoked_at ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;
CREATE INDEX users_deleted_at ON users (deleted_at) WHERE deleted_at IS NOT NULL;
