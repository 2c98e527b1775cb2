# A member that applies an add_member late keeps a correction of its
# address made since (user28, helper addrstamp85).  The change carries when
# its address was given (the leader's stamp at the proposal), and every
# member learns it as of then; before, each member stamped it when it
# applied it, so one that applied it after a correction (a member catching
# up) took the wrong address as the newest and dialed it again.
# Nodes 1 to 3 run group 1; a follower F is cut off from the others
# (nftables), node 4 is added at a wrong address on the leader (the leader
# and the other follower apply it), and the address is corrected with
# join_group on every member (F too: it learns it while cut off).  Then the
# cut heals and F applies the addition:
# - dragonraft.members on F shows node 4 at the right address;
# - node 4 joins, F leads the group, and node 4 gets the rows F writes (F
#   dials it at the right address).
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use PostgreSQL::Test::Utils;
use Test::More;

plan skip_all => 'no nft with CAP_NET_ADMIN (DR_NFT): no partitions' unless DragonCluster->can_cut;

my $c = DragonCluster->new(4, own_addresses => 1);
$c->create_group(1, 1, 2, 3);
my $l = $c->leader(1);
ok($l, "group 1 has a leader (node $l)");
$c->node($l)->safe_psql('postgres', q{SELECT dragonraft.execute(1, 'CREATE TABLE t (id int PRIMARY KEY)')});
$c->node($l)->safe_psql('postgres', q{INSERT INTO t SELECT generate_series(1, 10);
SELECT dragonraft.replicate_table('t', 1)});
ok($c->caught_up(1), 'every member has the table');
my ($f) = grep { $_ != $l } 1 .. 3;
my ($o) = grep { $_ != $l && $_ != $f } 1 .. 3;

my $wrong = $c->addr(4) . ':' . PostgreSQL::Test::Cluster::get_free_port();
my $right = $c->raft_address(4);
my $node4_sql = 'SELECT address FROM dragonraft.members WHERE group_id = 1 AND node_id = 4';

ok($c->cut($f, $l, $o), "node $f is cut off from nodes $l and $o");
$c->node($l)->safe_psql('postgres', "SELECT dragonraft.add_member(1, 4, '$wrong', false)");
ok($c->wait_until("node $o to apply node 4's addition", sub { ($c->poll($o, $node4_sql) // '') ne '' }),
	"node $o applied node 4's addition");
is($c->poll($f, $node4_sql) // '', '', "node $f, cut off, did not");
$c->node($_)->safe_psql('postgres', qq{SELECT dragonraft.join_group(1, '{"4": "$right"}')}) for 1 .. 3;
for my $id ($l, $o)
{
	ok($c->wait_until("node $id to show node 4 at $right",
			sub { ($c->poll($id, $node4_sql) // '') eq $right }),
		"node $id took the correction");
}
is($c->poll($f, $node4_sql) // '', '', "node $f still does not list node 4 in group 1");

ok($c->heal, 'the cut heals');
ok($c->wait_until("node $f to apply node 4's addition", sub { ($c->poll($f, $node4_sql) // '') ne '' }),
	"node $f applied node 4's addition after the correction");
is($c->poll($f, $node4_sql), $right, "node $f shows node 4 at the right address");

$c->node(4)->safe_psql('postgres', "SELECT dragonraft.join_group(1, '" . $c->members(1, 2, 3) . "')");
$c->group_nodes(1, 1, 2, 3, 4);
ok($c->lead(1, $f), "node $f leads group 1");
$c->wait_until("a write on node $f",
	sub { my ($out, $err, $state) = $c->poll_result($f, 'INSERT INTO t VALUES (11)'); return $state eq 'ok'; });
ok($c->wait_until('node 4 to get the row node ' . $f . ' wrote',
		sub { ($c->poll(4, 'SELECT count(*) FROM t WHERE id = 11') // '') eq '1' }, 60),
	"node 4 gets the rows node $f writes (node $f dials it at the right address)");
is($c->poll($f, $node4_sql), $right, "node $f still shows node 4 at the right address");

done_testing();
