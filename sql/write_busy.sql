-- A busy group makes a writer wait, not fail (DESIGN §4): while the group's
-- log takes no entries for a moment (the LogDB shard near a write stall, too
-- many uncommitted entries, a snapshot being loaded) a commit waits and
-- proposes again, until dragonraft.busy_timeout or statement_timeout ends the
-- wait; nothing is proposed until the log takes the entry, so nothing twice.
-- dragonraft.testing_busy answers a commit's proposals "busy" for that long.

SET statement_timeout = '60s';  -- a test that hangs fails instead
\set VERBOSITY terse

SELECT dragonraft.execute(1, 'CREATE TABLE busy (id int PRIMARY KEY)') > 0 AS executed;
SELECT dragonraft.replicate_table('busy', 1);
SELECT commit_index AS before FROM dragonraft.status WHERE group_id = 1 \gset

-- The log takes entries again after 300 ms: each commit waits, then commits,
-- one entry each.
SET dragonraft.testing_busy = 300;
INSERT INTO busy VALUES (1);
BEGIN;
INSERT INTO busy VALUES (2);
INSERT INTO busy VALUES (3);
COMMIT;
SELECT id FROM busy ORDER BY id;
SELECT commit_index - :before AS entries FROM dragonraft.status WHERE group_id = 1;

-- Still busy after dragonraft.busy_timeout: 53000, nothing proposed.
SET dragonraft.testing_busy = 60000;
SET dragonraft.busy_timeout = 200;
INSERT INTO busy VALUES (4);
BEGIN;
INSERT INTO busy VALUES (5);
COMMIT;
-- 0 does not wait (the DETAIL says how long it waited).
SET dragonraft.busy_timeout = 0;
\set VERBOSITY default
INSERT INTO busy VALUES (6);
\set VERBOSITY terse
RESET dragonraft.busy_timeout;

-- statement_timeout ends the wait first (57014), the COMMIT's own too.
SET statement_timeout = 200;
INSERT INTO busy VALUES (7);
BEGIN;
INSERT INTO busy VALUES (8);
COMMIT;
SET statement_timeout = '60s';
RESET dragonraft.testing_busy;
-- dragonraft.busy_waits showed each wait, and none is left after its error.
SELECT count(*) AS busy_waits FROM dragonraft.busy_waits;

SELECT id FROM busy ORDER BY id;
SELECT commit_index - :before AS entries FROM dragonraft.status WHERE group_id = 1;
-- The log takes entries again.
INSERT INTO busy VALUES (9);
SELECT id FROM busy ORDER BY id;
