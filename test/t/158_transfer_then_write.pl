# transfer_leader's promise (testaudit93): once it returns, the target
# leads, as its own dragonraft.status shows, and a write sent there goes
# through.  transfer_leader on the old leader returns once that node heard
# from the new leader in its term; the target's engine worker published its
# role only after its round had sent those messages (and at most every
# STATUS_ROLE_MS), so a write sent to the target at once could find it a
# follower still and fail with 25006.  README promises it for a transfer
# run on the old leader or on the target: the rounds alternate (on the
# target, transfer_leader returns once its own core leads, after its
# in-round copy).
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $c = DragonCluster->new(3);
$c->create_group(1, 1, 2, 3);
my $cur = $c->leader(1);
ok($cur, "node $cur leads group 1");
$c->query($cur, q{SELECT dragonraft.execute(1, 'CREATE TABLE t (id int PRIMARY KEY, v int)')});
$c->query($cur, q{SELECT dragonraft.replicate_table('t', 1)});
$c->settled(1);

my $rounds = $ENV{DR_TRANSFER_ROUNDS} // 30;
my ($roles, $writes) = (0, 0);
for my $i (1 .. $rounds)
{
	my $to = ($cur % 3) + 1;
	my $on = $i % 2 ? $cur : $to; # README: on the old leader or on node n
	$c->query($on, "SELECT dragonraft.transfer_leader(1, $to)");
	my $role = $c->query($to, 'SELECT role FROM dragonraft.status WHERE group_id = 1');
	$roles++ if $role eq 'leader';
	diag "round $i: transfer on node $on, node $to says $role" if $role ne 'leader';
	my ($state, $err) = $c->sql_error($to, "INSERT INTO t VALUES ($i, $on)");
	$writes++ if $state eq '';
	diag "round $i: the write on node $to failed: $err" if $state ne '';
	$cur = $to;
}
is($roles, $rounds, "after each of $rounds transfers the target's own dragonraft.status says it leads");
is($writes, $rounds, "after each of $rounds transfers a write on the target at once succeeds");
is($c->query($cur, 'SELECT count(*) FROM t'), $rounds, 'every write is there');

done_testing();
