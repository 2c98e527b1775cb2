# A group's end on a server (review 46).
#
# 1. leave_group takes the group's origin lock before a backend that commits
#    an entry of the group reaches its turn: the backend ends with 40003
#    (xact.c pre_commit: "node 1 leaves group 20 while the transaction
#    commits"), its entry is applied by the other members once and not
#    here, and leave_group ends the group here.  Node 1 leads group 20; a
#    session (B) is held at its turn with the origin locked (testing delay,
#    then SIGSTOP); a second one (A) commits behind it; node 2 takes the
#    group and removes node 1, whose leave_group then waits for B's lock.
#    A's entry, handed to the apply worker once A gave up, reached it after
#    the group was gone, and was taken for a gap ("entries 15 to 15 of group
#    20 are missing", logged, the gone group parked: 3 runs in 4).
# 2. DROP EXTENSION while the engine worker cannot start (another process
#    on its Raft port): no group is in shared memory, and the refusal of a
#    member of groups did not come (with CASCADE, the capture trigger's
#    0A000 came instead; a member of a group without tables lost the
#    extension's tables under its groups).  Every group's origin now
#    refuses it too.
# 3. A member left half by a crash in leave_group whose only trace is its
#    origin (it applied nothing of the group): the server log now says to run
#    leave_group(g, true), create_group says so, DROP EXTENSION is refused
#    (it was allowed), and a second leave_group ends it.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IO::Socket::INET;
use Time::HiRes;

my $c = DragonCluster->new(3, conf => "restart_after_crash = on\n");
my $N1 = $c->node(1);
my $N2 = $c->node(2);
my $N3 = $c->node(3);
sub sql1 { return $N1->safe_psql('postgres', $_[0]); }
sub sql2 { return $N2->safe_psql('postgres', $_[0]); }
sub sql3 { return $N3->safe_psql('postgres', $_[0]); }

# Does node id's origin of every group it has hold the group's applied
# index, and has it no other dragonraft origin?  '' if so, else what differs.
sub origins_wrong
{
	my ($id) = @_;
	return $c->query($id, q{
		SELECT coalesce(string_agg(coalesce(o.roname, 'no origin of ' || s.group_id)
				|| ' at ' || coalesce(pg_replication_origin_progress(o.roname, false)::text, '-')
				|| ', applied ' || coalesce(s.applied_index::text, '-'), '; '), '')
		  FROM (SELECT roname FROM pg_replication_origin WHERE roname ~ '^dragonraft_[1-9]') o
		  FULL JOIN dragonraft.status s ON o.roname = 'dragonraft_' || s.group_id
		 WHERE o.roname IS NULL OR s.group_id IS NULL
		    OR pg_replication_origin_progress(o.roname, false) <> '0/0'::pg_lsn + s.applied_index});
}

# The CPU time (ms) that node id's engine and apply workers use in about a
# second: a worker that spins uses most of it.
sub workers_cpu_ms
{
	my ($id) = @_;
	my @pids = split /\|/, $c->query($id, 'SELECT engine_pid, apply_pid FROM dragonraft.node_status()');
	my $ticks = sub {
		my $t = 0;
		for my $pid (grep { $_ ne '' } @pids)
		{
			open(my $fh, '<', "/proc/$pid/stat") or next;
			my @f = split / /, (<$fh> =~ s/^.*\) //r);
			$t += $f[11] + $f[12];
		}
		return $t;
	};
	my $t0 = $ticks->();
	my $start = Time::HiRes::time();
	Time::HiRes::usleep(1_000_000);    # the window measured, not a wait
	return int(($ticks->() - $t0) * 10 / (Time::HiRes::time() - $start));
}

my $l;

