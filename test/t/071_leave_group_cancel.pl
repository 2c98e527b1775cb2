# Review 22: leave_group must be the whole statement, so that nothing can
# fail after it in its transaction (the LogDB data it deletes does not roll
# back).  But a cancel or statement_timeout that arrives while leave_group
# waits for the engine worker to delete the group (an uncancellable call:
# interrupts held) stays pending, and the executor's next
# CHECK_FOR_INTERRUPTS (the Result node asked for its next row) ends the
# statement with 57014 after the data is gone: the catalog rows, the
# replication origin and the capture triggers come back, and the
# left_groups record (which keeps this node id from joining the group
# again with a LogDB that forgot its votes) rolls back.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $c = DragonCluster->new(1);
my $n = $c->node(1);
my $addr = $c->raft_address(1);
$c->wait_until('the engine worker',
	sub { ($c->poll(1, 'SELECT engine_state FROM dragonraft.node_status()') // '') eq 'running' });

my %seen;
my @broken;
for my $i (1 .. 60)
{
	my $g = 100 + $i;
	# A member that cannot lead (the other member is unreachable): force.
	# (all but the timed leave_group through the poll session: one psql a round)
	$c->query(1, qq{SELECT dragonraft.create_group($g, '{"1": "$addr", "2": "127.0.0.1:9"}')});
	my $ms = 1 + int(($i - 1) / 2);
	my ($ret, $out, $err) = $n->psql('postgres',
		"SET statement_timeout = '${ms}ms';\nSELECT dragonraft.leave_group($g, true);");
	my $st = $c->query(1, qq{SELECT
		(SELECT count(*) FROM dragonraft.status WHERE group_id = $g) || ' ' ||
		(SELECT count(*) FROM pg_replication_origin WHERE roname = 'dragonraft_$g') || ' ' ||
		(SELECT count(*) FROM dragonraft.left_groups WHERE group_id = $g)});
	my $what = $ret == 0 ? 'left' : ($err =~ /statement timeout/ ? 'timeout' : "error: $err");
	$seen{"$what, status/origin/left_groups $st"}++;
	# Left: 0 0 1.  Nothing done: 1 1 0.  Anything else is a half-left group.
	push @broken, "group $g ($ms ms): $what, $st" unless $st eq '0 0 1' || $st eq '1 1 0';
	# Finish it whatever happened (leave_group(g, true) ends an interrupted leave).
	$c->poll_result(1, "SELECT dragonraft.leave_group($g, true)");
}
diag "$_: $seen{$_}" for sort keys %seen;
is(scalar(@broken), 0, 'no leave_group ended with its LogDB data gone and its catalog rows rolled back')
  or diag join("\n", @broken);
done_testing();
