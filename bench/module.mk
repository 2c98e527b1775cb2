# bench/: benchmarks of the extension inside PostgreSQL (the plain-C layers
# register theirs in their own module.mk).  They install the extension first.

# Three servers, 1,000 idle groups each: creation time, engine worker CPU and RSS.
.PHONY: bench-pg-groups
BENCH_STEPS += bench-pg-groups
bench-pg-groups: install
	bash bench/pg_groups.sh

# Three servers, one group: time from stopping the leader to a new one in status.
.PHONY: bench-pg-failover
BENCH_STEPS += bench-pg-failover
bench-pg-failover: install
	bash bench/pg_failover.sh

# The applied index in a replication origin against a group_state row.
.PHONY: bench-applied-index
BENCH_STEPS += bench-applied-index
bench-applied-index:
	bash bench/applied_index.sh

# pgbench tpcb-like: dragonraft (3 nodes) beside synchronous replication and a
# single server, then the failover write gap.
.PHONY: bench-pgbench
BENCH_STEPS += bench-pgbench
bench-pgbench: install
	bash bench/pgbench.sh
