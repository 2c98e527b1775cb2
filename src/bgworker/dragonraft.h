/*
 * dragonraft.h - what the files of the PostgreSQL side share: GUCs, the
 * engine worker's state in shared memory, and the entry points of the
 * workers.  The shared structures themselves are in shmem.h.
 */
#ifndef DRAGONRAFT_BGWORKER_H
#define DRAGONRAFT_BGWORKER_H

#include "postgres.h"

#include "datatype/timestamp.h"

/* GUCs (DESIGN §6). */
extern int dr_node_id;
extern char *dr_listen_address;
extern char *dr_advertise_address;
extern char *dr_client_address;
extern char *dr_database;
extern char *dr_data_dir;
extern int dr_rtt_ms;
extern bool dr_deferred_leader_sync;
extern int dr_election_rtt;
extern int dr_heartbeat_rtt;
extern int dr_snapshot_entries;
extern int dr_compaction_overhead;
extern int dr_logdb_memtable_budget; /* MB */
extern int dr_max_entry_size;
extern int dr_max_groups;
extern int dr_snapshot_min_free; /* MB */
extern char *dr_cluster_secret_file;
extern char *dr_ssl_cert_file;
extern char *dr_ssl_key_file;
extern char *dr_ssl_ca_file;
extern char *dr_ssl_crl_file;
extern int dr_read_consistency;
/* For tests only: a group's new member proposes its member info this many ms after
 * it starts at the earliest (engine_groups.c). */
extern int dr_testing_info_delay;
/* For tests only: the engine worker ends a table digest's hold of its group's apply
 * this many ms after the claim at the latest, instead of DR_DIGEST_HOLD_MAX_MS (0)
 * (pg_sm.c). */
extern int dr_testing_digest_hold;
/* For tests only: where the engine worker raises an ERROR (or a FATAL) inside a
 * callback of the engine (dr_testing_error). */
typedef enum DrTestingErrorAt {
	DR_TESTING_ERROR_NONE,
	DR_TESTING_ERROR_COMPLETION, /* a request's completion callback (engine_groups.c) */
	DR_TESTING_ERROR_LEAD,       /* dr_engine_status_lead, in the round */
	DR_TESTING_FATAL_IN_ROUND,   /* a FATAL in the state machine's apply callback */
	DR_TESTING_ERROR_IN_ROUND,   /* an ERROR there (pg_sm.c) */
} DrTestingErrorAt;
extern int dr_testing_error_at;
/* For tests only: the engine worker adds a second check handle to its loop, after
 * engine_uv's (read when it starts: engine_worker.c). */
extern bool dr_testing_second_check;
/* Raise the ERROR (or FATAL) of dragonraft.testing_error_at if it is set to at. */
extern void dr_testing_error(DrTestingErrorAt at);

typedef enum DrReadConsistency {
	DR_READ_LOCAL,
	DR_READ_LINEARIZABLE,
} DrReadConsistency;

/* Longest Raft address (host:port), NUL included; the engine's limit. */
#define DR_ADDR_LEN 256
/* Longest error message kept in shared memory, NUL included. */
#define DR_ERROR_LEN 1024

/* Parses "host:port"; returns false with a message in *why on error. */
extern bool dr_parse_address(const char *addr, char *host, size_t hostlen, int *port,
                             const char **why);
/* This node's client address: dragonraft.client_address or the default from the
 * advertised host and the server's port (palloc'd). */
extern char *dr_effective_client_address(void);
/* ERROR if DROP EXTENSION dragonraft may not run: this node is a member of groups. */
extern void dr_check_extension_drop(void);

/* msg as a sentence for an errdetail (PostgreSQL's message style), palloc'd:
 * its first letter upper case when its first word is a plain word (not an
 * identifier such as join_group or dragonraft.status), a period at its end.
 * The engine's messages (and an error's own message) read "group 7: the log
 * is gone", as errmsg would have them; as a DETAIL they become "Group 7: the
 * log is gone.". */
extern char *dr_sentence(const char *msg);

/* Runs fn(arg) in a subtransaction, released when fn returns and rolled back
 * when it throws: NULL, or its error, copied into the caller's memory context
 * (the caller's resource owner and memory context are kept). */
extern ErrorData *dr_try_subxact(void (*fn)(void *arg), void *arg);

/* Registers the engine worker (called from _PG_init while preloading). */
extern void dr_register_engine_worker(void);

/* Entry points of the workers. */
extern PGDLLEXPORT void dr_engine_worker_main(Datum arg);
extern PGDLLEXPORT void dr_apply_worker_main(Datum arg);

/*
 * sql_groups.c: the encoding and locale of this database (pg_database), as
 * member info entries carry them and dragonraft.member_info shows them
 * (provider "libc" or "icu", icu_locale NULL: none).  In a transaction;
 * the strings are palloc'd.
 */
typedef struct DrDbLocale {
	int encoding;
	const char *encoding_name;
	char provider; /* datlocprovider */
	const char *provider_name;
	const char *collate, *ctype, *icu_locale;
} DrDbLocale;
extern void dr_database_locale(DrDbLocale *out);
/* The name dragonraft.member_info gives a datlocprovider. */
extern const char *dr_locale_provider_name(char provider);
/* What of a member's encoding and locale (NULL: not known) differs from this
 * database's, as "node N's database has X, this one Y" sentences; NULL: none.
 * (collate NULL: the encoding only.) */
extern char *dr_locale_differs(uint32 node_id, const char *encoding, const char *collate,
                               const char *ctype, const char *provider, const char *icu_locale);
/* The HINT of a member that stops a group for another locale than the one
 * its entries or snapshot were made with: leave and join again (sql_groups.c). */
extern char *dr_locale_rejoin_hint(uint64 group_id);

#endif /* DRAGONRAFT_BGWORKER_H */
