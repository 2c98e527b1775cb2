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

-- Each member's client address, database encoding and locale, as it
-- announced them through the group's log (written by the apply worker).
-- The encoding and locale are NULL while not known (a member of an older
-- build, or whose locale names are not printable ASCII).
CREATE TABLE member_info (
  group_id bigint NOT NULL,
  node_id integer NOT NULL,
  client_address text NOT NULL,
  since_index bigint NOT NULL,
  encoding text,
  lc_collate text,
  lc_ctype text,
  locale_provider text,
  icu_locale text,
  PRIMARY KEY (group_id, node_id)
);
COMMENT ON TABLE member_info IS
  'Client address (libpq conninfo), database encoding and locale of each member of each group, applied from the group''s log';
COMMENT ON COLUMN member_info.since_index IS
  'Log index of the entry that set it';
COMMENT ON COLUMN member_info.encoding IS
  'Encoding of the member''s dragonraft.database (NULL: not known)';
COMMENT ON COLUMN member_info.lc_collate IS
  'LC_COLLATE of the member''s dragonraft.database (NULL: not known)';
COMMENT ON COLUMN member_info.lc_ctype IS
  'LC_CTYPE of the member''s dragonraft.database (NULL: not known)';
COMMENT ON COLUMN member_info.locale_provider IS
  'Locale provider of the member''s dragonraft.database: libc or icu (NULL: not known)';
COMMENT ON COLUMN member_info.icu_locale IS
  'ICU locale of the member''s dragonraft.database (NULL: none, or not known)';

-- This node.
CREATE FUNCTION node_status(OUT node_id integer, OUT engine_state text,
                            OUT engine_pid integer, OUT engine_started timestamptz,
                            OUT raft_address text, OUT apply_pid integer,
                            OUT engine_error text, OUT engine_retry_at timestamptz)
RETURNS record
AS 'MODULE_PATHNAME', 'dr_node_status'
LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION node_status() IS
  'This node''s id, its engine worker (state, pid, start, Raft address, why it stopped: shown also for the first minute of the next engine worker; after a damaged LogDB, when the next engine worker opens it again: 5 s doubling to 5 min, at once after pg_reload_conf()) and its apply worker''s pid';

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
                              OUT lag_entries bigint, OUT last_contact timestamptz,
                              OUT error text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'dr_group_members'
LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION group_members() IS 'The rows of the view dragonraft.members, without client addresses';

CREATE VIEW members AS
  SELECT m.group_id, m.node_id, m.address, i.client_address, m.voting, m.match_index,
         m.lag_entries, m.last_contact, m.error,
         i.encoding, i.lc_collate, i.lc_ctype, i.locale_provider, i.icu_locale
    FROM group_members() m
    LEFT JOIN member_info i ON i.group_id = m.group_id AND i.node_id = m.node_id;
COMMENT ON VIEW members IS
  'Members of each group on this node: Raft and client addresses, voting; on the leader, each member''s match index, lag in entries, last contact and why it does not catch up (error: it refused the snapshot for want of room); each member''s database encoding and locale (NULL: not known)';

-- Counters.
CREATE FUNCTION group_stats(OUT group_id bigint, OUT proposals bigint, OUT commits bigint,
                            OUT unknown_outcomes bigint, OUT elections bigint,
                            OUT leader_changes bigint, OUT snapshots_sent bigint,
                            OUT snapshots_received bigint, OUT bytes_sent bigint,
                            OUT bytes_received bigint, OUT apply_errors bigint,
                            OUT xact_commits bigint, OUT xact_unknown bigint,
                            OUT stats_reset timestamptz)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'dr_group_stats'
LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION group_stats() IS 'The rows of the view dragonraft.stat_groups';

CREATE VIEW stat_groups AS
  SELECT group_id, proposals, commits, unknown_outcomes, elections, leader_changes,
         snapshots_sent, snapshots_received, bytes_sent, bytes_received, apply_errors,
         xact_commits, xact_unknown, stats_reset
    FROM group_stats();
COMMENT ON VIEW stat_groups IS
  'Cumulative counters of each group on this node since stats_reset (the last stat_reset or the engine worker''s start)';
COMMENT ON COLUMN stat_groups.xact_commits IS
  'Transactions of this node committed through the group''s log and applied here by their own backend';
COMMENT ON COLUMN stat_groups.xact_unknown IS
  'Transactions of this node that ended with SQLSTATE 40003: proposed, outcome unknown to the client (applied from the log if committed)';

CREATE FUNCTION stat_reset(group_id bigint DEFAULT NULL)
RETURNS void
AS 'MODULE_PATHNAME', 'dr_stat_reset'
LANGUAGE C CALLED ON NULL INPUT VOLATILE;
COMMENT ON FUNCTION stat_reset(bigint) IS
  'Reset the counters of dragonraft.stat_groups for one group, or for all (NULL)';

-- Replicated tables (DESIGN §4).  A table's id in its group is the log index
-- of its registration, the same on every member.
CREATE TABLE replicated_tables (
  group_id bigint NOT NULL,
  table_id bigint NOT NULL,
  relid oid,
  state text NOT NULL CHECK (state IN ('replicated', 'refused')),
  detail text,
  PRIMARY KEY (group_id, table_id)
);
COMMENT ON TABLE replicated_tables IS
  'Tables registered in each group (written when the registration entry is applied); a refused one is not replicated on this node';

