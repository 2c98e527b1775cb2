/*
 * dragonraft.c - library entry point (DESIGN §6): GUCs, the shared memory
 * hooks and the registration of the engine worker.
 *
 * GUCs that the engine, the transport or shared memory take at start are
 * PGC_POSTMASTER (PostgreSQL says at a reload that they need a restart);
 * dragonraft.client_address takes effect at a reload.
 */
#include "dragonraft.h"

#include <arpa/inet.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "access/xact.h"
#include "catalog/objectaccess.h"
#include "catalog/pg_extension.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "engine/engine.h"
#include "fmgr.h"
#include "membership.h"
#include "miscadmin.h"
#include "origins.h"
#include "postmaster/postmaster.h"
#include "shmem.h"
#include "snapshot.h"
#include "storage/ipc.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "write.h"

PG_MODULE_MAGIC;

void _PG_init(void);

int dr_node_id = 0;
char *dr_listen_address = NULL;
char *dr_advertise_address = NULL;
char *dr_client_address = NULL;
char *dr_database = NULL;
char *dr_data_dir = NULL;
int dr_rtt_ms = 50;
bool dr_deferred_leader_sync = false;
int dr_election_rtt = 10;
int dr_heartbeat_rtt = 1;
int dr_snapshot_entries = 10000;
int dr_compaction_overhead = 5000;
int dr_logdb_memtable_budget = 256;
int dr_max_entry_size = 64 * 1024 * 1024;
int dr_max_groups = 1024;
int dr_testing_info_delay = 0;
int dr_testing_digest_hold = 0;
int dr_testing_error_at = DR_TESTING_ERROR_NONE;
bool dr_testing_second_check = false;
int dr_snapshot_min_free = 256; /* MB */
char *dr_cluster_secret_file = NULL;
char *dr_ssl_cert_file = NULL;
char *dr_ssl_key_file = NULL;
char *dr_ssl_ca_file = NULL;
char *dr_ssl_crl_file = NULL;
int dr_read_consistency = DR_READ_LOCAL;

/* Entries travel to the apply worker in one shm_mq message (at most MaxAllocSize). */
#define MAX_ENTRY_SIZE ((int)(MaxAllocSize - 1024 * 1024))

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
static object_access_hook_type prev_object_access_hook = NULL;

/* An address in postgresql.conf that check_address refused while the library loaded. */
static char *refused_address = NULL;

static const struct config_enum_entry read_consistency_options[] = {
        {"local", DR_READ_LOCAL, false},
        {"linearizable", DR_READ_LINEARIZABLE, false},
        {NULL, 0, false},
};

static const struct config_enum_entry testing_error_at_options[] = {
        {"none", DR_TESTING_ERROR_NONE, false},
        {"completion", DR_TESTING_ERROR_COMPLETION, false},
        {"lead", DR_TESTING_ERROR_LEAD, false},
        {"fatal_in_round", DR_TESTING_FATAL_IN_ROUND, false},
        {"error_in_round", DR_TESTING_ERROR_IN_ROUND, false},
        {NULL, 0, false},
};

void dr_testing_error(DrTestingErrorAt at)
{
	if (dr_testing_error_at == at)
		ereport(at == DR_TESTING_FATAL_IN_ROUND ? FATAL : ERROR,
		        (errmsg("dragonraft.testing_error_at is \"%s\"",
		                testing_error_at_options[at].name)));
}

