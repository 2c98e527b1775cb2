/*
 * queue.c - the request path from backends to the engine worker (DESIGN §3).
 *
 * A backend owns the slot of its backend id.  It fills the slot (payloads
 * above DR_INLINE_PAYLOAD bytes in a DSM segment it creates and keeps while
 * it waits), marks it SUBMITTED, appends the slot number to the ring and sets
 * the engine worker's latch; then it sleeps on the slot's condition variable
 * until the engine worker marks the slot DONE.  The wait is cancellable
 * (statement_timeout, pg_cancel_backend, pg_terminate_backend): the slot is
 * then marked ABANDONED and the engine worker frees it once the operation
 * ends, so nothing dangles, and a backend (or the next one with the same
 * backend id) waits for its slot to be FREE before it submits again.  The
 * generation, bumped at each submission, keeps an outcome from landing in a
 * later request (as launcher.c does for reused worker slots).
 *
 * The engine worker accepts requests only while it runs (queue_mutex); when
 * it exits it first stops accepting, then fails every request that is still
 * outstanding, so a waiting backend always wakes up.
 */
#include "queue.h"

#include "access/xact.h"
#include "dragonraft.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "shmem.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "utils/timestamp.h"
#include "write.h"

/* Head of a payload in a DSM segment: it must belong to the request. */
typedef struct DrPayloadHeader {
	int slot;
	uint64 generation;
	Size len;
} DrPayloadHeader;

/* A slot number and a generation fit in an engine callback's context pointer. */
#define CTX_SLOT_BITS 20 /* MAX_BACKENDS is 2^18 - 1 */
#define GEN_MASK      ((UINT64CONST(1) << (64 - CTX_SLOT_BITS)) - 1)

/* How often a caller that takes no cancel looks whether the engine worker is stalled. */
#define STALL_POLL_MS 100

static bool exit_hook_set = false;

/* The last call ended with an error before the engine took its request. */
static bool last_untaken = false;

bool dr_queue_last_untaken(void)
{
	return last_untaken;
}

static DrRequest *my_slot(void)
{
	if (MyBackendId < 1 || MyBackendId > MaxBackends)
		elog(ERROR, "backend id %d has no dragonraft request slot", MyBackendId);
	return &dr_requests[MyBackendId - 1];
}

/* How a backend gives up on its request. */
typedef enum AbandonHow {
	ABANDON_ANY,     /* an error or exit: whatever its state */
	ABANDON_WAITING, /* not one DONE: its outcome is taken instead */
	ABANDON_UNTAKEN, /* only one still SUBMITTED */
} AbandonHow;

/* The backend gives up on generation gen of its slot; the state it had.  One
 * still SUBMITTED is never taken (take_requests).  held: a proposal that the
 * engine runs is counted in its group's gave_up_unknown (by the caller) until
 * the engine finishes it. */
static DrSlotState abandon(DrRequest *r, uint64 gen, AbandonHow how, bool held)
{
	DrSlotState was;
	bool wake = false;

	SpinLockAcquire(&r->mutex);
	was = r->state;
	if (r->generation == gen && (how != ABANDON_UNTAKEN || was == DR_SLOT_SUBMITTED)) {
		if (r->state == DR_SLOT_DONE) {
			if (how == ABANDON_ANY) {
				r->state = DR_SLOT_FREE;
				wake = true;
			}
		} else if (r->state == DR_SLOT_SUBMITTED || r->state == DR_SLOT_RUNNING) {
			r->state = DR_SLOT_ABANDONED;
			r->held = held && was == DR_SLOT_RUNNING;
		}
	}
	SpinLockRelease(&r->mutex);
	if (wake)
		ConditionVariableBroadcast(&r->cv);
	return was;
}

/* A backend that exits while it waits (FATAL skips PG_CATCH) leaves nothing behind. */
static void on_backend_exit(int code, Datum arg)
{
	DrRequest *r = &dr_requests[MyBackendId - 1];
	uint64 gen;

	SpinLockAcquire(&r->mutex);
	gen = r->generation;
	SpinLockRelease(&r->mutex);
	abandon(r, gen, ABANDON_ANY, false);
}