# ---- 1. leave_group locks the origin before a committing backend's turn ----
$c->create_group(20, 1, 2, 3);
ok($c->caught_up(20), 'group 20 applies on every node');
ok($c->lead(20, 1), 'node 1 leads group 20');
sql1(q{SELECT dragonraft.execute(20, 'CREATE TABLE t20 (a int PRIMARY KEY, b text)')});
sql1(q{SELECT dragonraft.replicate_table('t20', 20)});
sql1(q{INSERT INTO t20 VALUES (0, 'before')});
# and no entry of dragonraft's own (a member's info, the addresses) comes
# later: one between B's entry and A's would be the stopped apply worker's
# to apply (below), and A would wait for its turn for ever.
ok($c->settled(20), 'every node has t20, and group 20 takes only the test\'s entries');

my $origin_lock = q{locktype = 'object' AND classid = 'pg_replication_origin'::regclass
	AND objid = (SELECT roident FROM pg_replication_origin WHERE roname = 'dragonraft_20')};
# B holds its turn 10 s: the poll below has to see it and SIGSTOP it within
# that (3 s before: a poll session on a loaded machine can take a second or
# more per query; B, held in its delay, then committed before the SIGSTOP).
# Its hold is wall time: what is left of it runs after the SIGCONT below.
my $B = $c->start_session(1, 'SET dragonraft.testing_commit_delay = 10000',
	q{INSERT INTO t20 VALUES (1, 'B')});
ok($c->wait_until('session B to hold the origin of group 20 at its turn',
		sub { $c->query(1, "SELECT count(*) FROM pg_locks WHERE pid = $B->{pid} AND granted AND $origin_lock") eq '1' }, 15),
	'B holds the origin lock at its turn');
kill 'STOP', $B->{pid};
my $A = $c->start_session(1, '\\set VERBOSITY verbose', q{INSERT INTO t20 VALUES (2, 'A')});
ok($c->wait_until("node 2 to apply A's entry", sub { $c->query(2, 'SELECT count(*) FROM t20 WHERE a = 2') eq '1' }),
	"A's entry is committed in the log (node 2 applied it)");
is($c->query(1, "SELECT wait_event_type FROM pg_stat_activity WHERE pid = $A->{pid}"), 'Extension',
	'A waits for its turn on node 1');

sql1('SELECT dragonraft.transfer_leader(20, 2)');
ok($c->wait_until('node 2 to lead group 20',
		sub { $c->query(2, 'SELECT role FROM dragonraft.status WHERE group_id = 20') eq 'leader' }),
	'node 2 leads group 20');
sql2('SELECT dragonraft.remove_member(20, 1, true)');
my $L = $c->start_session(1, 'SELECT dragonraft.leave_group(20, force => true)');
ok($c->wait_until('leave_group to wait for the origin lock',
		sub { $c->query(1, "SELECT count(*) FROM pg_locks WHERE pid = $L->{pid} AND NOT granted AND $origin_lock") eq '1' }),
	"leave_group waits for B's origin lock");
# Node 1's apply worker, idle (the entries after A's wait behind it, held
# for A), is stopped until leave_group ends: it would wait for leave_group's
# lock on the origin, behind which leave_group waits for A's table lock, and
# A would end with the 40003 of a writer that blocks the apply (not the path
# this part is about).  A's entry, handed to it once A gave up, then reaches
# it after the group is gone: it took that for a gap in the group's entries
# ("entries 15 to 15 of group 20 are missing", the gone group parked).
my $apid1 = $c->query(1, 'SELECT apply_pid FROM dragonraft.node_status()');
kill 'STOP', $apid1;
kill 'CONT', $B->{pid};
$_->{h}->finish for $A, $B, $L;
kill 'CONT', $apid1;
is(${ $B->{err} }, '', 'B committed') or diag ${ $B->{err} };
like(${ $A->{err} }, qr/ERROR:  40003: node 1 leaves group 20 while the transaction commits\n/,
	'A ends with "node 1 leaves group 20 while the transaction commits"');
like(${ $A->{err} }, qr/HINT:  Check on a member of the group/, 'with a hint');
unlike(${ $L->{err} }, qr/ERROR|FATAL/, 'leave_group succeeded') or diag ${ $L->{err} };