bool dr_parse_address(const char *addr, char *host, size_t hostlen, int *port, const char **why)
{
	const char *colon = strrchr(addr, ':');
	char *end;
	size_t hl;
	long p;

	if (colon == NULL || colon == addr) {
		*why = "The address must have the form host:port.";
		return false;
	}
	if ((size_t)(colon - addr) >= hostlen) {
		*why = "The host name is too long.";
		return false;
	}
	errno = 0;
	p = strtol(colon + 1, &end, 10);
	if (colon[1] == '\0' || *end != '\0' || errno != 0 || p < 0 || p > 65535) {
		*why = "The port must be a number from 1 to 65535.";
		return false;
	}
	memcpy(host, addr, colon - addr);
	host[colon - addr] = '\0';
	/* An IPv6 host (anything with a colon) needs brackets: [::1]:7400. */
	hl = strlen(host);
	if (strpbrk(host, ":[]") != NULL && !(hl > 2 && host[0] == '[' && host[hl - 1] == ']' &&
	                                      strcspn(host + 1, "[]") == hl - 2)) {
		*why = "A host with a colon (IPv6) must be in brackets, as in [::1]:7400.";
		return false;
	}
	*port = (int)p;
	return true;
}

/*
 * Is addr's host a wildcard (0.0.0.0, [::])?  A listener may take one, but
 * the address this node gives the others (its own in the groups' address
 * entries) and clients (the default client_address) may not: they would
 * dial their own machine.
 */
char *dr_sentence(const char *msg)
{
	size_t len = strlen(msg), word = strcspn(msg, " :;,");
	char *s = palloc(len + 2);
	bool plain = word > 0;

	for (size_t i = 0; i < word && plain; i++)
		plain = msg[i] >= 'a' && msg[i] <= 'z';
	memcpy(s, msg, len + 1);
	if (plain)
		s[0] = (char)(s[0] - 'a' + 'A');
	if (len > 0 && strchr(".?!", s[len - 1]) == NULL) {
		s[len] = '.';
		s[len + 1] = '\0';
	}
	return s;
}

static bool is_wildcard_address(const char *addr)
{
	char host[DR_ADDR_LEN];
	const char *why;
	int port;
	size_t hl;
	struct in_addr a4;
	struct in6_addr a6;

	if (addr == NULL || !dr_parse_address(addr, host, sizeof(host), &port, &why))
		return false;
	hl = strlen(host);
	if (hl > 2 && host[0] == '[') {
		memmove(host, host + 1, hl - 2);
		host[hl - 2] = '\0';
		return inet_pton(AF_INET6, host, &a6) == 1 && IN6_IS_ADDR_UNSPECIFIED(&a6);
	}
	return inet_pton(AF_INET, host, &a4) == 1 && a4.s_addr == htonl(INADDR_ANY);
}

ErrorData *dr_try_subxact(void (*fn)(void *arg), void *arg)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	ErrorData *volatile ed = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		fn(arg);
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		ed = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	CurrentResourceOwner = owner;
	return ed;
}

char *dr_effective_client_address(void)
{
	char host[DR_ADDR_LEN];
	const char *why;
	int port;

	if (dr_client_address != NULL && dr_client_address[0] != '\0')
		return pstrdup(dr_client_address);
	if (!dr_parse_address(dr_advertise_address[0] ? dr_advertise_address : dr_listen_address,
	                      host, sizeof(host), &port, &why))
		strlcpy(host, "localhost", sizeof(host));
	if (host[0] == '[') { /* [ipv6]:port */
		memmove(host, host + 1, strlen(host));
		host[strcspn(host, "]")] = '\0';
	}
	return psprintf("host=%s port=%d", host, PostPortNumber);
}

/* listen_address and advertise_address: host:port; port 0 picks a free port. */
static bool check_address(char **newval, void **extra, GucSource source)
{
	char host[DR_ADDR_LEN];
	int port;
	const char *why;

	/* An empty advertise_address means "same as listen_address". */
	if (*newval == NULL || (*newval)[0] == '\0')
		return true;
	if (!dr_parse_address(*newval, host, sizeof(host), &port, &why)) {
		GUC_check_errdetail("%s", why);
		/* PostgreSQL would go on with the default: _PG_init refuses instead. */
		if (process_shared_preload_libraries_in_progress && refused_address == NULL)
			refused_address = MemoryContextStrdup(TopMemoryContext, *newval);
		return false;
	}
	return true;
}