/* How long the engine worker has not looped, as the waits of one caller see
 * it: counted in its own polls (STALL_POLL_MS, or less when woken), not by
 * the clock, which may step. */
typedef struct StallWatch {
	uint64 loops; /* the worker's loop count when it last moved */
	int still;    /* polls since */
} StallWatch;

static void stall_watch_start(StallWatch *w)
{
	w->loops = pg_atomic_read_u64(&dr_shared->engine_loops);
	w->still = 0;
}

/*
 * A proposal's caller waits for its outcome without taking a cancel: the
 * Raft core bounds that wait (CheckQuorum, the request timeout), while the
 * engine worker runs.  One that has not looped for an election timeout (a
 * hung disk, SIGSTOP) would hold the backend for as long, deaf to
 * pg_cancel_backend, pg_terminate_backend and a fast shutdown: with one of
 * those pending, or statement_timeout past (PostgreSQL disabled its timer
 * before COMMIT), the caller gives up then.  The caller of another request
 * (leave_group, which must know whether its data is gone) gives up only on
 * one the engine has not taken.  So does one that waits for its slot to be
 * freed of an earlier request the engine has not taken either (wait_free).
 */
static bool give_up_on_stalled_engine(StallWatch *w)
{
	uint64 loops = pg_atomic_read_u64(&dr_shared->engine_loops);
	/* An idle worker loops every HOUSEKEEPING_MS (250 ms) at least. */
	int limit = Max(dr_election_rtt * dr_rtt_ms, 1000);

	if (loops != w->loops) {
		w->loops = loops;
		w->still = 0;
		return false;
	}
	w->still++;
	if (!QueryCancelPending && !ProcDiePending &&
	    !(StatementTimeout > 0 &&
	      TimestampDifferenceExceeds(GetCurrentStatementStartTimestamp(), GetCurrentTimestamp(),
	                                 StatementTimeout)))
		return false;
	return w->still * STALL_POLL_MS >= limit;
}

/* Wait until the slot is free: an abandoned request of ours may still run.
 * False if the engine worker stopped answering meanwhile (nothing submitted). */
static bool wait_free(DrRequest *r)
{
	StallWatch watch;
	bool freed = true;

	stall_watch_start(&watch);
	for (;;) {
		DrSlotState s;

		SpinLockAcquire(&r->mutex);
		s = r->state;
		if (s == DR_SLOT_DONE) /* an outcome nobody collected */
			r->state = s = DR_SLOT_FREE;
		SpinLockRelease(&r->mutex);
		if (s == DR_SLOT_FREE)
			break;
		if (give_up_on_stalled_engine(&watch)) {
			freed = false;
			break;
		}
		(void)ConditionVariableTimedSleep(&r->cv, STALL_POLL_MS, PG_WAIT_EXTENSION);
	}
	ConditionVariableCancelSleep();
	return freed;
}

/* What a request of kind asks, for an error. */
static const char *request_name(DrRequestKind kind)
{
	switch (kind) {
	case DR_REQ_CREATE_GROUP:
		return "create_group";
	case DR_REQ_TRANSFER_LEADER:
		return "transfer_leader";
	case DR_REQ_PROPOSE:
		return "proposal";
	case DR_REQ_JOIN_GROUP:
		return "join_group";
	case DR_REQ_CHANGE_MEMBER:
		return "membership change";
	case DR_REQ_LEAVE_GROUP:
		return "leave_group";
	case DR_REQ_READ_INDEX:
		return "linearizable read";
	case DR_REQ_SNAPSHOT:
		return "snapshot";
	case DR_REQ_LOG_DIGEST:
		return "log digest";
	}
	return "request";
}

static void engine_not_running(void)
{
	ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
	                errmsg("dragonraft engine worker is not running"),
	                errhint("%s", dr_engine_restart_hint())));
}

