-- Membership, snapshots and read barriers on one node (DESIGN §5, §6, §9):
-- every error with its SQLSTATE.  Three nodes are in test/t/010_membership.pl.
\set VERBOSITY default

CREATE FUNCTION pg_temp.wait_for(cond text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  deadline timestamptz := clock_timestamp() + interval '60 s';
  ok boolean;
BEGIN
  LOOP
    EXECUTE cond INTO ok;
    EXIT WHEN ok;
    IF clock_timestamp() > deadline THEN
      RAISE EXCEPTION 'timed out waiting for: %', cond;
    END IF;
    PERFORM pg_sleep(0.05);
  END LOOP;
END $$;

-- A statement's SQLSTATE and message, with this node's address as <this node>.
CREATE FUNCTION pg_temp.try(cmd text, addr text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  st text; msg text; det text; hint text;
BEGIN
  EXECUTE cmd;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
                          det = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
  RETURN replace(concat_ws(E'\n', st || ': ' || msg, 'DETAIL: ' || nullif(det, ''),
                           'HINT: ' || nullif(hint, '')), addr, '<this node>');
END $$;

SELECT raft_address AS addr FROM dragonraft.node_status() \gset
SELECT dragonraft.create_group(14, jsonb_build_object('1', :'addr'));
-- (and this node's member info applied: proposed at the engine worker's
-- turn after it leads, it would otherwise come amid what follows)
SELECT pg_temp.wait_for($$SELECT EXISTS (SELECT 1 FROM dragonraft.status
  WHERE group_id = 14 AND role = 'leader' AND applied_index = commit_index)
  AND EXISTS (SELECT 1 FROM dragonraft.member_info WHERE group_id = 14)$$);

-- Bad arguments.
SELECT pg_temp.try($$SELECT dragonraft.add_member(14, 2, 'nowhere')$$, :'addr');
SELECT pg_temp.try($$SELECT dragonraft.add_member(14, 2, '127.0.0.1:0')$$, :'addr');
SELECT pg_temp.try($$SELECT dragonraft.add_member(14, 0, '127.0.0.1:9')$$, :'addr');
SELECT pg_temp.try($$SELECT dragonraft.add_member(99, 2, '127.0.0.1:9')$$, :'addr');
SELECT pg_temp.try($$SELECT dragonraft.remove_member(99, 2)$$, :'addr');
SELECT pg_temp.try($$SELECT dragonraft.promote_member(99, 2)$$, :'addr');
-- An existing member, the last voter, a node that is not a member.
SELECT pg_temp.try(format($$SELECT dragonraft.add_member(14, 1, %L)$$, :'addr'), :'addr');
SELECT pg_temp.try($$SELECT dragonraft.remove_member(14, 1)$$, :'addr');
SELECT pg_temp.try($$SELECT dragonraft.remove_member(14, 1, true)$$, :'addr');
SELECT pg_temp.try($$SELECT dragonraft.remove_member(14, 5)$$, :'addr');
SELECT pg_temp.try($$SELECT dragonraft.promote_member(14, 1)$$, :'addr');
SELECT pg_temp.try($$SELECT dragonraft.promote_member(14, 5)$$, :'addr');

-- A non-voting member does not count towards the quorum: adding and removing one
-- commits with node 1 alone.  A removed node id is refused forever after.
SELECT dragonraft.add_member(14, 2, '127.0.0.1:9', false);
SELECT node_id, voting FROM dragonraft.members WHERE group_id = 14 ORDER BY node_id;
SELECT pg_temp.try($$SELECT dragonraft.add_member(14, 2, '127.0.0.1:9', false)$$, :'addr');
SELECT dragonraft.remove_member(14, 2);
SELECT node_id, voting FROM dragonraft.members WHERE group_id = 14 ORDER BY node_id;
SELECT pg_temp.try($$SELECT dragonraft.add_member(14, 2, '127.0.0.1:9')$$, :'addr');
SELECT pg_temp.try($$SELECT dragonraft.add_member(14, 2, '127.0.0.1:9', false)$$, :'addr');

-- A change that leaves no quorum that answers is refused unless forced: here a
-- second voter that does not answer (the way in is a non-voter, promoted once
-- it caught up).  A host with a colon needs brackets.
SELECT pg_temp.try($$SELECT dragonraft.add_member(14, 5, '127.0.0.1:9')$$, :'addr');
SELECT pg_temp.try($$SELECT dragonraft.add_member(14, 5, 'host:1:2', false)$$, :'addr');
SELECT pg_temp.try($$SELECT dragonraft.add_member(14, 5, '[::1:9', false)$$, :'addr');
SELECT node_id, voting FROM dragonraft.members WHERE group_id = 14 ORDER BY node_id;

-- Snapshots: the index, shown by dragonraft.status.
SELECT dragonraft.snapshot(14) AS snap \gset
SELECT :snap > 0 AS has_index,
       (SELECT snapshot_index FROM dragonraft.status WHERE group_id = 14) = :snap AS shown;
SELECT pg_temp.try($$SELECT dragonraft.snapshot(99)$$, :'addr');

-- Read barriers: the leader's commit index, applied here.
SELECT dragonraft.read_barrier(14) >= :snap AS barrier;
SELECT dragonraft.read_barrier(14) <= applied_index AS applied
  FROM dragonraft.status WHERE group_id = 14;
SELECT pg_temp.try($$SELECT dragonraft.read_barrier(99)$$, :'addr');
SELECT pg_temp.try($$SELECT dragonraft.read_barrier(0)$$, :'addr');

-- Log digests: one row over what this node's LogDB holds of a group's log in
-- a range (NULL bounds: all of it, clamped bounds beyond it); the same range
-- gives the same digest, another range another one.
SELECT d.group_id, d.first_index = 1 AS from_first, d.last_index = s.last_index AS to_last,
       d.last_term = s.term AS last_term, d.entries = d.last_index AS entries,
       d.digest ~ '^[0-9a-f]{64}$' AS hex
  FROM dragonraft.log_digest(14) d, dragonraft.status s WHERE s.group_id = 14;
SELECT * FROM dragonraft.log_digest(14, 2, 4) \gset r_
SELECT :'r_group_id' AS group_id, :'r_first_index' AS first_index,
       :'r_last_index' AS last_index, :'r_entries' AS entries;
SELECT digest = :'r_digest' AS same FROM dragonraft.log_digest(14, 2, 4);
SELECT digest <> :'r_digest' AS other_range FROM dragonraft.log_digest(14, 2, 3);
SELECT digest <> :'r_digest' AS other_start FROM dragonraft.log_digest(14, 1, 4);
SELECT first_index, last_index, entries FROM dragonraft.log_digest(14, NULL, 3);
SELECT first_index, entries = last_index AS all_held FROM dragonraft.log_digest(14, 0, 1000000);
SELECT first_index, entries FROM dragonraft.log_digest(14, 3, 3);
SELECT pg_temp.try($$SELECT dragonraft.log_digest(99)$$, :'addr');
SELECT pg_temp.try($$SELECT dragonraft.log_digest(0)$$, :'addr');
SELECT pg_temp.try($$SELECT dragonraft.log_digest(NULL)$$, :'addr');
SELECT pg_temp.try($$SELECT dragonraft.log_digest(14, -1)$$, :'addr');
SELECT pg_temp.try($$SELECT dragonraft.log_digest(14, NULL, -5)$$, :'addr');
SELECT pg_temp.try($$SELECT dragonraft.log_digest(14, 5, 4)$$, :'addr');
SELECT regexp_replace(pg_temp.try($$SELECT dragonraft.log_digest(14, 1000000)$$, :'addr'),
                      'holds 1\.\.[0-9]+', 'holds 1..<last>');
SELECT regexp_replace(pg_temp.try($$SELECT dragonraft.log_digest(14, 1000000, 2000000)$$, :'addr'),
                      'holds 1\.\.[0-9]+', 'holds 1..<last>');
SELECT pg_temp.try($$SELECT dragonraft.log_digest(14, NULL, 0)$$, :'addr');
-- For superusers and dragonraft_admin.
CREATE ROLE digest_nobody;
SET ROLE digest_nobody;
SELECT pg_temp.try($$SELECT dragonraft.log_digest(14)$$, :'addr');
RESET ROLE;
GRANT dragonraft_admin TO digest_nobody;
SET ROLE digest_nobody;
SELECT entries > 0 AS admin FROM dragonraft.log_digest(14);
RESET ROLE;

-- Table digests: group 14 has no table (no rows); errors with their SQLSTATE.
SELECT count(*) AS tables FROM dragonraft.table_digest(14);
SELECT pg_temp.try($$SELECT dragonraft.table_digest(99)$$, :'addr');
SELECT pg_temp.try($$SELECT dragonraft.table_digest(0)$$, :'addr');
SELECT pg_temp.try($$SELECT dragonraft.table_digest(NULL)$$, :'addr');
CREATE TEMP TABLE digest_wrote (x int);
BEGIN;
INSERT INTO digest_wrote VALUES (1);
SELECT pg_temp.try($$SELECT dragonraft.table_digest(14)$$, :'addr');
ROLLBACK;
SET ROLE digest_nobody;
SELECT count(*) AS admin FROM dragonraft.table_digest(14);
RESET ROLE;
REVOKE dragonraft_admin FROM digest_nobody;
SET ROLE digest_nobody;
SELECT pg_temp.try($$SELECT dragonraft.table_digest(14)$$, :'addr');
RESET ROLE;
SELECT count(*) AS digest_jobs FROM dragonraft.stat_progress_snapshot WHERE role = 'digest';
-- check_consistency: this member records the group's tables at the marker's
-- index (none: one row, relid NULL, rows 0); for dragonraft_admin only.
SELECT dragonraft.check_consistency(14) AS check_index \gset
SELECT pg_temp.wait_for(format('SELECT EXISTS (SELECT FROM dragonraft.consistency_checks '
                               'WHERE group_id = 14 AND log_index = %s)', :check_index));
SELECT relid, rows, digest, error FROM dragonraft.consistency_checks
 WHERE group_id = 14 AND log_index = :check_index;
SELECT command FROM dragonraft.ddl_history WHERE group_id = 14 AND index = :check_index;
SET ROLE digest_nobody;
SELECT pg_temp.try($$SELECT dragonraft.check_consistency(14)$$, :'addr');
SELECT pg_temp.try($$SELECT * FROM dragonraft.consistency_checks$$, :'addr');
SELECT pg_temp.try($$DELETE FROM dragonraft.consistency_checks$$, :'addr');
RESET ROLE;
-- Retention: each group keeps its last 100 checks (the insert of a check's
-- row deletes older ones); dragonraft_admin may delete rows.
INSERT INTO dragonraft.consistency_checks (group_id, log_index, relid, rows)
SELECT 99, i, t, 0 FROM generate_series(1, 105) i, (VALUES ('pg_class'::regclass), ('pg_proc')) v(t);
SELECT count(DISTINCT log_index) AS checks, min(log_index), max(log_index), count(*) AS rows
  FROM dragonraft.consistency_checks WHERE group_id = 99;
SELECT count(*) AS group_14_kept FROM dragonraft.consistency_checks
 WHERE group_id = 14 AND log_index = :check_index;
GRANT dragonraft_admin TO digest_nobody;
SET ROLE digest_nobody;
DELETE FROM dragonraft.consistency_checks WHERE group_id = 99 AND log_index < 50;
SELECT count(*) AS rows_left FROM dragonraft.consistency_checks WHERE group_id = 99;
DELETE FROM dragonraft.consistency_checks WHERE group_id = 99;
RESET ROLE;
REVOKE dragonraft_admin FROM digest_nobody;
DROP ROLE digest_nobody;

-- Node 3 (down) added as a non-voter, then promoted (refused: it never
-- answered; with force it is promoted): the change commits
-- under the old membership (node 1 alone), after which the group has no
-- quorum: a further change is refused (55000) or cannot complete (40003, it
-- may still apply: or 55000 once node 1 stepped down), a read barrier
-- fails, and the leader cannot leave.
SELECT dragonraft.add_member(14, 3, '127.0.0.1:9', false);
SELECT pg_temp.try($$SELECT dragonraft.promote_member(14, 3)$$, :'addr');
SELECT dragonraft.promote_member(14, 3, force => true);
SELECT node_id, voting FROM dragonraft.members WHERE group_id = 14 ORDER BY node_id;
SELECT pg_temp.try($$SELECT dragonraft.add_member(14, 4, '127.0.0.1:9')$$, :'addr') ~
       '^(55000: group 14 has no leader|55000: the membership change of node 4 would leave group 14 without a quorum|40003: the membership change of node 4 in group 14 did not complete: it may still apply)'
       AS refused;
SELECT pg_temp.try($$SELECT dragonraft.read_barrier(14)$$, :'addr') ~ '^55000' AS no_quorum;
SELECT pg_temp.try($$SELECT dragonraft.leave_group(14)$$, :'addr') ~ '^(55000|40003)'
       AS cannot_leave;

-- join_group: members must name another node; a node never added is not
-- contacted (after 20 election timeouts: its member is removed again).
SELECT pg_temp.try(format($$SELECT dragonraft.join_group(20, '{"1": "%s"}')$$, :'addr'), :'addr');
SELECT pg_temp.try($$SELECT dragonraft.join_group(20, '[2]')$$, :'addr');
SELECT pg_temp.try($$SELECT dragonraft.join_group(20, '{"2": "127.0.0.1:9"}')$$, :'addr');
SELECT count(*) AS left_behind FROM dragonraft.status WHERE group_id = 20;
SELECT count(*) AS origins FROM pg_replication_origin WHERE roname = 'dragonraft_20';
-- A member joins nothing twice.
SELECT dragonraft.join_group(14, '{"3": "127.0.0.1:9"}');
-- Given the same address again: nothing to say.  Another one replaces it
-- (the way to correct or move an address), with a WARNING naming both: a
-- typo there cuts this node off from node 3.
SELECT dragonraft.join_group(14, '{"3": "127.0.0.1:9"}');
SELECT dragonraft.join_group(14, '{"3": "127.0.0.1:10"}');
SELECT address FROM dragonraft.members WHERE group_id = 14 AND node_id = 3;
SELECT pg_temp.try($$SELECT dragonraft.leave_group(99)$$, :'addr');
-- Their effects do not roll back: membership functions are refused in a
-- transaction block (the group and its data are left as they were).
BEGIN;
SELECT dragonraft.leave_group(14, true);
ROLLBACK;
BEGIN;
SELECT dragonraft.add_member(14, 7, '127.0.0.1:9', false);
ROLLBACK;
BEGIN;
SELECT dragonraft.join_group(14, '{"3": "127.0.0.1:9"}');
ROLLBACK;
-- Savepoints of the block too, and a PL/pgSQL exception block inside it.
BEGIN;
SAVEPOINT s;
SELECT dragonraft.add_member(14, 7, '127.0.0.1:9', false);
ROLLBACK;
BEGIN;
DO $$BEGIN
  PERFORM dragonraft.leave_group(14, true);
EXCEPTION WHEN division_by_zero THEN NULL;
END$$;
ROLLBACK;
-- A block chained to the last one, and a procedure (it may roll back).
BEGIN;
COMMIT AND CHAIN;
SAVEPOINT s;
SELECT dragonraft.add_member(14, 7, '127.0.0.1:9', false);
ROLLBACK;
CREATE PROCEDURE add_then_roll_back() LANGUAGE plpgsql AS $$
BEGIN
  PERFORM dragonraft.add_member(14, 7, '127.0.0.1:9', false);
  ROLLBACK;
END$$;
CALL add_then_roll_back();
DROP PROCEDURE add_then_roll_back();
SELECT count(*) AS still_there FROM dragonraft.status WHERE group_id = 14;

-- Linearizable reads of tables that are not replicated cost nothing.
SET dragonraft.read_consistency = 'linearizable';
SELECT count(*) FROM dragonraft.member_info WHERE group_id = 14;
RESET dragonraft.read_consistency;

-- A node that left a group never becomes its member again under the same
-- node id (its vote and log are gone): create_group and join_group of it are
-- refused.  Group 21: node 1 with an unreachable second voter, so node 1 does
-- not lead it and leaves it with force.
SELECT dragonraft.create_group(21, jsonb_build_object('1', :'addr', '2', '127.0.0.1:9'));
SELECT pg_temp.try($$SELECT dragonraft.leave_group(21)$$, :'addr');
-- A leave whose effects on the catalog rolled back afterwards (here with a
-- subtransaction, or a query that fails after it) left a group without
-- LogDB data behind catalog rows that say it is there: leave_group must be
-- the whole statement (25001), and the group is left as it was.
DO $$BEGIN
  PERFORM dragonraft.leave_group(21, true);
  RAISE EXCEPTION 'undone';
EXCEPTION WHEN raise_exception THEN NULL;
END$$;
SELECT dragonraft.leave_group(21, true), 1 / (random() < 2)::int AS more;
SELECT * FROM dragonraft.leave_group(21, true);
SELECT dragonraft.leave_group(g, true) FROM generate_series(21, 21) g;
SELECT count(*) AS running FROM dragonraft.status WHERE group_id = 21;
SELECT count(*) AS origins FROM pg_replication_origin WHERE roname = 'dragonraft_21';
SELECT dragonraft.leave_group(21, force => true);
SELECT count(*) AS origins FROM pg_replication_origin WHERE roname = 'dragonraft_21';
SELECT group_id, node_id FROM dragonraft.left_groups ORDER BY 1, 2;
SELECT pg_temp.try(format($$SELECT dragonraft.create_group(21, '{"1": "%s", "2": "127.0.0.1:9"}')$$,
                          :'addr'), :'addr');
SELECT pg_temp.try($$SELECT dragonraft.join_group(21, '{"2": "127.0.0.1:9"}')$$, :'addr');
SELECT count(*) AS left_behind FROM dragonraft.status WHERE group_id = 21;
