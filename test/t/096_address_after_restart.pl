# A member's address given wrong to add_member and corrected with join_group
# on the leader stays corrected after every server of the cluster restarts at
# once (user28).  It came back: a restart applies the log's membership changes
# above the last snapshot again, and the one that carried the wrong address
# taught it again over the correction; and groups started one after another
# each handed the transport their own address for the node, the last started
# winning.  Node 4 is added to group 2 at the wrong address too (it never
# joins there), so that group's book keeps the wrong one; the correction is
# given right after the additions, which some members apply after it.
# - after the correction, node 4 catches up and every member shows it at the
#   right address in dragonraft.members;
# - after all four servers restart at once, node 4 gets new rows again, and
#   dragonraft.members shows the right address (the one dialed).
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $c = DragonCluster->new(4);
$c->create_group(1, 1, 2, 3);
$c->create_group(2, 1, 2, 3);
my $l = $c->leader(1);
ok($l, "group 1 has a leader (node $l)");
my $L = $c->node($l);
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, 'CREATE TABLE t (id int PRIMARY KEY)')});
$L->safe_psql('postgres', q{INSERT INTO t SELECT generate_series(1, 10);
SELECT dragonraft.replicate_table('t', 1)});

my $wrong = '127.0.0.1:' . PostgreSQL::Test::Cluster::get_free_port();
my $right = $c->raft_address(4);
my $l2 = $c->leader(2);
$c->node($l2)->safe_psql('postgres', "SELECT dragonraft.add_member(2, 4, '$wrong', false)");
$L->safe_psql('postgres', "SELECT dragonraft.add_member(1, 4, '$wrong', false)");
# (Not waited for: a follower may apply either change after the correction
# below.  The changes carry when their address was given, so the correction
# stays newer wherever they apply; before, a member stamped the address when
# it applied the change, and one that applied it after the correction dialed
# the wrong one: node 2 did, in CI, until the test waited here.  TAP 155.)
$L->safe_psql('postgres', qq{SELECT dragonraft.join_group(1, '{"4": "$right"}')});
$c->node(4)->safe_psql('postgres', "SELECT dragonraft.join_group(1, '" . $c->members(1, 2, 3) . "')");
$c->group_nodes(1, 1, 2, 3, 4);
ok($c->caught_up(1), 'with its address corrected on the leader, node 4 catches up');

# node 4's address in dragonraft.members on each of nodes 1 to 3 is the right one
sub all_show_right
{
	my ($when) = @_;
	my $ok = 1;
	for my $id (1 .. 3)
	{
		$ok &&= $c->wait_until(
			"node $id to show node 4 at $right $when",
			sub {
				($c->poll($id, 'SELECT address FROM dragonraft.members WHERE group_id = 1 AND node_id = 4')
					  // '') eq $right;
			});
		diag 'node ' . $id . ' shows: '
		  . ($c->poll($id, 'SELECT group_id, address FROM dragonraft.members WHERE node_id = 4') // '(down)')
		  unless $ok;
	}
	return $ok;
}
ok(all_show_right('after the correction'), 'every member shows node 4 at the right address');

# Every server restarts at once.
$c->node($_)->stop('fast') for 1 .. 4;
$c->node($_)->start for 1 .. 4;
ok($c->wait_until('a leader of group 1 after the restart', sub { $c->leader(1) }), 'group 1 has a leader again');
$l = $c->leader(1);
# (the leader may have moved: the write goes through whichever node leads)
$c->wait_until('a write on the leader of group 1',
	sub { my $w = $c->leader(1) or return 0;
		my ($out, $err, $state) = $c->poll_result($w, 'INSERT INTO t VALUES (11)');
		return $state eq 'ok'; });
ok($c->wait_until('node 4 to get the row written after the restart',
		sub { ($c->poll(4, 'SELECT count(*) FROM t WHERE id = 11') // '') eq '1' }, 60),
	'after a restart of every server, node 4 gets new rows (the members dial it at the right address)');
ok(all_show_right('after the restart'), 'and every member shows node 4 at the right address');

done_testing();
