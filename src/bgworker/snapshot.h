/*
 * snapshot.h - full snapshots of a group's tables (DESIGN §9): the file a
 * leader exports for a member that needs compacted entries or joins
 * (snapshot_export.c, a dynamic background worker), the load of a received
 * one (snapshot_load.c, in a loader the apply worker starts), and their progress in shared
 * memory (snapshot_progress.c, dragonraft.stat_progress_snapshot).
 *
 * The file: a header, sections, a trailer; integers little-endian.
 *
 *	header   "DRSNAP06", group id (8), index (8), tables (4), 0 (4), then what
 *	         the rows' on-disk form depends on: PostgreSQL's major version
 *	         (PG_VERSION_NUM / 100) (4), catalog version (4), MAXALIGN (1),
 *	         FLOAT8PASSBYVAL (1), big-endian (1), sizeof(Datum) (1) and the
 *	         database's encoding (4): a node that differs refuses the file
 *	section  kind (4), 0 (4), length (8), that many bytes
 *	trailer  DR_SNAP_END (4), CRC-32C of every byte before it (4), file size (8)
 *
 * The checksum takes each section's header after its bytes (the exporter
 * writes a section before it knows its length, then fills in its header).
 *
 * Sections: first a DR_SNAP_LOCALE, the exporter's node id (4) and its
 * database's locale: datlocprovider (1), then datcollate, datctype and
 * daticulocale (empty: none), each NUL-terminated (a node whose database
 * has another refuses a file with tables: it would compute their generated
 * columns and CHECKs otherwise); per table a DR_SNAP_TABLE (table id (8),
 * then schema, name, definition (dragonraft.table_definition), the SQL that
 * sets its owned sequences and what it has besides its definition
 * (DR_SNAP_EXTRAS), each NUL-terminated) followed by its DR_SNAP_ROWS; then
 * per relation that the group's commands made and that is not a table of the group
 * (dragonraft.made_relations), in the order they were made, a DR_SNAP_PLAIN
 * (the index of the command that made it (8), its relkind (1), then schema,
 * name, definition
 * (dragonraft.plain_definition: a view, a sequence or a table without its
 * rows), the SQL that sets its sequence (or its owned sequences) and its
 * extras (DR_SNAP_EXTRAS), each NUL-terminated; a relation that snapshots do
 * not carry has an empty definition and, instead of its extras, what it is:
 * "unlogged table", ...); then DR_SNAP_HISTORY and DR_SNAP_MEMBERS, the
 * group's rows of dragonraft.ddl_history and dragonraft.member_info (binary
 * COPY).  (DRSNAP04 had no DR_SNAP_PLAIN, DRSNAP05 no DR_SNAP_LOCALE.)
 *
 * A table's rows (snapshot_rows.c) are in binary COPY's format when it has
 * stored generated columns, else in their on-disk form:
 *
 *	DR_SNAP_RAW_MAGIC, columns (4), per column: form (1: DR_SNAP_COL_RAW or
 *	DR_SNAP_COL_SEND), type (4), typmod (4), name (NUL-terminated);
 *	chunks: bytes (4), rows (4, at most DR_SNAP_CHUNK_ROWS), that many bytes of
 *	rows; a chunk of 0 rows and 0 bytes ends them.
 *	row: a bitmap of its NULL columns (a bit per column, 1 = NULL), then each
 *	other column's value: DR_SNAP_COL_RAW, the datum as a tuple holds it
 *	(byval or fixed length: its typlen bytes; varlena: with its own 1- or
 *	4-byte header, compressed or not, never an external pointer);
 *	DR_SNAP_COL_SEND, its length (4) and its type's send function's bytes.
 *
 * Raw are the columns of built-in base types (and arrays of them) whose
 * values hold no OID of a local object (dr_snapshot_raw_type): the same
 * major version on the same platform reads them as they are.  Columns are
 * matched by name: the ends' column order and dropped columns may differ.
 */
#ifndef DRAGONRAFT_SNAPSHOT_H
#define DRAGONRAFT_SNAPSHOT_H

#include "dragonraft.h"

#include "lib/stringinfo.h"
#include "postmaster/bgworker.h"
#include "storage/spin.h"
#include "utils/relcache.h"
#include "utils/snapshot.h"

#define DR_SNAP_MAGIC         "DRSNAP06"
#define DR_SNAP_HEADER_BYTES  48
#define DR_SNAP_SECTION_BYTES 16
#define DR_SNAP_TRAILER_BYTES 16