CREATE TABLE ddl_history (
  group_id bigint NOT NULL,
  index bigint NOT NULL,
  command text NOT NULL,
  error text,
  PRIMARY KEY (group_id, index)
);
COMMENT ON TABLE ddl_history IS
  'Utility commands run through dragonraft.execute, in log order, with the error if one failed on this node';

CREATE VIEW tables AS
  SELECT relid::regclass AS relid, group_id, table_id AS since_index, state, detail
    FROM replicated_tables;
COMMENT ON VIEW tables IS
  'Replicated tables on this node: the group, the log index since which the table is replicated (its id), and whether this node refused it (detail says why)';

CREATE FUNCTION capture()
RETURNS trigger
AS 'MODULE_PATHNAME', 'dr_capture'
LANGUAGE C;
COMMENT ON FUNCTION capture() IS
  'The trigger replicate_table installs: it captures the changes of a replicated table for the transaction''s change set';

CREATE FUNCTION replicate_table(tbl regclass, group_id bigint)
RETURNS void
AS 'MODULE_PATHNAME', 'dr_replicate_table'
LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION replicate_table(regclass, bigint) IS
  'On the leader: the table joins the group at the commit of this transaction, with its definition and rows; members that lack it create it';

CREATE FUNCTION execute(group_id bigint, command text)
RETURNS bigint
AS 'MODULE_PATHNAME', 'dr_execute'
LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION execute(bigint, text) IS
  'Run a utility command (DDL) on every member of the group in log order; returns its log index once it is applied here';

-- SECURITY DEFINER: any role may route its writes, though only pg_monitor
-- and dragonraft_admin read status and member_info.
CREATE FUNCTION leader(group_id bigint, OUT node_id integer, OUT client_address text)
RETURNS record
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
  SELECT s.leader_id, i.client_address
    FROM @extschema@.status s
    LEFT JOIN @extschema@.member_info i ON i.group_id = s.group_id AND i.node_id = s.leader_id
   WHERE s.group_id = $1
$$;
COMMENT ON FUNCTION leader(bigint) IS
  'The leader of a group as this node knows it: node id and client address (libpq conninfo), for routing writes; NULL when there is none';

-- A table's canonical definition, compared between members: the owned
-- sequences, columns (types, collations, defaults, generated and identity
-- columns, NOT NULL), constraints, other indexes and the replica identity.
CREATE FUNCTION table_definition(tbl regclass)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog
-- (constants rendered alike on every member, whatever its own settings: a
-- CHECK's timestamptz read in each member's TimeZone made members refuse the
-- registration; execute() runs commands with these too)
SET TimeZone = 'UTC' SET DateStyle = 'ISO, MDY' SET IntervalStyle = 'postgres'
SET extra_float_digits = 1 SET lc_monetary = 'C'
AS $$
DECLARE
  r record;
  def text := '';
  cols text[] := '{}';
  ident "char";
