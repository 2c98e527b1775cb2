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
# (node $L's info, proposed again after its restart, and the addresses the
# leader proposes for it end a follower's batch: in before the writes below)
ok($c->settled(1), "node ${L}'s info and the members' addresses are applied");
$c->query($L2, 'INSERT INTO t VALUES (23, 23)');
($ret, $out, $err) = $c->node($F2)->psql('postgres',
	"SET statement_timeout = '30s'; SELECT dragonraft.leave_group(1, force => true)");
is($ret, 0, "leave_group on follower $F2 returns") or diag $err;
is($c->query($F2, q{SELECT count(*) FROM pg_replication_origin WHERE roname = 'dragonraft_1'}), '0',
	"node $F2 dropped the group's origin");

# A command of the leader's while a follower's apply worker holds the
# group's entries for more (the leader's write just before: in a batch held
# open, or in the queue while the worker lingers after its last batch): the
# command's entry ends the wait at once (the engine worker wakes the apply
# worker for it, not for a change set of the group), as before entries were
# held: the index shows on the follower well before the delay's end.
# A row written on the leader $L2 whose entry follower $L committed: its
# index (undef when the follower did not commit it in time).
my $rows = 23;
sub write_committed
{
	$rows++;
	$c->query($L2, "INSERT INTO t VALUES ($rows, $rows)");
	my $wrote = $c->query($L2, 'SELECT applied_index FROM dragonraft.status WHERE group_id = 1');
	return $c->wait_until(
		"node $L to commit entry $wrote",
		sub {
			$c->query($L, "SELECT commit_index >= $wrote FROM dragonraft.status WHERE group_id = 1")
			  eq 't';
		}) ? $wrote : undef;
}
# Another entry of the group (node $L's own member info or addresses, after
# its restart above) ends the wait too and applies the write with it: then
# write again, a few times at most.
my ($wrote, $held);
for (1 .. 5)
{
	$wrote = write_committed() or last;
	$held = $c->query($L, "SELECT applied_index < $wrote FROM dragonraft.status WHERE group_id = 1") eq 't'
	  and last;
}
ok($wrote, "follower $L committed the write's entry");
ok($held, "follower $L holds the write (not applied, or in a batch held open)");
is(read_on($L2, q{SELECT dragonraft.execute(1, 'CREATE INDEX t_id_v ON t (id, v)') > 0}), 't',
	"execute() on the leader returns");
ok( $c->wait_until(
		"the index on node $L",
		sub { $c->query($L, q{SELECT count(*) FROM pg_indexes WHERE indexname = 't_id_v'}) eq '1' },
		20),
	"follower $L has the command's index within 20 s (its batch was held for 60 s)");
is($c->query($L, 'SELECT count(*) FROM t'), $rows, "node $L has the write held before the command");
# A reload that the apply worker takes while it lingers after a batch (its
# sleep of the delay before it looks at the queue again, once a batch
# waited): the delay set to 0 on the follower holds no later write there.
# The worker lingers after the barrier's commit; a write then waits in its
# queue; the reload ends the linger, and the worker reads the new setting
# there (under load it may never go idle, where it reads it otherwise).
is(read_on($L, 'SELECT dragonraft.read_barrier(1) > 0'), 't', "a read barrier on node $L returns");
ok(write_committed(), "follower $L committed the second write's entry");
$c->node($L)->safe_psql('postgres',
	"ALTER SYSTEM SET dragonraft.apply_batch_delay = 0; SELECT pg_reload_conf()");
ok( $c->wait_until(
		"the write on node $L", sub { $c->query($L, 'SELECT count(*) FROM t') eq $rows }, 20),
	"follower $L applies the write after the reload");
$rows++;
$c->query($L2, "INSERT INTO t VALUES ($rows, $rows)");
ok( $c->wait_until(
		"the next write on node $L", sub { $c->query($L, 'SELECT count(*) FROM t') eq $rows }, 20),
	"follower $L applies the next write within 20 s (the delay is 0 there now, not 60 s)");
done_testing();
