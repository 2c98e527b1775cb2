/*
 * write.h - what the files of the write path share (DESIGN §4): capture
 * (capture.c), the commit path (xact.c), the hooks on utility commands and
 * the executor (utility.c), the apply of entries (apply_rows.c) and the SQL
 * functions on tables (sql_tables.c).
 */
#ifndef DRAGONRAFT_WRITE_H
#define DRAGONRAFT_WRITE_H

#include "dragonraft.h"

#include "access/xact.h"
#include "entry/entry.h"
#include "utils/guc.h"
#include "utils/rel.h"

/* Triggers that replicate_table installs; a table with the first is replicated.
 * Their arguments are the group id and the table id (decimal). */
#define DR_CAPTURE_TRIGGER  "dragonraft_capture"
#define DR_TRUNCATE_TRIGGER "dragonraft_capture_truncate"
/* On a table this member refused: every write fails (its arguments are
 * 'refused' and the group id). */
#define DR_REFUSED_TRIGGER "dragonraft_refused"

/* GUCs for tests only (superuser): fail the local commit after the entry
 * committed in the log; hold the local commit that many milliseconds. */
extern bool dr_testing_fail_local_commit;
extern int dr_testing_commit_delay;
/* For tests only: a commit's proposals meet backpressure for that many ms. */
extern int dr_testing_busy;
/* dragonraft.busy_timeout: how long a proposal that meets backpressure waits. */
extern int dr_busy_timeout;
extern int dr_max_apply_lock_delay;
/* dragonraft.apply_batch_delay: how long the apply worker keeps a follower's batch
 * open for more entries (apply_worker.c). */
extern int dr_apply_batch_delay;
extern int dr_leader_handoff_after;
/* This process is the apply worker: every utility command is allowed. */
extern bool dr_is_apply_worker;
/* > 0 while dragonraft itself runs DDL on a replicated table (its triggers). */
extern int dr_internal_ddl;
/* The group whose execute() tries its command in this backend (0: none):
 * that group's tables may change, other groups' may not (utility.c). */
extern uint64 dr_execute_group;
/* (table, function) pairs: a replicated table's owner may not call a function
 * members call as the owner when they apply its rows; after a statement (or
 * execute()'s command), new pairs fail it (utility.c) */
extern List *dr_owners_lacking(void);
extern void dr_check_owners_execute(List *before);
/* Note the relations made from now on (on), or stop; the oids noted since, in
 * creation order (in TopTransactionContext; a subtransaction rolled back leaves its own
 * in: check that they exist). */
extern void dr_utility_note_made(bool on);
extern List *dr_utility_made(void);

/*
 * A proposal of group_id met backpressure (ENGINE_ERR_BUSY: nothing was
 * proposed, and the cause clears by itself).  Sleeps a moment, interruptibly,
 * for the caller to propose again; raises 53000 once it has waited
 * dragonraft.busy_timeout since *since (0 at the first call), and 57014 once
 * statement_timeout has passed since the statement began.
 */
extern void dr_busy_wait(uint64 group_id, TimestampTz *since);
/* The caller's proposal was taken (or refused for good): the wait that
 * dr_busy_wait showed in dragonraft.busy_waits is over. */
extern void dr_busy_end(void);
/*
 * The error of a proposal of group_id that the engine refused at once and
 * that the caller does not word itself (ENGINE_ERR_TOO_BIG, _NO_GROUP,
 * DR_RC_NOT_TAKEN): nothing was proposed.  Returns for any other outcome.
 * what names the proposal: "transaction", "command".
 */
struct DrResult;
extern void dr_proposal_refused(const struct DrResult *res, uint64 group_id, const char *what);

/* Is rel replicated?  Its group and table id if so. */
extern bool dr_capture_rel_replicated(Relation rel, uint64 *group_id, uint64 *table_id);

/* ---- capture.c ---- */

