# The apply worker's knowledge of a group (its origin, applied index) must
# not outlive the group on this node (review 36).
#
# The apply worker keeps what it found of a group (ApplyGroup: its origin id,
# its applied index) for as long as it runs.  A node that left a group can be
# its member again once the record that it left is deleted on purpose
# (forget_left_group; before rev58, DROP EXTENSION / CREATE EXTENSION
# emptied dragonraft.left_groups: allowed once the node has no groups, and
# the apply worker goes on; the test still does both).  The group made again has a new
# origin, from entry 0; the apply worker went on with the old one's: it
# skipped the new group's entries up to the old applied index (nothing of
# them applied, the applied index stuck at 0), and applied the ones after
# with the old origin id, taken meanwhile by another group (whose applied
# index they moved).
#
# 2. leave_group while the apply worker is inside a batch of the group: it
# dropped the group's triggers (locking its tables), then waited for the
# batch to end to drop the origin, a wait no deadlock check sees; the batch
# went on to one of those tables and waited for leave_group.  The engine
# worker then terminated leave_group, which blocked the apply, after the
# member's LogDB data was deleted: the origin stayed, a member that lost its
# LogDB.  leave_group now waits for the batch first.
#
# 3. Entries of a group whose origin the apply worker knew, still queued when
# the node left the group: the apply worker set up a session of the dropped
# origin to find the group gone, which made PostgreSQL's in-memory state of
# that origin id again (pg_replication_origin_status), kept at checkpoints
# and restarts: one of max_replication_slots taken for nothing.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use PostgreSQL::Test::Utils;
use Test::More;

# (a reader that blocks the apply worker is ended only after 20 s: part 2)
my $c = DragonCluster->new(2, conf => "dragonraft.max_apply_lock_delay = '20s'\n");
my $N1 = $c->node(1);
my $N2 = $c->node(2);
sub sql1 { return $N1->safe_psql('postgres', $_[0]); }
sub sql2 { return $N2->safe_psql('postgres', $_[0]); }
my $addr2 = $c->raft_address(2);

# 1. Group 30 with nodes 1 and 2; node 2 applies a few commands of it.
$c->create_group(30, 1, 2);
ok($c->caught_up(30), 'group 30 applies on nodes 1 and 2');
ok($c->lead(30, 1), 'node 1 leads group 30');
sql1("SELECT dragonraft.execute(30, 'CREATE TABLE old30_$_ (a int)')") for 1 .. 6;
ok($c->caught_up(30), 'node 2 applied them');
my $old_applied = sql2('SELECT applied_index FROM dragonraft.status WHERE group_id = 30');
my $apid2 = sql2('SELECT apply_pid FROM dragonraft.node_status()');

# Node 2 leaves it, drops and creates the extension again and forgets that
# it left group 30: the apply worker is the same.
sql1('SELECT dragonraft.remove_member(30, 2, true)');
sql2('SELECT dragonraft.leave_group(30, force => true)');
is(sql2(q{SELECT count(*) FROM pg_replication_origin WHERE roname LIKE 'dragonraft_%'}), '0',
	'node 2 has no origin of a group');
sql2('DROP EXTENSION dragonraft');
sql2('CREATE EXTENSION dragonraft');
sql2('SELECT dragonraft.forget_left_group(30, 2)');
ok($c->wait_until('the engine worker of node 2',
		sub { sql2('SELECT engine_state FROM dragonraft.node_status()') eq 'running' }),
	'node 2 runs its engine worker again');

# Group 40 takes the id of 30's dropped origin; then group 30 is made again
# on node 2 alone.
sql2(qq{SELECT dragonraft.create_group(40, '{"2": "$addr2"}')});
ok($c->wait_until('group 40 to be applied on node 2',
		sub { sql2('SELECT applied_index > 0 AND applied_index = commit_index FROM dragonraft.status WHERE group_id = 40') eq 't' }),
	'group 40 is applied on node 2');
is(sql2('SELECT apply_pid FROM dragonraft.node_status()'), $apid2,
	'node 2 has the same apply worker');
sql2(qq{SELECT dragonraft.create_group(30, '{"2": "$addr2"}')});
ok($c->wait_until('group 30 to have a leader on node 2',
		sub { sql2('SELECT leader_id FROM dragonraft.status WHERE group_id = 30') eq '2' }),
	'node 2 leads the new group 30');
# Past the old group's applied index (the old origin's entries after it
# were applied with its id, now group 40's).
my $n = $old_applied - sql2('SELECT commit_index FROM dragonraft.status WHERE group_id = 30') + 3;
for my $i (1 .. $n)
{
	# (one that waits in vain for its apply gives up: its entry stays)
	$N2->psql('postgres', "SET statement_timeout = '2s'; "
		. "SELECT dragonraft.execute(30, 'CREATE TABLE new30_$i (a int)')");
}
ok($c->wait_until('the new group 30 to be applied on node 2',
		sub { sql2('SELECT applied_index > 0 AND applied_index = commit_index FROM dragonraft.status WHERE group_id = 30') eq 't' },
		30),
	'the new group 30 is applied on node 2');
is(sql2(q{SELECT count(*) FROM pg_class WHERE relname LIKE 'new30\_%'}), "$n",
	'its commands are applied');
