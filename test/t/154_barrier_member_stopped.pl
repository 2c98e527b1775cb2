# A read barrier whose member stops under it (leave_group here while the
# read waits for its leader) fails saying so, with a reason; before, its
# error was the engine's bare "group stopped" (TAP 127 failed 1 run in 6 on
# join_group's barrier so: join_group now asks again, and then says the
# member left).
#
# Group 1 runs on nodes 1 to 3; the leader's engine worker is stopped
# (SIGSTOP), so a follower's read barrier waits for its answer (an
# election timeout of 10 s: no election meanwhile); the follower then
# leaves the group (leave_group(1, true)).
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $c = DragonCluster->new(3, conf => q{
dragonraft.election_rtt = 200
});
$c->create_group(1, 1, 2, 3);
my $l = $c->leader(1);
ok($l, "group 1 has a leader (node $l)");
my ($f) = grep { $_ != $l } $c->ids;
ok($c->caught_up(1), 'every member applied the group\'s entries');

my $engine = $c->process_of($l, qr/dragonraft engine/);
ok($engine, "node $l runs an engine worker");
kill 'STOP', $engine;
my $s = $c->start_session($f, '\set VERBOSITY default', 'SELECT dragonraft.read_barrier(1)');
ok($c->wait_until('the read barrier to wait', sub {
	($c->poll($f, "SELECT wait_event_type FROM pg_stat_activity WHERE pid = $s->{pid}") // '') eq 'Extension' }),
	"node ${f}'s read barrier waits for the leader");
$c->taken($f, 1);
$c->query($f, 'SELECT dragonraft.leave_group(1, true)');
$s->{h}->finish;
kill 'CONT', $engine;
like(${ $s->{err} }, qr/ERROR:  linearizable read barrier of dragonraft group 1 failed: the group stopped on this node while the barrier waited\nDETAIL:  The member left the group/,
	'the barrier fails saying the member stopped under it, and why');
is(${ $s->{out} }, "$s->{pid}\n", 'and returns nothing');
is($c->query($f, 'SELECT count(*) FROM dragonraft.status WHERE group_id = 1'), '0', "node $f left group 1");
$c->group_nodes(1, grep { $_ != $f } $c->ids);
ok($c->leader(1), 'group 1 goes on on the other members');
done_testing();
