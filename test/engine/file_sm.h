/*
 * file_sm.h - a durable state machine for the multi-process engine tests: it
 * appends every applied entry (index, term, type, data) to one file per
 * group and fdatasyncs the file once per applied batch, so after a kill -9
 * it knows exactly what it applied (a torn last record is cut off at open).
 * A snapshot is a copy of that file (the whole applied sequence), so a member
 * that caught up through a snapshot still holds the full sequence and test
 * drivers can compare replicas record by record.
 */
#ifndef DRAGONRAFT_TEST_FILE_SM_H
#define DRAGONRAFT_TEST_FILE_SM_H

#include "engine/engine.h"

#define FILE_SM_MAX_DATA (1u << 20) /* largest entry data a record may hold */

struct file_sm;

/* Open (creating if missing) the state machine kept in the file at path. */
int file_sm_open(const char *path, struct file_sm **out);
/* Close it (everything applied is already durable). */
void file_sm_close(struct file_sm *fs);
/* Fill ops with callbacks over fs. */
void file_sm_ops(struct file_sm *fs, struct engine_sm_ops *ops);
/* Last applied index. */
raft_index file_sm_applied(const struct file_sm *fs);
/* Entries with data applied so far. */
uint64_t file_sm_count(const struct file_sm *fs);
/* Digest chained over every applied record (index, term, type, data). */
uint64_t file_sm_digest(const struct file_sm *fs);
/* Snapshots recovered so far by this process. */
unsigned file_sm_recoveries(const struct file_sm *fs);

/*
 * Snapshots in the background (dr-node --async-snapshots): the slow parts
 * run on another thread, what touches fs on the state machine's own thread.
 */
struct file_sm_save {
	int fd; /* a dup of the file, owned by the save */
	uint64_t len;
	raft_index index;
};
struct file_sm_recovery {
	raft_index last;
	uint64_t count, digest;
};
/* Capture the state to save: the file's length and applied index now (own thread). */
int file_sm_save_begin(struct file_sm *fs, struct file_sm_save *sv);
/* Copy the captured state to path (any thread; applying may go on meanwhile). */
int file_sm_save_run(struct file_sm_save *sv, const char *path);
/* Check the snapshot at path and copy it beside the file at sm_path (any thread). */
int file_sm_recover_stage(const char *sm_path, const char *path, raft_index index,
                          struct file_sm_recovery *rv);
/* Switch fs to the staged copy (own thread). */
int file_sm_recover_finish(struct file_sm *fs, const struct file_sm_recovery *rv);
/* The path of fs's file. */
const char *file_sm_path(const struct file_sm *fs);

/* One record as file_sm_scan() hands it over. */
struct file_sm_record {
	raft_index index;
	raft_term term;
	uint32_t type;
	uint32_t len;
	const uint8_t *data;
};

/* Called for every record in order; non-zero stops the scan with that value. */
typedef int (*file_sm_visit_fn)(void *arg, const struct file_sm_record *r);

/*
 * Read the file at path record by record (fn may be NULL); *valid receives
 * the byte length of the complete, checksummed records, *last the last
 * index, *count the records with data and *digest the digest.  A torn or
 * corrupt tail ends the scan (not an error).  Returns an engine_rc.
 */
int file_sm_scan(const char *path, file_sm_visit_fn fn, void *arg, uint64_t *valid,
                 raft_index *last, uint64_t *count, uint64_t *digest);

#endif /* DRAGONRAFT_TEST_FILE_SM_H */
