-- The write path on one node (DESIGN §4): execute, replicate_table, every
-- DML form, savepoints and rollbacks, and every refusal with its SQLSTATE.
-- Group 1 (groups.sql) has this node as its only member and leader.
--
-- What a transaction captured is shown by failing its local commit on
-- purpose (dragonraft.testing_fail_local_commit): its change set is then
-- committed in the log but not applied by the backend, and the apply worker
-- applies it from the log, as a follower would.

SET statement_timeout = '60s';  -- a test that hangs fails instead
\set VERBOSITY terse

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

-- Run statements; the SQLSTATE, message, detail and hint of their error.
-- (Errors outside it show their message only: VERBOSITY terse.)
CREATE FUNCTION pg_temp.try(cmd text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  st text; msg text; det text; hint text;
BEGIN
  EXECUTE cmd;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
                          det = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
  -- Log indexes depend on how many entries came before: shown as N.
  RETURN regexp_replace(concat_ws(E'\n', st || ': ' || msg, 'DETAIL: ' || nullif(det, ''),
                                  'HINT: ' || nullif(hint, '')),
                        '(entry|index) [0-9]+', '\1 N', 'gi');
END $$;

-- Every entry of group 1 proposed so far applied here: execute() proposes one
-- more and returns once it is applied, and entries apply in log order.
CREATE FUNCTION pg_temp.caught_up() RETURNS void LANGUAGE sql AS $$
  SELECT FROM dragonraft.execute(1, 'SELECT 1')
$$;
SELECT pg_temp.wait_for($$SELECT applied_index = commit_index AND role = 'leader'
                          FROM dragonraft.status WHERE group_id = 1$$);

-- The example of the issue.
SELECT dragonraft.execute(1, 'CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL, balance numeric DEFAULT 0)') > 0 AS executed;
SELECT dragonraft.replicate_table('accounts', 1);
INSERT INTO accounts VALUES (1, 'ann', 100), (2, 'bob', 50);
BEGIN;
UPDATE accounts SET balance = balance - 10 WHERE id = 1;
UPDATE accounts SET balance = balance + 10 WHERE id = 2;
COMMIT;
SELECT * FROM accounts ORDER BY id;
SELECT relid, group_id, since_index > 0 AS has_index, state, detail FROM dragonraft.tables;
SELECT group_id, index > 0 AS has_index, command FROM dragonraft.ddl_history
 WHERE command <> 'SELECT 1';
SELECT node_id, client_address = format('host=127.0.0.1 port=%s', current_setting('port')) AS own_address
  FROM dragonraft.leader(1);
SELECT xact_commits >= 2 AS counted FROM dragonraft.stat_groups WHERE group_id = 1;

-- A table with a serial key, a generated column, a TOASTed value.
SELECT dragonraft.execute(1, $$CREATE TABLE items (
  id serial PRIMARY KEY, name text NOT NULL UNIQUE, qty int NOT NULL DEFAULT 1,
  doubled int GENERATED ALWAYS AS (qty * 2) STORED, note text)$$) > 0 AS executed;
INSERT INTO items (name) VALUES ('before');  -- before replicate_table: carried as a row
SELECT dragonraft.replicate_table('items', 1);

-- Each form below commits in the log, fails locally, and is applied from the log.
SET dragonraft.testing_fail_local_commit = on;
SELECT pg_temp.try($$INSERT INTO items (name, qty, note) VALUES ('a', 3, repeat('x', 100000))$$);
SELECT pg_temp.caught_up();
SELECT id, name, qty, doubled, length(note) AS note_len FROM items ORDER BY id;
-- (Until the entry of a failed commit is applied here, writes of its group fail
-- with 40001: their reads may predate it.  caught_up() waits for it.)
SELECT pg_temp.try($$UPDATE items SET qty = 5 WHERE name = 'a'$$);
SELECT pg_temp.caught_up();
SELECT pg_temp.try($$UPDATE items SET id = 10 WHERE name = 'before'$$);  -- the key changes
SELECT pg_temp.caught_up();
SELECT pg_temp.try($$INSERT INTO items (name) VALUES ('a'), ('b')
                     ON CONFLICT (name) DO UPDATE SET qty = items.qty + 1$$);
SELECT pg_temp.caught_up();
SELECT id, name, qty, doubled, length(note) AS note_len FROM items ORDER BY id;
SELECT pg_temp.try($$DELETE FROM items WHERE name = 'b'$$);
SELECT pg_temp.caught_up();
SELECT pg_temp.try($$COPY items (name, qty) FROM PROGRAM 'printf "c\t7\nd\t8\n"'$$);
SELECT pg_temp.caught_up();
SELECT id, name, qty, doubled FROM items ORDER BY id;
-- MERGE (its update, delete and insert actions) and a data-modifying WITH.
SELECT pg_temp.try($$MERGE INTO items i
                     USING (VALUES ('c', 1), ('d', 0), ('f', 9), ('g', 4)) AS v(name, q)
                     ON i.name = v.name
                     WHEN MATCHED AND v.q = 0 THEN DELETE
                     WHEN MATCHED THEN UPDATE SET qty = i.qty + v.q
                     WHEN NOT MATCHED THEN INSERT (id, name, qty) VALUES (20 + v.q, v.name, v.q)$$);
SELECT pg_temp.caught_up();
SELECT pg_temp.try($$WITH gone AS (DELETE FROM items WHERE name = 'g' RETURNING name, qty)
                     INSERT INTO items (id, name, qty) SELECT 30, name || '2', qty * 10 FROM gone$$);
SELECT pg_temp.caught_up();
SELECT id, name, qty, doubled FROM items ORDER BY id;
-- A sequence never goes back: the next id is above every id the log holds.
RESET dragonraft.testing_fail_local_commit;
INSERT INTO items (name) VALUES ('e') RETURNING id > 4 AS above;

-- Writes by triggers and functions are captured too.
CREATE FUNCTION pg_temp.bump(n text) RETURNS void LANGUAGE sql AS
  $$UPDATE items SET qty = qty + 100 WHERE name = n$$;
SET dragonraft.testing_fail_local_commit = on;
SELECT pg_temp.try($$SELECT pg_temp.bump('c')$$);
SELECT pg_temp.caught_up();
SELECT name, qty FROM items WHERE name = 'c';

-- Savepoints: only what commits is replicated, as one entry.
SELECT commit_index AS before FROM dragonraft.status WHERE group_id = 1 \gset
BEGIN;
INSERT INTO accounts VALUES (3, 'cy', 1);
SAVEPOINT s;
INSERT INTO accounts VALUES (4, 'dee', 1);
ROLLBACK TO s;
SAVEPOINT t;
INSERT INTO accounts VALUES (5, 'eve', 1);
RELEASE t;
COMMIT;
SELECT pg_temp.caught_up();
SELECT * FROM accounts ORDER BY id;
SELECT commit_index - :before AS entries FROM dragonraft.status WHERE group_id = 1;
-- A transaction whose replicated writes all rolled back proposes nothing.
SELECT commit_index AS before FROM dragonraft.status WHERE group_id = 1 \gset
BEGIN;
SAVEPOINT s;
UPDATE accounts SET balance = 0;
ROLLBACK TO s;
COMMIT;
BEGIN;
DELETE FROM accounts;
ROLLBACK;
SELECT commit_index - :before AS entries FROM dragonraft.status WHERE group_id = 1;

-- TRUNCATE is a data change.
SELECT pg_temp.try($$TRUNCATE accounts$$);
SELECT pg_temp.caught_up();
SELECT count(*) FROM accounts;
RESET dragonraft.testing_fail_local_commit;
SELECT xact_unknown AS unknown FROM dragonraft.stat_groups WHERE group_id = 1;

-- A table without replica identity takes INSERTs only, as for a publication.
SELECT dragonraft.execute(1, 'CREATE TABLE events (at int, what text)') > 0 AS executed;
SELECT dragonraft.replicate_table('events', 1);
INSERT INTO events VALUES (1, 'start');
SELECT pg_temp.try($$UPDATE events SET what = 'x'$$);
SELECT pg_temp.try($$DELETE FROM events$$);
-- REPLICA IDENTITY FULL carries the whole old row.
SELECT dragonraft.execute(1, 'ALTER TABLE events REPLICA IDENTITY FULL') > 0 AS executed;
SET dragonraft.testing_fail_local_commit = on;
SELECT pg_temp.try($$UPDATE events SET what = 'started' WHERE at = 1$$);
RESET dragonraft.testing_fail_local_commit;
SELECT pg_temp.caught_up();
SELECT * FROM events;

-- Values travel in the database's encoding (UTF8 here), whatever the
-- session's client_encoding: a LATIN1 session's 'café' in text, jsonb, an
-- array and XML is applied from the log as it was written.
SELECT dragonraft.execute(1, 'CREATE TABLE notes (id int PRIMARY KEY, t text, j jsonb, a text[], x xml)') > 0 AS executed;
SELECT dragonraft.replicate_table('notes', 1);
SET client_encoding = 'LATIN1';
SET dragonraft.testing_fail_local_commit = on;
SELECT pg_temp.try($$INSERT INTO notes SELECT 1, c, jsonb_build_object(c, c), ARRAY[c], xmlelement(name n, c)
                       FROM convert_from('\x636166c3a9', 'UTF8') AS c$$);
SELECT pg_temp.caught_up();
RESET client_encoding;
SELECT id, t, j, a, x, convert_to(t, 'UTF8') AS bytes FROM notes;
-- The apply worker reads values in the database's encoding, and XML as
-- content, whatever the database's settings say.
ALTER DATABASE contrib_regression SET client_encoding = 'LATIN1';
ALTER DATABASE contrib_regression SET xmloption = 'document';
-- (nor make its transactions read-only or serializable, nor time them out)
ALTER DATABASE contrib_regression SET default_transaction_read_only = on;
ALTER DATABASE contrib_regression SET default_transaction_isolation = 'serializable';
SELECT count(pg_terminate_backend(pid, 60000)) AS apply_workers_ended
  FROM pg_stat_activity WHERE backend_type = 'dragonraft apply';
SELECT pg_temp.try($$INSERT INTO notes SELECT 2, c FROM convert_from('\x636166c3a9', 'UTF8') AS c$$);
SELECT pg_temp.caught_up();
SELECT pg_temp.try($$INSERT INTO notes (id, x) VALUES (3, 'a<b/>')$$);
SELECT pg_temp.caught_up();
ALTER DATABASE contrib_regression RESET client_encoding;
ALTER DATABASE contrib_regression RESET xmloption;
ALTER DATABASE contrib_regression RESET default_transaction_read_only;
ALTER DATABASE contrib_regression RESET default_transaction_isolation;
RESET dragonraft.testing_fail_local_commit;
SELECT id, t, x, convert_to(t, 'UTF8') AS bytes FROM notes WHERE id > 1 ORDER BY id;
SELECT state, error FROM dragonraft.status WHERE group_id = 1;

-- Refusals, each with its SQLSTATE.
-- Direct DDL on a replicated table (0A000); TRUNCATE and execute() are fine.
SELECT pg_temp.try($$ALTER TABLE accounts ADD COLUMN x int$$);
SELECT pg_temp.try($$DROP TABLE accounts$$);
SELECT pg_temp.try($$CREATE INDEX ON accounts (owner)$$);
SELECT pg_temp.try($$ALTER TABLE accounts RENAME TO acc$$);
-- A command that fails on the calling node is refused with its own SQLSTATE
-- (42P01) and never enters the log.
SELECT dragonraft.execute(1, 'ALTER TABLE no_such_table ADD COLUMN y int');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM dragonraft.ddl_history WHERE command LIKE '%no_such_table%';

-- execute() in a transaction block, or after a write of its transaction
-- (25001): the apply of the command may wait for this transaction's locks,
-- and a ROLLBACK could not undo it on the members.
BEGIN;
SELECT pg_temp.try($$SELECT dragonraft.execute(1, 'CREATE TABLE in_block (k int)')$$);
ROLLBACK;
DO $$BEGIN
  CREATE TEMP TABLE w (k int);
  PERFORM dragonraft.execute(1, 'CREATE TABLE in_block (k int)');
END$$;
SELECT count(*) FROM dragonraft.ddl_history WHERE command LIKE '%in_block%';
-- SERIALIZABLE writes (0A000).
BEGIN ISOLATION LEVEL SERIALIZABLE;
SELECT pg_temp.try($$INSERT INTO accounts VALUES (9, 'x', 0)$$);
ROLLBACK;
-- PREPARE TRANSACTION with replicated writes (0A000).
BEGIN;
INSERT INTO accounts VALUES (9, 'x', 0);
PREPARE TRANSACTION 'dr';
\echo :LAST_ERROR_SQLSTATE
-- A change set over dragonraft.max_entry_size (54000; 1MB here).
SELECT pg_temp.try($$INSERT INTO accounts SELECT g, repeat('y', 1000), 0 FROM generate_series(10, 2000) g$$);
-- replicate_table of a table whose rows exceed it (54000, with a hint).
CREATE TABLE big AS SELECT g AS id, repeat('z', 1000) AS pad FROM generate_series(1, 2000) g;
SELECT pg_temp.try($$SELECT dragonraft.replicate_table('big', 1)$$);
-- replicate_table of a table whose rows fit, but not with what it has
-- besides its definition (a long comment here: the entry carries it).
CREATE TABLE wordy (id int PRIMARY KEY);
INSERT INTO wordy VALUES (1);
DO $$BEGIN EXECUTE format('COMMENT ON TABLE wordy IS %L', repeat('w', 1100000)); END$$;
SELECT dragonraft.replicate_table('wordy', 1);
SELECT count(*) AS wordy_replicated FROM dragonraft.tables WHERE relid = 'wordy'::regclass;
DROP TABLE wordy;
SELECT pg_temp.try($$SELECT dragonraft.replicate_table('accounts', 1)$$);
SELECT pg_temp.try($$SELECT dragonraft.replicate_table('dragonraft.status', 1)$$);
-- resend_table: of a table that is not replicated (55000), of a view (42809),
-- and of a replicated one: the rows stay as they were (a single member has
-- the table already).
SELECT pg_temp.try($$SELECT dragonraft.resend_table('big')$$);
SELECT pg_temp.try($$SELECT dragonraft.resend_table('dragonraft.status')$$);
SELECT count(*) AS items_before FROM items;
SELECT dragonraft.resend_table('items');
SELECT count(*) AS items_after FROM items;
-- Two groups in one transaction (0A000).
SELECT raft_address AS addr FROM dragonraft.node_status() \gset
SELECT dragonraft.create_group(7, jsonb_build_object('1', :'addr'));
SELECT pg_temp.wait_for($$SELECT role = 'leader' AND applied_index = commit_index
                            FROM dragonraft.status WHERE group_id = 7$$);
SELECT dragonraft.execute(7, 'CREATE TABLE other (k int PRIMARY KEY)') > 0 AS executed;
SELECT dragonraft.replicate_table('other', 7);
BEGIN;
INSERT INTO accounts VALUES (20, 'z', 0);
SELECT pg_temp.try($$INSERT INTO other VALUES (1)$$);
ROLLBACK;
-- A group whose leader is unknown: the first write fails at once (25006).
SELECT dragonraft.create_group(8, jsonb_build_object('1', :'addr', '2', '127.0.0.1:9'));
SELECT pg_temp.try($$SELECT dragonraft.replicate_table('big', 8)$$);
SELECT * FROM dragonraft.leader(8);
-- Unknown group: every function says it alike (42704, one message and hint),
-- but leader(), which routes writes, answers NULL as for a group without one.
SELECT pg_temp.try($$SELECT dragonraft.execute(99, 'SELECT 1')$$);
SELECT pg_temp.try($$SELECT dragonraft.replicate_table('big', 99)$$);
SELECT pg_temp.try($$SELECT dragonraft.skip_command(99, 1)$$);
SELECT pg_temp.try($$SELECT dragonraft.check_consistency(99)$$);
SELECT * FROM dragonraft.leader(99);
-- An id below 1 is no group id (22023), as for create_group and read_barrier.
SELECT pg_temp.try($$SELECT dragonraft.execute(0, 'SELECT 1')$$);
SELECT pg_temp.try($$SELECT dragonraft.skip_command(-1, 1)$$);
-- A transaction that writes no replicated table is untouched.
INSERT INTO big VALUES (0, 'plain');
SELECT count(*) FROM big;

-- Privileges: replicate_table and execute are administrative.
CREATE ROLE regress_dragonraft_writer;
GRANT USAGE ON SCHEMA public TO regress_dragonraft_writer;
GRANT ALL ON accounts TO regress_dragonraft_writer;
SET ROLE regress_dragonraft_writer;
SELECT dragonraft.execute(1, 'SELECT 1');
\echo :LAST_ERROR_SQLSTATE
INSERT INTO accounts VALUES (30, 'writer', 0);
RESET ROLE;
SELECT id, owner FROM accounts WHERE id = 30;
DROP OWNED BY regress_dragonraft_writer;
DROP ROLE regress_dragonraft_writer;

-- execute() runs the command as the role that proposed it, with that role's
-- privileges on every member (review 2, #16), and takes utility commands only.
CREATE ROLE regress_dragonraft_admin;
GRANT dragonraft_admin TO regress_dragonraft_admin;
CREATE SCHEMA regress_admin_space AUTHORIZATION regress_dragonraft_admin;
SET ROLE regress_dragonraft_admin;
SELECT dragonraft.execute(1, 'ALTER ROLE regress_dragonraft_admin SUPERUSER');
\echo :LAST_ERROR_SQLSTATE
SELECT dragonraft.execute(1, 'CREATE TABLE regress_admin_space.owned (id int PRIMARY KEY)') > 0 AS executed;
SELECT dragonraft.execute(1, 'ALTER TABLE accounts ADD COLUMN note text');
\echo :LAST_ERROR_SQLSTATE
SELECT dragonraft.execute(1, 'SET ROLE dragonraft_admin');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT rolsuper FROM pg_roles WHERE rolname = 'regress_dragonraft_admin';
SELECT relowner::regrole FROM pg_class WHERE oid = 'regress_admin_space.owned'::regclass;
SELECT role, command FROM dragonraft.ddl_history
 WHERE role = 'regress_dragonraft_admin' ORDER BY index;
-- A SET in a command ends with it: the apply worker's settings stay.
SELECT dragonraft.execute(1, 'SET search_path = nowhere') > 0 AS executed;
SELECT dragonraft.execute(1, 'CREATE TABLE after_set (id int)') > 0 AS executed;
SELECT 'public.after_set'::regclass;
-- Commands that change rows, read tables or run code are refused.
SELECT dragonraft.execute(1, 'INSERT INTO accounts VALUES (40, ''x'', 0)');
\echo :LAST_ERROR_SQLSTATE
SELECT dragonraft.execute(1, 'CREATE TABLE c (a int); UPDATE accounts SET balance = 0');
\echo :LAST_ERROR_SQLSTATE
SELECT dragonraft.execute(1, 'SELECT count(*) FROM accounts');
\echo :LAST_ERROR_SQLSTATE
SELECT dragonraft.execute(1, 'SELECT now()');
\echo :LAST_ERROR_SQLSTATE
SELECT dragonraft.execute(1, 'DO $do$BEGIN END$do$');
\echo :LAST_ERROR_SQLSTATE
SELECT dragonraft.execute(1, 'TRUNCATE accounts');
\echo :LAST_ERROR_SQLSTATE
SELECT dragonraft.execute(1, 'CREATE TABLE copy AS SELECT * FROM accounts');
\echo :LAST_ERROR_SQLSTATE
SELECT dragonraft.execute(1, 'EXPLAIN ANALYZE DELETE FROM accounts');
\echo :LAST_ERROR_SQLSTATE
SELECT dragonraft.execute(1, 'SELEC 1');
\echo :LAST_ERROR_SQLSTATE
SELECT dragonraft.execute(1, 'SELECT 1, ''barrier''') > 0 AS executed;
SELECT count(*) FROM accounts WHERE id = 40;
DROP TABLE regress_admin_space.owned;
DROP SCHEMA regress_admin_space;
DROP ROLE regress_dragonraft_admin;

-- Which replicated tables a command changes (ddl_history.tables, NULL: any
-- table of the group): a writer's change set is skipped only behind one
-- that changes its tables.
CREATE TABLE inh_parent (id int);
CREATE TABLE inh_kid () INHERITS (inh_parent);
SELECT dragonraft.execute(1, 'ALTER TABLE public.accounts ADD COLUMN memo text') > 0 AS executed;
SELECT dragonraft.execute(1, 'CREATE INDEX ON public.accounts (memo)') > 0 AS executed;
SELECT dragonraft.execute(1, 'ALTER TABLE accounts DROP COLUMN memo') > 0 AS executed;
SELECT dragonraft.execute(1, 'CREATE TABLE public.plain (id int)') > 0 AS executed;
SELECT dragonraft.execute(1, 'DROP TABLE public.plain') > 0 AS executed;
SELECT dragonraft.execute(1, 'ALTER TABLE public.inh_parent ADD COLUMN w int') > 0 AS executed;
SELECT dragonraft.execute(1, 'CREATE TABLE public.t1 (a int); CREATE TABLE public.t2 (a int)') > 0 AS executed;
-- A barrier (SELECTs of constants only) changes none; one statement more
-- that is not makes the command count.
SELECT dragonraft.execute(1, 'SELECT 1; SELECT ''barrier'', NULL') > 0 AS executed;
SELECT dragonraft.execute(1, 'SET search_path = public; SELECT 1') > 0 AS executed;
SELECT command,
       CASE WHEN tables IS NULL THEN 'any'
            WHEN tables = '{}' THEN 'none'
            WHEN tables = ARRAY[(SELECT table_id FROM dragonraft.replicated_tables
                                  WHERE relid = 'accounts'::regclass)] THEN 'accounts'
       END AS changes
  FROM dragonraft.ddl_history
 WHERE group_id = 1 AND index > (SELECT max(index) FROM dragonraft.ddl_history
                                  WHERE command LIKE 'SELECT 1, %')
 ORDER BY index;
DROP TABLE inh_kid, inh_parent, t1, t2;
