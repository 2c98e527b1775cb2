/*
 * node_proto.h - what dr-node (node.c) and its drivers share besides the
 * line protocol described in node.c: the latency histogram buckets of the
 * bench command.  Bucket b covers microseconds [node_bench_bucket_us(b),
 * node_bench_bucket_us(b + 1)): exact below 16 us, then 16 buckets per
 * doubling (about 6% wide).
 */
#ifndef DRAGONRAFT_TEST_NODE_PROTO_H
#define DRAGONRAFT_TEST_NODE_PROTO_H

#include <stdint.h>

#define NODE_BENCH_BUCKETS 560

/* The bucket of a latency of us microseconds. */
static inline int node_bench_bucket(uint64_t us)
{
	int e = 0;
	int b;

	if (us < 16)
		return (int)us;
	while ((us >> e) >= 32)
		e++;
	/* now 16 <= us >> e < 32 */
	b = 16 + e * 16 + (int)((us >> e) - 16);
	return b < NODE_BENCH_BUCKETS ? b : NODE_BENCH_BUCKETS - 1;
}

/* The lowest latency (microseconds) bucket b holds. */
static inline uint64_t node_bench_bucket_us(int b)
{
	int e;

	if (b < 16)
		return (uint64_t)b;
	e = (b - 16) / 16;
	return (uint64_t)(16 + (b - 16) % 16) << e;
}

#endif /* DRAGONRAFT_TEST_NODE_PROTO_H */
