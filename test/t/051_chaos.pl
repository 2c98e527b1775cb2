# Chaos under load: four clients transfer money on three nodes while random
# faults hit them one after another: SIGKILL of a node (leader or
# follower), of two nodes at once (no quorum until one is back), of a
# node's apply worker (a crash for its postmaster, which shuts the node
# down: it is started again),
# SIGSTOP of a node's engine worker for longer than an election timeout
# (its COMMITs wait, the others elect a leader; then SIGCONT), and a
# leadership transfer.  After each fault the clients commit again; at the
# end the sum of the balances is unchanged, every transfer that got COMMIT
# is on every node, nothing that failed is anywhere, and the nodes are
# identical.  DR_CHAOS_FAULTS (default 8) faults; DR_CHAOS_SEED repeats a
# run (the seed is printed).
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use Transfers;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $seed = $ENV{DR_CHAOS_SEED} // int(rand(1_000_000));
my $faults = $ENV{DR_CHAOS_FAULTS} // 8;
diag("chaos seed $seed (DR_CHAOS_SEED=$seed repeats this run), $faults faults");
srand($seed);

my $c = DragonCluster->new(3);
$c->create_group(1);
my $l = $c->leader(1);
ok($l, "group 1 has a writable leader (node $l)");
Transfers::setup($c, 1, $l);
my $load = Transfers->start($c, 4);
ok($load->wait_commits(20), 'the clients commit transfers');

# (The usleep calls below are the faults' random lengths, how long a node
# stays down or an engine worker stopped, not waits for a condition: every
# wait for an outcome polls with a deadline, wait_until and wait_commits.)

my @kinds = qw(crash crash_two kill_apply stop_engine transfer);
for my $k (1 .. $faults)
{
	my $kind = DragonCluster::pick(@kinds);
	my $leader = $c->leader(1);
	ok($leader, "fault $k: a writable leader (node " . ($leader // '-') . ')');
	my $victim = DragonCluster::pick($c->ids);
	if ($kind eq 'crash')
	{
		ok($c->crash($victim), "fault $k: node $victim killed with SIGKILL"
			  . ($victim == $leader ? ' (the leader)' : ''));
		usleep(int(rand(1_500_000)));
		$c->node($victim)->start;
	}
	elsif ($kind eq 'crash_two')
	{
		my @two = grep { $_ != $victim } $c->ids;
		ok($c->crash($_), "fault $k: node $_ killed with SIGKILL (two at once)") for @two;
		usleep(int(rand(1_500_000)));
		$c->node($_)->start for @two;
	}
	elsif ($kind eq 'kill_apply')
	{
		my @pids = $c->server_pids($victim);
		my $pid = $c->process_of($victim, qr/dragonraft apply/);
		ok($pid && kill('KILL', $pid), "fault $k: node ${victim}'s apply worker killed with SIGKILL");
		# The postmaster takes it for a crash; with restart_after_crash off
		# (the test clusters') it shuts the node down, and it is started again.
		$c->wait_until("node $victim to shut down", sub { !grep { -e "/proc/$_" } @pids });
		$c->node($victim)->{_pid} = undef;
		$c->node($victim)->start;
	}
	elsif ($kind eq 'stop_engine')
	{
		$victim = $leader if rand() < 0.7;
		my $pid = $c->process_of($victim, qr/dragonraft engine/);
		ok($pid && kill('STOP', $pid), "fault $k: node ${victim}'s engine worker stopped"
			  . ($victim == $leader ? ' (the leader)' : ''));
		usleep(800_000 + int(rand(1_500_000)));
		kill('CONT', $pid);
	}
	else
	{
		my ($to) = DragonCluster::pick(grep { $_ != $leader } $c->ids);
		$c->node($leader)->psql('postgres', "SELECT dragonraft.transfer_leader(1, $to)");
		pass("fault $k: leadership transfer from node $leader to node $to asked");
	}
	ok($load->wait_commits(5), "fault $k ($kind): transfers commit again");
}

my %r = $load->stop;
ok($c->caught_up(1), 'every member applied every entry');
$c->same_logs(1, 'the members hold the same Raft log');
Transfers::check($c, \%r, "after $faults faults (seed $seed)");
done_testing();
