# Review 23: leadership transfers and membership changes at their edges:
# a transfer to a non-voter (asked on the leader or on the non-voter), to
# the leader itself, to a voter that does not answer; a member removed
# while it is cut off, and what it says and does afterwards; two changes
# racing; the members identical at the end.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $c = DragonCluster->new(4);
$c->create_group(1, 1, 2, 3);
my $l = $c->leader(1);
ok($l, "group 1 has a writable leader (node $l)");
my ($f1, $f2) = grep { $_ != $l } 1 .. 3;
my $L = $c->node($l);
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, 'CREATE TABLE t (id int PRIMARY KEY, v text)')});
$L->safe_psql('postgres', q{INSERT INTO t SELECT g, 'x' FROM generate_series(1, 100) g;
SELECT dragonraft.replicate_table('t', 1)});
$L->safe_psql('postgres', "SELECT dragonraft.add_member(1, 4, '" . $c->raft_address(4) . "', false)");
$c->node(4)->safe_psql('postgres', "SELECT dragonraft.join_group(1, '" . $c->members(1, 2, 3) . "')");
$c->group_nodes(1, 1, 2, 3, 4);
ok($c->caught_up(1), 'nodes 1-3 and the non-voter 4 replicate t');

# A transfer to the non-voter: refused on the leader and on node 4 alike.
my ($st, $msg) = $c->sql_error($l, 'SELECT dragonraft.transfer_leader(1, 4)');
is($st, '22023', 'a transfer to a non-voter is refused on the leader') or diag $msg;
($st, $msg) = $c->sql_error(4, 'SELECT dragonraft.transfer_leader(1, 4)');
is($st, '22023', 'and on the non-voter itself (review 23 F2: 55000, check its lag)');
like($msg, qr/node 4 cannot lead group 1.*Only a voting member can lead/s, 'saying why');

# To the leader itself: nothing to do.
($st, $msg) = $c->sql_error($l, "SELECT dragonraft.transfer_leader(1, $l)");
is($st, '', 'a transfer to the leader itself returns') or diag $msg;
is($c->leader(1), $l, 'and the leader stays');

# To a voter whose engine worker is stopped: fails in bounded time, and the
# leader takes writes again afterwards.
my $epid2 = $c->node($f2)->safe_psql('postgres', 'SELECT engine_pid FROM dragonraft.node_status()');
kill 'STOP', $epid2;
$L->safe_psql('postgres', "INSERT INTO t VALUES (1001, 'while f2 stopped')");
my $t0 = time;
($st, $msg) = $c->sql_error($l, "SELECT dragonraft.transfer_leader(1, $f2)");
is($st, '55000', 'a transfer to a voter that does not answer fails');
cmp_ok(time - $t0, '<', 10, 'in bounded time');
($st, $msg) = $c->sql_error($l, "INSERT INTO t VALUES (1002, 'after the failed transfer')");
is($st, '', 'then the leader takes writes again') or diag $msg;

# f2, still cut off, is removed once 4 votes (of the voters left, all answer).
$L->safe_psql('postgres', 'SELECT dragonraft.promote_member(1, 4)');
($st, $msg) = $c->sql_error($l, "SELECT dragonraft.remove_member(1, $f2)");
is($st, '', "node $f2, cut off, is removed") or diag $msg;
kill 'CONT', $epid2;
$c->group_nodes(1, $l, $f1, 4);
is($L->safe_psql('postgres', 'SELECT string_agg(node_id::text, \',\' ORDER BY node_id) FROM dragonraft.members'),
	join(',', sort { $a <=> $b } ($l, $f1, 4)), 'the members no longer list it');
$L->safe_psql('postgres', "INSERT INTO t VALUES (1003, 'after the removal')");
ok($c->caught_up(1), 'the three members go on');
# f2 never hears of its removal (the leader no longer sends to it): it
# stays without a leader, and says so to writers and readers.
ok($c->wait_until("node $f2 to know no leader",
		sub { $c->poll($f2, 'SELECT leader_id IS NULL FROM dragonraft.status WHERE group_id = 1') eq 't' }),
	"node $f2 shows no leader");