static void call(DrRequestKind kind, uint64 group_id, uint64 arg, const void *payload, Size len,
                 DrResult *res, bool cancellable)
{
	DrRequest *r = my_slot();
	dsm_segment *seg = NULL;
	dsm_handle handle = DSM_HANDLE_INVALID;
	uint64 gen;
	bool accepted;
	StallWatch watch;

	if (!exit_hook_set) {
		before_shmem_exit(on_backend_exit, (Datum)0);
		exit_hook_set = true;
	}
	last_untaken = true; /* until the engine may have taken it */
	if (!wait_free(r)) {
		memset(res, 0, sizeof(*res));
		res->rc = DR_RC_NOT_TAKEN;
		strlcpy(res->errmsg, "the engine worker stopped answering", sizeof(res->errmsg));
		goto out;
	}

	SpinLockAcquire(&r->mutex);
	gen = (r->generation + 1) & GEN_MASK;
	SpinLockRelease(&r->mutex);
	if (len > DR_INLINE_PAYLOAD) {
		DrPayloadHeader *h;

		seg = dsm_create(sizeof(DrPayloadHeader) + len, 0);
		h = dsm_segment_address(seg);
		h->slot = MyBackendId - 1;
		h->generation = gen;
		h->len = len;
		memcpy(h + 1, payload, len);
		handle = dsm_segment_handle(seg);
	}

	/* Only this backend changes a FREE slot; SUBMITTED publishes it. */
	if (seg == NULL && len > 0)
		memcpy(r->payload, payload, len);
	SpinLockAcquire(&r->mutex);
	r->generation = gen;
	r->state = DR_SLOT_SUBMITTED;
	r->held = false;
	r->kind = kind;
	r->group_id = group_id;
	r->arg = arg;
	r->len = len;
	r->dsm = handle;
	SpinLockRelease(&r->mutex);

	SpinLockAcquire(&dr_shared->queue_mutex);
	accepted = dr_shared->accepting;
	if (accepted)
		dr_ring[dr_shared->ring_tail++ % MaxBackends] = MyBackendId - 1;
	SpinLockRelease(&dr_shared->queue_mutex);
	if (!accepted) {
		SpinLockAcquire(&r->mutex);
		r->state = DR_SLOT_FREE;
		SpinLockRelease(&r->mutex);
		if (seg != NULL)
			dsm_detach(seg);
		engine_not_running();
	}
	dr_shmem_wake_engine();
	stall_watch_start(&watch);

	if (!cancellable)
		HOLD_INTERRUPTS(); /* CHECK_FOR_INTERRUPTS in the sleep does nothing */
	PG_TRY();
	{
		ConditionVariablePrepareToSleep(&r->cv);
		for (;;) {
			bool done;

			SpinLockAcquire(&r->mutex);
			done = r->state == DR_SLOT_DONE;
			if (done) {
				*res = r->result;
				r->state = DR_SLOT_FREE;
			}
			SpinLockRelease(&r->mutex);
			if (done)
				break;
			if (!cancellable && give_up_on_stalled_engine(&watch)) {
				/* Any other request is given up on only before the engine took
				 * it.  A proposal the engine runs may commit, at an index not
				 * known here: no later one of its group may be made from rows
				 * that lack it, so it is counted before the slot says so
				 * (the engine uncounts it once it finished it: finish()). */
				bool propose = kind == DR_REQ_PROPOSE;
				DrSlotState was;

				if (propose)
					dr_xact_unknown_proposal(group_id, 1, 0);
				was = abandon(r, gen, propose ? ABANDON_WAITING : ABANDON_UNTAKEN,
				              propose);
				if (propose && was != DR_SLOT_RUNNING)
					dr_xact_unknown_proposal(group_id, -1, 0);
				if (was == DR_SLOT_SUBMITTED ||
				    (propose && was == DR_SLOT_RUNNING)) {
					memset(res, 0, sizeof(*res));
					res->rc = was == DR_SLOT_SUBMITTED ? DR_RC_NOT_TAKEN
					                                   : DR_RC_ENGINE_STALLED;
					strlcpy(res->errmsg, "the engine worker stopped answering",
					        sizeof(res->errmsg));
					break;
				}
			}
			(void)ConditionVariableTimedSleep(&r->cv, cancellable ? -1 : STALL_POLL_MS,
			                                  PG_WAIT_EXTENSION);
		}
		ConditionVariableCancelSleep();
	}
	PG_CATCH();
	{
		ConditionVariableCancelSleep();
		if (!cancellable)
			RESUME_INTERRUPTS();
		last_untaken = abandon(r, gen, ABANDON_ANY, false) == DR_SLOT_SUBMITTED;
		PG_RE_THROW();
	}
	PG_END_TRY();
	if (!cancellable)
		RESUME_INTERRUPTS();
	if (seg != NULL)
		dsm_detach(seg);
	last_untaken = res->rc == DR_RC_NOT_TAKEN; /* (an outcome: it was taken) */
out:
	/* A proposal's caller says so itself (dr_proposal_refused). */
	if (res->rc == DR_RC_NOT_TAKEN && kind != DR_REQ_PROPOSE)
		ereport(ERROR,
		        (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
		         errmsg("dragonraft's engine on this node did not take the %s of group "
		                "%llu: %s",
		                request_name(kind), (unsigned long long)group_id, res->errmsg),
		         errdetail("Nothing was done."), errhint("%s", dr_engine_restart_hint())));
}

