# leave_group while a backend of the node commits an entry of the group
# (review 44).
#
# A backend that commits its own entry sets up the group's replication
# origin's session at its turn (xact.c pre_commit), without the lock on the
# origin that a batch of the apply worker takes and that leave_group waits
# for.  A table's registration holds no lock leave_group takes when the
# group has no other table: leave_group went past it, stopped the member,
# deleted its catalog rows and waited for the origin's session only to drop
# the origin; the backend then committed its table's capture triggers and
# catalog row, and the node was left with a table that says it belongs to a
# group it is no longer a member of (every write to it failed).
#
# Node 1 leads group 50; a session there registers t50 and is held at its
# turn (dragonraft.testing_commit_delay); node 2 takes the leadership and
# removes node 1, which leaves the group meanwhile.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes;

# (part 2 kills a backend: the node restarts its processes)
my $c = DragonCluster->new(3, conf => "restart_after_crash = on\n");
my $N1 = $c->node(1);
my $N2 = $c->node(2);
sub sql1 { return $N1->safe_psql('postgres', $_[0]); }
sub sql2 { return $N2->safe_psql('postgres', $_[0]); }

$c->create_group(50, 1, 2, 3);
ok($c->caught_up(50), 'group 50 applies on every node');
ok($c->lead(50, 1), 'node 1 leads group 50');
my $before = sql1('SELECT commit_index FROM dragonraft.status WHERE group_id = 50');

sql1('CREATE TABLE t50 (a int PRIMARY KEY)');
my ($rout, $rerr) = ('', '');
my $reg = IPC::Run::start(['psql', '-XAt', '-d', $N1->connstr('postgres'),
		'-c', 'SET dragonraft.testing_commit_delay = 20000',
		'-c', q{SELECT dragonraft.replicate_table('t50', 50)}],
	'>', \$rout, '2>', \$rerr);
ok($c->wait_until('node 2 to apply the registration of t50',
		sub { sql2(q{SELECT count(*) FROM dragonraft.replicated_tables WHERE relid = to_regclass('t50')}) eq '1' }),
	'the registration is committed in the log and applied on node 2');

# Node 2 takes the group and removes node 1, which leaves it.
sql1('SELECT dragonraft.transfer_leader(50, 2)');
ok($c->wait_until('node 2 to lead group 50',
		sub { sql2(q{SELECT role FROM dragonraft.status WHERE group_id = 50}) eq 'leader' }),
	'node 2 leads group 50');
