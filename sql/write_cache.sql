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
