-- Backends keep what capture() reads from the catalogs about a replicated
-- table (its registration, its columns' sequences) across transactions; a
-- change of dragonraft.replicated_tables or DDL on the table invalidates it.
SET statement_timeout = '60s';  -- a test that hangs fails instead
\set VERBOSITY sqlstate

SELECT dragonraft.execute(1, 'CREATE TABLE cached (id serial PRIMARY KEY, v int)') > 0 AS executed;
SELECT dragonraft.replicate_table('cached', 1);
INSERT INTO cached (v) VALUES (1);  -- this session now knows the table

-- A registration that no longer holds is seen at this session's next write
-- (39P01, trigger protocol violated: not table N of group 1).
UPDATE dragonraft.replicated_tables SET state = 'refused' WHERE relid = 'cached'::regclass;
INSERT INTO cached (v) VALUES (2);
UPDATE dragonraft.replicated_tables SET state = 'replicated' WHERE relid = 'cached'::regclass;
INSERT INTO cached (v) VALUES (3);

-- DDL through the log: the new column is shipped at the next write.
SELECT dragonraft.execute(1, 'ALTER TABLE cached ADD COLUMN w text DEFAULT ''x''') > 0 AS executed;
INSERT INTO cached (v, w) VALUES (4, 'y');
SELECT id, v, w FROM cached ORDER BY id;

-- COPY t TO reads a snapshot taken before any read barrier: refused under
-- 'linearizable' (0A000); COPY (SELECT ...) TO runs the barrier.
SET dragonraft.read_consistency = 'linearizable';
COPY cached TO STDOUT;
COPY (SELECT id, v, w FROM cached ORDER BY id) TO STDOUT;
RESET dragonraft.read_consistency;
COPY cached TO STDOUT;

-- Under 'linearizable', one read barrier per group per top-level statement:
-- the queries nested in it (foreign key checks, functions) reuse it when
-- their snapshot follows it.  dragonraft.read_barriers counts this session's.
CREATE TABLE cached_ref (id int PRIMARY KEY, c int REFERENCES cached (id));
SELECT dragonraft.execute(1, 'CREATE TABLE casc_p (id int PRIMARY KEY)') > 0 AS executed;
SELECT dragonraft.execute(1, 'CREATE TABLE casc_c (id int PRIMARY KEY, '
  || 'p int REFERENCES casc_p ON DELETE CASCADE)') > 0 AS executed;
SELECT dragonraft.replicate_table('casc_p', 1);
SELECT dragonraft.replicate_table('casc_c', 1);
INSERT INTO casc_p SELECT g FROM generate_series(1, 10) g;
INSERT INTO casc_c SELECT g, 1 + g % 10 FROM generate_series(1, 100) g;
CREATE FUNCTION pg_temp.v_of(int) RETURNS int LANGUAGE sql STABLE
  AS $$ SELECT v FROM cached WHERE id = $1 $$;
CREATE FUNCTION pg_temp.n() RETURNS bigint LANGUAGE plpgsql
  AS $$ BEGIN RETURN (SELECT count(*) FROM cached); END $$;
CREATE FUNCTION pg_temp.barriers() RETURNS int LANGUAGE sql
  AS $$ SELECT current_setting('dragonraft.read_barriers')::int $$;
SET dragonraft.read_consistency = 'linearizable';
SELECT pg_temp.barriers() AS b \gset
-- 100 foreign key checks of a local table's rows against a replicated table
INSERT INTO cached_ref SELECT g, 1 FROM generate_series(1, 100) g;
SELECT pg_temp.barriers() - :b AS fk_checks, pg_temp.barriers() AS b \gset
-- a cascade from a replicated table to another, 100 rows
DELETE FROM casc_p;
SELECT pg_temp.barriers() - :b AS cascade, pg_temp.barriers() AS b \gset
-- 100 calls of a STABLE function, and of a VOLATILE one, reading a replicated table
SELECT sum(pg_temp.v_of(1)) AS v, sum(pg_temp.n()) > 0 AS n FROM generate_series(1, 100);
SELECT pg_temp.barriers() - :b AS function_calls, pg_temp.barriers() AS b \gset
-- two statements: two barriers; a DO block is one statement
SELECT count(*) FROM cached;
SELECT count(*) FROM cached;
DO $$ BEGIN FOR i IN 1..10 LOOP PERFORM count(*) FROM cached; END LOOP; END $$;
SELECT pg_temp.barriers() - :b AS statements, pg_temp.barriers() AS b \gset
SELECT :fk_checks AS fk_checks, :cascade AS cascade, :function_calls AS function_calls,
       :statements AS statements;
-- In REPEATABLE READ the transaction's snapshot predates any barrier that a
-- statement runs: a foreign key check against a replicated table with it is
-- refused.  Not the checks of deleted keys, which read with the latest
-- snapshot (taken after the barrier), here a replicated table's references
-- to a local one: one barrier for 99 checks, and the key still referenced
-- is found.
BEGIN ISOLATION LEVEL REPEATABLE READ;
INSERT INTO cached_ref VALUES (101, 1);
ROLLBACK;
CREATE TABLE local_p (id int PRIMARY KEY);
INSERT INTO local_p SELECT g FROM generate_series(1, 100) g;
SELECT dragonraft.execute(1, 'CREATE TABLE cached_to_local (id int PRIMARY KEY, '
  || 'p int REFERENCES local_p)') > 0 AS executed;
SELECT dragonraft.replicate_table('cached_to_local', 1);
INSERT INTO cached_to_local VALUES (1, 1);
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT count(*) FROM local_p;
SELECT pg_temp.barriers() AS b \gset
DELETE FROM local_p WHERE id > 1;
SELECT pg_temp.barriers() - :b AS rr_checks;
DELETE FROM local_p WHERE id = 1;
ROLLBACK;
RESET dragonraft.read_consistency;
SELECT count(*) AS children FROM casc_c;

-- COPY's refusal names the table as the statement did, quoted where SQL
-- needs it: its hint is a statement to run.
SELECT dragonraft.execute(1, 'CREATE TABLE "Cached Odd" (id int PRIMARY KEY)') > 0 AS executed;
SELECT dragonraft.replicate_table('"Cached Odd"', 1);
SET dragonraft.read_consistency = 'linearizable';
\set VERBOSITY default
COPY "Cached Odd" TO STDOUT;
COPY public."Cached Odd" TO STDOUT;
\set VERBOSITY sqlstate
COPY (SELECT * FROM public."Cached Odd") TO STDOUT;
RESET dragonraft.read_consistency;