sql2('SELECT dragonraft.remove_member(50, 1, true)');
my ($lout, $lerr) = ('', '');
my $leave = IPC::Run::start(['psql', '-XAtq', '-d', $N1->connstr('postgres'), '-c',
		'SELECT dragonraft.leave_group(50, force => true)'],
	'>', \$lout, '2>', \$lerr, IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
ok($c->wait_until('leave_group on node 1 to return', sub { $leave->pump_nb; !$leave->pumpable }, 60),
	'leave_group returns');
$leave->finish;
unlike($lerr, qr/ERROR|FATAL/, 'leave_group succeeded') or diag $lerr;
$reg->finish;
note "registration: $rout / $rerr";

# Nothing of group 50 stays on node 1.
is(sql1('SELECT count(*) FROM dragonraft.replicated_tables WHERE group_id = 50'), '0',
	'node 1 has no table of group 50');
is(sql1(q{SELECT count(*) FROM pg_trigger WHERE tgrelid = 't50'::regclass}), '0',
	't50 has no capture trigger on node 1');
is(sql1(q{SELECT count(*) FROM pg_replication_origin WHERE roname = 'dragonraft_50'}), '0',
	'the origin of group 50 is gone');
is(sql1(q{SELECT count(*) FROM pg_replication_origin_status o JOIN pg_replication_origin r
		ON r.roident = o.local_id WHERE r.roname = 'dragonraft_50'}), '0',
	'and no state of it');
my ($ret, $out, $err) = $N1->psql('postgres', 'INSERT INTO t50 VALUES (1)');
is($err, '', 't50 takes writes on node 1, a plain table now');
if ($rerr ne '')
{
	like($rerr, qr/40003/, 'the registration ended with 40003 (the node left the group)');
}
else
{
	pass('the registration committed before the node left');
}

# The group goes on on nodes 2 and 3 with t50.
$c->group_nodes(50, 2, 3);
sql2('INSERT INTO t50 VALUES (2)');
ok($c->caught_up(50), 'group 50 applies on nodes 2 and 3');
is($c->node(3)->safe_psql('postgres', q{SELECT digest FROM dragonraft.table_digest(50) WHERE relid = 't50'::regclass}),
	sql2(q{SELECT digest FROM dragonraft.table_digest(50) WHERE relid = 't50'::regclass}),
	'nodes 2 and 3 have the same t50');

# 2. kill -9 of leave_group's backend at times from its start to its end (a
# crash restart of node 3), in groups of nodes 2 and 3 that applied entries
# (node 2 leads and removed node 3): the group is then left, untouched, or
# left half (its LogDB data deleted, its catalog rows and origin rolled
# back: dragonraft.status says so), and a second leave_group(g, true) ends
# it; nothing of it stays after that, and the node's other group goes on.
# A member left half whose own member info entry was not applied yet (it
# comes once the member knows a leader, after the group's first entries)
# showed no status row: the engine worker took its origin for someone
# else's, and nothing said to run leave_group again.  The group's commands
# (ddl_history) and tables now tell too.
my $N3 = $c->node(3);
my %seen;
my @broken;
for my $i (1 .. 8)
{
	my $g = 60 + $i;
	$c->create_group($g, 2, 3);
	ok($c->caught_up($g), "group $g applies on nodes 2 and 3");
	ok($c->lead($g, 2), "node 2 leads group $g");
	sql2("SELECT dragonraft.remove_member($g, 3, true)");
	# (what node 3's apply worker committed, with synchronous_commit off, is
	# on its disk: caught_up's command among it)
	$c->query(3, 'CHECKPOINT');
	my $engine = $c->query(3, 'SELECT engine_pid FROM dragonraft.node_status()');
	# The backend stays after leave_group, waiting for this lock of the poll
	# session, so that the kill always finds it alive and the server always
	# restarts (a backend that had ended, not yet reaped, took the kill and
	# nothing restarted: fresh CI, round 8).
	$c->query(3, 'SELECT pg_advisory_lock(123)');
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start(['psql', '-XAtq', '-d', $N3->connstr('postgres'), '-c',
			'SELECT pg_backend_pid()', '-c', "SELECT dragonraft.leave_group($g, true)",
			'-c', 'SELECT pg_advisory_lock(123)'],
		'>', \$out, '2>', \$err);
	$h->pump until $out =~ /^(\d+)\n/;
	my $pid = $1;
	# The crash point, not a wait for a condition: round i kills leave_group
	# 0.4 ms later into its run than round i - 1, from at once to after its
	# end (no state of it can be polled for from outside: it is one
	# transaction).  (Node 2 keeps each group: 8 of its 10 origins.)
	Time::HiRes::usleep(400 * ($i - 1));
	kill 'KILL', $pid;
	$h->finish;
	ok($c->wait_until("node 3 to run a new engine worker after round $i",
			sub { ($c->poll(3, q{SELECT engine_pid || ' ' || engine_state FROM dragonraft.node_status()}) // '')
				  =~ /^(\d+) running$/ && $1 ne $engine }),
		"node 3 is back after round $i");
	my $st = $c->query(3, qq{SELECT
		(SELECT coalesce(string_agg(state, ','), '-') FROM dragonraft.status WHERE group_id = $g) || ' ' ||
		(SELECT count(*) FROM pg_replication_origin WHERE roname = 'dragonraft_$g') || ' ' ||
		(SELECT count(*) FROM dragonraft.left_groups WHERE group_id = $g)});
	$seen{$st}++;
	# A member left half shows a status row (stopped, lost its LogDB).
	push @broken, "group $g: after the crash $st: its origin, and no status row"
	  if $st =~ /^- 1 /;
	note "group $g after the crash (status/origin/left_groups): $st; origin at "
	  . $c->query(3, qq{SELECT coalesce((SELECT remote_lsn::text FROM pg_replication_origin_status s
			JOIN pg_replication_origin r ON r.roident = s.local_id WHERE r.roname = 'dragonraft_$g'), '-')
		|| ', member_info rows: ' || (SELECT count(*) FROM dragonraft.member_info WHERE group_id = $g)});
	my ($o2, $e2, $state) = $c->poll_result(3, "SELECT dragonraft.leave_group($g, true)");
	push @broken, "group $g: after the crash $st, then leave_group: $e2"
	  if $state ne 'ok' && $st ne '- 0 1';
	$st = $c->query(3, qq{SELECT
		(SELECT count(*) FROM dragonraft.status WHERE group_id = $g) || ' ' ||
		(SELECT count(*) FROM pg_replication_origin WHERE roname = 'dragonraft_$g') || ' ' ||
		(SELECT count(*) FROM pg_replication_origin_status s JOIN pg_replication_origin r
			ON r.roident = s.local_id WHERE r.roname = 'dragonraft_$g') || ' ' ||
		(SELECT count(*) FROM dragonraft.left_groups WHERE group_id = $g) || ' ' ||
		(SELECT count(*) FROM dragonraft.member_info WHERE group_id = $g)});
	push @broken, "group $g: at the end $st" unless $st eq '0 0 0 1 0';
	$c->group_nodes($g, 2);
}
note "after the crash (status/origin/left_groups): $_: $seen{$_}" for sort keys %seen;
is(scalar(@broken), 0, 'every group crashed in its leave_group is left after a second one')
  or diag join("\n", @broken);
$c->group_nodes(50, 2, 3);
# (group 50 has two voters: node 2 steps down when node 3 was down longer
# than an election timeout, and the write went to it at once, before the
# next election: "no leader at the moment", 2 runs of 2 on a loaded host)
my $l50 = $c->leader(50) or die 'no leader of group 50';
$c->node($l50)->safe_psql('postgres', 'INSERT INTO t50 VALUES (3)');
ok($c->caught_up(50), 'group 50 applies on nodes 2 and 3 after node 3\'s crashes');
is($N3->safe_psql('postgres', q{SELECT digest FROM dragonraft.table_digest(50) WHERE relid = 't50'::regclass}),
	sql2(q{SELECT digest FROM dragonraft.table_digest(50) WHERE relid = 't50'::regclass}),
	'nodes 2 and 3 have the same t50');

done_testing();
