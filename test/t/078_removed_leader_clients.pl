# Review 23: clients of a leader that transfers its leadership or removes
# itself: a linearizable read on the old leader right after the transfer;
# a transaction open on the leader across its own removal; writes, reads
# and leader() on the removed node; the members identical afterwards.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;

my $c = DragonCluster->new(4);
$c->create_group(1, 1, 2, 3, 4);
my $l = $c->leader(1);
ok($l, "group 1 has a writable leader (node $l)");
my @f = grep { $_ != $l } 1 .. 4;
my $L = $c->node($l);
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, 'CREATE TABLE t (id int PRIMARY KEY, v text)')});
$L->safe_psql('postgres', q{INSERT INTO t SELECT g, 'x' FROM generate_series(1, 100) g;
SELECT dragonraft.replicate_table('t', 1)});
ok($c->caught_up(1), 'nodes 1-4 replicate t');

# Transfer, then at once a write on the new leader and a linearizable read on the old one.
my $to = $f[0];
$L->safe_psql('postgres', "SELECT dragonraft.transfer_leader(1, $to)");
# (transfer_leader on the old leader returned before the target showed it
# led, and a write there at once failed with 25006, "no leader at the
# moment", until the target showed its role before its messages left, TAP
# 158; the wait stays: an election may move the leadership on)
ok($c->wait_until("node $to to lead group 1", sub {
	$c->query($to, 'SELECT role FROM dragonraft.status WHERE group_id = 1') eq 'leader' }),
	"node $to leads group 1");
$c->node($to)->safe_psql('postgres', "INSERT INTO t VALUES (101, 'after the transfer')");
my ($st, $msg) = $c->sql_error($l,
	"SET dragonraft.read_consistency = 'linearizable'; SELECT count(*) FROM t WHERE id = 101");
is($st, '', 'a linearizable read on the old leader right after the transfer answers') or diag $msg;
like($msg, qr/^$/, 'without an error');
is($L->safe_psql('postgres',
		"SET dragonraft.read_consistency = 'linearizable'; SELECT count(*) FROM t WHERE id = 101"),
	'1', 'and sees the row written on the new leader');

# Back to $l, then $l removes itself while a session there has a transaction open.
ok($c->lead(1, $l), "node $l leads again");
my $s = $L->background_psql('postgres', on_error_stop => 0);
$s->query_safe("BEGIN; INSERT INTO t VALUES (102, 'open across the removal')");
($st, $msg) = $c->sql_error($l, "SELECT dragonraft.remove_member(1, $l)");
is($st, '', 'the leader removes itself') or diag $msg;
$s->query('COMMIT');
note "commit on the removed leader: $s->{stderr}";
like($s->{stderr}, qr/ERROR/, 'the open transaction does not commit there');
$s->quit;
$c->group_nodes(1, @f);
my $nl = $c->leader(1);
ok($nl, "the others elect a leader (node $nl)");
ok($c->caught_up(1), 'and go on');
is($c->query($nl, 'SELECT count(*) FROM t WHERE id = 102'), '0', 'the open transaction left no row');

# The removed node: writes, reads, leader() and status.
ok($c->wait_until("node $l to show its removal",
		sub { $c->poll($l, 'SELECT state FROM dragonraft.status WHERE group_id = 1') eq 'removed' }),
	'its status says removed');
($st, $msg) = $c->sql_error($l, "INSERT INTO t VALUES (103, 'on the removed node')");
note "write on the removed node: $st $msg";
isnt($st, '', 'a write there is refused');
($st, $msg) = $c->sql_error($l, 'SELECT * FROM dragonraft.leader(1)');
note "leader() on the removed node: $st $msg";
my $ld = $L->safe_psql('postgres', 'SELECT node_id FROM dragonraft.leader(1)');
ok($ld eq '' || $ld == $nl, "leader() there names no node or the new leader (got '$ld')");
# (dragonraft.members shows the membership published with the status, at
# most 100 ms after the removal applied there)
ok($c->wait_until("node $nl to list node $l no more",
		sub { $c->poll($nl, "SELECT count(*) FROM dragonraft.members WHERE node_id = $l") eq '0' }),
	'the leader lists it no more');
# Review 23 F3: under 'linearizable' an INSERT that reads nothing of its
# table is no read: it was refused in REPEATABLE READ (0A000), and ran a
# read barrier in READ COMMITTED.  One that reads (RETURNING) still is.
($st, $msg) = $c->sql_error($nl, "SET dragonraft.read_consistency = 'linearizable'; "
	  . "BEGIN ISOLATION LEVEL REPEATABLE READ; INSERT INTO t VALUES (200, 'rr'); COMMIT");
is($st, '', 'a linearizable INSERT in REPEATABLE READ commits') or diag $msg;
($st, $msg) = $c->sql_error($nl, "SET dragonraft.read_consistency = 'linearizable'; "
	  . "BEGIN ISOLATION LEVEL REPEATABLE READ; INSERT INTO t VALUES (201, 'rr') RETURNING *; COMMIT");
is($st, '0A000', 'one with RETURNING reads, and is refused there');
($st, $msg) = $c->sql_error($nl, "SET dragonraft.read_consistency = 'linearizable'; "
	  . "INSERT INTO t VALUES (202, 'rc') ON CONFLICT (id) DO UPDATE SET v = t.v || 'again'");
is($st, '', 'an INSERT ... ON CONFLICT in READ COMMITTED commits') or diag $msg;
is($c->query($nl, 'SELECT string_agg(id::text, \',\' ORDER BY id) FROM t WHERE id >= 200'), '200,202',
	'with the rows of the statements that committed');
ok($c->caught_up(1), 'the group goes on');
for my $id (@f)
{
	is($c->contents($id, 't', 'id'), $c->contents($nl, 't', 'id'), "node $id has the leader's rows");
}
done_testing();
