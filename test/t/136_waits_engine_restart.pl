# rev63: the waits across an engine worker restart, a wait whose engine
# worker does not come back, and the left-group record's create.
#
# An engine worker restart: pg_terminate_backend of the engine worker (the
# postmaster starts the next one; no crash restart).  The next one takes
# every group's shared entry down and adds the LogDB's again, reading
# pg_replication_origin in between: a session that holds that catalog locked
# keeps it there, not running, for as long as the test likes (a stand-in for
# an engine worker that fails at start each time).
#
# 1. leave_group's record (left_groups/<group>.<node>) was opened with
#    O_CREAT and no O_EXCL or O_NOFOLLOW: a symlink planted under the
#    record's name was followed, and the record created a file wherever it
#    pointed, as the server's user.  Now: 42809, nothing left or deleted,
#    nothing created; an existing regular record is still fine.
# 2. COMMITs waiting for their turn while the engine worker does not run: a
#    client that went away left its backend waiting (the turn wait holds
#    interrupts, and checked the client only while its group was there); a
#    cancel ended it with a message saying the group went away.  A terminate
#    ends it, and execute()'s wait ends at a cancel too.  (statement_timeout
#    does not end a COMMIT's wait: PostgreSQL stops its timer before the
#    commit; xact.c.)
# 3. read_barrier() across a restart: it waits and returns.
# 4. table_digest across a restart, the engine worker gone while the digest
#    waits for the drain, and while it holds the apply: it failed with 55000
#    (the engine worker not running, or the hold ended); it asks the next one.
# 5. replicate_table's wait for its member info across a restart: it ended
#    with 25006, "no leader at the moment", before the group's election under
#    the next engine worker (node 1 is its only member); and with 55000 when
#    the engine worker did not run for most of its bound (10 s): that time
#    does not count now.
# 6. join_group across a restart of the joining node's engine worker: it
#    ended with 55000, "node 2 is no longer a member of group 25".
#
# While the lock is held nothing here connects to the node, and autovacuum
# is off: a process that starts without a valid relcache init file builds
# its catalog caches in InitPostgres and waits there for the lock (see
# DragonCluster.pm restart_held).  The queries go through the node's poll session
# ($c->query), connected before.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;

my $c = DragonCluster->new(2, conf => "autovacuum = off\n");
my $N1 = $c->node(1);
my $N2 = $c->node(2);
sub sql1 { return $N1->safe_psql('postgres', $_[0]); }