/* The transaction's replicated writes, as the commit path sees them. */
typedef struct DrPending {
	uint64 group_id;
	uint64 term;         /* the term this node led at the first write */
	uint64 schema_index; /* the group's schema_index at the first write (DrGroup) */
	Oid registration;    /* replicate_table's table, InvalidOid for a change set */
	uint64 resend;       /* resend_table: the registration's table id; 0 otherwise */
} DrPending;

/* Does the transaction have anything to replicate?  (The fast path: one test.) */
extern bool dr_capture_pending(DrPending *p);
/* The ids of the tables the transaction wrote (palloc'd, *n of them); NULL
 * for a registration. */
extern uint64 *dr_capture_table_ids(int *n);
/* The first command of the TRUNCATE statement under way (utility.c), or
 * InvalidCommandId. */
extern CommandId dr_truncate_cid;
/* A write on a table that is not replicated (sync commit stays on). */
extern void dr_capture_note_other_write(void);
extern bool dr_capture_other_writes(void);
/* ExecutorStart, before any row is locked: the statement writes a table of
 * group_id (the first one checks that this node may write it), or only
 * locks rows of it (a leader waits until it applied its term's no-op). */
extern void dr_capture_begin(uint64 group_id);
extern void dr_capture_lock(uint64 group_id);
/* replicate_table: the transaction registers relid (locked) in group_id;
 * resend_table: again, as table id resend (0 for a new registration). */
extern void dr_capture_register(Oid relid, uint64 group_id, uint64 resend);
/* The entry of the transaction, palloc'd in the current context. */
extern uint8 *dr_capture_encode(const struct entry_owner *owner, Size *len);
/* Forget everything (end of transaction). */
extern void dr_capture_reset(void);
/* SubXactCallback: a rolled-back subtransaction's changes go. */
extern void dr_capture_subxact(SubXactEvent event, SubTransactionId my_subid,
                               SubTransactionId parent_subid);
/* The sequences a table owns (serial, identity) and their columns; the
 * sequence column att takes its values from: owned (one of owned), or the
 * one its default calls (nextval('some_seq')); InvalidOid if none. */
typedef struct DrOwnedSeq {
	Oid seq;
	AttrNumber att;
} DrOwnedSeq;
extern List *dr_owned_sequences(Oid relid);
extern Oid dr_column_sequence(Relation rel, AttrNumber att, List *owned);
extern void dr_capture_refuse_cycle(Relation rel);
/* Values that are OIDs of this node's objects (regclass, ...; pg_node_tree,
 * aclitem), or that no member can receive (a type with no send or receive
 * function, or one whose receive function refuses every value: pg_ndistinct,
 * ...), are refused in replicated tables, also in arrays, domains, composites
 * and ranges: dr_refused_type is the first such type a value of type holds. */
extern bool dr_type_is_local_oid(Oid type);
extern Oid dr_refused_type(Oid type);
/* The first type without a send function that a value of type holds. */
extern Oid dr_unsent_type(Oid type);
extern void dr_capture_refuse_type(const char *table, const char *column, Oid type, Oid rowtype);
extern Datum dr_capture_cycle_before(uint64 group_id, List **cycle);
extern void dr_capture_cycle_after(uint64 group_id, Datum known, List *cycle);
/* The error a follower's write gets (25006), naming the leader. */
extern void dr_capture_not_leader(uint64 group_id, uint64 leader) pg_attribute_noreturn();

/* ---- xact.c ---- */

/* Register the transaction callbacks (from _PG_init). */
extern void dr_xact_init(void);
/* First replicated write: the node must lead group_id and have applied its
 * term's no-op (waits for it, cancellable); returns the term.  lock_only (a
 * row lock, FOR UPDATE/SHARE): only a leader waits, nothing is refused. */
extern uint64 dr_xact_writable(uint64 group_id, bool lock_only);
extern void dr_xact_unknown_proposal(uint64 group_id, int delta, uint64 index);
/* The group's schema index as this backend sees it now (DrGroup.schema_index). */
extern uint64 dr_xact_schema_index(uint64 group_id);
/* For a backend waiting for the apply worker, checked at most once per
 * *next_check: true when the apply worker has waited deadlock_timeout for a
 * lock this backend holds (directly or through other lock waits), so this
 * backend must stop waiting; sessions that block it beyond
 * dragonraft.max_apply_lock_delay are cancelled, then terminated. */
