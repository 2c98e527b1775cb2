# Review 70 of perf67's apply_delay_latch: what must end a follower's held
# batch, or its linger after one, sets that latch, or waits the whole of
# dragonraft.apply_batch_delay (60 s here).  Each wait runs under a
# statement_timeout of 30 s and is timed: well under the delay.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $c = DragonCluster->new(3, conf => "dragonraft.apply_batch_delay = '60s'\n");
$c->create_group(1, 1, 2);

my $L = $c->leading(1);
ok($L, "node $L leads group 1");
$c->query($L, q{SELECT dragonraft.execute(1, 'CREATE TABLE t (id int PRIMARY KEY, v int)')});
$c->query($L, q{SELECT dragonraft.replicate_table('t', 1)});

# Runs sql on node id under a statement_timeout of 30 s: its output, and
# the seconds it took.
sub timed
{
	my ($id, $sql) = @_;
	my $t0 = time;
	my ($ret, $out, $err) = $c->node($id)->psql('postgres', "SET statement_timeout = '30s'; $sql");
	my $took = time - $t0;
	diag "node $id: $err" if $ret != 0;
	return ($ret == 0 ? $out : undef, $took);
}

# 1. The leadership moves to a follower that lingers after a batch that a
# linearizable read ended: the read raised the group's wanted index to all
# that was handed, so the new leader's own dr_shmem_want_applied (its
# role's publication) raised nothing and woke nobody, and its term's no-op
# (a change set of the same group: no wake-up either) waited in the queue
# for the linger's end.  The new leader's first write waits for that no-op.
# (A race with the no-op's commit: without the fix, 1 to 3 of 8 writes
# waited out their statement_timeout.)
# The apply worker holds a batch open (its transaction) for more entries.
my $holding = q{SELECT xact_start IS NOT NULL AND wait_event_type = 'Extension'
	FROM pg_stat_activity WHERE backend_type = 'dragonraft apply'};
my $cur = $L;
my $id = 0;
for my $i (1 .. 8)
{
	my $to = $cur == 1 ? 2 : 1;
	$id++;
	$c->query($cur, "INSERT INTO t VALUES ($id, $i)");
	# (mostly: the write may come while its apply worker lingers)
	$c->poll_until(sub { ($c->poll($to, $holding) // '') eq 't' }, 10);
	my ($n, $took) = timed($to,
		"SET dragonraft.read_consistency = 'linearizable'; SELECT count(*) FROM t WHERE id = $id");
	is($n, 1, "transfer $i: a linearizable read on follower $to sees the write");
	cmp_ok($took, '<', 15, "transfer $i: the read took ${took}s");
	$c->query($cur, "SELECT dragonraft.transfer_leader(1, $to)");
	ok($c->wait_until("node $to to lead", sub {
		($c->poll($to, q{SELECT role = 'leader' FROM dragonraft.status WHERE group_id = 1}) // '') eq 't' }),
		"transfer $i: node $to leads group 1");
	$id++;
	(my $r, $took) = timed($to, "INSERT INTO t VALUES ($id, 0) RETURNING id");
	is($r, $id, "transfer $i: the first write on the new leader $to returns");
	cmp_ok($took, '<', 15, "transfer $i: the first write took ${took}s");
	$cur = $to;
}

done_testing();
