\echo Use "CREATE EXTENSION dragonraft" to load this file. \quit

GRANT USAGE ON SCHEMA @extschema@ TO PUBLIC;

-- This node's id and the state of its engine worker.
CREATE FUNCTION node_status(OUT node_id integer, OUT engine_state text,
                            OUT engine_pid integer, OUT engine_started timestamptz)
RETURNS record
AS 'MODULE_PATHNAME', 'dr_node_status'
LANGUAGE C STRICT VOLATILE;

REVOKE ALL ON FUNCTION node_status() FROM PUBLIC;