void dr_queue_call(DrRequestKind kind, uint64 group_id, uint64 arg, const void *payload, Size len,
                   DrResult *res)
{
	call(kind, group_id, arg, payload, len, res, true);
}

/*
 * The engine worker goes on with a request that it took whatever becomes of
 * its caller (it waits for a quorum, an election, a snapshot): a cancel then
 * does not mean that nothing happened, which is what 57014 says (review 24,
 * TAP 079, 085).  One it never took was not made.
 */
void dr_queue_call_unknown_if_cancelled(DrRequestKind kind, uint64 group_id, uint64 arg,
                                        const void *payload, Size len, DrResult *res,
                                        const char *unknown, const char *hint)
{
	MemoryContext cxt = CurrentMemoryContext;

	PG_TRY();
	{
		call(kind, group_id, arg, payload, len, res, true);
	}
	PG_CATCH();
	{
		ErrorData *ed;

		MemoryContextSwitchTo(cxt);
		ed = CopyErrorData();
		if (ed->sqlerrcode != ERRCODE_QUERY_CANCELED || last_untaken)
			PG_RE_THROW();
		FlushErrorState();
		ereport(ERROR,
		        (errcode(ERRCODE_T_R_STATEMENT_COMPLETION_UNKNOWN), errmsg("%s", unknown),
		         errdetail("The engine worker took the request before the statement ended "
		                   "(%s).",
		                   ed->message),
		         errhint("%s", hint)));
	}
	PG_END_TRY();
}

void dr_queue_call_uncancellable(DrRequestKind kind, uint64 group_id, uint64 arg,
                                 const void *payload, Size len, DrResult *res)
{
	call(kind, group_id, arg, payload, len, res, false);
}

/* ---- engine worker side ---- */

/* Free a slot its backend abandoned, or finish one with res. */
static void finish(DrRequest *r, uint64 gen, const DrResult *res)
{
	bool wake = false, held = false;
	uint64 group_id = 0;

	SpinLockAcquire(&r->mutex);
	if (r->generation == gen) {
		if (r->state == DR_SLOT_ABANDONED) {
			r->state = DR_SLOT_FREE;
			held = r->held;
			r->held = false;
			group_id = r->group_id;
			wake = true;
		} else if (r->state == DR_SLOT_SUBMITTED || r->state == DR_SLOT_RUNNING) {
			r->result = *res;
			r->state = DR_SLOT_DONE;
			wake = true;
		}
	}
	SpinLockRelease(&r->mutex);
	/* A proposal given up on while it ran: where it lies, if it committed.
	 * Any other outcome means this node no longer leads the proposal's term:
	 * a writer here waits for a later term's no-op, after which every entry
	 * of that term that will ever commit is applied (review 14 R3: an index
	 * no entry ever filled held writers off for good). */
	if (held)
		dr_xact_unknown_proposal(group_id, -1, res->rc == 0 ? res->index : 0);
	if (wake)
		ConditionVariableBroadcast(&r->cv);
}

