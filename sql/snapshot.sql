-- Full snapshots (issue 14): their progress view and settings.
-- Nothing is exported or loaded on a single node.
SELECT count(*) FROM dragonraft.stat_progress_snapshot;
SELECT column_name, data_type FROM information_schema.columns
 WHERE table_schema = 'dragonraft' AND table_name = 'stat_progress_snapshot'
 ORDER BY ordinal_position;
\set VERBOSITY sqlstate
-- For monitors and dragonraft_admin only.
CREATE ROLE snap_nobody;
SET ROLE snap_nobody;
SELECT * FROM dragonraft.stat_progress_snapshot;
SELECT * FROM dragonraft.stat_progress_snapshot();
RESET ROLE;
GRANT pg_monitor TO snap_nobody;
SET ROLE snap_nobody;
SELECT count(*) FROM dragonraft.stat_progress_snapshot;
-- The test pause is a superuser's.
SET dragonraft.testing_snapshot_delay = 1000;
RESET ROLE;
DROP ROLE snap_nobody;
SET dragonraft.testing_snapshot_delay = -1;
SET dragonraft.testing_snapshot_delay = 1000;
RESET dragonraft.testing_snapshot_delay;
-- The LogDB's memory is set at server start.
SET dragonraft.logdb_memtable_budget = '64MB';
SHOW dragonraft.logdb_memtable_budget;
