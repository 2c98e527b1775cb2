\echo Use "CREATE EXTENSION dragonraft" to load this file. \quit

-- dragonraft 1.0: groups of tables replicated by multi-group Raft (DESIGN §6).

GRANT USAGE ON SCHEMA @extschema@ TO PUBLIC;

-- Administrators: superusers and members of dragonraft_admin.  The role is
-- cluster-wide, so it is created only if an earlier installation left none.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'dragonraft_admin') THEN
    CREATE ROLE dragonraft_admin NOLOGIN;
  END IF;
END $$;
COMMENT ON ROLE dragonraft_admin IS
  'May run the administrative functions of dragonraft (create_group, transfer_leader, stat_reset) and read its views';

-- The extension belongs in dragonraft.database, where the apply worker runs.
DO $$
BEGIN
  IF current_setting('dragonraft.database', true) IS DISTINCT FROM current_database() THEN
    RAISE WARNING 'dragonraft is installed in database "%", but dragonraft.database is "%"',
      current_database(), current_setting('dragonraft.database', true)
      USING HINT = 'Its functions work only in the database that dragonraft.database names.';
  END IF;
END $$;

-- Each member's client address, as it announced it through the group's log
-- (written by the apply worker).
CREATE TABLE member_info (
  group_id bigint NOT NULL,
  node_id integer NOT NULL,
  client_address text NOT NULL,
  since_index bigint NOT NULL,
  PRIMARY KEY (group_id, node_id)
);
COMMENT ON TABLE member_info IS
  'Client address (libpq conninfo) of each member of each group, applied from the group''s log';
COMMENT ON COLUMN member_info.since_index IS
  'Log index of the entry that set it';

-- This node.
CREATE FUNCTION node_status(OUT node_id integer, OUT engine_state text,
                            OUT engine_pid integer, OUT engine_started timestamptz,
                            OUT raft_address text, OUT apply_pid integer,
                            OUT engine_error text)
RETURNS record
AS 'MODULE_PATHNAME', 'dr_node_status'
LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION node_status() IS
  'This node''s id, its engine worker (state, pid, start, Raft address, why it stopped) and its apply worker''s pid';

-- Groups.
CREATE FUNCTION create_group(group_id bigint, members jsonb)
RETURNS void
AS 'MODULE_PATHNAME', 'dr_create_group'
LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION create_group(bigint, jsonb) IS
  'Start this node''s member of a new group; members maps node ids to Raft addresses ({"1":"host:port",...}); run it on every initial member; again with the same members it does nothing';

CREATE FUNCTION transfer_leader(group_id bigint, node_id integer)
RETURNS void
AS 'MODULE_PATHNAME', 'dr_transfer_leader'
LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION transfer_leader(bigint, integer) IS
  'Hand the leadership of a group to a member; returns once it leads, or fails after two election timeouts; run it on the leader or on the target';

-- Status.
CREATE FUNCTION group_status(OUT group_id bigint, OUT node_id integer, OUT role text,
                             OUT term bigint, OUT leader_id integer, OUT commit_index bigint,
                             OUT applied_index bigint, OUT last_index bigint,
                             OUT snapshot_index bigint, OUT state text,
                             OUT last_contact timestamptz, OUT error text,
                             OUT quiescent boolean)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'dr_group_status'
LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION group_status() IS 'The rows of the view dragonraft.status';

CREATE VIEW status AS
  SELECT group_id, node_id, role, term, leader_id, commit_index, applied_index, last_index,
         snapshot_index, state, quiescent, last_contact, error
    FROM group_status();
COMMENT ON VIEW status IS
  'Each group on this node: role, term, leader, commit/applied/last/snapshot index, state (ok, no_leader, catching_up, snapshotting, stopped with its error), quiescence and last contact with the leader';
COMMENT ON COLUMN status.state IS
  'ok; no_leader; catching_up (over 100 committed entries not applied here, or the apply worker holds them back); snapshotting; stopped (see error)';
COMMENT ON COLUMN status.last_contact IS
  'When this member last heard from the leader (on the leader: now); while quiescent, when the group went quiet';
COMMENT ON COLUMN status.quiescent IS
  'The group is idle (every member has everything): it sends no heartbeats until a write, a read or any message wakes it';
COMMENT ON COLUMN status.applied_index IS
  'Last entry whose effects are committed on this node';

CREATE FUNCTION group_members(OUT group_id bigint, OUT node_id integer, OUT address text,
                              OUT voting boolean, OUT match_index bigint,
                              OUT lag_entries bigint, OUT last_contact timestamptz)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'dr_group_members'
LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION group_members() IS 'The rows of the view dragonraft.members, without client addresses';

CREATE VIEW members AS
  SELECT m.group_id, m.node_id, m.address, i.client_address, m.voting, m.match_index,
         m.lag_entries, m.last_contact
    FROM group_members() m
    LEFT JOIN member_info i ON i.group_id = m.group_id AND i.node_id = m.node_id;
COMMENT ON VIEW members IS
  'Members of each group on this node: Raft and client addresses, voting; on the leader, each member''s match index, lag in entries and last contact';

-- Counters.
CREATE FUNCTION group_stats(OUT group_id bigint, OUT proposals bigint, OUT commits bigint,
                            OUT unknown_outcomes bigint, OUT elections bigint,
                            OUT leader_changes bigint, OUT snapshots_sent bigint,
                            OUT snapshots_received bigint, OUT bytes_sent bigint,
                            OUT bytes_received bigint, OUT apply_errors bigint,
                            OUT stats_reset timestamptz)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'dr_group_stats'
LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION group_stats() IS 'The rows of the view dragonraft.stat_groups';

CREATE VIEW stat_groups AS
  SELECT group_id, proposals, commits, unknown_outcomes, elections, leader_changes,
         snapshots_sent, snapshots_received, bytes_sent, bytes_received, apply_errors,
         stats_reset
    FROM group_stats();
COMMENT ON VIEW stat_groups IS
  'Cumulative counters of each group on this node since stats_reset (the last stat_reset or the engine worker''s start)';

CREATE FUNCTION stat_reset(group_id bigint DEFAULT NULL)
RETURNS void
AS 'MODULE_PATHNAME', 'dr_stat_reset'
LANGUAGE C CALLED ON NULL INPUT VOLATILE;
COMMENT ON FUNCTION stat_reset(bigint) IS
  'Reset the counters of dragonraft.stat_groups for one group, or for all (NULL)';

-- Privileges: administrative functions for dragonraft_admin, views for pg_monitor.
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA @extschema@ FROM PUBLIC;
GRANT EXECUTE ON FUNCTION create_group(bigint, jsonb), transfer_leader(bigint, integer),
  stat_reset(bigint) TO dragonraft_admin;
GRANT EXECUTE ON FUNCTION node_status(), group_status(), group_members(), group_stats()
  TO pg_monitor, dragonraft_admin;
GRANT SELECT ON member_info, status, members, stat_groups TO pg_monitor, dragonraft_admin;