/*
 * What table rel (SQL: a regclass) has besides its definition, as the
 * statements that give it: dragonraft.table_extras (owner, privileges, row
 * level security, policies, user triggers, comments), then the privileges on
 * its owned sequences (review 9 R7).
 */
#define DR_SNAP_EXTRAS(rel)                                                                        \
	"dragonraft.table_extras(" rel ") || coalesce((SELECT string_agg(format("                  \
	"E'\nREVOKE ALL ON SEQUENCE %s FROM PUBLIC, %I;', q, pg_get_userbyid(relowner)) || "       \
	"coalesce((SELECT string_agg(format(E'\nGRANT %s ON SEQUENCE %s TO %s%s;', "               \
	"a.privilege_type, q, CASE WHEN a.grantee = 0 THEN 'PUBLIC' "                              \
	"ELSE quote_ident(pg_get_userbyid(a.grantee)) END, CASE WHEN a.is_grantable "              \
	"THEN ' WITH GRANT OPTION' ELSE '' END), '' ORDER BY a.grantee, a.privilege_type) "        \
	"FROM aclexplode(relacl) a), ''), '' ORDER BY q) "                                         \
	"FROM (SELECT format('%I.%I', n.nspname, s.relname) AS q, s.relowner, s.relacl "           \
	"FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_class s "                                  \
	"ON s.oid = d.objid AND s.relkind = 'S' AND s.relacl IS NOT NULL "                         \
	"JOIN pg_catalog.pg_namespace n ON n.oid = s.relnamespace "                                \
	"WHERE d.classid = 'pg_catalog.pg_class'::regclass "                                       \
	"AND d.refclassid = 'pg_catalog.pg_class'::regclass AND d.refobjid = " rel " "             \
	"AND d.deptype IN ('a', 'i')) x), '')"

/*
 * Of the relations in dragonraft.made_relations (pg_class row c), those that
 * snapshots carry in DR_SNAP_PLAIN sections: not a table of the group, nor
 * a sequence that a column owns (it goes with its table).
 */
#define DR_SNAP_PLAIN_REL(c)                                                                       \
	"NOT EXISTS (SELECT FROM dragonraft.replicated_tables t WHERE t.relid = " c ".oid) "       \
	"AND NOT (" c ".relkind = 'S' AND EXISTS (SELECT FROM pg_catalog.pg_depend o "             \
	"WHERE o.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND o.objid = " c ".oid "    \
	"AND o.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass "                           \
	"AND o.deptype IN ('a', 'i')))"

/* A table's rows in their on-disk form (above); otherwise binary COPY's. */
#define DR_SNAP_RAW_MAGIC  "DRROWS1\n"
#define DR_SNAP_COL_RAW    'r'
#define DR_SNAP_COL_SEND   's'
#define DR_SNAP_CHUNK_ROWS 1000

enum DrSnapKind {
	DR_SNAP_TABLE = 1,
	DR_SNAP_ROWS = 2,
	DR_SNAP_HISTORY = 3,
	DR_SNAP_MEMBERS = 4,
	DR_SNAP_PLAIN = 5,
	DR_SNAP_LOCALE = 6,
	DR_SNAP_END = 0x444e4521, /* "!END" */
};

/* DrApplyMsg.type of the message that loads a snapshot: index is the snapshot's, the
 * data the file's path (NUL-terminated). */
#define DR_APPLY_SNAPSHOT 0xFFFFFFFEu

/* Snapshots being made or loaded on this node at once (one per group and role). */
/* Free space an export must leave in dragonraft.data_dir, as the transport
 * leaves for a received snapshot (dragonraft.snapshot_min_free). */
#define DR_SNAP_MIN_FREE ((uint64)dr_snapshot_min_free * 1024 * 1024)
#define DR_SNAP_JOBS     8

typedef enum DrSnapRole {
	DR_SNAP_SENDER = 1,
	DR_SNAP_RECEIVER = 2,
	DR_SNAP_DIGEST = 3, /* a backend's dragonraft.table_digest (sql_tabledigest.c): the
	                     * engine worker holds the group's apply as for an export */
} DrSnapRole;

typedef enum DrSnapPhase {
	DR_SNAP_STARTING,  /* sender: the exporter starts */
	DR_SNAP_DRAINING,  /* sender, digest: the group's apply is held until it applied what it
	                    * has */
	DR_SNAP_EXPORTING, /* sender: tables are written */
	DR_SNAP_VERIFYING, /* receiver: the checksum is checked */
	DR_SNAP_LOADING,   /* receiver: schema and rows are replaced */
	DR_SNAP_DONE,      /* the file is written, or loaded (rc says how it went) */
} DrSnapPhase;