static void define_gucs(void)
{
	DefineCustomIntVariable("dragonraft.node_id", "This node's id; 0 leaves the engine off.",
	                        NULL, &dr_node_id, 0, 0, INT_MAX, PGC_POSTMASTER, 0, NULL, NULL,
	                        NULL);
	DefineCustomStringVariable("dragonraft.listen_address",
	                           "Host and port the Raft transport listens on.",
	                           "Port 0 picks a free port.", &dr_listen_address,
	                           "127.0.0.1:7400", PGC_POSTMASTER, 0, check_address, NULL, NULL);
	DefineCustomStringVariable("dragonraft.advertise_address",
	                           "Host and port other nodes dial; empty means listen_address.",
	                           NULL, &dr_advertise_address, "", PGC_POSTMASTER, 0,
	                           check_address, NULL, NULL);
	DefineCustomStringVariable("dragonraft.client_address",
	                           "libpq connection string clients use to reach this node.",
	                           "Every member of a group learns it through the group's log; "
	                           "empty means host=<advertised host> port=<this server's port>.",
	                           &dr_client_address, "", PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("dragonraft.database",
	                           "Database that holds the extension; the apply worker "
	                           "connects to it.",
	                           NULL, &dr_database, "postgres", PGC_POSTMASTER, 0, NULL, NULL,
	                           NULL);
	DefineCustomStringVariable("dragonraft.data_dir",
	                           "Directory of the LogDB and snapshot files, relative to "
	                           "the data directory unless absolute.",
	                           NULL, &dr_data_dir, "dragonraft", PGC_POSTMASTER, 0, NULL, NULL,
	                           NULL);
	DefineCustomIntVariable("dragonraft.rtt_ms", "Length of one Raft tick.", NULL, &dr_rtt_ms,
	                        50, 1, 60000, PGC_POSTMASTER, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomBoolVariable(
	        "dragonraft.deferred_leader_sync",
	        "Whether a group's leader syncs its log writes in the background.",
	        "Its engine worker then takes new commits while the sync runs; a leader counts "
	        "its own copy of an entry, and applies it, only once synced.  It lowers commit "
	        "latency when the server has cores to spare, and costs the leader's engine "
	        "worker CPU (a thread hand-off per sync).",
	        &dr_deferred_leader_sync, false, PGC_POSTMASTER, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("dragonraft.election_rtt", "Election timeout in ticks.", NULL,
	                        &dr_election_rtt, 10, 2, 100000, PGC_POSTMASTER, 0, NULL, NULL,
	                        NULL);
	DefineCustomIntVariable("dragonraft.heartbeat_rtt", "Heartbeat interval in ticks.", NULL,
	                        &dr_heartbeat_rtt, 1, 1, 100000, PGC_POSTMASTER, 0, NULL, NULL,
	                        NULL);
	DefineCustomIntVariable("dragonraft.snapshot_entries",
	                        "Applied entries between automatic metadata snapshots.", NULL,
	                        &dr_snapshot_entries, 10000, 0, INT_MAX, PGC_POSTMASTER, 0, NULL,
	                        NULL, NULL);
	DefineCustomIntVariable("dragonraft.logdb_memtable_budget",
	                        "Memory for the LogDB's write buffers (all shards); the log "
	                        "reaches its files once they fill.",
	                        NULL, &dr_logdb_memtable_budget, 256, 4, 65536, PGC_POSTMASTER,
	                        GUC_UNIT_MB, NULL, NULL, NULL);
	DefineCustomIntVariable("dragonraft.compaction_overhead",
	                        "Entries kept below the durable applied index when the log "
	                        "is compacted.",
	                        NULL, &dr_compaction_overhead, 5000, 0, INT_MAX, PGC_POSTMASTER, 0,
	                        NULL, NULL, NULL);
	DefineCustomIntVariable(
	        "dragonraft.max_entry_size", "Largest change set one transaction may replicate.",
	        "Set the same value on every node.", &dr_max_entry_size, 64 * 1024 * 1024, 1024,
	        MAX_ENTRY_SIZE, PGC_POSTMASTER, GUC_UNIT_BYTE, NULL, NULL, NULL);
	DefineCustomIntVariable(
	        "dragonraft.snapshot_min_free",
	        "Free space a full snapshot must leave on the file system it is written to.",
	        "A member refuses a snapshot from its leader that would leave less free in "
	        "dragonraft.data_dir (the leader sends it again after a pause), and a leader does "
	        "not export one that would.  0 leaves none.",
	        &dr_snapshot_min_free, 256, 0, INT_MAX, PGC_SIGHUP, GUC_UNIT_MB, NULL, NULL, NULL);
	DefineCustomIntVariable(
	        "dragonraft.max_groups", "Most groups this node can be a member of.",
	        "Each takes a replication origin: max_replication_slots must be "
	        "at least as large.",
	        &dr_max_groups, 1024, 1, 1000000, PGC_POSTMASTER, 0, NULL, NULL, NULL);
	DefineCustomStringVariable(
	        "dragonraft.ssl_cert_file",
	        "This node's certificate (PEM) for mutual TLS between nodes.",
	        "With ssl_key_file and ssl_ca_file; its subjectAltName URI "
	        "urn:dragonraft:node:<id> names the node (scripts/make-certs.sh). A reload reads "
	        "the TLS files again; starting or stopping TLS needs a restart.",
	        &dr_ssl_cert_file, "", PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("dragonraft.ssl_key_file", "The private key of ssl_cert_file.",
	                           NULL, &dr_ssl_key_file, "", PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("dragonraft.ssl_ca_file",
	                           "The cluster's CA certificate, which every node's certificate "
	                           "must chain to.",
	                           NULL, &dr_ssl_ca_file, "", PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("dragonraft.ssl_crl_file",
	                           "Revoked node certificates (PEM CRL); empty for none.", NULL,
	                           &dr_ssl_crl_file, "", PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("dragonraft.cluster_secret_file",
	                           "Without certificates: a file of 64 or more hex digits (32 "
	                           "random bytes) that every node shares for TLS with a pre-shared "
	                           "key.",
	                           "With neither certificates nor a secret only loopback peers are "
	                           "accepted.",
	                           &dr_cluster_secret_file, "", PGC_POSTMASTER, 0, NULL, NULL,
	                           NULL);
	DefineCustomEnumVariable("dragonraft.read_consistency",
	                         "Whether reads of replicated tables wait for a ReadIndex "
	                         "barrier.",
	                         NULL, &dr_read_consistency, DR_READ_LOCAL,
	                         read_consistency_options, PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable(
	        "dragonraft.max_apply_lock_delay",
	        "How long the apply worker may wait for a lock held by another session before "
	        "that session is cancelled (then terminated, if it still blocks a second later).",
	        "The apply worker applies every group of the node in log order: while it waits, "
	        "the writers of every group wait for their turn.  -1 waits forever.",
	        &dr_max_apply_lock_delay, 5000, -1, INT_MAX, PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL,
	        NULL);
	DefineCustomIntVariable(
	        "dragonraft.apply_batch_delay",
	        "How long the apply worker keeps a transaction open for more entries of a group "
	        "this node follows, once it applied those it received.",
	        "Each transaction applies many entries, with one commit: less CPU per entry.  A "
	        "read barrier or another wait for the group's applied index on this node ends "
	        "the wait at once.  0 commits as soon as no entry waits.",
	        &dr_apply_batch_delay, 5, 0, 60000, PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable(
	        "dragonraft.leader_handoff_after",
	        "How many tries of one entry may fail in this node's apply of a group it leads "
	        "before it hands the leadership to another member.",
	        "The leader commits the group's writes in log order after that entry, so the "
	        "group takes no writes until it applies.  Handed off once per entry.  0 never.",
	        &dr_leader_handoff_after, 3, 0, INT_MAX, PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomBoolVariable("dragonraft.testing_fail_local_commit",
	                         "For tests only: fail every local commit after its change set "
	                         "committed in the Raft log.",
	                         "The apply worker then applies the entry from the log.",
	                         &dr_testing_fail_local_commit, false, PGC_SUSET, 0, NULL, NULL,
	                         NULL);
	DefineCustomIntVariable("dragonraft.testing_commit_delay",
	                        "For tests only: hold every local commit through Raft this long "
	                        "after its turn came.",
	                        NULL, &dr_testing_commit_delay, 0, 0, 60000, PGC_SUSET, GUC_UNIT_MS,
	                        NULL, NULL, NULL);
	DefineCustomIntVariable("dragonraft.testing_busy",
	                        "For tests only: every commit's proposal meets backpressure "
	                        "for this long, as if the group's log took no entries.",
	                        NULL, &dr_testing_busy, 0, 0, 600000, PGC_SUSET, GUC_UNIT_MS, NULL,
	                        NULL, NULL);
	DefineCustomIntVariable(
	        "dragonraft.busy_timeout",
	        "How long a write waits for a busy group's log to take entries again.",
	        "A group is busy while its LogDB shard nears a write stall, too many of its "
	        "entries are uncommitted, or this member loads a snapshot: a commit or "
	        "execute() waits, proposes again, and fails with 53000 after this long "
	        "(or when statement_timeout passes first).  0 fails at once.",
	        &dr_busy_timeout, 10000, 0, INT_MAX, PGC_USERSET, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("dragonraft.testing_snapshot_delay",
	                        "For tests only: pause this long in every full snapshot export "
	                        "(once its file is written) and load (after its first table).",
	                        NULL, &dr_testing_snapshot_delay, 0, 0, 600000, PGC_SUSET,
	                        GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("dragonraft.testing_hold_delay",
	                        "For tests only: pause this long in table_digest and in a "
	                        "snapshot export between the snapshot and the read of the "
	                        "group's applied index.",
	                        "The group's apply is held meanwhile, so the result must not "
	                        "change.",
	                        &dr_testing_hold_delay, 0, 0, 60000, PGC_SUSET, GUC_UNIT_MS, NULL,
	                        NULL, NULL);
	DefineCustomIntVariable("dragonraft.testing_member_info_delay",
	                        "For tests only: a node that starts a group (create_group, "
	                        "join_group) proposes its member info to it no sooner than "
	                        "this long after.",
	                        NULL, &dr_testing_info_delay, 0, 0, 600000, PGC_SIGHUP, GUC_UNIT_MS,
	                        NULL, NULL, NULL);
	DefineCustomIntVariable("dragonraft.testing_digest_hold",
	                        "For tests only: the engine worker ends a table digest's hold "
	                        "of the group's apply this long after its claim at the latest "
	                        "(0: 65 s).",
	                        NULL, &dr_testing_digest_hold, 0, 0, 600000, PGC_SIGHUP,
	                        GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomEnumVariable("dragonraft.testing_error_at",
	                         "For tests only: the engine worker raises an ERROR (or a "
	                         "FATAL) inside this callback of the engine.",
	                         "completion: a request's completion callback; lead: the "
	                         "status copy of a new leader, in the round; fatal_in_round: a "
	                         "FATAL in the state machine's apply callback; error_in_round: "
	                         "an ERROR there.  The worker exits and is started again.",
	                         &dr_testing_error_at, DR_TESTING_ERROR_NONE,
	                         testing_error_at_options, PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomBoolVariable("dragonraft.testing_second_check",
	                         "For tests only: the engine worker adds a second check handle "
	                         "to its event loop.",
	                         "Read when the engine worker starts.", &dr_testing_second_check,
	                         false, PGC_SIGHUP, 0, NULL, NULL, NULL);
	MarkGUCPrefixReserved("dragonraft");
}

static void shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	dr_shmem_request();
}

static void shmem_startup(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	dr_shmem_startup();
}

/*
 * DROP EXTENSION dragonraft while this node is a member of groups would
 * leave them voting and acknowledging with nothing applied, and lose the
 * member info of every group: refused.  The utility hook asks first, so that
 * neither PostgreSQL's "use DROP ... CASCADE" nor, with CASCADE, the refusal
 * to drop a capture trigger comes before this error.
 *
 * Shared memory knows only the groups that an engine worker started or
 * found stopped: none while it cannot start (its port taken, a damaged
 * LogDB), none beyond dragonraft.max_groups, and not a member left half by
 * a crash in leave_group whose origin is all that is left of it.  Every
 * group's origin is made with the member and dropped only as it leaves
 * (review 46, TAP 126): an origin named like a group's refuses it too.
 *
 * Groups and origins are the server's, the extension's tables a database's:
 * a copy of the extension in another database than dragonraft.database
 * holds nothing of the groups, and goes (its DROP was refused while this
 * node had any group, and leave_group, which the hint names, refuses to run
 * there: review 49, TAP 128).
 */
void dr_check_extension_drop(void)
{
	int n_groups, n_origins;
	uint64 lowest;
	char *db = get_database_name(MyDatabaseId);

	if (db != NULL && dr_database != NULL && strcmp(db, dr_database) != 0)
		return;
	LWLockAcquire(dr_shared->groups_lock, LW_SHARED);
	n_groups = dr_shared->n_groups;
	LWLockRelease(dr_shared->groups_lock);
	if (n_groups > 0)
		ereport(ERROR,
		        (errcode(ERRCODE_OBJECT_IN_USE),
		         errmsg_plural("cannot drop extension dragonraft: this node is a member of "
		                       "%d group",
		                       "cannot drop extension dragonraft: this node is a member of "
		                       "%d groups",
		                       n_groups, n_groups),
		         errdetail("The groups would go on without the extension's tables and "
		                   "state machine; dragonraft.status lists them."),
		         errhint("Leave every group first with dragonraft.leave_group(group_id) "
		                 "here, which drops the group's replication origin too; where "
		                 "this node follows, run dragonraft.remove_member(group_id, %d) "
		                 "on the leader first, then dragonraft.leave_group(group_id, "
		                 "true) here.",
		                 dr_node_id)));
	n_origins = dr_origins_in_xact(&lowest);
	if (n_origins > 0)
		ereport(ERROR,
		        (errcode(ERRCODE_OBJECT_IN_USE),
		         errmsg_plural("cannot drop extension dragonraft: %d group has a "
		                       "replication origin on this node",
		                       "cannot drop extension dragonraft: %d groups have a "
		                       "replication origin on this node",
		                       n_origins, n_origins),
		         errdetail(
		                 "Replication origin dragonraft_%llu (pg_replication_origin lists "
		                 "them) marks a member of group %llu here that the engine "
		                 "worker does not run: it does not run itself "
		                 "(dragonraft.node_status() says why), or a leave_group of the "
		                 "group was cut short.",
		                 (unsigned long long)lowest, (unsigned long long)lowest),
		         errhint("Start the engine worker and leave the groups that "
		                 "dragonraft.status lists then; a leave cut short ends with "
		                 "SELECT dragonraft.leave_group(%llu, true) here (and so for "
		                 "every origin dragonraft_<group id>).",
		                 (unsigned long long)lowest)));
}

/*
 * At exit() in a child of the postmaster, after PostgreSQL's own exit callbacks
 * (proc_exit ran them): end the process without the C library's exit handlers.
 * Registered in the postmaster, after librocksdb's and libstdc++'s static
 * destructors, so the children that inherit it run it first, and the
 * destructors never: they free RocksDB's option registries and more, touching
 * pages shared copy-on-write with the postmaster.  Every exiting backend and
 * worker of a server with dragonraft loaded paid for them: on a 2-core VM a
 * forked child linked with librocksdb took 15 ms of CPU to exit() against 3 ms
 * to _exit(), 278 page faults against 18 (TAP 149 counts them).  The postmaster
 * and a single-user backend exit as usual, and so does a child that called
 * exit() itself, outside proc_exit: PostgreSQL's own atexit callback, next in
 * line, runs its exit callbacks then (it releases the process's PGPROC, locks
 * and buffers).
 */
static void exit_without_destructors(int status, void *arg)
{
	if (!IsUnderPostmaster || !proc_exit_inprogress)
		return;
	fflush(NULL); /* what exit() would write out */
	_exit(status);
}

static void object_access(ObjectAccessType access, Oid classId, Oid objectId, int subId, void *arg)
{
	if (prev_object_access_hook)
		prev_object_access_hook(access, classId, objectId, subId, arg);
	if (access != OAT_DROP || classId != ExtensionRelationId ||
	    objectId != get_extension_oid("dragonraft", true))
		return;
	dr_check_extension_drop();
}

void _PG_init(void)
{
	define_gucs();

	if (!process_shared_preload_libraries_in_progress)
		return;

	if (refused_address != NULL)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
		                errmsg("invalid dragonraft address \"%s\" in the configuration",
		                       refused_address),
		                errhint("Give dragonraft.listen_address and advertise_address as "
		                        "host:port, with a port from 0 to 65535.")));
	/* (Before, the node ran, and the others learned to dial it at 0.0.0.0 once it
	 * led: they reached themselves, or nothing; doc65.) */
	if (dr_node_id > 0 &&
	    is_wildcard_address(dr_advertise_address[0] ? dr_advertise_address : dr_listen_address))
		ereport(ERROR,
		        (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
		         errmsg("dragonraft.%s \"%s\" is not an address other nodes can dial",
		                dr_advertise_address[0] ? "advertise_address" : "listen_address",
		                dr_advertise_address[0] ? dr_advertise_address : dr_listen_address),
		         errdetail("Its host is a wildcard: the other members would dial this "
		                   "node, and clients connect to it, at that address."),
		         errhint("Set dragonraft.advertise_address to the host:port at which the "
		                 "other nodes reach this one.")));

	/* Snapshot files go in <data_dir>/snapshots, each path within the engine's limit
	 * (a longer one was cut short, and a received snapshot never installed). */
	if (strlen(dr_data_dir) + strlen("/snapshots") > ENGINE_SNAPSHOT_DIR_MAX)
		ereport(ERROR,
		        (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
		         errmsg("dragonraft.data_dir is too long"),
		         errdetail(
		                 "It is %zu bytes long; at most %zu are allowed, so that the path "
		                 "of every snapshot file in its \"snapshots\" directory fits in %d "
		                 "bytes.",
		                 strlen(dr_data_dir),
		                 (size_t)ENGINE_SNAPSHOT_DIR_MAX - strlen("/snapshots"),
		                 ENGINE_PATH_MAX),
		         errhint("Choose a shorter path, or a symbolic link to the directory.")));

	if (dr_heartbeat_rtt >= dr_election_rtt)
		ereport(ERROR,
		        (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
		         errmsg("dragonraft.election_rtt must be greater than "
		                "dragonraft.heartbeat_rtt"),
		         errdetail("They are %d and %d.", dr_election_rtt, dr_heartbeat_rtt),
		         errhint("Raft needs several heartbeats per election timeout; the default "
		                 "is 10 to 1.")));

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = shmem_startup;
	prev_object_access_hook = object_access_hook;
	object_access_hook = object_access;

	dr_xact_init();
	dr_utility_init();
	dr_reads_init();
	if (on_exit(exit_without_destructors, NULL) != 0)
		ereport(ERROR, (errmsg("dragonraft could not register its exit handler")));
	if (dr_node_id > 0)
		dr_register_engine_worker();
}