static void fail(DrRequest *r, uint64 gen, int rc, const char *msg)
{
	DrResult res;

	memset(&res, 0, sizeof(res));
	res.rc = rc;
	strlcpy(res.errmsg, msg, sizeof(res.errmsg));
	finish(r, gen, &res);
}

/* Fail every request still outstanding (none is in the ring: it is closed).
 * A request never taken did nothing: its caller must not call its outcome
 * unknown. */
static void fail_all(void)
{
	for (int i = 0; i < MaxBackends; i++) {
		DrRequest *r = &dr_requests[i];
		uint64 gen;
		bool untaken;

		SpinLockAcquire(&r->mutex);
		gen = r->generation;
		untaken = r->state == DR_SLOT_SUBMITTED;
		SpinLockRelease(&r->mutex);
		if (untaken)
			fail(r, gen, DR_RC_NOT_TAKEN, "the engine worker exited before it took it");
		else
			fail(r, gen, DR_RC_ENGINE_EXITED, "");
	}
}

/*
 * Engine worker: how many requests the current drain (the calls of
 * dr_queue_take until it returns false) may still take; -1 between drains.
 * A drain takes only the requests submitted before it began: one submitted
 * while it runs waits for the engine's next loop (the latch is set), so that
 * the engine's rounds run in between.  Else a request that its caller makes
 * again as soon as it is answered (log_digest's steps) kept the engine in
 * one drain for as long as two such callers took turns: no round, no
 * heartbeat, commits waiting (review30).
 */
static int64 drain_left = -1;

void dr_queue_open(void)
{
	fail_all(); /* left by a predecessor that could not clean up */
	SpinLockAcquire(&dr_shared->queue_mutex);
	dr_shared->ring_head = dr_shared->ring_tail = 0;
	drain_left = -1;
	dr_shared->accepting = true;
	SpinLockRelease(&dr_shared->queue_mutex);
}

bool dr_queue_take(DrTaken *t)
{
	for (;;) {
		DrRequest *r;
		int slot = -1;
		DrSlotState state;
		dsm_handle handle;

		SpinLockAcquire(&dr_shared->queue_mutex);
		if (drain_left < 0)
			drain_left = (int64)(uint32)(dr_shared->ring_tail - dr_shared->ring_head);
		if (dr_shared->ring_head != dr_shared->ring_tail && drain_left > 0) {
			slot = dr_ring[dr_shared->ring_head++ % MaxBackends];
			drain_left--;
		}
		if (dr_shared->ring_head == dr_shared->ring_tail) {
			dr_shared->ring_head = dr_shared->ring_tail = 0; /* never wraps */
		} else if (dr_shared->ring_head >= (uint32)MaxBackends) {
			/* Requests left for the next drain: the ring may not empty for
			 * long under load; the same places, smaller numbers. */
			uint32 k =
			        dr_shared->ring_head - dr_shared->ring_head % (uint32)MaxBackends;

			dr_shared->ring_head -= k;
			dr_shared->ring_tail -= k;
		}
		SpinLockRelease(&dr_shared->queue_mutex);
		if (slot < 0) {
			drain_left = -1;
			return false;
		}

		r = &dr_requests[slot];
		memset(t, 0, sizeof(*t));
		SpinLockAcquire(&r->mutex);
		state = r->state;
		t->slot = slot;
		t->generation = r->generation;
		if (state == DR_SLOT_SUBMITTED) {
			r->state = DR_SLOT_RUNNING;
			t->kind = r->kind;
			t->group_id = r->group_id;
			t->arg = r->arg;
			t->len = r->len;
			t->payload = r->payload;
		} else if (state == DR_SLOT_ABANDONED) {
			r->state = DR_SLOT_FREE; /* given up before it started */
		}
		handle = r->dsm;
		SpinLockRelease(&r->mutex);
		if (state == DR_SLOT_ABANDONED)
			ConditionVariableBroadcast(&r->cv);
		if (state != DR_SLOT_SUBMITTED)
			continue;
		if (handle != DSM_HANDLE_INVALID) {
			DrPayloadHeader *h;

			t->seg = dsm_attach(handle);
			if (t->seg == NULL) {
				/* The backend gave up and its segment went with it. */
				fail(r, t->generation, DR_RC_BAD_REQUEST,
				     "the request's payload is gone");
				continue;
			}
			dsm_pin_mapping(t->seg); /* ours until dr_queue_done_with_payload */
			h = dsm_segment_address(t->seg);
			if (dsm_segment_map_length(t->seg) < sizeof(*h) + t->len ||
			    h->slot != slot || h->generation != t->generation || h->len != t->len) {
				dr_queue_done_with_payload(t);
				fail(r, t->generation, DR_RC_BAD_REQUEST,
				     "the request's payload belongs to another request");
				continue;
			}
			t->payload = (const char *)(h + 1);
		}
		return true;
	}
}

