# Two execute() calls of conflicting commands at once (review 19 F7, open):
# each tries its command on its own node first, and the second try may run
# after the first one's try rolled back and before its entry is applied
# there.  Both then enter the log, and the second fails when every member
# applies it: the group stops on every member (apply_failed) until a DBA
# runs skip_command on each.  Sessions on one node were enough: execute()
# now takes one command of a group at a time on a node, from its try until
# its command is applied there.  (Calls on two nodes at once: t/064, where
# every member skips the second command and its caller gets 40001.)
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;

my $c = DragonCluster->new(1);
$c->create_group(1);
ok($c->leader(1), 'group 1 has a writable leader');
my $N = $c->node(1);

my $stopped = '';
for my $round (1 .. 10)
{
	my @h;
	# (the sessions start their calls at one moment)
	my $at = $N->safe_psql('postgres', q{SELECT clock_timestamp() + interval '500 ms'});
	for my $s (1 .. 3)
	{
		my ($out, $err) = ('', '');
		push @h, IPC::Run::start(['psql', '-XAtq', '-d', $N->connstr('postgres'),
			'-c', "SELECT pg_sleep_until('$at')",
			'-c', "SELECT dragonraft.execute(1, 'CREATE TABLE public.race$round (i int)')"],
			'>', \$out, '2>', \$err);
	}
	$_->finish for @h;
	$stopped = $N->safe_psql('postgres',
		q{SELECT coalesce(error, '') FROM dragonraft.status WHERE group_id = 1});
	diag "round $round: $stopped" if $stopped ne '';
	last if $stopped ne '';
}
is($stopped, '', 'concurrent execute() calls of one command leave the group applying');
is($N->safe_psql('postgres', q{SELECT count(*) FROM pg_class WHERE relname LIKE 'race%'}),
	'10', 'each round made its table once');

done_testing();