extern bool dr_xact_unblock_apply(TimestampTz *next_check);
/* Hold cancels and timeouts off to the end of the transaction, for work whose
 * outcome is settled (a commit past its turn, a leave past the LogDB's
 * deletion): what comes meanwhile waits, and is void if it commits.  A FATAL
 * (pg_terminate_backend) still ends the session. */
extern void dr_xact_hold_cancels(void);
/* After HOLD_CANCEL_INTERRUPTS() over a short step past a settled outcome: resume,
 * and a cancel or timeout that came meanwhile is void.  Not after an ERROR. */
extern void dr_xact_void_held_cancels(void);

/* ---- utility.c ---- */

/* Install the ProcessUtility and ExecutorStart hooks (from _PG_init). */
extern void dr_utility_init(void);

/* Is this transaction a block the client began (BEGIN or START TRANSACTION),
 * as opposed to one statement's, even inside a savepoint of it? */
extern bool dr_utility_explicit_block(void);
/* Is a procedure (CALL) under way? */
extern bool dr_utility_in_call(void);

/* ---- apply_rows.c (apply worker) ---- */

/* Is this change set or registration (or resend) a live local backend's to apply?
 * (False for any other entry.) */
extern bool dr_apply_rows_owned(const struct entry_header *h);
/* Apply one entry of a group inside the open transaction. */
extern void dr_apply_rows_change_set(uint64 group_id, uint64 index, uint64 schema_index,
                                     const struct entry_header *h);
/* The group's last utility command in dragonraft.ddl_history that counts (0 if none): not
 * one skipped for another that came first (preempted_by), nor a barrier
 * (dr_sql_tables_barrier), as dr_apply_rows_ddl counts them; read from the end, with SPI
 * in the open transaction.  A change set or command whose try saw it reads no history. */
extern uint64 dr_apply_rows_last_command(uint64 group_id);
/* The same in a transaction of its own (an apply worker that starts a group). */
extern uint64 dr_apply_rows_schema_index(uint64 group_id);
/* Publish the schema index (applied: true) or one being applied (false). */
extern void dr_apply_rows_publish_schema(uint64 group_id, uint64 index, bool applied, uint64 table);
/* The last utility command of the group after index since and before index
 * before that changes one of tables[n] (any command: tables NULL); 0 if none.  A command
 * skipped for another that came first (ddl_history.preempted_by) changed none, nor did a
 * barrier (dr_sql_tables_barrier).  Reads
 * dragonraft.ddl_history with the active snapshot. */
extern uint64 dr_apply_rows_command_between(uint64 group_id, uint64 since, uint64 before,
                                            const uint64 *tables, int n);
/* A registration, or one sent again (skipped, as a change set is, when a command changed
 * its table after schema_index, the group's last command applied before it). */
extern void dr_apply_rows_register(uint64 group_id, uint64 index, uint64 schema_index,
                                   const struct entry_header *h);
/* A utility command (skipped when another command of the group came after what its try
 * saw, before it: schema_index is the group's last command applied before it).  Whether it
 * counts as the group's last command from now on: not when it was skipped so, nor a
 * barrier (dr_sql_tables_barrier): neither changed anything. */
extern bool dr_apply_rows_ddl(uint64 group_id, uint64 index, uint64 schema_index,
                              const struct entry_header *h);
/* At the apply worker's start: dragonraft's triggers made ENABLE ALWAYS. */
extern void dr_apply_rows_upgrade_triggers(void);
/* Before the apply transaction commits: close the tables kept open for its entries. */
extern void dr_apply_rows_close(void);
/* After a run of change sets (before any other entry, and before the commit):
 * the worker's own search_path again (a no-op after an abort). */
extern void dr_apply_rows_pin_path(void);
/* After a transaction (closed, or aborted): forget cached table ids and column maps
 * (they may have changed). */
