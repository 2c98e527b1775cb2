-- Groups on one node (DESIGN §6): a single-member group elects itself.
CREATE EXTENSION dragonraft;

-- Wait (up to 60 s) until a query returns true.
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

-- Run a statement; its SQLSTATE, message, detail and hint, with this node's
-- address (its port is picked at start) shown as <this node>.
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

-- This node's Raft address (the port is picked at start).
SELECT raft_address AS addr FROM dragonraft.node_status() \gset
SELECT dragonraft.create_group(1, jsonb_build_object('1', :'addr'));
-- (The counters are copied from the engine at most every 100 ms.)
SELECT pg_temp.wait_for($$SELECT EXISTS (SELECT 1 FROM dragonraft.status s
  JOIN dragonraft.member_info i USING (group_id, node_id)
  JOIN dragonraft.stat_groups c USING (group_id)
  WHERE group_id = 1 AND role = 'leader' AND applied_index = commit_index
    AND c.commits >= s.commit_index)$$);

SELECT group_id, node_id, role, term > 0 AS has_term, leader_id,
       commit_index >= 3 AS committed, applied_index = commit_index AS all_applied,
       last_index = commit_index AS all_committed, snapshot_index, state,
       last_contact BETWEEN now() - interval '1 min' AND clock_timestamp() AS recent_contact,
       error
  FROM dragonraft.status;
SELECT m.group_id, m.node_id, m.address = :'addr' AS own_address,
       m.client_address = format('host=127.0.0.1 port=%s', current_setting('port')) AS client_address,
       m.voting, m.match_index = s.last_index AS matched, m.lag_entries,
       m.last_contact IS NOT NULL AS has_contact
  FROM dragonraft.members m JOIN dragonraft.status s USING (group_id);
SELECT group_id, node_id, since_index > 0 AS has_index FROM dragonraft.member_info;

-- The same call again changes nothing (scripts may retry it).
SELECT dragonraft.create_group(1, jsonb_build_object('1', :'addr'));
SELECT count(*) FROM dragonraft.status;

-- A transfer to the leader itself returns at once.
SELECT dragonraft.transfer_leader(1, 1);

-- Counters, and their reset.
SELECT group_id, proposals >= 1 AS proposed, commits >= 3 AS committed, unknown_outcomes,
       elections >= 1 AS elected, leader_changes >= 1 AS led, snapshots_sent,
       snapshots_received, bytes_sent, bytes_received, apply_errors,
       stats_reset <= now() AS reset_before
  FROM dragonraft.stat_groups;
SELECT dragonraft.stat_reset(1);
SELECT dragonraft.stat_reset(99);  -- not a group of this node: 42704
SELECT proposals, commits, elections, apply_errors,
       stats_reset > now() - interval '1 min' AS reset_recently
  FROM dragonraft.stat_groups;

-- Every object explains itself.
SELECT count(*) AS without_comment
  FROM pg_depend d
 WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'dragonraft')
   AND d.deptype = 'e'
   AND obj_description(d.objid, (SELECT relname FROM pg_class WHERE oid = d.classid)) IS NULL;

-- Errors, each with its SQLSTATE.
\set VERBOSITY default
SELECT pg_temp.try(format($$SELECT dragonraft.create_group(1, '{"1": "%s", "2": "127.0.0.1:7402"}')$$,
                          :'addr'), :'addr');
