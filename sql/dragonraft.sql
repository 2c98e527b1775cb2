-- The library is preloaded: the engine worker runs and shows in pg_stat_activity.
DO $$
DECLARE
  deadline timestamptz := clock_timestamp() + interval '60 s';
BEGIN
  WHILE NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE backend_type = 'dragonraft engine') LOOP
    IF clock_timestamp() > deadline THEN
      RAISE EXCEPTION 'the dragonraft engine worker did not appear in pg_stat_activity within 60 s';
    END IF;
    PERFORM pg_sleep(0.05);
    PERFORM pg_stat_clear_snapshot();
  END LOOP;
END $$;

CREATE EXTENSION dragonraft;
-- The worker connects to dragonraft.database, which pg_regress creates after
-- the server started: the postmaster starts the worker again until it exists.
DO $$
DECLARE
  deadline timestamptz := clock_timestamp() + interval '60 s';
BEGIN
  WHILE (SELECT engine_state FROM dragonraft.node_status()) <> 'running' LOOP
    IF clock_timestamp() > deadline THEN
      RAISE EXCEPTION 'the dragonraft engine worker did not start within 60 s';
    END IF;
    PERFORM pg_sleep(0.05);
  END LOOP;
END $$;
SELECT extname, extversion, nspname
  FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
 WHERE extname = 'dragonraft';

-- node_status() agrees with pg_stat_activity about the worker.
SELECT s.node_id, s.engine_state, s.engine_pid = a.pid AS same_pid,
       s.engine_started <= now() AS started_before_now
  FROM dragonraft.node_status() s
  JOIN pg_stat_activity a ON a.backend_type = 'dragonraft engine';

-- GUCs: defaults, values from the config file, and bad input rejected.
SHOW dragonraft.node_id;
SHOW dragonraft.listen_address;
SHOW dragonraft.rtt_ms;
SHOW dragonraft.max_entry_size;
SHOW dragonraft.read_consistency;
SET dragonraft.read_consistency = 'linearizable';
SHOW dragonraft.read_consistency;
RESET dragonraft.read_consistency;
SET dragonraft.read_consistency = 'eventual';
SET dragonraft.node_id = 2;
SET dragonraft.no_such_setting = 1;

-- node_status() is for superusers and those granted it.
CREATE ROLE dragonraft_regress_user;
SET ROLE dragonraft_regress_user;
SELECT node_id FROM dragonraft.node_status();
RESET ROLE;
DROP ROLE dragonraft_regress_user;

DROP EXTENSION dragonraft;
