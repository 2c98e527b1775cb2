# rev60: the left-group records (rev58) and the waits that end when their
# group is made again.
#
# 1. dragonraft.data_dir/left_groups holds the records "<group id>.<node id>".
#    left_groups() read any name that sscanf("%lld.%d") took: " 1.2",
#    "01.2", "+1.2" and "1. 2" were each a row (1, 2) that no check and no
#    forget_left_group(1, 2) finds (they look for "1.2"), and
#    "99999999999999999999.1" a row of group 9223372036854775807.  Only
#    left_path()'s own names are records now.  A dangling symlink of a
#    record's name was a row with no left_at that the checks (stat) did not
#    see and forget_left_group called missing (42704): it counts as a record
#    (lstat) and forget_left_group deletes it.
# 2. rev58's waits remembered DrGroup.made, which an engine worker restart
#    changes too (it adds every entry again): execute() that waited for its
#    entry's apply across a restart of the engine worker ended with 40003
#    ("went away on this node") where it waited and succeeded before rev58,
#    the log being the same.  The waits now remember DrGroup.life, kept
#    across an engine worker restart for a group started again from the
#    LogDB.  A COMMIT waiting for its turn across a restart ended with 40003
#    before rev58 as after (its check of the group's entry at its turn,
#    review 44, compared made), the detail saying that the node left the
#    group and does not apply the entry, which its apply worker did: it now
#    commits.  Node 1 leads group 20, its apply worker stopped; execute()'s
#    backend there waits for its entry and a COMMIT after it for its turn,
#    both stopped (SIGSTOP) while the engine worker restarts.
# 3. The same, not stopped, while the next engine worker has taken the
#    groups' entries down and not yet added them again: the waits found no
#    group and ended with 40003.  They now look again once the engine
#    worker runs (shmem.c dr_shmem_engine_running).
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $c = DragonCluster->new(2, conf => "autovacuum = off\n");
my $N1 = $c->node(1);
sub sql1 { return $N1->safe_psql('postgres', $_[0]); }

# ---- 1. names in left_groups ----
my $dir = $N1->data_dir . '/dragonraft/left_groups';
mkdir $dir unless -d $dir;
for my $name ('abc', '1.2.3', '1.', '-1.2', '99999999999999999999.1', ' 1.2', '01.2', '+1.2',
	'1. 2', '1.2x', '1.99999999999', '0.1', '1.0', '7.1')
{
	open(my $fh, '>', "$dir/$name") or die "$dir/$name: $!";
	print $fh "junk\n" if $name eq '7.1';
	close $fh;
}
mkdir "$dir/3.1";
symlink("$dir/nowhere", "$dir/8.1") or die "symlink: $!";
system('chown', '-R', 'postgres', $dir) if $> == 0;
is(sql1(q{SELECT string_agg(group_id || '.' || node_id || ':' || (left_at IS NOT NULL), ' '
	ORDER BY group_id) FROM dragonraft.left_groups}),
	'3.1:true 7.1:true 8.1:true',
	'left_groups lists the names of records only (a directory and a dangling symlink too)');
my $addr1 = $c->raft_address(1);
for my $g (3, 7, 8)
{
	my ($state, $err) = $c->sql_error(1,
		qq{SELECT dragonraft.create_group($g, '{"1": "$addr1", "9": "127.0.0.1:9"}')});
	is($state, '55000', "create_group($g) on node 1 is refused: it has a record");
}
my ($state, $err) = $c->sql_error(1, 'SELECT dragonraft.forget_left_group(8, 1)');
is($state, '', 'forget_left_group(8, 1) deletes the dangling symlink') or diag($err);
ok(!-l "$dir/8.1", '... which is gone');
($state, $err) = $c->sql_error(1, 'SELECT dragonraft.forget_left_group(1, 2)');
is($state, '42704', 'forget_left_group(1, 2): no record (" 1.2" and the like are not)');
($state, $err) = $c->sql_error(1, 'SELECT dragonraft.forget_left_group(0, 1)');
is($state, '22023', 'forget_left_group(0, 1): 22023');
($state, $err) = $c->sql_error(1, 'SELECT dragonraft.forget_left_group(1, -1)');
is($state, '22023', 'forget_left_group(1, -1): 22023');
is(sql1('SELECT dragonraft.forget_left_group(NULL, 1) IS NULL'), 't', 'forget_left_group(NULL, 1): NULL');
($state, $err) = $c->sql_error(1, 'SELECT dragonraft.forget_left_group(3, 1)');
isnt($state, '', 'forget_left_group(3, 1) of a directory is an error') or diag($err);
ok(-e "$dir/abc" && -e "$dir/ 1.2", 'the other names are left alone');
# Its deletion does not roll back: not in a transaction block, as leave_group.
($state, $err) = $c->sql_error(1, 'BEGIN; SELECT dragonraft.forget_left_group(7, 1); ROLLBACK;');
is($state, '25001', 'forget_left_group in a transaction block: 25001');
ok(-e "$dir/7.1", '... and the record stays');