extern void dr_apply_rows_forget(void);

/* ---- sql_tables.c ---- */

/* Install the capture triggers on relid and record it (table_id = its
 * registration's index); in the current transaction, SPI not connected. */
extern void dr_sql_tables_install(Oid relid, uint64 group_id, uint64 table_id);
/* The canonical definition of relid (CREATE statements), palloc'd. */
/* SPI connected, with a snapshot pushed when there is none (PRE_COMMIT). */
extern void dr_spi_begin(bool *pushed);

/* A switch of user for a while (SetUserIdAndSecContext), with a GUC nest
 * level of its own. */
typedef struct DrUserContext {
	Oid user;
	int sec;
	int nest;
} DrUserContext;

/* dragonraft's own catalog queries on behalf of a role that may not read its
 * tables: as the bootstrap superuser, in a security-restricted operation,
 * with search_path = pg_catalog, pg_temp (the role's search_path must not
 * resolve an operator or function of such a query: review 13 F0). */
extern void dr_as_superuser_begin(DrUserContext *s);
extern void dr_user_context_end(const DrUserContext *s);

/* User code that the apply worker or a snapshot's load runs on a table's
 * rows (triggers ENABLE ALWAYS or REPLICA, CHECK constraints, domain checks,
 * index expressions and predicates, generated columns) runs as the table's
 * owner, in a security-restricted operation, with the database's
 * search_path (with_path: set here; else the caller set it), as PostgreSQL
 * 16's apply worker runs it (run_as_owner off): not as the bootstrap
 * superuser these workers are (review 13 F6, review 14 R1). */
extern bool dr_fires_user_triggers(const TriggerDesc *td);
extern void dr_as_owner_begin(Relation rel, bool with_path, DrUserContext *s);
/* TRUNCATE relids together, as one command (foreign keys between them allow it
 * only so), with no index of them open here (as worker.c does); the user
 * triggers that fire run as their tables' owner, who must be one. */
extern void dr_truncate_tables(List *relids);
/* Whether table relid has a row (as the active snapshot sees it), read without
 * the planner: planning reads its indexes' expressions, running what of them is
 * constant as this superuser. */
extern bool dr_table_has_rows(Oid relid);

/* A background worker's own queries (as the bootstrap superuser) resolve
 * nothing through the database's search_path, which its owner sets (review
 * 13 F0): pinned to pg_catalog, pg_temp for the session, outside a
 * transaction.  The user code it runs runs with the database's
 * (dr_default_search_path: triggers, checks), or a command with the one its
 * entry carries (dr_command_search_path).  Values are sent and received in
 * the database's encoding and read as XML content, whatever ALTER DATABASE
 * or ALTER ROLE ... SET client_encoding or xmloption says. */
extern void dr_pin_worker_settings(void);
/* The settings (extra_float_digits, bytea_output, xmlbinary) that members compute a
 * row's stored generated columns and check its CHECK constraints with:
 * whether the session's give the same results, set them in a GUC nest level
 * of the caller's, and their text for a message. */
extern bool dr_row_settings_pinned(void);
extern void dr_set_row_settings(GucAction action);
extern const char *dr_row_settings_text(void);
/* Send functions write text in the client's encoding (pq_sendtext), and
 * every value in the log, a snapshot or a digest is in the database's:
 * sets the client encoding to the database's for a while, and returns the
 * one to put back with dr_client_encoding_restore (-1: it was the
 * database's already). */
extern int dr_client_encoding_db(void);
extern void dr_client_encoding_restore(int client);
extern void dr_default_search_path(void);
extern void dr_command_search_path(const char *search_path);
extern void dr_spi_end(bool pushed);
/* The first column of SPI's last result (oids, none NULL), as a list. */
extern List *dr_spi_oids(void);
extern char *dr_sql_tables_definition(Oid relid);
/* What relid has besides its definition (snapshot.h's DR_SNAP_EXTRAS), palloc'd. */
extern char *dr_sql_tables_extras(Oid relid);
/* A command of execute()'s raw parse trees, read as it runs (standard_conforming_strings
 * and backslash_quote on, not the session's or the member's own). */
