# Review 37 of dragonraft.apply_batch_delay: waits for a follower's applied
# index that did not ask for it (dr_shmem_want_applied) waited out the held
# batch.  The delay is 60 s; each wait runs under a statement_timeout of
# 30 s, so a wait that does not end the batch fails.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $c = DragonCluster->new(3, conf => "dragonraft.apply_batch_delay = '60s'\n");
$c->create_group(1, 1, 2);

# (DragonCluster::leading: not waiting for the applied index, which a held batch holds back)
sub leading { return $c->leading(1); }
my $L = leading();
ok($L, "node $L leads group 1");
my $N = $c->node($L);
$N->safe_psql('postgres', q{SELECT dragonraft.execute(1, 'CREATE TABLE t (id int PRIMARY KEY, v int)')});
$N->safe_psql('postgres', q{SELECT dragonraft.replicate_table('t', 1)});
$N->safe_psql('postgres', join('', map { "INSERT INTO t VALUES ($_, $_);\n" } 1 .. 20));

# 1. join_group waits until the joiner applied what the leader committed:
# the joiner's last batch was held for the delay.
$N->safe_psql('postgres', "SELECT dragonraft.add_member(1, 3, '" . $c->raft_address(3) . "')");
my ($ret, $out, $err) = $c->node(3)->psql('postgres',
	"SET statement_timeout = '30s'; SELECT dragonraft.join_group(1, '" . $c->members(1, 2) . "')");
is($ret, 0, 'join_group on node 3 returns (it asks for its applied index)') or diag $err;
is($c->query(3, 'SELECT count(*) FROM t'), '20', 'node 3 has the 20 rows');

# 2. dragonraft.snapshot on a follower records the membership as of an
# applied index made durable: the change that added node 3 sat in the
# follower's held batch, and the engine's request timed out.
my ($F) = grep { $_ != $L } (1, 2);
($ret, $out, $err) = $c->node($F)->psql('postgres',
	"SET statement_timeout = '30s'; SELECT dragonraft.snapshot(1) > 0");
is($out, 't', "dragonraft.snapshot on follower $F returns (it asks for its applied index)")
  or diag $err;

# 3. The leadership moves to a follower whose batch holds the entries it
# got as one: the new leader's first write waits for its apply of the
# term's no-op, which the apply worker could apply in that batch before
# the engine published the node's new role (its status lags), and then
# hold for the delay.  Back and forth, so that each of nodes 1 and 2 takes
# over twice.
my $cur = $L;
for my $i (1 .. 4)
{
	my $to = $cur == 1 ? 2 : 1;
	$c->query($cur, "INSERT INTO t VALUES (" . (100 + $i) . ", 0)");
	$c->query($cur, "SELECT dragonraft.transfer_leader(1, $to)");
	ok($c->wait_until("node $to to lead", sub {
		($c->poll($to, q{SELECT role = 'leader' FROM dragonraft.status WHERE group_id = 1}) // '') eq 't' }),
		"transfer $i: node $to leads group 1");
	($ret, $out, $err) = $c->node($to)->psql('postgres',
		"SET statement_timeout = '30s'; INSERT INTO t VALUES (" . (200 + $i) . ", 0)");
	is($ret, 0, "transfer $i: the first write on the new leader $to returns") or diag $err;
	$cur = $to;
}
for my $id (1 .. 3)
{
	my ($r, $o, $e) = $c->node($id)->psql('postgres',
		"SET statement_timeout = '30s'; SET dragonraft.read_consistency = 'linearizable'; "
		  . 'SELECT count(*), sum(id) FROM t');
	is($o, '28|' . (210 + 4 * 100 + 10 + 4 * 200 + 10), "node $id has every row") or diag $e;
}

# 4. A table's registration takes its AccessExclusiveLock on a follower (its
# capture trigger): held in the batch for the delay, every read of the
# table there waited for it.  (Found by 8 linearizable readers on a
# follower under writes: one waited 60 s.)
$c->query($cur, q{SELECT dragonraft.execute(1, 'CREATE TABLE w (id int PRIMARY KEY)')});
$c->query($cur, q{SELECT dragonraft.replicate_table('w', 1)});
my $reg = $c->query($cur, 'SELECT commit_index FROM dragonraft.status WHERE group_id = 1');
ok($c->wait_until('node 3 to apply the registration of w', sub {
	($c->poll(3, qq{SELECT (SELECT applied_index >= $reg FROM dragonraft.status WHERE group_id = 1)
		OR EXISTS (SELECT FROM pg_locks l JOIN pg_stat_activity a USING (pid)
			WHERE a.backend_type = 'dragonraft apply' AND l.relation = 'w'::regclass)}) // '') eq 't' }),
	'node 3 applied the registration of w');
($ret, $out, $err) = $c->node(3)->psql('postgres',
	"SET statement_timeout = '30s'; SELECT count(*) FROM w");
is($out, '0', 'a read of w on node 3 returns (the registration ended its batch)') or diag $err;

done_testing();