/* One snapshot being made or loaded (shared memory, mutex). */
typedef struct DrSnapJob {
	slock_t mutex;
	uint64 group_id;   /* 0 = free */
	uint32 generation; /* its allocations so far: a loader started for an older one exits */
	DrSnapRole role;
	DrSnapPhase phase;
	int pid;
	uint64 index;       /* the snapshot's index (once known) */
	uint64 handed;      /* sender: the index handed to the state machine when held */
	bool drained;       /* sender: the engine worker saw everything handed applied */
	bool taken;         /* sender: the exporter's snapshot is taken, apply may go on */
	bool claimed;       /* digest: the engine worker holds the group's apply for it */
	int rc;             /* DR_SNAP_DONE: sender, an engine_rc; receiver, 0 or the SQLSTATE */
	uint64 bytes_total; /* receiver: the file; sender: the rows written so far */
	uint64 bytes_done;
	uint32 tables_total;
	uint32 tables_done;
	int waiter_pgprocno; /* sender, digest: the exporter or backend, to wake when drained */
	TimestampTz started;
	char path[MAXPGPATH];
	char error[DR_ERROR_LEN]; /* why it failed */
} DrSnapJob;

/* GUC for tests only (dragonraft.testing_snapshot_delay, ms). */
extern int dr_testing_snapshot_delay;
/* GUC for tests only (dragonraft.testing_hold_delay, ms): table_digest and the
 * exporter pause this long between their snapshot and their read of the applied
 * index, the group's apply held (TAP 107: nothing of the group commits then). */
extern int dr_testing_hold_delay;

/* snapshot_progress.c */
extern Size dr_snapshot_shmem_size(void);
extern void dr_snapshot_shmem_init(void);
/* CPU time this process used so far (user and system), ms: the LOG lines of an export
 * and of a load say how much of their time it was. */
extern long dr_snapshot_cpu_ms(void);
/* For tests: pause dr_testing_snapshot_delay ms (interruptible). */
extern void dr_snapshot_testing_pause(void);
/* For tests: pause dr_testing_hold_delay ms (interruptible). */
extern void dr_snapshot_testing_hold_pause(void);
/* w set up for a snapshot worker of group_id (what: "exporter" or "loader") that runs
 * function and notifies this process of its start and end. */
extern void dr_snapshot_worker(BackgroundWorker *w, const char *function, const char *what,
                               uint64 group_id);
/* A free job for group_id in role; -1 if none is free. */
extern int dr_snapshot_job_alloc(uint64 group_id, DrSnapRole role);
extern void dr_snapshot_job_free(int job);
extern DrSnapJob *dr_snapshot_job(int job);
/* The receiver's job of group_id: its phase, done/total bytes (done: read by this phase)
 * and when it started (unless started is NULL: it tells one load from the next); false if
 * none. */
extern bool dr_snapshot_receiving(uint64 group_id, DrSnapPhase *phase, uint64 *done, uint64 *total,
                                  TimestampTz *started);

/* sql_tabledigest.c: the digest of table relid under snap (the client encoding set to the
 * database's by the caller): its rows and the sum modulo 2^256 of their SHA-256. */
extern void dr_table_digest_rel(Oid relid, Snapshot snap, uint64 *rows, uint8 sum[32]);
/* The group's replicated tables (relids) in table id order, under the active snapshot. */
extern List *dr_table_digest_tables(int64 group_id);
/* consistency.c: the marker of dragonraft.check_consistency (an execute() barrier, so that
 * a member of an older build applies it as one); at its apply, in the applying
 * transaction, export the group's tables as they are at index to a checker (a dynamic
 * background worker) that digests them into dragonraft.consistency_checks. */
/* A table digest's backend waits this long at most for the drain; the engine worker
 * ends the hold of the group's apply somewhat later whatever that backend does (stopped,
 * SIGSTOP say: it cannot end it), and the backend fails if it took its snapshot after. */
#define DR_DIGEST_DRAIN_MS    60000
#define DR_DIGEST_HOLD_MAX_MS (DR_DIGEST_DRAIN_MS + 5000)
#define DR_CONSISTENCY_MARKER "SELECT 'dragonraft.check_consistency'"
/* The rows of dragonraft.ddl_history that may be a group's command: not one skipped for
 * another (preempted_by), nor one of the barriers dragonraft writes (caught_up's and a
 * wait's SELECT 1, the marker above: they come in runs).  The partial index
 * ddl_history_commands (dragonraft--1.0.sql) has this predicate: a query that says it
 * alike reads none of those rows.  Other barriers are told by dr_sql_tables_barrier. */
