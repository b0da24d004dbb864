-- Groups, members and roles, join requests, invitations, announcement history.
-- The membership rules live here, not only in handlers: the member limit is a CHECK on
-- a counter that a trigger keeps, and "exactly one owner" is a unique index plus a
-- deferred constraint trigger checked at commit.

CREATE TABLE groups (
    id                       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name                     text NOT NULL CONSTRAINT groups_name_length CHECK (char_length(name) BETWEEN 1 AND 64),
    avatar_url               text CONSTRAINT groups_avatar_url_length CHECK (octet_length(avatar_url) <= 2048),
    description              text NOT NULL DEFAULT '' CONSTRAINT groups_description_length CHECK (char_length(description) <= 500),
    announcement             text NOT NULL DEFAULT '' CONSTRAINT groups_announcement_length CHECK (char_length(announcement) <= 2000),
    announcement_updated_at  timestamptz,
    announcement_updated_by  bigint REFERENCES users (id) ON DELETE SET NULL,
    join_policy              text NOT NULL CONSTRAINT groups_join_policy CHECK (join_policy IN ('open', 'approval', 'invite_only')),
    -- Whether members who join later can read messages from before they joined.
    history_visibility       text NOT NULL DEFAULT 'all' CONSTRAINT groups_history_visibility CHECK (history_visibility IN ('all', 'since_join')),
    member_limit             integer NOT NULL CONSTRAINT groups_member_limit_range CHECK (member_limit BETWEEN 2 AND 100000),
    -- Kept by group_members_count below; the CHECK is what makes a join into a full
    -- group fail, whatever the concurrency.
    member_count             integer NOT NULL DEFAULT 0,
    created_at               timestamptz NOT NULL DEFAULT now(),
    updated_at               timestamptz NOT NULL DEFAULT now(),
    disbanded_at             timestamptz,
    CONSTRAINT groups_member_limit CHECK (member_count <= member_limit),
    CONSTRAINT groups_member_count_positive CHECK (member_count >= 0)
);

CREATE TABLE group_members (
    group_id    bigint NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    user_id     bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role        text NOT NULL CONSTRAINT group_members_role CHECK (role IN ('owner', 'admin', 'member')),
    joined_at   timestamptz NOT NULL DEFAULT now(),
    -- Muted members cannot send until this time.
    muted_until timestamptz,
    CONSTRAINT group_members_pkey PRIMARY KEY (group_id, user_id)
);

-- At most one owner per group (at least one is the deferred trigger's job).
CREATE UNIQUE INDEX group_members_one_owner ON group_members (group_id) WHERE role = 'owner';
-- "My groups".
CREATE INDEX group_members_user_id ON group_members (user_id, group_id);

CREATE FUNCTION group_members_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE groups SET member_count = member_count + 1 WHERE id = NEW.group_id;
    ELSIF TG_OP = 'DELETE' THEN
        UPDATE groups SET member_count = member_count - 1 WHERE id = OLD.group_id;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER group_members_count AFTER INSERT OR DELETE ON group_members
    FOR EACH ROW EXECUTE FUNCTION group_members_count();

-- At commit, every live group with members has exactly one owner.
CREATE FUNCTION group_members_one_owner_check() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    gid bigint := COALESCE(NEW.group_id, OLD.group_id);
    owners integer;
    members integer;
BEGIN
    SELECT count(*) FILTER (WHERE role = 'owner'), count(*) INTO owners, members
      FROM group_members WHERE group_id = gid;
    IF members > 0 AND owners <> 1
       AND EXISTS (SELECT 1 FROM groups WHERE id = gid AND disbanded_at IS NULL) THEN
        RAISE EXCEPTION 'group % must have exactly one owner, has %', gid, owners
            USING ERRCODE = 'check_violation', CONSTRAINT = 'group_members_exactly_one_owner';
    END IF;
    RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER group_members_exactly_one_owner
    AFTER INSERT OR UPDATE OR DELETE ON group_members
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION group_members_one_owner_check();

CREATE TABLE group_join_requests (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    group_id   bigint NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    user_id    bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    message    text NOT NULL DEFAULT '' CONSTRAINT group_join_requests_message_length CHECK (char_length(message) <= 200),
    status     text NOT NULL DEFAULT 'pending'
               CONSTRAINT group_join_requests_status CHECK (status IN ('pending', 'approved', 'rejected', 'cancelled')),
    decided_by bigint REFERENCES users (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    decided_at timestamptz
);

CREATE UNIQUE INDEX group_join_requests_pending_key ON group_join_requests (group_id, user_id) WHERE status = 'pending';
CREATE INDEX group_join_requests_by_group ON group_join_requests (group_id, id) WHERE status = 'pending';

CREATE TABLE group_invitations (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    group_id   bigint NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    inviter_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    invitee_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    status     text NOT NULL DEFAULT 'pending'
               CONSTRAINT group_invitations_status CHECK (status IN ('pending', 'accepted', 'declined', 'cancelled')),
    created_at timestamptz NOT NULL DEFAULT now(),
    decided_at timestamptz
);

CREATE UNIQUE INDEX group_invitations_pending_key ON group_invitations (group_id, invitee_id) WHERE status = 'pending';
CREATE INDEX group_invitations_by_invitee ON group_invitations (invitee_id, id) WHERE status = 'pending';

-- Every announcement ever set, newest last.
CREATE TABLE group_announcements (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    group_id   bigint NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    text       text NOT NULL,
    updated_by bigint REFERENCES users (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX group_announcements_group_id ON group_announcements (group_id, id);