# A leave that cannot write its record (a full disk, here a directory it may
# not write) fails before it deletes anything, and the group goes on.
$c->create_group(21, 1, 2);
my $N2 = $c->node(2);
ok($c->lead(21, 2), 'node 2 leads group 21');
$N2->safe_psql('postgres', 'CREATE TABLE t21 (a int PRIMARY KEY)');
$N2->safe_psql('postgres', q{SELECT dragonraft.replicate_table('t21', 21)});
ok($c->caught_up(21), 'group 21 applies on both nodes, t21 replicated');
chmod 0555, $dir or die "chmod: $!";
($state, $err) = $c->sql_error(1, 'SELECT dragonraft.leave_group(21, true)');
is($state, '42501', 'leave_group(21) on node 1 fails when it cannot write the record');
like($err, qr/could not record that node 1 left group 21: could not create file/, '... saying so');
chmod 0755, $dir or die "chmod: $!";
is(sql1(q{SELECT state FROM dragonraft.status WHERE group_id = 21}), 'ok',
	'node 1 still runs group 21');
$N2->safe_psql('postgres', 'INSERT INTO t21 VALUES (1)');
ok($c->caught_up(21), 'and applies its writes');
is(sql1('SELECT count(*) FROM t21'), '1', 'the row is on node 1');
ok(!-e "$dir/21.1", 'no record was left');

# ---- 2. execute() across an engine worker restart ----
$c->create_group(20, 1, 2);
ok($c->lead(20, 1), 'node 1 leads group 20');
sql1('CREATE TABLE t20 (a int PRIMARY KEY)');
sql1(q{SELECT dragonraft.replicate_table('t20', 20)});
ok($c->caught_up(20), 'group 20 applies on both nodes, t20 replicated');
ok($c->settled(20), 'group 20 takes only the test\'s entries');
my $apid = sql1('SELECT apply_pid FROM dragonraft.node_status()');
my $engine = sql1('SELECT engine_pid FROM dragonraft.node_status()');
kill 'STOP', $apid;
my $E = $c->start_session(1, '\\set VERBOSITY verbose', q{SELECT dragonraft.execute(20, 'SELECT 1') > 0});
ok($c->wait_until('E to wait for its apply',
		sub { sql1("SELECT wait_event_type FROM pg_stat_activity WHERE pid = $E->{pid}") eq 'Extension'
			&& sql1('SELECT commit_index > applied_index FROM dragonraft.status WHERE group_id = 20') eq 't' }),
	"E's command is committed, and waits for node 1's stopped apply worker");
my $e = sql1('SELECT commit_index FROM dragonraft.status WHERE group_id = 20');
# A COMMIT behind it waits for its turn.
my $A = $c->start_session(1, '\\set VERBOSITY verbose', 'INSERT INTO t20 VALUES (1)');
ok($c->wait_until("A's entry to commit",
		sub { sql1("SELECT wait_event_type FROM pg_stat_activity WHERE pid = $A->{pid}") eq 'Extension'
			&& sql1('SELECT commit_index FROM dragonraft.status WHERE group_id = 20') > $e }),
	"A's insert is committed in the log after E's command, and waits for its turn");
kill 'STOP', $E->{pid};
kill 'STOP', $A->{pid};

my $offset = -s $N1->logfile;
sql1("SELECT pg_terminate_backend($engine)");
kill 'CONT', $apid;
ok($c->wait_until('the next engine worker on node 1', sub {
	slurp_file($N1->logfile, $offset) =~ /dragonraft engine worker started for node 1/ }),
	'a new engine worker started on node 1');
ok($c->wait_until('node 1 to run group 20 again', sub {
	sql1(q{SELECT count(*) FROM dragonraft.status WHERE group_id = 20 AND applied_index > 0}) eq '1'
		&& sql1('SELECT apply_pid IS NOT NULL AND apply_pid <> ' . $apid . ' FROM dragonraft.node_status()') eq 't' }),
	'node 1 runs group 20 again, with a new apply worker');
