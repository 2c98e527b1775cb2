# dragonraft.apply_batch_delay: a follower's apply worker keeps its
# transaction open for more entries of the group, up to the delay, so that
# one commit applies many entries; a wait for the group's applied index on
# that node (a read barrier, execute()) gets the batch committed at once,
# and a leader never holds one (its backends' first writes wait for its
# apply of the term's no-op, and its backends apply their own entries after
# the apply worker's).
#
# The delay is 60 s here: a wait that did not end the batch would run into
# the statement_timeout of 30 s.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $c = DragonCluster->new(3, conf => "dragonraft.apply_batch_delay = '60s'\n");
$c->create_group(1);
# The group's own late entries (the members' addresses a new leader proposes
# ends a follower's batch) are applied before the batches counted below.
$c->settled(1);

# (DragonCluster::leading: not waiting for the applied index, which a held batch holds back)
sub leading { return $c->leading(1); }
my $L = leading();
ok($L, "node $L leads group 1");
my @F = grep { $_ != $L } $c->ids;

# Linearizable reads on node id, with a statement_timeout under the delay.
sub read_on
{
	my ($id, $sql) = @_;
	my ($ret, $out, $err) = $c->node($id)->psql('postgres',
		"SET statement_timeout = '30s'; SET dragonraft.read_consistency = 'linearizable'; $sql");
	diag "node $id: $err" if $ret != 0;
	return $ret == 0 ? $out : "error: $err";
}

is(read_on($L, q{SELECT dragonraft.execute(1, 'CREATE TABLE t (id int PRIMARY KEY, v int)') > 0}), 't',
	'execute() on the leader returns (a leader holds no batch: its apply of the bootstrap entries and no-op went first)');
$c->query($L, q{SELECT dragonraft.replicate_table('t', 1)});
# (also ends the batches open so far: the writes below start new ones)
is(read_on($_, 'SELECT dragonraft.read_barrier(1) > 0'), 't', "a read barrier on node $_ returns")
  for @F;

my $N = $c->node($L);
$N->safe_psql('postgres', join('', map { "INSERT INTO t VALUES ($_, $_);\n" } 1 .. 20));
is($N->safe_psql('postgres', 'SELECT count(DISTINCT xmin::text) FROM t'), '20',
	'the leader committed 20 transactions');

is(read_on($F[0], 'SELECT count(*) FROM t'), '20',
	"a linearizable read on follower $F[0] sees the 20 rows (the barrier ended the batch)");
is($c->query($F[0], 'SELECT count(DISTINCT xmin::text) FROM t'), '1',
	"follower $F[0] applied the 20 entries in one transaction");

is(read_on($F[1], 'SELECT rows FROM dragonraft.table_digest(1)'), '20',
	"table_digest on follower $F[1] returns with the 20 rows (its drain ended the batch)");
is(read_on($F[1], q{SELECT dragonraft.execute(1, 'CREATE INDEX t_v ON t (v)') > 0}), 't',
	"execute() on follower $F[1] returns (it waits for its apply there)");
is($c->query($F[1], q{SELECT count(*) FROM pg_indexes WHERE indexname = 't_v'}), '1',
	"the index is there on node $F[1]");
is($c->query($F[1], 'SELECT count(*) FROM t'), '20', "node $F[1] has the 20 rows");

# The leader goes: the new one's apply worker holds the entries it applied
# as a follower in an open batch; its term's no-op ends that batch.
$N->safe_psql('postgres', 'INSERT INTO t VALUES (21, 21)');
$N->stop('fast');
my $L2 = leading();
ok($L2, "node $L2 leads group 1 after node $L stopped");
my ($ret, $out, $err) = $c->node($L2)->psql('postgres',
	"SET statement_timeout = '30s'; INSERT INTO t VALUES (22, 22); SELECT count(*) FROM t");
is($out, '22', "the new leader takes a write at once and has every row") or diag $err;
my ($F2) = grep { $_ != $L2 } @F;
is(read_on($F2, 'SELECT count(*) FROM t'), '22', "follower $F2 has them too");

# leave_group on a follower whose batch holds the group's latest entry: it
# waits for the batch's end (review 36), which it asks for.
$N->start;
ok($c->wait_until("node $L to catch up", sub { read_on($L, 'SELECT count(*) FROM t') eq '22' }),
	"node $L is back and caught up");
$c->query($L2, 'INSERT INTO t VALUES (23, 23)');
($ret, $out, $err) = $c->node($F2)->psql('postgres',
	"SET statement_timeout = '30s'; SELECT dragonraft.leave_group(1, force => true)");
is($ret, 0, "leave_group on follower $F2 returns") or diag $err;
is($c->query($F2, q{SELECT count(*) FROM pg_replication_origin WHERE roname = 'dragonraft_1'}), '0',
	"node $F2 dropped the group's origin");

done_testing();