# Nothing of group 20 on node 1; its t20 has what committed here (not A).
is($c->query(1, q{SELECT (SELECT count(*) FROM dragonraft.status WHERE group_id = 20) || ' '
		|| (SELECT count(*) FROM dragonraft.replicated_tables WHERE group_id = 20) || ' '
		|| (SELECT count(*) FROM pg_trigger WHERE tgrelid = 't20'::regclass) || ' '
		|| (SELECT count(*) FROM pg_replication_origin WHERE roname = 'dragonraft_20') || ' '
		|| (SELECT count(*) FROM pg_replication_origin_status s JOIN pg_replication_origin r
			ON r.roident = s.local_id WHERE r.roname = 'dragonraft_20')}),
	'0 0 0 0 0', 'node 1 has no status, table, trigger, origin or origin state of group 20');
is($c->contents(1, 't20', 'a'), '(0,before);(1,B)', "node 1's t20 has B's row, not A's");
my ($ret, $out, $err) = $N1->psql('postgres', q{INSERT INTO t20 VALUES (3, 'plain')});
is($err, '', 't20 takes writes on node 1, a plain table now');

# The group goes on on nodes 2 and 3, each row once.
$c->group_nodes(20, 2, 3);
sql2(q{INSERT INTO t20 VALUES (4, 'after')});
# (settled: node 2, leader since the transfer, proposes the members'
# addresses on its own; the digests below are compared at one index)
ok($c->settled(20), 'group 20 applies on nodes 2 and 3');
is($c->contents(2, 't20', 'a'), '(0,before);(1,B);(2,A);(4,after)', "node 2 has A's row once");
is($c->contents(3, 't20', 'a'), $c->contents(2, 't20', 'a'), 'node 3 has the same rows');
is($c->query(3, q{SELECT applied_index || digest FROM dragonraft.table_digest(20)}),
	$c->query(2, q{SELECT applied_index || digest FROM dragonraft.table_digest(20)}),
	'nodes 2 and 3 digest t20 alike at the same index');
is(origins_wrong($_), '', "node ${_}'s origins are its groups' at their applied indexes") for 1 .. 3;
cmp_ok(workers_cpu_ms(1), '<', 300, "node 1's workers do not spin");
unlike(slurp_file($N1->logfile), qr/apply worker parked|are missing/, 'no apply failed on node 1');

# ---- 2. DROP EXTENSION while the engine worker cannot start ----
# Node 3, a member of group 20, restarted while another process listens on
# its Raft port: its engine worker exits at every start, no group is started
# and none shows in shared memory, but the LogDB and the origin have group 20.
my $sock = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $c->{raft_port}{3},
	Listen => 1, ReuseAddr => 1);
$c->close_poll(3);
$N3->stop('fast');
$sock //= IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $c->{raft_port}{3},
	Listen => 1, ReuseAddr => 1) or die "cannot listen on node 3's Raft port: $!";