ok($c->wait_until("node 1 to apply E's entry $e",
		sub { sql1('SELECT applied_index FROM dragonraft.status WHERE group_id = 20') >= $e }),
	"node 1 applied E's entry $e");
kill 'CONT', $E->{pid};
kill 'CONT', $A->{pid};
ok($c->wait_until('E to end', sub { $E->{h}->pump_nb; !$E->{h}->pumpable }, 60), 'E ends');
$E->{h}->finish;
like(${ $E->{out} }, qr/^\d+\nt$/m, 'execute() returns once node 1 applied its entry')
	or diag(${ $E->{err} });
unlike(${ $E->{err} }, qr/ERROR/, '... with no error (the same group, the same log)');
ok($c->wait_until('A to end', sub { $A->{h}->pump_nb; !$A->{h}->pumpable }, 60), 'A ends');
$A->{h}->finish;
unlike(${ $A->{err} }, qr/ERROR/, "A's COMMIT succeeds (its turn came under the new engine worker)")
	or diag(${ $A->{err} });
is(sql1('SELECT count(*) FROM t20'), '1', 't20 has its row on node 1, committed by A');
ok($c->caught_up(20), 'group 20 applies on both nodes');
is($c->node(2)->safe_psql('postgres', 'SELECT count(*) FROM t20'), '1', 'and on node 2');

# ---- 3. a wait that looks while the next engine worker adds the groups ----
# The next engine worker removes every shared entry and adds those of the
# LogDB's groups again, reading pg_replication_origin in between: a session
# that holds that catalog locked keeps it there.  execute()'s wait, which is
# not stopped this time, finds no group 20 meanwhile.
# (the restart above may have cost node 1 the leadership: A2 writes there)
ok($c->lead(20, 1), 'node 1 leads group 20 again');
ok($c->settled(20), 'group 20 takes only the test\'s entries');
$apid = sql1('SELECT apply_pid FROM dragonraft.node_status()');
kill 'STOP', $apid;
my $E2 = $c->start_session(1, '\\set VERBOSITY verbose', q{SELECT dragonraft.execute(20, 'SELECT 2') > 0});
ok($c->wait_until('E2 to wait for its apply',
		sub { sql1("SELECT wait_event_type FROM pg_stat_activity WHERE pid = $E2->{pid}") eq 'Extension'
			&& sql1('SELECT commit_index > applied_index FROM dragonraft.status WHERE group_id = 20') eq 't' }),
	"E2's command is committed, and waits for node 1's stopped apply worker");
my $e2 = sql1('SELECT commit_index FROM dragonraft.status WHERE group_id = 20');
my $A2 = $c->start_session(1, '\\set VERBOSITY verbose', 'INSERT INTO t20 VALUES (2)');
ok($c->wait_until("A2's entry to commit",
		sub { sql1("SELECT wait_event_type FROM pg_stat_activity WHERE pid = $A2->{pid}") eq 'Extension'
			&& sql1('SELECT commit_index FROM dragonraft.status WHERE group_id = 20') > $e2 }),
	"A2's insert is committed after E2's command, and waits for its turn");
# (restart_held: the apply worker, terminated and continued, exits at once,
# without applying what it was handed)
my $L = $c->restart_held(1, 20, $apid);
# (E2 looks at its group every 100 ms at most: give it a few looks)
ok(!$c->wait_until('E2 or A2 to end', sub {
	for my $s ($E2, $A2) { return 1 unless $s->{h}->pumpable; $s->{h}->pump_nb; return 1 unless $s->{h}->pumpable; }
	return 0; }, 2),
	'E2 and A2 still wait');
$c->release_held(1, $L, 20);
ok($c->wait_until('E2 to end', sub { $E2->{h}->pumpable && $E2->{h}->pump_nb; !$E2->{h}->pumpable }, 60), 'E2 ends');
$E2->{h}->finish;
like(${ $E2->{out} }, qr/^\d+\nt$/m, 'execute() returns once node 1 applied its entry')
	or diag(${ $E2->{err} });
ok($c->wait_until('A2 to end', sub { $A2->{h}->pumpable && $A2->{h}->pump_nb; !$A2->{h}->pumpable }, 60), 'A2 ends');
$A2->{h}->finish;
unlike(${ $A2->{err} }, qr/ERROR/, "A2's COMMIT succeeds") or diag(${ $A2->{err} });
is(sql1('SELECT count(*) FROM t20'), '2', 't20 has both rows on node 1');
ok($c->caught_up(20), 'group 20 applies on both nodes');
is($c->node(2)->safe_psql('postgres', 'SELECT count(*) FROM t20'), '2', 'and node 2 has them');

done_testing();
