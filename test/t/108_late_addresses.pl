# A member's addresses that another group replicates late do not undo a
# correction made since (user28, what made TAP 096 fail in CI).  Node 4 is
# added at a wrong address to group 1 (node 1 alone) and to group 2 (nodes 1
# and 3, led by node 3, which is in no group with node 4 and so dials it at
# the wrong address for good).  node 4's address is corrected on node 1 with
# join_group, and node 4 joins group 1.  Then node 2 joins group 2: its member
# info makes group 2's leader (node 3) propose the addresses it knows, node 4
# at the wrong one, learned before the correction.  Node 1 applies that entry
# after the correction: it must keep dialing node 4 at the right address.
# - node 4 still gets group 1's new rows from node 1;
# - dragonraft.members on node 1 shows node 4 at the right address (the one
#   dialed).
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $c = DragonCluster->new(4);
$c->create_group(1, 1);
$c->create_group(2, 1, 3);
my $N1 = $c->node(1);
ok($c->leader(1) == 1, 'node 1 leads group 1');
$N1->safe_psql('postgres', q{SELECT dragonraft.execute(1, 'CREATE TABLE t (id int PRIMARY KEY)')});
$N1->safe_psql('postgres', q{INSERT INTO t SELECT generate_series(1, 10);
SELECT dragonraft.replicate_table('t', 1)});

# Node 3 leads group 2.
ok($c->wait_until('node 3 to lead group 2',
		sub {
			my $l = $c->leader(2) or return 0;
			return 1 if $l == 3;
			$c->poll_result($l, 'SELECT dragonraft.transfer_leader(2, 3)');
			return 0;
		}),
	'node 3 leads group 2');

my $wrong = '127.0.0.1:' . PostgreSQL::Test::Cluster::get_free_port();
my $right = $c->raft_address(4);
$c->node(3)->safe_psql('postgres', "SELECT dragonraft.add_member(2, 4, '$wrong', false)");
ok($c->caught_up(2), "group 2's members applied node 4's wrong address");
$N1->safe_psql('postgres', "SELECT dragonraft.add_member(1, 4, '$wrong', false)");
$N1->safe_psql('postgres', qq{SELECT dragonraft.join_group(1, '{"4": "$right"}')});
$c->node(4)->safe_psql('postgres', "SELECT dragonraft.join_group(1, '" . $c->members(1) . "')");
$c->group_nodes(1, 1, 4);
ok($c->caught_up(1), 'with its address corrected on node 1, node 4 catches up');
is($c->poll(4, 'SELECT count(*) FROM t'), '10', 'node 4 has the rows of group 1');

# node 4's address in dragonraft.members on node 1
sub node1_shows_right
{
	my ($when) = @_;
	my $ok = $c->wait_until("node 1 to show node 4 at $right $when",
		sub { ($c->poll(1, 'SELECT address FROM dragonraft.members WHERE group_id = 1 AND node_id = 4') // '') eq $right }, 60);
	diag 'node 1 shows: ' . ($c->poll(1, 'SELECT group_id, address FROM dragonraft.members WHERE node_id = 4') // '(down)')
	  unless $ok;
	return $ok;
}
ok(node1_shows_right('after the correction'), 'node 1 shows node 4 at the right address');

# Node 2 joins group 2: its member info, once committed, makes node 3
# propose the addresses it knows (node 4 at the wrong one).  That is the
# only entry node 3 proposes in group 2 meanwhile (a membership change is no
# proposal in its counter).
my $proposals_sql = 'SELECT proposals FROM dragonraft.stat_groups WHERE group_id = 2';
my $before = $c->poll(3, $proposals_sql);
$c->node(3)->safe_psql('postgres', "SELECT dragonraft.add_member(2, 2, '" . $c->raft_address(2) . "')");
$c->node(2)->safe_psql('postgres', "SELECT dragonraft.join_group(2, '" . $c->members(1, 3) . "')");
$c->group_nodes(2, 1, 2, 3);
ok($c->wait_until("node 3 to apply node 2's member info in group 2",
		sub { ($c->poll(3, 'SELECT count(*) FROM dragonraft.member_info WHERE group_id = 2 AND node_id = 2') // '') eq '1' }),
	"node 2's member info is applied in group 2");
ok($c->wait_until('node 3 to propose the addresses in group 2',
		sub { ($c->poll(3, $proposals_sql) // 0) > $before }),
	'node 3 proposed the addresses it knows in group 2');
# (then the command caught_up proposes comes after them in the log)
ok($c->caught_up(2), 'every member of group 2 applied the addresses node 3 proposed');
is($c->leader(2), 3, 'node 3 still leads group 2 (it proposed the addresses)');
ok(node1_shows_right("after group 2's late addresses"), "node 1 still shows node 4 at the right address");

$N1->safe_psql('postgres', 'INSERT INTO t VALUES (11)');
ok($c->wait_until('node 4 to get the row written after group 2 replicated its addresses',
		sub { ($c->poll(4, 'SELECT count(*) FROM t WHERE id = 11') // '') eq '1' }, 60),
	"node 4 gets group 1's new rows (node 1 still dials it at the right address)");

done_testing();
