/*
 * dragonraft.h - state shared by the PostgreSQL side of dragonraft: GUCs,
 * shared memory and the engine worker.
 */
#ifndef DRAGONRAFT_BGWORKER_H
#define DRAGONRAFT_BGWORKER_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "storage/spin.h"

/* GUCs (DESIGN §6). */
extern int dr_node_id;
extern char *dr_listen_address;
extern char *dr_advertise_address;
extern char *dr_database;
extern char *dr_data_dir;
extern int dr_rtt_ms;
extern int dr_election_rtt;
extern int dr_heartbeat_rtt;
extern int dr_snapshot_entries;
extern int dr_compaction_overhead;
extern int dr_max_entry_size;
extern char *dr_cluster_secret_file;
extern int dr_read_consistency;

typedef enum DrReadConsistency {
	DR_READ_LOCAL,
	DR_READ_LINEARIZABLE,
} DrReadConsistency;

typedef enum DrEngineState {
	DR_ENGINE_OFF,      /* dragonraft.node_id = 0, or the worker has not started */
	DR_ENGINE_RUNNING,  /* the engine worker is in its main loop */
	DR_ENGINE_STOPPED,  /* the engine worker exited */
} DrEngineState;

/* The node-wide part of shared memory. */
typedef struct DrShared {
	slock_t mutex;          /* protects the fields below */
	DrEngineState engine_state;
	pid_t engine_pid;
	TimestampTz engine_started;
} DrShared;

/* Shared memory, set by the shmem startup hook; NULL unless preloaded. */
extern DrShared *dr_shared;

/* Registers the engine worker (called from _PG_init while preloading). */
extern void dr_register_engine_worker(void);

/* Entry point of the engine worker. */
extern PGDLLEXPORT void dr_engine_worker_main(Datum arg);

/* Parses "host:port"; returns false with a message in *why on error. */
extern bool dr_parse_address(const char *addr, char *host, size_t hostlen, int *port,
			     const char **why);

#endif /* DRAGONRAFT_BGWORKER_H */