#define DR_HISTORY_COMMANDS                                                                        \
	"preempted_by IS NULL AND command NOT IN ('SELECT 1', "                                    \
	"'SELECT ''dragonraft.check_consistency''')"
extern void dr_consistency_mark(uint64 group_id, uint64 index);
extern PGDLLEXPORT void dr_consistency_main(Datum arg);
/* snapshot_export.c: the exporter's entry point (arg: its job). */
extern PGDLLEXPORT void dr_snapshot_export_main(Datum arg);
/* apply_worker.c: the loader's entry point (arg: its receiver job), a background worker
 * that the apply worker starts for a received snapshot while it applies the other
 * groups; the job's phase is DR_SNAP_DONE once its transaction committed (rc 0) or
 * failed (rc its SQLSTATE, error its message). */
extern PGDLLEXPORT void dr_snapshot_loader_main(Datum arg);
/* End the loaders running (started by an apply worker that is gone, or on its way out)
 * and wait for their exits; free their jobs.  Run by a new apply worker and by a new
 * engine worker before it reads the groups' origins. */
extern void dr_apply_end_orphan_loaders(void);
/* The loaders' pids (at most DR_SNAP_JOBS); how many. */
extern int dr_snapshot_loader_pids(int *pids);

/* snapshot_rows.c: rows in their on-disk form. */
/* Whether values of type go raw (its values hold no OID of a local object). */
extern bool dr_snapshot_raw_type(Oid type);
/* Whether rel's rows go in their on-disk form (it has no stored generated column). */
extern bool dr_snapshot_rows_raw(Relation rel);
/* The platform part of the header (after its first 32 bytes). */
extern void dr_snapshot_platform(uint8 out[DR_SNAP_HEADER_BYTES - 32]);
/* Write rel's rows, from the magic to the end chunk, into buf; flush(buf) empties it
 * (called whenever it holds a chunk or more). */
extern void dr_snapshot_rows_write(Relation rel, StringInfo buf, void (*flush)(StringInfo));
/* Insert the rows of a section of len bytes after its magic into rel (made or
 * truncated by this transaction, locked), reading with get (n bytes, or a
 * corrupt-file error); corrupt() reports a malformed section.  The rows go in
 * frozen when they can, with no trigger fired; NOT NULL and CHECK constraints
 * are checked; rel's indexes are rebuilt after them. */
extern void dr_snapshot_rows_read(Relation rel, uint64 len, void (*get)(void *, size_t),
                                  void (*corrupt)(const char *) pg_attribute_noreturn());

/* snapshot_load.c (the loader, inside its transaction with SPI connected and the group's
 * origin set up): replace the group's tables, history and member info by those of the
 * file of receiver job job (its group, index and path); returns the group's schema index
 * after it (its last utility command).  The caller frees the job. */
extern uint64 dr_snapshot_load(int job);
/* The LOG line of the last load, once its transaction committed (its time includes it). */
extern void dr_snapshot_log_loaded(void);
/* Give table qname, just made from its definition (SPI connected), what it has besides it
 * (extras: DR_SNAP_EXTRAS) and no other privileges; an error names what (the table). */
extern void dr_snapshot_give_extras(const char *qname, const char *extras, const char *what);
/* Give table qname, just made from definition def, the owner that extras names (its first
 * statement), with the sequences def makes, before any of its rows or constraints: what
 * the owner's code does on them (checks, index expressions) runs as the owner, not as
 * this superuser.  An error names what, as dr_snapshot_give_extras does. */
extern void dr_snapshot_give_owner(const char *qname, const char *def, const char *extras,
                                   const char *what);

/* Make an empty table qname from its definition def (SPI connected) in a subtransaction:
 * its owner (extras' first statement; none when extras is NULL) right after the CREATE
 * statements, so that its owner's code that PostgreSQL runs while the rest is added
 * (constraints, indexes) runs as the owner; its CHECK constraints and foreign keys are
 * added NOT VALID and marked valid.  Its error or NULL; *owner_failed: the owner's. */
extern ErrorData *dr_snapshot_try_make(const char *qname, const char *def, const char *extras,
                                       const char *what, bool *owner_failed);

#endif /* DRAGONRAFT_SNAPSHOT_H */