sub ends
{
	my ($s, $what, $t) = @_;
	my $r = $c->wait_until($what, sub { $s->{h}->pumpable && $s->{h}->pump_nb; !$s->{h}->pumpable }, $t // 60);
	$s->{h}->finish if $r;
	return $r;
}

# Has none of the sessions ended within t seconds?  (quietly: they must not)
sub still_wait
{
	my ($t, @s) = @_;
	return !$c->poll_until(sub {
		for my $s (@s) { return 1 unless $s->{h}->pumpable; $s->{h}->pump_nb; return 1 unless $s->{h}->pumpable; }
		return 0; }, $t);
}

sub waiting
{
	my ($id, $pid, $event) = @_;
	return $c->query($id,
		"SELECT wait_event_type || '/' || wait_event FROM pg_stat_activity WHERE pid = $pid") =~ /^\Q$event\E/;
}

# ---- 1. the left-group record's create ----
$c->create_group(21, 1, 2);
ok($c->lead(21, 2), 'node 2 leads group 21');
my $dir = $N1->data_dir . '/dragonraft/left_groups';
mkdir $dir unless -d $dir;
my $target = $N1->data_dir . '/planted';
symlink($target, "$dir/21.1") or die "symlink: $!";
system('chown', '-h', 'postgres', $dir, "$dir/21.1") if $> == 0;
my ($state, $err) = $c->sql_error(1, 'SELECT dragonraft.leave_group(21, true)');
is($state, '42809', 'leave_group(21) with a symlink as its record: 42809') or diag($err);
like($err, qr/could not record that node 1 left group 21: ".*21\.1" exists and is not a regular file/,
	'... saying so');
ok(!-e $target, 'nothing was created where the symlink points');
ok(-l "$dir/21.1", 'the symlink stays');
is(sql1('SELECT state FROM dragonraft.status WHERE group_id = 21'), 'ok', 'node 1 still runs group 21');
# A symlink to a file: the file is neither opened for writing nor changed.
unlink "$dir/21.1";
open(my $fh, '>', $target) or die "$target: $!";
print $fh "keep\n";
close $fh;
chmod 0644, $target;
system('chown', 'postgres', $target) if $> == 0;
symlink($target, "$dir/21.1") or die "symlink: $!";
system('chown', '-h', 'postgres', "$dir/21.1") if $> == 0;
($state, $err) = $c->sql_error(1, 'SELECT dragonraft.leave_group(21, true)');
is($state, '42809', 'a symlink to a file: 42809 too') or diag($err);
is(slurp_file($target), "keep\n", 'the file is as it was');
# A directory of that name.
unlink "$dir/21.1";
mkdir "$dir/21.1";
($state, $err) = $c->sql_error(1, 'SELECT dragonraft.leave_group(21, true)');
is($state, '42809', 'a directory: 42809') or diag($err);
rmdir "$dir/21.1";
# A regular file (a leave that crashed after its record): leave_group ends it.
open($fh, '>', "$dir/21.1") or die "$dir/21.1: $!";
close $fh;
system('chown', 'postgres', "$dir/21.1") if $> == 0;
($state, $err) = $c->sql_error(1, 'SELECT dragonraft.leave_group(21, true)');
is($state, '', 'with a regular record there, leave_group(21) succeeds') or diag($err);
is(sql1('SELECT count(*) FROM dragonraft.status WHERE group_id = 21'), '0', 'node 1 left group 21');
is(sql1('SELECT count(*) FROM dragonraft.left_groups WHERE group_id = 21 AND node_id = 1'), '1',
	'and its record is there');

# ---- 2. COMMITs waiting for their turn while the engine worker does not run ----
$c->create_group(24, 1);
is($c->leader(24), 1, "node 1 leads group 24");
sql1('CREATE TABLE t24 (a int PRIMARY KEY)');
sql1(q{SELECT dragonraft.replicate_table('t24', 24)});
my $apid = sql1('SELECT apply_pid FROM dragonraft.node_status()');
kill 'STOP', $apid;
my $E = $c->start_session(1, '\\set VERBOSITY verbose', q{SELECT dragonraft.execute(24, 'SELECT 1') > 0});
ok($c->wait_until('E to wait for its apply', sub { waiting(1, $E->{pid}, 'Extension')
			&& sql1('SELECT commit_index > applied_index FROM dragonraft.status WHERE group_id = 24') eq 't' }),
	"E's command is committed, and waits for node 1's stopped apply worker");
my $e = sql1('SELECT commit_index FROM dragonraft.status WHERE group_id = 24');
my @A;
for my $i (1 .. 3)
{
	push @A, $c->start_session(1, '\\set VERBOSITY verbose',
		"INSERT INTO t24 VALUES ($i)");
	my $A = $A[-1];
	ok($c->wait_until("A$i to wait for its turn", sub { waiting(1, $A->{pid}, 'Extension')
				&& sql1('SELECT commit_index FROM dragonraft.status WHERE group_id = 24') >= $e + $i }),
		"A${i}'s insert is committed in the log, and waits for its turn");
}
my $L = $c->restart_held(1, 24, $apid);
# A1's client goes away.
$A[0]->{h}->signal('KILL');
$A[0]->{h}->finish;
ok($c->wait_until("A1's backend to end", sub {
	$c->query(1, "SELECT count(*) FROM pg_stat_activity WHERE pid = $A[0]->{pid}") eq '0' }, 30),
	"A1's backend ends once its client went away");
$c->query(1, "SELECT pg_cancel_backend($A[1]->{pid})");
ok(ends($A[1], 'A2 to end'), 'A2 ends at pg_cancel_backend');
# (review 69: it said "will be applied from there", which a next engine worker
# without the group's log would not do)
like(${ $A[1]->{err} }, qr/ERROR:  40003: canceled while the transaction waited for its turn in dragonraft group 24\nDETAIL:  Its change set is committed in the log at index \d+: every member that keeps that log applies it.  This node's engine worker is not running: this node applies it once the worker runs the group again with that log, not if the worker comes back without it \(see dragonraft.status\).\nHINT:  Before retrying, check on a member of the group whether the transaction's changes are there/,
	'A2: 40003, canceled, committed in the log, applied here only with that log') or diag(${ $A[1]->{err} });
$c->query(1, "SELECT pg_terminate_backend($A[2]->{pid})");
ok(ends($A[2], 'A3 to end'), 'A3 ends at pg_terminate_backend');
like(${ $A[2]->{err} }, qr/FATAL:  57P01: terminating connection due to administrator command/,
	'A3: 57P01') or diag(${ $A[2]->{err} });
$c->query(1, "SELECT pg_cancel_backend($E->{pid})");
ok(ends($E, 'E to end'), "E (execute()) ends at pg_cancel_backend");
like(${ $E->{err} }, qr/ERROR:  40003: the outcome of the command in dragonraft group 24 is unknown\nDETAIL:  The command was proposed before the statement ended \(canceling statement due to user request\): it may still run on every member\./,
	'E: 40003, canceled after the command was proposed (a DETAIL of sentences)') or diag(${ $E->{err} });
is($c->query(1, 'SELECT count(*) FROM dragonraft.status WHERE group_id = 24'), '0',
	'all of that while the engine worker did not run');
$c->release_held(1, $L, 24);
ok($c->wait_until("node 1 to apply group 24's entries", sub {
	sql1('SELECT applied_index >= commit_index FROM dragonraft.status WHERE group_id = 24') eq 't'
		&& sql1('SELECT count(*) FROM t24') eq '3' }),
	"the three inserts are applied from the log");

# ---- 3. read_barrier() across a restart ----
$c->create_group(23, 1);
is($c->leader(23), 1, "node 1 leads group 23");
sql1('CREATE TABLE t23 (a int PRIMARY KEY)');
sql1(q{SELECT dragonraft.replicate_table('t23', 23)});
sql1('INSERT INTO t23 VALUES (1), (2)');
$apid = sql1('SELECT apply_pid FROM dragonraft.node_status()');
kill 'STOP', $apid;
$E = $c->start_session(1, '\\set VERBOSITY verbose', q{SELECT dragonraft.execute(23, 'SELECT 1') > 0});
ok($c->wait_until('E to wait for its apply', sub { waiting(1, $E->{pid}, 'Extension')
			&& sql1('SELECT commit_index > applied_index FROM dragonraft.status WHERE group_id = 23') eq 't' }),
	"E's command in group 23 waits for node 1's stopped apply worker");
$e = sql1('SELECT commit_index FROM dragonraft.status WHERE group_id = 23');
my $B = $c->start_session(1, '\\set VERBOSITY verbose', 'SELECT dragonraft.read_barrier(23)');
ok($c->wait_until('B to wait', sub { waiting(1, $B->{pid}, 'Extension') }), 'the read barrier B waits');
# (taken by the engine worker before it exits: one that exits with the
# barrier in its queue fails it, "the engine worker exited")
$c->taken(1, 23);
$L = $c->restart_held(1, 23, $apid);
ok(still_wait(1, $B, $E), 'B and E still wait while the engine worker does not run');
$c->release_held(1, $L, 23);
ok(ends($B, 'B to end'), 'B ends');
like(${ $B->{out} }, qr/^\d+\n(\d+)$/, 'B returns an index') or diag(${ $B->{err} });
cmp_ok((${ $B->{out} } =~ /(\d+)$/)[0] // 0, '>=', $e, "B's index is at least E's entry $e");
unlike(${ $B->{err} }, qr/ERROR/, '... with no error');
ok(ends($E, 'E to end'), 'E ends');
like(${ $E->{out} }, qr/^\d+\nt$/m, 'E returns once its entry is applied') or diag(${ $E->{err} });

# ---- 4. table_digest across a restart ----
my $want = sql1(q{SELECT string_agg(rows || ' ' || digest, ',') FROM dragonraft.table_digest(23)});
# (a) the engine worker goes while the digest waits for the drain
$apid = sql1('SELECT apply_pid FROM dragonraft.node_status()');
kill 'STOP', $apid;
$E = $c->start_session(1, q{SELECT dragonraft.execute(23, 'SELECT 2') > 0});
ok($c->wait_until('E to wait for its apply', sub { waiting(1, $E->{pid}, 'Extension')
			&& sql1('SELECT commit_index > applied_index FROM dragonraft.status WHERE group_id = 23') eq 't' }),
	"E's command waits for node 1's stopped apply worker");
my $D = $c->start_session(1, '\\set VERBOSITY verbose',
	q{SELECT string_agg(rows || ' ' || digest, ',') FROM dragonraft.table_digest(23)});
ok($c->wait_until('D to wait for the drain', sub {
	sql1(q{SELECT count(*) FROM dragonraft.stat_progress_snapshot WHERE group_id = 23 AND phase = 'waiting for apply'}) eq '1'
		&& waiting(1, $D->{pid}, 'Extension') }),
	'the digest D waits for the drain of group 23 (its apply stopped)');
$L = $c->restart_held(1, 23, $apid);
ok(still_wait(1, $D), 'D still waits while the engine worker does not run');
$c->release_held(1, $L, 23);
ok(ends($D, 'D to end'), 'D ends');
unlike(${ $D->{err} }, qr/ERROR/, 'D succeeds') or diag(${ $D->{err} });
like(${ $D->{out} }, qr/^\d+\n\Q$want\E$/, "with the tables' digest") or diag(${ $D->{out} });
ok(ends($E, 'E to end'), 'E ends');
# (b) the engine worker goes while the digest holds the apply, past the
# drain: its pause (8 s) outlasts the postmaster's 5 s before the next
# engine worker, which ends its predecessor's holds (pg_sm.c)
$D = $c->start_session(1, '\\set VERBOSITY verbose', q{SET dragonraft.testing_hold_delay = '8s'},
	q{SELECT string_agg(rows || ' ' || digest, ',') FROM dragonraft.table_digest(23)});
ok($c->wait_until('D to hold the apply', sub { waiting(1, $D->{pid}, 'Timeout/PgSleep') }),
	"the digest D holds group 23's apply (drained)");
my $engine = sql1('SELECT engine_pid FROM dragonraft.node_status()');
sql1("SELECT pg_terminate_backend($engine)");
ok(ends($D, 'D to end'), 'D ends');
unlike(${ $D->{err} }, qr/ERROR/, 'D succeeds') or diag(${ $D->{err} });
like(${ $D->{out} }, qr/^\d+\n\Q$want\E$/, "with the tables' digest") or diag(${ $D->{out} });
isnt(sql1('SELECT engine_pid FROM dragonraft.node_status()'), $engine, '(under the next engine worker)');

# ---- 5. replicate_table's wait for its member info across a restart ----
sql1(q{ALTER SYSTEM SET dragonraft.testing_member_info_delay = 30000});
sql1('SELECT pg_reload_conf()');
ok($c->wait_until('the reload', sub { sql1('SHOW dragonraft.testing_member_info_delay') eq '30s' }), 'info delayed');
$c->create_group(22, 1);
is($c->leader(22), 1, "node 1 leads group 22");
sql1('CREATE TABLE t22 (a int PRIMARY KEY)');
my $R = $c->start_session(1, '\\set VERBOSITY verbose', q{SELECT dragonraft.replicate_table('t22', 22)});
ok($c->wait_until('R to wait for the info', sub { waiting(1, $R->{pid}, 'Extension') }),
	"replicate_table R waits for node 1's info in group 22");
sql1(q{ALTER SYSTEM RESET dragonraft.testing_member_info_delay});
sql1('SELECT pg_reload_conf()');
$c->wait_until('the reload', sub { sql1('SHOW dragonraft.testing_member_info_delay') eq '0' });
# R waits longer than its bound (20 election timeouts, 10 s) in all, for
# less than that with an engine worker: 3 s before the restart, 8 or more
# without one (the time without one does not count; it did, and R failed
# when the restart took most of the 10 s on a loaded host).  (Ended, R is
# past: the next test says it does not wait.)
sub R_waited
{
	my ($s) = @_;
	return $c->query(1, "SELECT coalesce((SELECT now() - query_start > interval '$s s' FROM pg_stat_activity
	                                       WHERE pid = $R->{pid} AND state = 'active'), true)") eq 't';
}
ok($c->wait_until('R to wait 3 s', sub { R_waited(3) }), 'R waited 3 s');
$L = $c->restart_held(1, 22);
ok($c->wait_until('R to wait 11 s', sub { R_waited(11) }), 'R waited longer than its bound');
ok(still_wait(1, $R), 'R still waits while the engine worker does not run');
$c->release_held(1, $L, 22);
ok(ends($R, 'R to end'), 'R ends');
unlike(${ $R->{err} }, qr/ERROR/, 'R succeeds: its info came from the next engine worker')
  or diag(${ $R->{err} });
is(sql1(q{SELECT count(*) FROM dragonraft.tables WHERE relid = 't22'::regclass}), '1', 't22 is replicated');

# ---- 6. join_group across a restart of the joining node's engine worker ----
$c->create_group(25, 1);
is($c->leader(25), 1, "node 1 leads group 25");
my $J = $c->start_join(2, 25, 1);
my $jpid;
ok($c->wait_until("node 2's join_group to wait for a leader", sub {
	$jpid = $N2->safe_psql('postgres', q{SELECT pid FROM pg_stat_activity WHERE query LIKE '%join_group(25%' AND pid <> pg_backend_pid()});
	$jpid ne '' && waiting(2, $jpid, 'Extension')
		&& $N2->safe_psql('postgres', 'SELECT count(*) FROM dragonraft.status WHERE group_id = 25') eq '1' }),
	'join_group(25) on node 2 waits to be contacted');
$L = $c->restart_held(2, 25);
ok(still_wait(1, $J), 'J still waits while the engine worker does not run');
$c->release_held(2, $L, 25);
sql1("SELECT dragonraft.add_member(25, 2, '" . $c->raft_address(2) . "', voting => false)");
ok(ends($J, 'J to end', 120), 'J ends');
unlike(${ $J->{err} }, qr/ERROR/, 'join_group succeeds') or diag(${ $J->{err} });
like(${ $J->{err} }, qr/node 2 caught up with group 25/, 'node 2 caught up with group 25');

done_testing();