$N3->start;
ok($c->log_has($N3, qr/dragonraft could not start its engine/), "node 3's engine worker cannot start");
is($c->query(3, 'SELECT count(*) FROM dragonraft.status'), '0', 'node 3 shows no group');
my ($state, $msg) = $c->sql_error(3, 'DROP EXTENSION dragonraft CASCADE');
is($state, '55006', 'DROP EXTENSION CASCADE is refused: the origin of group 20 is there');
like($msg, qr/HINT:  .*leave_group\(20, true\)/, 'its hint names leave_group(20, true)');
close $sock;
ok($c->wait_until('node 3 to run its engine worker',
		sub { ($c->poll(3, 'SELECT engine_state FROM dragonraft.node_status()') // '') eq 'running' }),
	'node 3 runs its engine worker once the port is free');
# (A leader that has a command of execute() to apply from its backlog
# refuses writes with 40001 until it applied it: caught up first.)
ok($c->caught_up(20), 'group 20 has a leader, and its members applied its log');
$l = $c->leader(20);
ok($l, "group 20 has a leader (node $l)");
$c->node($l)->safe_psql('postgres', q{INSERT INTO t20 VALUES (5, 'node 3 back')});
ok($c->caught_up(20), 'node 3 applies group 20 again');
is($c->contents(3, 't20', 'a'), $c->contents(2, 't20', 'a'), 'nodes 2 and 3 have the same t20');
is(origins_wrong($_), '', "node ${_}'s origins are its groups' at their applied indexes") for 2, 3;

# ---- 3. a member left half whose only trace is its origin ----
# Group 21 on node 1 alone of its members 1, 2 and 3 (the others never make
# it): no leader, nothing applied, no catalog row of it.  leave_group(21,
# true) is held after the engine worker deleted the member's LogDB data
# (the engine worker stopped while the backend waits for it, the backend
# stopped before it hears back), then killed: a crash restart rolls back its
# transaction, and the origin is all that is left of the group.
my $m21 = $c->members(1, 2, 3);
sql1("SELECT dragonraft.create_group(21, '$m21')");
my $engine1 = $c->query(1, 'SELECT engine_pid FROM dragonraft.node_status()');
kill 'STOP', $engine1;
$L = $c->start_session(1, 'SELECT dragonraft.leave_group(21, true)');
ok($c->wait_until('leave_group to wait for the engine worker',
		sub { $c->query(1, "SELECT wait_event_type FROM pg_stat_activity WHERE pid = $L->{pid}") eq 'Extension' }),
	'leave_group waits for the engine worker');
kill 'STOP', $L->{pid};
kill 'CONT', $engine1;
ok($c->log_has($N1, qr/dragonraft group 21: node 1 left it, its LogDB data deleted/),
	'the engine worker deleted the LogDB data of group 21');
kill 'KILL', $L->{pid};
$L->{h}->finish;
$c->close_poll(1);
ok($c->wait_until('node 1 to run a new engine worker',
		sub { ($c->poll(1, q{SELECT engine_pid || ' ' || engine_state FROM dragonraft.node_status()}) // '')
			  =~ /^(\d+) running$/ && $1 ne $engine1 }),
	'node 1 restarted its processes and runs a new engine worker');
is($c->query(1, q{SELECT (SELECT count(*) FROM pg_replication_origin WHERE roname = 'dragonraft_21') || ' '
		|| (SELECT count(*) FROM dragonraft.left_groups WHERE group_id = 21)}),
	'1 1', 'group 21 is left half: its origin stays, left_groups has it (made before the LogDB data went)');
ok($c->log_has($N1, qr/replication origin "dragonraft_21" is not taken for a group of this node\n[^\n]*DETAIL: [^\n]*\n[^\n]*HINT: [^\n]*leave_group\(21, true\)/),
	'the server log says to run leave_group(21, true) if a leave of group 21 was cut short');
($state, $msg) = $c->sql_error(1, "SELECT dragonraft.create_group(21, '$m21')");
is($state, '55000', 'create_group(21) is refused');
like($msg, qr/HINT:  Its leave was cut short here: run leave_group\(21, true\)/,
	'saying to run leave_group(21, true)');
# DROP EXTENSION: no group runs on node 1, but an origin of one is left (the
# extension's tables would go with it).
($state, $msg) = $c->sql_error(1, 'DROP EXTENSION dragonraft');
is($state, '55006', 'DROP EXTENSION is refused while the origin of group 21 is left');
like($msg, qr/HINT:  .*leave_group\(21, true\)/, 'its hint names leave_group(21, true)');
$c->query(1, 'SELECT dragonraft.leave_group(21, true)');
is($c->query(1, q{SELECT (SELECT count(*) FROM pg_replication_origin WHERE roname = 'dragonraft_21') || ' '
		|| (SELECT count(*) FROM dragonraft.left_groups WHERE group_id = 21) || ' '
		|| (SELECT count(*) FROM dragonraft.status)}),
	'0 1 0', 'a second leave_group(21, true) ends it: no origin, left_groups has it, no group');
($state, $msg) = $c->sql_error(1, "SELECT dragonraft.create_group(21, '$m21')");
like($msg, qr/node 1 left group 21 and cannot be its member again/, 'create_group(21) is refused now for that');
is(origins_wrong(1), '', "node 1's origins are its groups'");
cmp_ok(workers_cpu_ms(1), '<', 300, "node 1's workers do not spin");

done_testing();