BEGIN
  FOR r IN SELECT d.objid::regclass::text AS seq, d.objid, a.attname
             FROM pg_depend d
             JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
             JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
            WHERE d.classid = 'pg_class'::regclass AND d.refobjid = tbl AND d.deptype = 'a'
            ORDER BY 1 LOOP
    -- with its parameters (a serial's is an integer sequence)
    def := def || coalesce(dragonraft.plain_definition(r.objid),
                           format('CREATE SEQUENCE %s;', r.seq)) || E'\n';
  END LOOP;
  FOR r IN SELECT a.attname, format_type(a.atttypid, a.atttypmod) AS typ, a.attnotnull,
                  a.attidentity, a.attgenerated, pg_get_expr(ad.adbin, ad.adrelid) AS dflt,
                  CASE WHEN a.attcollation <> t.typcollation
                       THEN (SELECT format('%I.%I', n.nspname, c.collname)
                               FROM pg_collation c JOIN pg_namespace n ON n.oid = c.collnamespace
                              WHERE c.oid = a.attcollation) END AS coll
             FROM pg_attribute a
             JOIN pg_type t ON t.oid = a.atttypid
             LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
            WHERE a.attrelid = tbl AND a.attnum > 0 AND NOT a.attisdropped
            ORDER BY a.attnum LOOP
    cols := cols || (quote_ident(r.attname) || ' ' || r.typ
      || coalesce(' COLLATE ' || r.coll, '')
      || CASE WHEN r.attgenerated = 's' THEN ' GENERATED ALWAYS AS (' || r.dflt || ') STORED'
              WHEN r.dflt IS NOT NULL THEN ' DEFAULT ' || r.dflt ELSE '' END
      || CASE r.attidentity WHEN 'a' THEN ' GENERATED ALWAYS AS IDENTITY'
                            WHEN 'd' THEN ' GENERATED BY DEFAULT AS IDENTITY' ELSE '' END
      || CASE WHEN r.attnotnull THEN ' NOT NULL' ELSE '' END);
  END LOOP;
  def := def || format('CREATE TABLE %s (%s);', tbl, array_to_string(cols, ', '));
  FOR r IN SELECT conname, pg_get_constraintdef(oid) AS cdef FROM pg_constraint
            WHERE conrelid = tbl AND contype IN ('p', 'u', 'c', 'f', 'x') ORDER BY conname LOOP
    def := def || E'\n' || format('ALTER TABLE %s ADD CONSTRAINT %I %s;', tbl, r.conname, r.cdef);
  END LOOP;
  FOR r IN SELECT pg_get_indexdef(i.indexrelid) AS idef FROM pg_index i
            WHERE i.indrelid = tbl
              AND NOT EXISTS (SELECT FROM pg_constraint c WHERE c.conindid = i.indexrelid
                                                            AND c.conrelid = tbl)
            ORDER BY i.indexrelid::regclass::text LOOP
    def := def || E'\n' || r.idef || ';';
  END LOOP;
  FOR r IN SELECT d.objid::regclass::text AS seq, a.attname
             FROM pg_depend d
             JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
             JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
            WHERE d.classid = 'pg_class'::regclass AND d.refobjid = tbl AND d.deptype = 'a'
            ORDER BY 1 LOOP
    def := def || E'\n' || format('ALTER SEQUENCE %s OWNED BY %s.%I;', r.seq, tbl, r.attname);
  END LOOP;
  SELECT relreplident INTO ident FROM pg_class WHERE oid = tbl;
  IF ident = 'f' THEN
    def := def || E'\n' || format('ALTER TABLE %s REPLICA IDENTITY FULL;', tbl);
  ELSIF ident = 'n' THEN
    def := def || E'\n' || format('ALTER TABLE %s REPLICA IDENTITY NOTHING;', tbl);
  ELSIF ident = 'i' THEN
    def := def || E'\n' || (SELECT format('ALTER TABLE %s REPLICA IDENTITY USING INDEX %I;', tbl,
                                          c.relname)
                              FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                             WHERE i.indrelid = tbl AND i.indisreplident);
  END IF;
  RETURN def;
END
$$;
COMMENT ON FUNCTION table_definition(regclass) IS
  'The canonical definition of a table (CREATE statements) that replicate_table carries and members compare';

-- Privileges: administrative functions for dragonraft_admin, views for pg_monitor.
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA @extschema@ FROM PUBLIC;
GRANT EXECUTE ON FUNCTION create_group(bigint, jsonb), transfer_leader(bigint, integer),
  stat_reset(bigint), replicate_table(regclass, bigint), execute(bigint, text)
  TO dragonraft_admin;
-- Every writer of a replicated table runs its capture trigger; leader() is for routing.
GRANT EXECUTE ON FUNCTION capture(), leader(bigint), table_definition(regclass) TO PUBLIC;
GRANT EXECUTE ON FUNCTION node_status(), group_status(), group_members(), group_stats()
  TO pg_monitor, dragonraft_admin;
GRANT SELECT ON member_info, status, members, stat_groups TO pg_monitor, dragonraft_admin;
GRANT SELECT ON replicated_tables, ddl_history, tables TO pg_monitor, dragonraft_admin;

-- Review 1 fixes (helper pgfix): node-wide counters.
CREATE FUNCTION node_stats(OUT groups_not_started integer,
                           OUT connections_accepted bigint, OUT connections_refused bigint,
                           OUT tls_failures bigint, OUT auth_refused bigint,
                           OUT messages_rejected bigint, OUT frames_rejected bigint,
                           OUT refusal_lines_suppressed bigint,
                           OUT digest_steps bigint, OUT digest_steps_per_loop_max integer,
                           OUT messages_dropped_no_group bigint)
RETURNS record
AS 'MODULE_PATHNAME', 'dr_node_stats'
LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION node_stats() IS
  'Groups in the LogDB not started (beyond dragonraft.max_groups), the transport''s connections and refusals by kind, the steps of log_digest calls (and the most that one engine loop ran: all the calls share one step a loop), and the messages dropped for a group that does not run here (stopped, left, not joined yet: the server log names group and sender once a minute) since the engine worker started';
CREATE VIEW stat_node AS SELECT * FROM node_stats();
COMMENT ON VIEW stat_node IS
  'This node: groups not started for want of room, connections accepted and refused, TLS failures, refused node identities, rejected messages and frames, refusal log lines left out, log_digest steps and the most of them in one engine loop, messages dropped for a group not run here';
REVOKE ALL ON FUNCTION node_stats() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION node_stats() TO pg_monitor, dragonraft_admin;
GRANT SELECT ON stat_node TO pg_monitor, dragonraft_admin;

-- Issue 14 (helper "member"): membership, snapshots and linearizable reads
-- (DESIGN §5, §6, §9).
CREATE FUNCTION add_member(group_id bigint, node_id integer, address text,
                           voting boolean DEFAULT true)
RETURNS void
AS 'MODULE_PATHNAME', 'dr_add_member'
LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION add_member(bigint, integer, text, boolean) IS
  'On the leader: add a node (its Raft address) to a group, voting or not; returns once the change is applied here; then run join_group on that node';

CREATE FUNCTION promote_member(group_id bigint, node_id integer)
RETURNS void
AS 'MODULE_PATHNAME', 'dr_promote_member'
LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION promote_member(bigint, integer) IS
  'On the leader: a non-voting member becomes a voter; returns once the change is applied here';

CREATE FUNCTION remove_member(group_id bigint, node_id integer, force boolean DEFAULT false)
RETURNS void
AS 'MODULE_PATHNAME', 'dr_remove_member'
LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION remove_member(bigint, integer, boolean) IS
  'On the leader: remove a member from a group (its node id is never accepted again); one of two voters only with force; returns once applied here';

CREATE FUNCTION join_group(group_id bigint, members jsonb)
RETURNS void
AS 'MODULE_PATHNAME', 'dr_join_group'
LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION join_group(bigint, jsonb) IS
  'On a node that a member added with add_member: start its member (members maps node ids of the group to their Raft addresses, as in create_group) and return once it caught up; fails if no leader contacts it';

CREATE FUNCTION leave_group(group_id bigint, force boolean DEFAULT false)
RETURNS void
AS 'MODULE_PATHNAME', 'dr_leave_group'
LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION leave_group(bigint, boolean) IS
  'Stop this node''s member of a group and delete its Raft data; the leader first removes itself (one of two voters only with force), a follower must have been removed on the leader (then force, as it may not have heard of it); the group''s tables stay here, no longer replicated';

CREATE FUNCTION snapshot(group_id bigint)
RETURNS bigint
AS 'MODULE_PATHNAME', 'dr_snapshot'
LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION snapshot(bigint) IS
  'Record a snapshot of a group now (index, term, membership: the tables are the data) and compact its log; returns the snapshot''s index';

CREATE FUNCTION read_barrier(group_id bigint)
RETURNS bigint
AS 'MODULE_PATHNAME', 'dr_read_barrier_sql'
LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION read_barrier(bigint) IS
  'Linearizable read fence: a ReadIndex confirmed by a quorum, then a wait until this node applied it; returns that index.  Statements that start afterwards see every write committed before it began';

REVOKE ALL ON FUNCTION add_member(bigint, integer, text, boolean), promote_member(bigint, integer),
  remove_member(bigint, integer, boolean), join_group(bigint, jsonb), leave_group(bigint, boolean),
  snapshot(bigint), read_barrier(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION add_member(bigint, integer, text, boolean),
  promote_member(bigint, integer), remove_member(bigint, integer, boolean),
  join_group(bigint, jsonb), leave_group(bigint, boolean), snapshot(bigint) TO dragonraft_admin;
-- Any reader may fence its reads (as read_consistency = 'linearizable' does).
GRANT EXECUTE ON FUNCTION read_barrier(bigint) TO PUBLIC;

-- Review 2 write-path leftovers (helper wfix2): execute() runs each command as
-- the role that proposed it; ddl_history records that role and the tables
-- the command changes.
ALTER TABLE ddl_history ADD COLUMN role text, ADD COLUMN tables bigint[];
COMMENT ON COLUMN ddl_history.role IS
  'The role that proposed the command: every member runs it as that role';
COMMENT ON COLUMN ddl_history.tables IS
  'The ids of the replicated tables the command changes (NULL: it may change any): a transaction that wrote one of them before the command, and whose entry comes after it, is skipped';
-- A command that failed on some members only leaves their schemas apart:
-- each member shows the commands that failed here.
CREATE VIEW ddl_failures AS
  SELECT group_id, count(*) AS failed, max(index) AS last_index,
         (array_agg(error ORDER BY index DESC))[1] AS last_error,
         (array_agg(command ORDER BY index DESC))[1] AS last_command
    FROM ddl_history
   WHERE error IS NOT NULL
   GROUP BY group_id;
COMMENT ON VIEW ddl_failures IS
  'Per group, the commands run through dragonraft.execute that failed on this node: how many, and the last one with its error.  Compare members: a command that failed on some only left their schemas apart';
GRANT SELECT ON ddl_failures TO pg_monitor, dragonraft_admin;
GRANT SELECT ON ddl_history TO dragonraft_admin;

-- Commit-path throughput (issue 13): backends cache what capture() reads from
-- the catalogs about each table; a change of the registrations invalidates it.
CREATE FUNCTION registrations_changed()
RETURNS trigger
AS 'MODULE_PATHNAME', 'dr_registrations_changed'
LANGUAGE C;
COMMENT ON FUNCTION registrations_changed() IS
  'Trigger on replicated_tables: tells every backend to forget what it cached about replicated tables';
REVOKE ALL ON FUNCTION registrations_changed() FROM PUBLIC;
CREATE TRIGGER registrations_changed
  AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON replicated_tables
  FOR EACH STATEMENT EXECUTE FUNCTION registrations_changed();
-- The apply worker writes registrations as session_replication_role = replica.
ALTER TABLE replicated_tables ENABLE ALWAYS TRIGGER registrations_changed;

-- Issue 14, full snapshots (helper snap): their progress.
CREATE FUNCTION stat_progress_snapshot(OUT group_id bigint, OUT pid integer, OUT role text,
  OUT phase text, OUT snapshot_index bigint, OUT bytes_total bigint, OUT bytes_done bigint,
  OUT tables_total integer, OUT tables_done integer, OUT started timestamptz)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'dr_stat_progress_snapshot'
LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION stat_progress_snapshot() IS 'The rows of the view dragonraft.stat_progress_snapshot';
CREATE VIEW stat_progress_snapshot AS SELECT * FROM stat_progress_snapshot();
COMMENT ON VIEW stat_progress_snapshot IS
  'Full snapshots being exported (sender: the leader, for a member that needs compacted entries or joins) or loaded (receiver) on this node, and table_digest calls waiting for their hold of the group''s apply (digest): phase, bytes and tables';
REVOKE ALL ON FUNCTION stat_progress_snapshot() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION stat_progress_snapshot() TO pg_monitor, dragonraft_admin;
GRANT SELECT ON stat_progress_snapshot TO pg_monitor, dragonraft_admin;

-- Review 3 fixes (helper mfix): a node that left a group never rejoins it under
-- the same node id (its Raft state is gone).  The record is a file per group
-- in dragonraft.data_dir/left_groups (rev58): a table of the extension's went
-- with DROP EXTENSION, and the node id could then join the group again.
-- left_groups shows them; forget_left_group deletes one on purpose.
CREATE FUNCTION left_groups(OUT group_id bigint, OUT node_id integer, OUT left_at timestamptz)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'dr_left_groups'
LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION left_groups() IS 'The rows of the view dragonraft.left_groups';
CREATE VIEW left_groups AS SELECT * FROM left_groups();
COMMENT ON VIEW left_groups IS
  'Groups this server left (leave_group) under a node id, from the files in dragonraft.data_dir/left_groups (they outlive DROP EXTENSION): create_group and join_group of such a group are refused under that id, which must never vote again.  forget_left_group deletes one, once no member of that group exists anywhere';
REVOKE ALL ON FUNCTION left_groups() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION left_groups() TO pg_monitor, dragonraft_admin;
GRANT SELECT ON left_groups TO pg_monitor, dragonraft_admin;
CREATE FUNCTION forget_left_group(group_id bigint, node_id integer)
RETURNS void
AS 'MODULE_PATHNAME', 'dr_forget_left_group'
LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION forget_left_group(bigint, integer) IS
  'Deletes the record that node_id left group_id on this server (dragonraft.left_groups), so that it may create or join that group again under that id: only once every member of the group is gone (a node that forgot its votes can elect two leaders in a term)';
REVOKE ALL ON FUNCTION forget_left_group(bigint, integer) FROM PUBLIC;

-- Membership changes refuse to leave no quorum that answers; force overrides.
CREATE FUNCTION add_member(group_id bigint, node_id integer, address text, voting boolean,
                           force boolean)
RETURNS void
AS 'MODULE_PATHNAME', 'dr_add_member'
LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION add_member(bigint, integer, text, boolean, boolean) IS
  'add_member; with force, also a voter after which the voters that answer the leader are no quorum (say, the second voter of a group)';
CREATE FUNCTION promote_member(group_id bigint, node_id integer, force boolean)
RETURNS void
AS 'MODULE_PATHNAME', 'dr_promote_member'
LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION promote_member(bigint, integer, boolean) IS
  'promote_member; with force, also a non-voter that has not caught up or does not answer';
REVOKE ALL ON FUNCTION add_member(bigint, integer, text, boolean, boolean),
  promote_member(bigint, integer, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION add_member(bigint, integer, text, boolean, boolean),
  promote_member(bigint, integer, boolean) TO dragonraft_admin;

-- Review 3, the rest of the membership findings (helper mfix2): a node that
-- applied its own removal shows state 'removed'.
COMMENT ON COLUMN status.state IS
  'ok; no_leader; catching_up (over 100 committed entries not applied here, or the apply worker holds them back); snapshotting; apply_failed (see error); removed (this node applied its own removal: leave_group(group, force => true) deletes its data here); stopped (see error)';

-- Issue 13, the write path's open ends (helper wfix3): a command of the log
-- has one outcome on every member.  execute() tries it on the calling node
-- first (one that fails there never enters the log), and a member where a
-- command of the log fails stops applying its group until the cause is
-- fixed there (dragonraft.status: apply_failed), or until a DBA skips the
-- command there with skip_command (ddl_history.error then says why).
COMMENT ON TABLE ddl_history IS
  'Utility commands run through dragonraft.execute, in log order; error: the command failed on this node and a DBA skipped it here (skip_command)';
COMMENT ON VIEW ddl_failures IS
  'Per group, the commands run through dragonraft.execute that failed on this node and were skipped here with dragonraft.skip_command: how many, and the last one with its error.  This node''s schema differs from the other members'' by them';
CREATE TABLE skip_requests (
  group_id bigint NOT NULL,
  index bigint NOT NULL,
  PRIMARY KEY (group_id, index)
);
COMMENT ON TABLE skip_requests IS
  'Commands that skip_command asked the apply worker to skip on this node if they fail again (a row goes once its entry is applied)';
CREATE FUNCTION skip_command(group_id bigint, index bigint)
RETURNS void
AS 'MODULE_PATHNAME', 'dr_skip_command'
LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION skip_command(bigint, bigint) IS
  'On a member whose apply of the group stopped at the command of entry index (it failed here): skip that command here, as ALTER SUBSCRIPTION ... SKIP does; this member''s schema then differs from the others''';
REVOKE ALL ON FUNCTION skip_command(bigint, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION skip_command(bigint, bigint) TO dragonraft_admin;
GRANT SELECT ON skip_requests TO pg_monitor, dragonraft_admin;

-- Full snapshots rebuild what the log built (helper snapfix, review 4 #3):
-- what a table has besides its definition, as the statements that give it
-- to a table made from that definition: its owner, privileges (of the table
-- and of its columns), row level security, policies, user triggers with
-- their enabled state, and comments.  A snapshot carries it per table; a
-- member made by a snapshot runs it after the rows.
CREATE FUNCTION table_extras(tbl regclass)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog
-- (a policy's or a trigger's WHEN constants rendered alike, as in
-- table_definition: a date under the caller's DateStyle 'SQL, DMY' read
-- '02/01/2026' as February 1 on a member with MDY; review 22, TAP 073)
SET TimeZone = 'UTC' SET DateStyle = 'ISO, MDY' SET IntervalStyle = 'postgres'
SET extra_float_digits = 1 SET lc_monetary = 'C'
AS $$
DECLARE
  r record;
  c record;
  def text;
BEGIN
  SELECT pg_get_userbyid(relowner) AS owner, relacl, relrowsecurity, relforcerowsecurity
    INTO c FROM pg_class WHERE oid = tbl;
  def := format('ALTER TABLE %s OWNER TO %I;', tbl, c.owner);
  IF c.relacl IS NOT NULL THEN
    def := def || E'\n' || format('REVOKE ALL ON %s FROM PUBLIC, %I;', tbl, c.owner);
  END IF;
  FOR r IN SELECT a.privilege_type AS priv, NULL::name AS col,
                  CASE WHEN a.grantee = 0 THEN 'PUBLIC'
                       ELSE quote_ident(pg_get_userbyid(a.grantee)) END AS grantee,
                  a.is_grantable
             FROM aclexplode(c.relacl) a
           UNION ALL
           SELECT a.privilege_type, att.attname,
                  CASE WHEN a.grantee = 0 THEN 'PUBLIC'
                       ELSE quote_ident(pg_get_userbyid(a.grantee)) END,
                  a.is_grantable
             FROM pg_attribute att, aclexplode(att.attacl) a
            WHERE att.attrelid = tbl AND att.attnum > 0 AND NOT att.attisdropped
              AND att.attacl IS NOT NULL
            ORDER BY 2 NULLS FIRST, 3, 1 LOOP
    def := def || E'\n' || format('GRANT %s%s ON %s TO %s%s;', r.priv,
      CASE WHEN r.col IS NULL THEN '' ELSE format(' (%I)', r.col) END, tbl, r.grantee,
      CASE WHEN r.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
  END LOOP;
  IF c.relrowsecurity THEN
    def := def || E'\n' || format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY;', tbl);
  END IF;
  IF c.relforcerowsecurity THEN
    def := def || E'\n' || format('ALTER TABLE %s FORCE ROW LEVEL SECURITY;', tbl);
  END IF;
  FOR r IN SELECT p.polname, p.polpermissive, p.polcmd,
                  (SELECT string_agg(CASE WHEN x = 0 THEN 'PUBLIC'
                                          ELSE quote_ident(pg_get_userbyid(x)) END, ', '
                                     ORDER BY 1)
                     FROM unnest(p.polroles) x) AS roles,
                  pg_get_expr(p.polqual, p.polrelid) AS qual,
                  pg_get_expr(p.polwithcheck, p.polrelid) AS chk
             FROM pg_policy p WHERE p.polrelid = tbl ORDER BY p.polname LOOP
    def := def || E'\n' || format('CREATE POLICY %I ON %s AS %s FOR %s TO %s%s%s;',
      r.polname, tbl, CASE WHEN r.polpermissive THEN 'PERMISSIVE' ELSE 'RESTRICTIVE' END,
      CASE r.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE'
                    WHEN 'd' THEN 'DELETE' ELSE 'ALL' END,
      r.roles, coalesce(' USING (' || r.qual || ')', ''),
      coalesce(' WITH CHECK (' || r.chk || ')', ''));
  END LOOP;
  FOR r IN SELECT t.oid, t.tgname, t.tgenabled FROM pg_trigger t
            WHERE t.tgrelid = tbl AND NOT t.tgisinternal
              AND t.tgname NOT IN ('dragonraft_capture', 'dragonraft_capture_truncate')
            ORDER BY t.tgname LOOP
    def := def || E'\n' || pg_get_triggerdef(r.oid) || ';';
    IF r.tgenabled <> 'O' THEN
      def := def || E'\n' || format('ALTER TABLE %s %s TRIGGER %I;', tbl,
        CASE r.tgenabled WHEN 'D' THEN 'DISABLE' WHEN 'A' THEN 'ENABLE ALWAYS'
                         ELSE 'ENABLE REPLICA' END, r.tgname);
    END IF;
  END LOOP;
  FOR r IN SELECT a.attname, d.description FROM pg_description d
             LEFT JOIN pg_attribute a ON a.attrelid = d.objoid AND a.attnum = d.objsubid
            WHERE d.classoid = 'pg_class'::regclass AND d.objoid = tbl
            ORDER BY d.objsubid LOOP
    def := def || E'\n' || CASE WHEN r.attname IS NULL
      THEN format('COMMENT ON %s %s IS %L;',
                  CASE (SELECT relkind FROM pg_class WHERE oid = tbl)
                    WHEN 'v' THEN 'VIEW' WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END,
                  tbl, r.description)
      ELSE format('COMMENT ON COLUMN %s.%I IS %L;', tbl, r.attname, r.description) END;
  END LOOP;
  RETURN def;
END
$$;
COMMENT ON FUNCTION table_extras(regclass) IS
  'What a replicated table has besides its definition (owner, privileges, row level security, policies, user triggers, comments), as the statements that give it; full snapshots carry it';

-- Review 4 leftovers on full snapshots (helper snapfix2): a member's history
-- says how each command reached it, and ddl_failures what happened here.
ALTER TABLE ddl_history ADD COLUMN via text NOT NULL DEFAULT 'log'
  CHECK (via IN ('log', 'snapshot', 'replayed'));
COMMENT ON COLUMN ddl_history.via IS
  'How the command reached this node: log (it ran here when its entry was applied); snapshot (it did not run here: its effect came with a full snapshot of the group''s tables); replayed (it came with a full snapshot, whose load ran here its statements that make objects other than tables)';
COMMENT ON COLUMN ddl_history.error IS
  'Why the command''s effect is missing here: it failed here and a DBA skipped it (skip_command), or, with via snapshot or replayed, it had been skipped on the member the snapshot came from (the error says so)';
COMMENT ON VIEW ddl_failures IS
  'Per group, the commands run through dragonraft.execute whose effect this node lacks: skipped here with dragonraft.skip_command after they failed here, or skipped on the member a snapshot loaded here came from (the error says which).  This node''s schema differs by them from the members'' that ran them';

-- A refused table taken by its members after all (the lead, session 6).
CREATE FUNCTION resend_table(tbl regclass)
RETURNS void
AS 'MODULE_PATHNAME', 'dr_resend_table'
LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION resend_table(regclass) IS
  'On the leader: send a replicated table''s definition and rows through the log again, so that members that refused it (and dropped or renamed their own table since) take it; the others are unchanged';
REVOKE ALL ON FUNCTION resend_table(regclass) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION resend_table(regclass) TO dragonraft_admin;

-- Review 11 F5 (helper busyreal): which writers wait for backpressure.
CREATE FUNCTION busy_waits(OUT pid integer, OUT group_id bigint, OUT since timestamptz)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'dr_busy_waits'
LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION busy_waits() IS 'The rows of the view dragonraft.busy_waits';
CREATE VIEW busy_waits AS SELECT * FROM busy_waits();
COMMENT ON VIEW busy_waits IS
  'Backends whose COMMIT or dragonraft.execute waits for a busy group''s log to take its entry (nothing proposed yet; dragonraft.busy_timeout), since when.  Their wait event is Extension, as for a writer waiting for its turn: join pg_stat_activity on pid to tell them apart';
REVOKE ALL ON FUNCTION busy_waits() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION busy_waits() TO pg_monitor, dragonraft_admin;
GRANT SELECT ON busy_waits TO pg_monitor, dragonraft_admin;

-- Review 12 F2 (helper plainrel2): the relations that the group's commands
-- made and that are not tables of the group (views, sequences, plain tables
-- such as an audit table a trigger writes), so that a full snapshot brings
-- them to a member that loads it.
CREATE TABLE made_relations (
  group_id bigint NOT NULL,
  index bigint NOT NULL,
  seq integer NOT NULL,
  relid oid NOT NULL,
  PRIMARY KEY (group_id, index, seq)
);
COMMENT ON TABLE made_relations IS
  'The relations (views, sequences, tables) that each command of a group made on this node, in the order it made them (seq), while they exist here (relid is this node''s).  Those that are not tables of the group and not owned by a column travel with full snapshots; a snapshot''s load makes them and lists them here';
GRANT SELECT ON made_relations TO pg_monitor, dragonraft_admin;

-- How a full snapshot makes a relation that a command of the group made and
-- that is not a table of the group: a view (with its options), a sequence
-- (its parameters; the exporter adds its value) or a table (its definition;
-- no rows).  NULL for a relation that a snapshot does not carry.
CREATE FUNCTION plain_definition(rel regclass)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog
SET TimeZone = 'UTC' SET DateStyle = 'ISO, MDY' SET IntervalStyle = 'postgres'
SET extra_float_digits = 1 SET lc_monetary = 'C'
AS $$
DECLARE
  c record;
BEGIN
  SELECT relkind, relpersistence, relispartition, reloptions INTO c FROM pg_class WHERE oid = rel;
  IF c.relpersistence <> 'p' THEN
    RETURN NULL;
  ELSIF c.relkind = 'v' THEN
    RETURN format('CREATE VIEW %s%s AS %s;', rel,
                  CASE WHEN c.reloptions IS NULL THEN ''
                       ELSE ' WITH (' || array_to_string(c.reloptions, ', ') || ')' END,
                  rtrim(pg_get_viewdef(rel), ';'));
  ELSIF c.relkind = 'S' THEN
    RETURN (SELECT format('CREATE SEQUENCE %s AS %s INCREMENT BY %s MINVALUE %s MAXVALUE %s '
                          'START WITH %s CACHE %s %sCYCLE;', rel, format_type(seqtypid, NULL),
                          seqincrement, seqmin, seqmax, seqstart, seqcache,
                          CASE WHEN seqcycle THEN '' ELSE 'NO ' END)
              FROM pg_sequence WHERE seqrelid = rel);
  ELSIF c.relkind = 'r' AND NOT c.relispartition
        AND NOT EXISTS (SELECT FROM pg_inherits WHERE inhrelid = rel) THEN
    RETURN dragonraft.table_definition(rel);
  END IF;
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION plain_definition(regclass) IS
  'The definition of a relation that a command of a group made, which full snapshots carry: a view, a sequence (without its value) or an ordinary table (without its rows); NULL for one they do not carry (unlogged, partitioned, partition or inheritance child, foreign table, materialized view)';

-- Twelfth session: a command runs with the search_path it was tried with on
-- the calling node (that session's default), carried in its entry, on every
-- member and in a snapshot's replay alike.
ALTER TABLE ddl_history ADD COLUMN search_path text;
COMMENT ON COLUMN ddl_history.search_path IS
  'The search_path the command ran with on every member (the calling session''s default, where it was tried first); NULL: an older build''s entry, run with each node''s default';

-- Review 19 F7, calls on two nodes at once (helper xrace): a command whose
-- entry follows another command of its group that its try did not see (both
-- tried at once on two nodes) is skipped on every member alike, and its
-- caller's execute() fails with 40001.
ALTER TABLE ddl_history ADD COLUMN preempted_by bigint;
COMMENT ON COLUMN ddl_history.preempted_by IS
  'NULL: the command ran (or failed here: error).  Else the index of another command of the group that came between what the command''s try saw on its calling node and its own entry: every member skipped it (it changed nothing; tables is empty) and its execute() failed with SQLSTATE 40001';
-- (perf82) The rows that may be a group's last command, read from the end at
-- every apply worker start and snapshot load: without the barriers
-- dragonraft writes in runs (caught_up's SELECT 1, check_consistency's
-- marker) and skipped commands.  Its predicate is DR_HISTORY_COMMANDS
-- (snapshot.h): the queries say it alike.
CREATE INDEX ddl_history_commands ON ddl_history (group_id, index)
  WHERE preempted_by IS NULL
    AND command NOT IN ('SELECT 1', 'SELECT ''dragonraft.check_consistency''');

-- Log digests (helper logdigest): compare the Raft logs of members (Log
-- Matching).  A member's LogDB once stored, under the leader's index and term
-- and with valid checksums, entries made of freed memory; nothing compared
-- the logs.
CREATE FUNCTION log_digest(INOUT group_id bigint, from_index bigint DEFAULT NULL,
  to_index bigint DEFAULT NULL, OUT first_index bigint, OUT last_index bigint,
  OUT last_term bigint, OUT entries bigint, OUT digest text)
AS 'MODULE_PATHNAME', 'dr_log_digest'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION log_digest(bigint, bigint, bigint) IS
  'A SHA-256 chain over the entries of a group''s Raft log that this node''s LogDB holds in [max(from_index, first held), min(to_index, last held)] (NULL: no bound): index, term, type and data of each.  Members whose logs agree give the same digest for the same range: take first_index and last_index from one member (the leader) and pass them to the others';
REVOKE ALL ON FUNCTION log_digest(bigint, bigint, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION log_digest(bigint, bigint, bigint) TO dragonraft_admin;

-- Helper consistency: nothing compared the members' TABLES (a bug in apply, a
-- superuser's write with session_replication_role = replica, a restored
-- backup leave one member's table different, unseen).
CREATE FUNCTION table_digest(group_id bigint)
RETURNS TABLE (group_id bigint, applied_index bigint, relid regclass, rows bigint,
  digest text)
AS 'MODULE_PATHNAME', 'dr_table_digest'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION table_digest(bigint) IS
  'Per replicated table of a group, its rows and digest on this node at exactly applied_index (the same for all): the sum modulo 2^256 of a SHA-256 per row over its columns in name order (name, NULL flag, the value''s binary send form), independent of row order and physical layout.  Members whose tables agree give the same digests at the same applied_index';
REVOKE ALL ON FUNCTION table_digest(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION table_digest(bigint) TO dragonraft_admin;
CREATE TABLE consistency_checks (
  group_id bigint NOT NULL,
  log_index bigint NOT NULL,
  relid regclass,
  rows bigint,
  digest text,
  finished_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  error text
);
COMMENT ON TABLE consistency_checks IS
  'This node''s digests of the tables of a group at the log index of a check_consistency marker (one row per table; relid NULL with rows 0: the group had no table; error: the check failed here): compare members'' rows for the same group_id and log_index.  The last 100 checks of each group are kept (consistency_checks_keep); dragonraft_admin may delete rows';
CREATE INDEX consistency_checks_group ON consistency_checks (group_id, log_index);
REVOKE ALL ON consistency_checks FROM PUBLIC;
GRANT SELECT ON consistency_checks TO pg_monitor, dragonraft_admin;
GRANT DELETE ON consistency_checks TO dragonraft_admin;
-- Retention: the checker's insert of a check's row deletes the group's checks
-- older than its last 100 (by log index), in the checker's transaction.
CREATE FUNCTION consistency_checks_keep()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
BEGIN
  DELETE FROM dragonraft.consistency_checks
   WHERE group_id = NEW.group_id
     AND log_index < (SELECT min(k.log_index)
                        FROM (SELECT DISTINCT c.log_index FROM dragonraft.consistency_checks c
                               WHERE c.group_id = NEW.group_id
                               ORDER BY c.log_index DESC LIMIT 100) k);
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION consistency_checks_keep() IS
  'Trigger on consistency_checks: keeps the last 100 checks (log indexes) of the inserted row''s group, deletes older ones';
REVOKE ALL ON FUNCTION consistency_checks_keep() FROM PUBLIC;
CREATE TRIGGER consistency_checks_keep
  AFTER INSERT ON consistency_checks
  FOR EACH ROW EXECUTE FUNCTION consistency_checks_keep();
CREATE FUNCTION check_consistency(group_id bigint) RETURNS bigint
LANGUAGE sql VOLATILE
AS $$ SELECT dragonraft.execute(group_id, 'SELECT ''dragonraft.check_consistency''') $$;
COMMENT ON FUNCTION check_consistency(bigint) IS
  'On the leader: propose a consistency check marker (an execute() barrier); every member digests the group''s tables at exactly its log index, in the background, into dragonraft.consistency_checks.  Returns the marker''s log index';
REVOKE ALL ON FUNCTION check_consistency(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION check_consistency(bigint) TO dragonraft_admin;