($st, $msg) = $c->sql_error($f2, "INSERT INTO t VALUES (1004, 'on the removed node')");
is($st, '25006', 'a write on it is refused');
($st, $msg) = $c->sql_error($f2, "SET dragonraft.read_consistency = 'linearizable'; SELECT count(*) FROM t");
is($st, '55000', 'and a linearizable read');

# Two changes at once from two sessions on the leader.
my @h;
for my $n (8, 9)
{
	my ($in, $out, $err) = ("\\set VERBOSITY verbose\nSELECT dragonraft.add_member(1, $n, '127.0.0.1:9', false);\n", '', '');
	push @h, [ IPC::Run::start([ 'psql', '-XAtq', '-d', $L->connstr('postgres') ], '<', \$in, '>', \$out, '2>', \$err), \$out, \$err, $n ];
}
for my $x (@h)
{
	$x->[0]->finish;
	like(${ $x->[2] }, qr/^(|.*ERROR:  55006: a membership change or leadership transfer of group 1 is in progress.*)$/s,
		"racing add_member of node $x->[3] applied or was refused with 55006");
}
my $members = $L->safe_psql('postgres',
	'SELECT string_agg(node_id || \':\' || voting, \',\' ORDER BY node_id) FROM dragonraft.members');
like($members, qr/^\d:true,\d:true,\d:true(,8:false)?(,9:false)?$/, "the members after the race: $members");
for my $n (8, 9)
{
	next unless $members =~ /\b$n:false/;
	($st, $msg) = $c->sql_error($l, "SELECT dragonraft.remove_member(1, $n)");
	is($st, '', "node $n removed again") or diag $msg;
}
ok($c->caught_up(1), 'the group goes on');

# The leader's engine worker stopped past the election timeout: the others
# elect a leader and commit a row; a linearizable read asked on the old
# leader before its engine runs again either sees the row or fails.
my $epid = $L->safe_psql('postgres', 'SELECT engine_pid FROM dragonraft.node_status()');
kill 'STOP', $epid;
my $nl;
ok( $c->wait_until('a new leader',
		sub {
			for my $id ($f1, 4)
			{
				my $r = $c->poll($id, q{SELECT role = 'leader' AND applied_index = commit_index
					FROM dragonraft.status WHERE group_id = 1});
				return $nl = $id if $r eq 't';
			}
			return 0;
		}),
	'the others elect a leader');
$c->node($nl)->safe_psql('postgres', "INSERT INTO t VALUES (2001, 'new leader')");
my ($rin, $rout, $rerr) = ("SET dragonraft.read_consistency = 'linearizable';\n"
	  . "/* deposed */ SELECT count(*) FROM t WHERE id = 2001;\n/* deposed */ SELECT dragonraft.read_barrier(1) >= "
	  . $c->node($nl)->safe_psql('postgres', 'SELECT commit_index FROM dragonraft.status') . ";\n", '', '');
my $rh = IPC::Run::start([ 'psql', '-XAtq', '-d', $L->connstr('postgres') ], '<', \$rin, '>', \$rout, '2>', \$rerr);
$rh->pump while length $rin;
$c->wait_until('the read on the old leader to wait',
	sub { $c->poll($l, q{SELECT count(*) FROM pg_stat_activity WHERE query LIKE '/* deposed */%'
		AND wait_event_type = 'Extension'}) eq '1' });
kill 'CONT', $epid;
$rh->finish;
note "deposed read: [$rout] [$rerr]";
unlike($rout, qr/^0$/m, 'the old leader does not answer a stale read');
unlike($rout, qr/^f$/m, 'nor a stale read barrier');
ok($c->wait_until("node $l to follow node $nl",
		sub { $c->poll($l, 'SELECT role, leader_id FROM dragonraft.status WHERE group_id = 1') eq "follower|$nl" }),
	"the old leader's status shows the new leader");
ok($c->caught_up(1), 'the group goes on');
for my $id ($f1, 4)
{
	is($c->contents($id, 't', 'id'), $c->contents($l, 't', 'id'), "node $id has the leader's rows");
}
done_testing();
