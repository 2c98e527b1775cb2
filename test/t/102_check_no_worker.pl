# check_consistency on a member that has no background worker slot for its
# checker (helper consistency): it records the failure for that index, its
# apply goes on (the group is not wedged), and the other members record their
# digests.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $c = DragonCluster->new(3);
# Node 3: the engine worker, the logical replication launcher and the apply
# worker take every slot.
$c->node(3)->append_conf('postgresql.conf', "max_worker_processes = 3\n");
$c->node(3)->restart;
$c->create_group(1);
my $l = $c->leader(1);
if (($l // 0) == 3)
{
	# (node 3 must be a follower here: the leader's digest is compared)
	$l = $c->lead(1, 1) ? 1 : undef;
}
ok($l && $l != 3, "node $l leads group 1");
$c->node($l)->safe_psql('postgres', q{
SELECT dragonraft.execute(1, 'CREATE TABLE t (id int PRIMARY KEY, v text)');
SELECT dragonraft.replicate_table('t', 1);
INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 100) g;
});
ok($c->caught_up(1), 'every member applied the writes');
my $m = $c->query($l, 'SELECT dragonraft.check_consistency(1)');
my %rows;
for my $id ($c->ids)
{
	ok($c->wait_until("node $id to record the check at $m", sub {
		$c->poll($id, "SELECT count(*) > 0 FROM dragonraft.consistency_checks "
			  . "WHERE group_id = 1 AND log_index = $m") eq 't' }), "node $id recorded the check");
	$rows{$id} = $c->query($id, "SELECT concat_ws(' ', relid, rows, digest, error) "
		  . "FROM dragonraft.consistency_checks WHERE group_id = 1 AND log_index = $m");
}
like($rows{3}, qr/^no background worker slot for the checker/, 'node 3 records why it could not check')
  or diag($rows{3});
my ($f) = grep { $_ != $l && $_ != 3 } $c->ids;
like($rows{$l}, qr/^t 100 [0-9a-f]{64}$/, "node $l recorded its digest") or diag($rows{$l});
is($rows{$f}, $rows{$l}, "node $f agrees with node $l") if defined $f;
$c->node($l)->safe_psql('postgres', "INSERT INTO t VALUES (101, 'after')");
ok($c->caught_up(1), "node 3's apply goes on after the check");
is($c->query(3, 'SELECT count(*) FROM t'), '101', 'node 3 has the later write');

done_testing();