extern List *dr_parse_command(const char *command);
/* Is command SELECTs of constants only (an execute() barrier, which changes nothing)? */
extern bool dr_sql_tables_barrier(const char *command);

/* ---- sql_groups.c ---- */

/* Raise an error unless this node runs its engine for this database. */
extern void dr_sql_groups_check_engine(void);
/* The one error (42704) for a group id this node has no group of (22023 for
 * one below 1): every SQL function that takes a group id and the write path
 * raise it; detail: NULL or a sentence to add. */
extern void dr_sql_groups_missing(int64 group_id, const char *detail) pg_attribute_noreturn();
/* The one error (55000) for a group this node has but does not run (its
 * member state failed or lost, or the engine no longer runs it); error: its
 * error from the shared status, or NULL/empty; detail: NULL or a sentence to
 * add. */
extern void dr_sql_groups_stopped(int64 group_id, const char *error, const char *detail)
        pg_attribute_noreturn();
/* For the engine's ENGINE_ERR_NO_GROUP: dr_sql_groups_missing, or
 * dr_sql_groups_stopped with its error when this node has the group. */
extern void dr_sql_groups_not_run(int64 group_id, const char *detail) pg_attribute_noreturn();
/* 55000 for a request whose engine worker exited before its outcome. */
extern void dr_sql_groups_engine_exited(void) pg_attribute_noreturn();
/* The group's member state (DrMemberState), apply failures and error (DR_ERROR_LEN
 * bytes) from its shared status; 42704 if this node does not have it. */
extern void dr_sql_groups_state(int64 group_id, uint8 *member_state, uint32 *apply_failures,
                                char *error);
/* The SQLSTATE of an engine outcome (enum engine_rc or DR_RC_*) that a function has no
 * words of its own for: XX000 only for what cannot happen (a bad request, a Raft core
 * error), the class of the state otherwise (55000 for a stopped engine or group). */
extern int dr_sql_groups_errcode(int rc);
/* The HINT for "engine worker is not running": when the next one starts (a damaged LogDB's
 * back-off, engine_retry_at, or the postmaster's few seconds). */
extern const char *dr_engine_restart_hint(void);
/* The client address node_id announced in group_id, or NULL. */
extern char *dr_sql_groups_client_address(int64 group_id, int64 node_id);
/* Refuse (0A000) what proposes text for every member to apply (what: the
 * function's name) while a member of group_id whose encoding and locale are
 * known has a database of another (encoding_only: another encoding, for a
 * barrier). */
extern void dr_sql_groups_check_locale(int64 group_id, const char *what, bool encoding_only);
/* Wait (bounded, cancellable) until this node's member info is committed in
 * group_id's log, so that what the caller proposes next follows it there
 * (55000 after 20 election timeouts); leader_only: 25006 at once on a node
 * that does not lead the group. */
extern void dr_sql_groups_wait_info(int64 group_id, const char *what, bool leader_only);
/* Refuse (0A000) add_member of node while its member info in a group where it
 * is a member here says another encoding or locale than this database's. */
extern void dr_sql_groups_check_new_member(int64 group_id, int64 node);
/* What of node_id's encoding and locale, as its member info of group_id
 * applied here says them, differs from this database's (dr_locale_differs);
 * NULL: nothing, or not known (*known says which).  In the apply worker's
 * batch (its own rows seen). */
extern char *dr_sql_groups_member_locale_differs(int64 group_id, uint32 node_id, bool *known);
/* Stop the apply (0A000) at a registration (command false) or a command
 * whose proposer's database, as its member info applied so far says it, has
 * another encoding or locale than this one; WARNING when none says it.  In
 * the apply worker (apply_worker.c). */
extern void dr_apply_check_proposer_locale(uint64 group_id, uint64 index, uint32 node_id,
                                           bool command);

#endif /* DRAGONRAFT_WRITE_H */
