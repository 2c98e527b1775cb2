-- dragonraft's own catalog queries on behalf of an ordinary role (at its
-- first write of a replicated table, at its COMMIT) run as the bootstrap
-- superuser; the role's search_path must not resolve their operators
-- (review 13 F0: an operator in a schema of the role's own ran as superuser,
-- and could make the role one).

SET statement_timeout = '60s';  -- a test that hangs fails instead
\set VERBOSITY terse

CREATE ROLE dr_plain LOGIN;
CREATE SCHEMA dr_own AUTHORIZATION dr_plain;
SELECT dragonraft.execute(1, 'CREATE TABLE roles_t (id int PRIMARY KEY);
                              GRANT INSERT, SELECT ON roles_t TO dr_plain') > 0 AS executed;
SELECT dragonraft.replicate_table('roles_t', 1);

SET ROLE dr_plain;
CREATE FUNCTION dr_own.eq8(bigint, bigint) RETURNS boolean LANGUAGE plpgsql AS $f$
BEGIN
  RAISE NOTICE 'dr_own.eq8 ran as %', current_user;
  RETURN $1 OPERATOR(pg_catalog.=) $2;
END $f$;
CREATE OPERATOR dr_own.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = dr_own.eq8);
SET search_path = dr_own, pg_catalog, public;
-- No notice: dragonraft's queries use pg_catalog's operators only.
INSERT INTO public.roles_t VALUES (1);
BEGIN;
INSERT INTO public.roles_t VALUES (2);
COMMIT;
RESET search_path;
RESET ROLE;
SELECT id FROM roles_t ORDER BY id;
SELECT rolsuper FROM pg_roles WHERE rolname = 'dr_plain';

-- Only an ordinary table of the caller's own joins a group (review 13 F8:
-- a system catalog's registration was committed in the log and stopped the
-- group's apply for good; a dragonraft_admin registered a table it had no
-- right to).  Nothing is proposed.
SELECT commit_index AS before FROM dragonraft.status WHERE group_id = 1 \gset
SELECT dragonraft.replicate_table('pg_catalog.pg_description', 1);
SELECT dragonraft.replicate_table('dragonraft.ddl_history', 1);
CREATE TABLE roles_secret (id int PRIMARY KEY);
CREATE ROLE dr_admin_plain IN ROLE dragonraft_admin;
SET ROLE dr_admin_plain;
SELECT dragonraft.replicate_table('roles_secret', 1);
RESET ROLE;
SELECT commit_index = :before AS nothing_proposed FROM dragonraft.status WHERE group_id = 1;
SELECT count(*) FROM dragonraft.tables WHERE relid = 'roles_secret'::regclass;
-- The group goes on.
INSERT INTO roles_t VALUES (3);
SELECT state FROM dragonraft.status WHERE group_id = 1;

-- A deferrable trigger that fires on apply cannot be replicated: members
-- fire a table's apply triggers as its owner in a security-restricted
-- operation, where PostgreSQL defers no trigger (review 14 R4).
CREATE TABLE roles_deferred (id int PRIMARY KEY);
CREATE FUNCTION roles_noop() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NULL; END';
CREATE CONSTRAINT TRIGGER roles_later AFTER INSERT ON roles_deferred
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION roles_noop();
ALTER TABLE roles_deferred ENABLE ALWAYS TRIGGER roles_later;
SELECT dragonraft.replicate_table('roles_deferred', 1);
ALTER TABLE roles_deferred ENABLE TRIGGER roles_later;
SELECT dragonraft.replicate_table('roles_deferred', 1);