for my $g (30, 40)
{
	is(sql2(qq{SELECT pg_replication_origin_progress('dragonraft_$g', false) = '0/0'::pg_lsn + applied_index
			FROM dragonraft.status WHERE group_id = $g}), 't',
		"the origin of group $g holds its applied index");
}
is(sql2('SELECT applied_index = commit_index FROM dragonraft.status WHERE group_id = 40'), 't',
	'group 40 is applied up to its commit index');

# 2. Group 50, led by node 1, with a table; node 2's apply worker, inside a
# batch of the group, waits for a reader of a table of its own (a command of
# two statements: the second one is on the group's table).
$c->create_group(50, 1, 2);
ok($c->caught_up(50), 'group 50 applies on nodes 1 and 2');
ok($c->lead(50, 1), 'node 1 leads group 50');
sql1(q{SELECT dragonraft.execute(50, 'CREATE TABLE t50 (a int PRIMARY KEY)')});
sql1(q{SELECT dragonraft.replicate_table('t50', 50)});
sql1('INSERT INTO t50 VALUES (1)');
$_->safe_psql('postgres', 'CREATE TABLE local_only (a int)') for ($N1, $N2);
ok($c->caught_up(50), 'node 2 has the row of t50');
my $reader = $c->idle_reader(2, 'local_only');
ok($reader, 'a reader on node 2 holds local_only');
sql1(q{SELECT dragonraft.execute(50, 'ALTER TABLE local_only ADD COLUMN b int; CREATE INDEX t50_a ON t50 (a)')});
ok($c->wait_until('node 2\'s apply worker to wait for the reader',
		sub { sql2(q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'dragonraft apply' AND wait_event_type = 'Lock'}) eq '1' }),
	'node 2\'s apply worker waits for the reader, in a batch of group 50');
sql1('SELECT dragonraft.remove_member(50, 2, true)');
my ($lout, $lerr) = ('', '');
my $leave = IPC::Run::start(['psql', '-XAtq', '-d', $N2->connstr('postgres'), '-c',
		'SELECT dragonraft.leave_group(50, force => true)'],
	'>', \$lout, '2>', \$lerr, IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
# (before: at the origin's drop; now: for the batch's end, before anything)
ok($c->wait_until('leave_group on node 2 to wait',
		sub { sql2(q{SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT dragonraft.leave_group%' AND wait_event IN ('ReplicationOriginDrop', 'object')}) eq '1' }),
	'leave_group on node 2 waits for the batch');
${ $reader->{in} } .= "COMMIT;\n";
$reader->{h}->finish;
ok($c->wait_until('leave_group on node 2 to return', sub { $leave->pump_nb; !$leave->pumpable }, 60),
	'leave_group returns');
$leave->finish;
unlike($lerr, qr/ERROR|FATAL|terminat/, 'leave_group succeeded');
is(sql2(q{SELECT count(*) FROM pg_replication_origin WHERE roname = 'dragonraft_50'}), '0',
	'the origin of group 50 is gone');
is(sql2('SELECT count(*) FROM dragonraft.left_groups WHERE group_id = 50'), '1',
	'node 2 left group 50');
is(sql2(q{SELECT count(*) FROM pg_indexes WHERE indexname = 't50_a'}), '1',
	'the batch was applied before');
like(sql2(q{SELECT dragonraft.execute(40, 'SELECT 1')}), qr/^\d+$/,
	'node 2 applies group 40 on');

# 3. Group 60: node 2's apply worker, stopped, has entries of it queued when
# node 2 leaves it.
$c->create_group(60, 1, 2);
ok($c->caught_up(60), 'group 60 applies on nodes 1 and 2');
ok($c->lead(60, 1), 'node 1 leads group 60');
# Nothing of group 60 in a batch of node 2 when its apply worker stops: a
# batch held for apply_batch_delay (the new term's no-op, say) kept the
# origin's lock, and leave_group waited for it for ever (review 37).  The
# execute() of caught_up ends the batch on node 2, and nothing follows it:
# settled first, as the group was just made and its leadership may have
# moved (the members' infos and the new leader's addresses are entries of
# dragonraft's own that would otherwise land after it, at any time).
die 'group 60 did not settle' unless $c->settled(60);
my $apid = sql2('SELECT apply_pid FROM dragonraft.node_status()');
kill 'STOP', $apid;
my $last = sql1("SELECT dragonraft.execute(60, 'SELECT 1')");
ok($c->wait_until("node 2 to know that entry $last of group 60 committed",
		sub { sql2('SELECT commit_index FROM dragonraft.status WHERE group_id = 60') >= $last }),
	'node 2 has committed entries of group 60 waiting for its stopped apply worker');
sql1('SELECT dragonraft.remove_member(60, 2, true)');
sql2('SELECT dragonraft.leave_group(60, force => true)');
kill 'CONT', $apid;
like(sql2(q{SELECT dragonraft.execute(40, 'SELECT 1')}), qr/^\d+$/,
	'node 2 applies group 40 after the entries of group 60');
is(sql2('SELECT apply_pid FROM dragonraft.node_status()'), $apid, 'the same apply worker');
is(sql2('SELECT count(*) FROM pg_replication_origin_status WHERE external_id IS NULL'), '0',
	'no state of a dropped origin');

done_testing();