void dr_queue_done_with_payload(DrTaken *t)
{
	if (t->seg != NULL)
		dsm_detach(t->seg);
	t->seg = NULL;
	t->payload = NULL;
}

void dr_queue_complete(int slot, uint64 generation, const DrResult *res)
{
	finish(&dr_requests[slot], generation, res);
}

bool dr_queue_given_up(int slot, uint64 generation)
{
	DrRequest *r = &dr_requests[slot];
	bool given_up;

	SpinLockAcquire(&r->mutex);
	given_up = r->generation != generation || r->state != DR_SLOT_RUNNING;
	SpinLockRelease(&r->mutex);
	return given_up;
}

void dr_queue_close(void)
{
	SpinLockAcquire(&dr_shared->queue_mutex);
	dr_shared->accepting = false;
	dr_shared->ring_head = dr_shared->ring_tail = 0;
	SpinLockRelease(&dr_shared->queue_mutex);
	fail_all(); /* nothing can be submitted now */
}

void *dr_queue_ctx(const DrTaken *t)
{
	return (void *)(uintptr_t)((t->generation << CTX_SLOT_BITS) | (uint64)t->slot);
}

void dr_queue_from_ctx(void *ctx, int *slot, uint64 *generation)
{
	uint64 v = (uint64)(uintptr_t)ctx;

	*slot = (int)(v & ((1 << CTX_SLOT_BITS) - 1));
	*generation = v >> CTX_SLOT_BITS;
}

/* ---- the create_group payload ---- */

char *dr_queue_encode_members(const DrMemberAddr *m, int n, Size *len)
{
	Size size = sizeof(uint32);
	char *buf, *p;

	for (int i = 0; i < n; i++)
		size += sizeof(uint64) + sizeof(uint16) + strlen(m[i].addr);
	p = buf = palloc(size);
	memcpy(p, &(uint32){(uint32)n}, sizeof(uint32));
	p += sizeof(uint32);
	for (int i = 0; i < n; i++) {
		uint16 alen = (uint16)strlen(m[i].addr);

		memcpy(p, &m[i].node_id, sizeof(uint64));
		p += sizeof(uint64);
		memcpy(p, &alen, sizeof(uint16));
		p += sizeof(uint16);
		memcpy(p, m[i].addr, alen);
		p += alen;
	}
	*len = size;
	return buf;
}

bool dr_queue_decode_members(const char *p, Size len, DrMemberAddr *out, int max, int *n)
{
	const char *end = p + len;
	uint32 count;

	if (len < sizeof(uint32))
		return false;
	memcpy(&count, p, sizeof(uint32));
	p += sizeof(uint32);
	if (count > (uint32)max)
		return false;
	for (uint32 i = 0; i < count; i++) {
		uint16 alen;

		if (end - p < (ptrdiff_t)(sizeof(uint64) + sizeof(uint16)))
			return false;
		memcpy(&out[i].node_id, p, sizeof(uint64));
		p += sizeof(uint64);
		memcpy(&alen, p, sizeof(uint16));
		p += sizeof(uint16);
		if (alen >= DR_ADDR_LEN || end - p < alen)
			return false;
		memcpy(out[i].addr, p, alen);
		out[i].addr[alen] = '\0';
		p += alen;
	}
	*n = (int)count;
	return p == end;
}
