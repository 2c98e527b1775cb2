# Review 21: a leader's whole server (postmaster and every child) SIGSTOPped
# for several election timeouts while clients wait on COMMIT there, then
# continued; three times, under a transfer load.  What each client was told
# must be true: every COMMITted transfer on every node, nothing that failed
# anywhere, the balances consistent, the members identical.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use Transfers;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $c = DragonCluster->new(3);
$c->create_group(1);
my $l = $c->leader(1);
Transfers::setup($c, 1, $l);
ok($c->caught_up(1), 'tables replicated');
my $load = Transfers->start($c, 4);
ok($load->wait_commits(20), 'transfers commit');

for my $round (1 .. 3)
{
	$l = $c->leader(1);
	my @pids = $c->server_pids($l);
	ok(kill('STOP', @pids), "round $round: leader node $l stopped (SIGSTOP of its server)");
	sleep 3;
	kill('CONT', @pids);
	ok($load->wait_commits(20), "round $round: transfers commit after node $l continued");
}
my %r = $load->stop;
ok($c->caught_up(1), 'every member caught up');
Transfers::check($c, \%r, 'after three stopped leaders');

$c->node($_)->stop('fast') for $c->running;
done_testing();
