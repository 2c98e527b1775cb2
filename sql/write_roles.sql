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
