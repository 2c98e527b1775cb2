# create_group and join_group on a group that exists on this node but is
# stopped (its member refused to start): the error says so, with why (the
# engine's error as a sentence: review 73), and its hint names what removes
# it here, which works.  The member is stopped the way an older copy of the
# LogDB stops it: its applied index (the replication origin) beyond the end
# of its log, so that it could vote twice.
# Also (review 73): TAP 138 refuses an unknown DR_CHAOS_KINDS with the list
# of kinds (it ran it as 'rotate').
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;

# (node 2: only an address for join_group, which wants another member's)
my $c = DragonCluster->new(2);
my $N = $c->node(1);
$c->create_group(20, 1);
ok($c->poll_until(sub { $c->poll(1, q{SELECT role = 'leader' AND state = 'ok' FROM dragonraft.status WHERE group_id = 20}) eq 't' }),
	'group 20 runs on node 1');
$c->query(1, q{SELECT dragonraft.execute(20, 'CREATE TABLE t (id int PRIMARY KEY)')});
$c->query(1, q{SELECT dragonraft.replicate_table('t', 20)});
$c->query(1, 'INSERT INTO t SELECT generate_series(1, 5)');
my $last = $c->query(1, 'SELECT last_index FROM dragonraft.status WHERE group_id = 20');

# The applied index far beyond the log, then a restart: the member stays down.
# (Until the engine worker runs, its groups show 'stopped' with the error
# "the engine worker is not running": not the state waited for, the
# member's own error is.)
$c->query(1, q{SELECT pg_replication_origin_advance('dragonraft_20', '0/7FFFFFF')});
$N->restart;
ok( $c->poll_until(sub {
			($c->poll(1, q{SELECT state = 'stopped' AND error LIKE 'group 20:%'
				FROM dragonraft.status WHERE group_id = 20}) // '') eq 't' }),
	'after a restart with its applied index beyond its log, group 20 is stopped');
like($c->query(1, 'SELECT error FROM dragonraft.status WHERE group_id = 20'),
	qr/^group 20: the state machine applied \d+ but the LogDB ends at $last .*refusing to start the member/,
	'its error says why');

for my $f ("create_group(20, '" . $c->members(1) . "')", "join_group(20, '" . $c->members(2) . "')")
{
	my ($state, $err) = $c->sql_error(1, "SELECT dragonraft.$f");
	is($state, '55000', "$f: 55000");
	like($err,
		qr/ERROR:  55000: group 20 exists on this node but is stopped\nDETAIL:  Group 20: the state machine applied \d+ but the LogDB ends at $last [^\n]*refusing to start the member, which could vote twice\.\nHINT:  Remove it here with leave_group\(20, force => true\)\./,
		"$f says the group is stopped here, why in sentences, and what removes it")
	  or diag $err;
}

# As the hint says.
$c->query(1, 'SELECT dragonraft.leave_group(20, force => true)');
ok($c->poll_until(sub { $c->poll(1, 'SELECT count(*) FROM dragonraft.status WHERE group_id = 20') eq '0' }),
	'leave_group(20, force => true) removes it here');
is($c->query(1, 'SELECT count(*) FROM dragonraft.left_groups WHERE group_id = 20'), '1',
	'and records it as left');

# TAP 138 with a kind it does not know: it dies at once, naming the kinds.
{
	my ($out, $err) = ('', '');
	my $ok = IPC::Run::run(
		[ $^X, "$FindBin::RealBin/138_chaos_wider.pl" ],
		'>', \$out, '2>', \$err,
		init => sub { $ENV{DR_CHAOS_KINDS} = 'ddl,rotat'; $ENV{DR_CHAOS_FAULTS} = 0; });
	ok(!$ok, 'TAP 138 fails with DR_CHAOS_KINDS=ddl,rotat');
	like($err, qr/DR_CHAOS_KINDS names unknown fault kinds \(rotat\); the kinds are: part_leader .* rotate/,
		'naming the unknown kind and the kinds') or diag "stdout: $out\nstderr: $err";
}

done_testing();