SELECT dragonraft.create_group(2, '[1, 2]');
\echo :LAST_ERROR_SQLSTATE
SELECT dragonraft.create_group(2, '"127.0.0.1:7401"');
\echo :LAST_ERROR_SQLSTATE
SELECT dragonraft.create_group(2, '{"1": "127.0.0.1:7401"');
\echo :LAST_ERROR_SQLSTATE
SELECT dragonraft.create_group(2, '{"one": "127.0.0.1:7401"}');
\echo :LAST_ERROR_SQLSTATE
SELECT dragonraft.create_group(2, '{"0": "127.0.0.1:7401"}');
\echo :LAST_ERROR_SQLSTATE
SELECT dragonraft.create_group(2, '{"-1": "127.0.0.1:7401"}');
\echo :LAST_ERROR_SQLSTATE
SELECT dragonraft.create_group(2, '{"1": 7401}');
\echo :LAST_ERROR_SQLSTATE
SELECT dragonraft.create_group(2, '{"1": "127.0.0.1"}');
\echo :LAST_ERROR_SQLSTATE
SELECT dragonraft.create_group(2, '{"1": "127.0.0.1:0"}');
\echo :LAST_ERROR_SQLSTATE
SELECT dragonraft.create_group(2, '{"1": "127.0.0.1:65536"}');
\echo :LAST_ERROR_SQLSTATE
SELECT dragonraft.create_group(2, '{"01": "127.0.0.1:7401"}');
\echo :LAST_ERROR_SQLSTATE
SELECT dragonraft.create_group(2, '{"1": "127.0.0.1 :7401"}');
\echo :LAST_ERROR_SQLSTATE
SELECT dragonraft.create_group(2, '{"1": "127.0.0.1\":7401"}');
\echo :LAST_ERROR_SQLSTATE
SELECT dragonraft.create_group(2, '{}');
\echo :LAST_ERROR_SQLSTATE
SELECT dragonraft.create_group(2, '{"2": "127.0.0.1:7402", "3": "127.0.0.1:7403"}');
\echo :LAST_ERROR_SQLSTATE
SELECT pg_temp.try($$SELECT dragonraft.create_group(2, '{"1": "127.0.0.1:1"}')$$, :'addr');
SELECT dragonraft.create_group(0, jsonb_build_object('1', :'addr'));
\echo :LAST_ERROR_SQLSTATE
SELECT dragonraft.create_group(2, jsonb_object_agg(n::text, '127.0.0.1:' || (7000 + n))
                                  || jsonb_build_object('1', :'addr'))
  FROM generate_series(2, 33) n;
\echo :LAST_ERROR_SQLSTATE
SELECT dragonraft.transfer_leader(99, 1);
\echo :LAST_ERROR_SQLSTATE
SELECT dragonraft.transfer_leader(1, 2);
\echo :LAST_ERROR_SQLSTATE

-- A member list too large for a request slot travels in a DSM segment: 32
-- members.  Without the other 31 (nobody listens there) there is no majority.
SELECT dragonraft.create_group(3, jsonb_object_agg(n::text,
         format('127.0.0.2:%s', 20000 + n))
         || jsonb_build_object('1', :'addr'))
  FROM generate_series(2, 32) n;
SELECT node_id, leader_id, state, error FROM dragonraft.status WHERE group_id = 3;
SELECT count(*) AS members, count(*) FILTER (WHERE address LIKE '127.0.0.2:%') AS others
  FROM dragonraft.members WHERE group_id = 3;
-- Retrying it is a no-op too, with the same members in another order.
SELECT dragonraft.create_group(3, jsonb_object_agg(n::text,
         format('127.0.0.2:%s', 20000 + n))
         || jsonb_build_object('1', :'addr'))
  FROM (SELECT n FROM generate_series(2, 32) n ORDER BY n DESC) s;
SELECT dragonraft.transfer_leader(3, 2);
\echo :LAST_ERROR_SQLSTATE

-- Administrators only; the views are for pg_monitor.
CREATE ROLE regress_dragonraft_user;
CREATE ROLE regress_dragonraft_monitor IN ROLE pg_monitor;
CREATE ROLE regress_dragonraft_admin IN ROLE dragonraft_admin;
SET ROLE regress_dragonraft_user;
SELECT dragonraft.create_group(1, jsonb_build_object('1', :'addr'));
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM dragonraft.status;
\echo :LAST_ERROR_SQLSTATE
SET ROLE regress_dragonraft_monitor;
SELECT count(*) FROM dragonraft.status;
SELECT count(*) FROM dragonraft.members;
SELECT count(*) FROM dragonraft.stat_groups;
SELECT node_id FROM dragonraft.node_status();
SELECT dragonraft.stat_reset();
\echo :LAST_ERROR_SQLSTATE
SET ROLE regress_dragonraft_admin;
SELECT dragonraft.create_group(1, jsonb_build_object('1', :'addr'));
SELECT dragonraft.transfer_leader(1, 1);
SELECT dragonraft.stat_reset();
RESET ROLE;
DROP ROLE regress_dragonraft_user, regress_dragonraft_monitor, regress_dragonraft_admin;

-- The extension is used from dragonraft.database only.
CREATE DATABASE regress_dragonraft_other;
\c regress_dragonraft_other
CREATE EXTENSION dragonraft;
SELECT dragonraft.create_group(4, '{"1": "127.0.0.1:7401"}');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM dragonraft.status;
\c contrib_regression
DROP DATABASE regress_dragonraft_other;
