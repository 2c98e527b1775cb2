# A group id used again on a node (rev58).
#
# 1. The record that a node id left a group outlives DROP EXTENSION.  It was
#    a row of the extension's table dragonraft.left_groups: node 3, which
#    left group 1 with leave_group(1, true) (not removed by the others: it
#    is still a voter there), dropped and created the extension (allowed
#    once it is a member of no group), and join_group(1) and create_group(1)
#    under the same node id then went on, a voter that forgot its votes and
#    log.  The record is now a file in dragonraft.data_dir/left_groups: both
#    are refused after DROP/CREATE EXTENSION and a restart, the view
#    dragonraft.left_groups shows it, and forget_left_group (superuser only)
#    deletes it on purpose.
# 2. A COMMIT that waits for its turn (xact.c wait_turn) while its group is
#    left and made again on its node (same id, forget_left_group between)
#    looked the group up by id and took the new group's applied index for
#    its own: it waited for ever (or, the new group past its index, ended
#    with an internal error).  It now remembers the group's incarnation
#    (DrGroup.made) and ends with 40003.  Node 1 leads group 20; its apply
#    worker is stopped, an entry of node 2's execute() waits for it, and a
#    registration (replicate_table: it holds no table of the group, which
#    leave_group would wait for) is committed behind it and waits for its
#    turn, its backend stopped (SIGSTOP) while node 1 hands the group to node
#    2, leaves it, forgets that and makes group 20 again.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $c = DragonCluster->new(3);
my $N1 = $c->node(1);
my $N3 = $c->node(3);
sub sql1 { return $N1->safe_psql('postgres', $_[0]); }
sub sql3 { return $N3->safe_psql('postgres', $_[0]); }

$c->create_group(1, 1, 2, 3);
ok($c->caught_up(1), 'group 1 applies on nodes 1 to 3');
# (node 1 leads: a leader's leave_group removes it first, and node 3 is to
# stay a voter of group 1 for the others)
ok($c->lead(1, 1), 'node 1 leads group 1');

sql3('SELECT dragonraft.leave_group(1, true)');
$c->group_nodes(1, 1, 2);
is(sql3('SELECT group_id || \' \' || node_id FROM dragonraft.left_groups'), '1 3',
	'node 3 left group 1 (left_groups)');
ok(-f $N3->data_dir . '/dragonraft/left_groups/1.3', 'the record is a file of the data directory');
sql3('DROP EXTENSION dragonraft');
sql3('CREATE EXTENSION dragonraft');
is(sql3('SELECT group_id || \' \' || node_id FROM dragonraft.left_groups'), '1 3',
	'after DROP and CREATE EXTENSION, left_groups still has it');

my $members = $c->members(1, 2);
my ($state, $err) = $c->sql_error(3, "SELECT dragonraft.join_group(1, '$members')");
is($state, '55000', 'join_group(1) on node 3 is refused (55000)');
like($err, qr/node 3 left group 1 and cannot be its member again/, '... saying that node 3 left group 1');
like($err, qr/The record outlives DROP EXTENSION/, "... and that the record outlives DROP EXTENSION");
($state, $err) = $c->sql_error(3, "SELECT dragonraft.create_group(1, '" . $c->members(3) . "')");
is($state, '55000', 'create_group(1) on node 3 is refused too');
is(sql3('SELECT count(*) FROM dragonraft.status WHERE group_id = 1'), '0', 'node 3 has no group 1');

$N3->restart;
# (join_group's first check is that the engine worker runs, also 55000: the
# record is looked at only once it does)
ok($c->wait_until('the engine worker of node 3',
		sub { ($c->poll(3, 'SELECT engine_state FROM dragonraft.node_status()') // '') eq 'running' }),
	'node 3 runs its engine worker again');
($state, $err) = $c->sql_error(3, "SELECT dragonraft.join_group(1, '$members')");
is($state, '55000', 'and after a restart');
like($err, qr/node 3 left group 1 and cannot be its member again/, '... for the same reason');

# The operator's way back, once every member of the group is gone (here:
# node 3 is removed from group 1 first, so that its group 1 below is not
# the others').
($state, $err) = $c->sql_error(3, q{CREATE ROLE admin3 LOGIN IN ROLE dragonraft_admin;
SET ROLE admin3; SELECT dragonraft.forget_left_group(1, 3)});
is($state, '42501', 'forget_left_group is for superusers only');
my $l = $c->leader(1);
$c->node($l)->safe_psql('postgres', 'SELECT dragonraft.remove_member(1, 3, false)');
sql3('SELECT dragonraft.forget_left_group(1, 3)');
is(sql3('SELECT count(*) FROM dragonraft.left_groups'), '0', 'forget_left_group deletes the record');
ok(!-e $N3->data_dir . '/dragonraft/left_groups/1.3', 'and its file');
($state, $err) = $c->sql_error(3, 'SELECT dragonraft.forget_left_group(1, 3)');
is($state, '42704', 'a record that is not there: 42704');
# (with a second voter that is not there: no leader, so that leave_group
# can end it here; a last voter cannot leave)
my $addr3 = $c->raft_address(3);
sql3(qq{SELECT dragonraft.create_group(1, '{"3": "$addr3", "9": "127.0.0.1:9"}')});
is(sql3('SELECT count(*) FROM dragonraft.status WHERE group_id = 1'), '1',
	'node 3 makes group 1 again under its id');
sql3('SELECT dragonraft.leave_group(1, true)');
is(sql3('SELECT count(*) FROM dragonraft.left_groups'), '1', 'and its leave is recorded again');
ok($c->caught_up(1), 'nodes 1 and 2 go on with group 1');

# ---- 2. a wait for a turn and a group made again ----
sub sql2 { return $c->node(2)->safe_psql('postgres', $_[0]); }

$c->create_group(20, 1, 2);
ok($c->lead(20, 1), 'node 1 leads group 20');
# (no entry of dragonraft's own, a member's info or addresses, comes later:
# one before A's would be the stopped apply worker's to apply, as is meant,
# but one after it would not be applied here until the end)
ok($c->settled(20), 'group 20 takes only the test\'s entries');
sql1('CREATE TABLE u (a int PRIMARY KEY)');
my $apid = sql1('SELECT apply_pid FROM dragonraft.node_status()');
kill 'STOP', $apid;
my $e = sql2(q{SELECT dragonraft.execute(20, 'SELECT 1')});
ok($c->wait_until("node 1 to commit entry $e",
		sub { sql1('SELECT commit_index FROM dragonraft.status WHERE group_id = 20') >= $e }),
	"node 1 committed node 2's command, entry $e, which its stopped apply worker holds");
my $A = $c->start_session(1, '\\set VERBOSITY verbose', q{SELECT dragonraft.replicate_table('u', 20)});
ok($c->wait_until("A's entry to commit",
		sub { sql1('SELECT commit_index FROM dragonraft.status WHERE group_id = 20') > $e }),
	"A's registration is committed in group 20's log");
ok($c->wait_until('A to wait for its turn',
		sub { sql1("SELECT wait_event_type FROM pg_stat_activity WHERE pid = $A->{pid}") eq 'Extension' }),
	'A waits for its turn');
is(sql1('SELECT applied_index < ' . $e . ' FROM dragonraft.status WHERE group_id = 20'), 't',
	"node 1 did not apply entry $e");
kill 'STOP', $A->{pid};

sql1('SELECT dragonraft.transfer_leader(20, 2)');
ok($c->wait_until('node 1 to follow in group 20',
		sub { sql1('SELECT role FROM dragonraft.status WHERE group_id = 20') eq 'follower' }),
	'node 2 leads group 20');
sql1('SELECT dragonraft.leave_group(20, true)');
sql1('SELECT dragonraft.forget_left_group(20, 1)');
my $addr1 = $c->raft_address(1);
sql1(qq{SELECT dragonraft.create_group(20, '{"1": "$addr1", "9": "127.0.0.1:9"}')});
is(sql1('SELECT count(*) FROM dragonraft.status WHERE group_id = 20'), '1',
	'node 1 has a group 20 again, another one');
kill 'CONT', $A->{pid};
ok($c->wait_until('A to end', sub { $A->{h}->pump_nb; !$A->{h}->pumpable }, 30),
	'A ends once it looks at its group again (it waited for ever)');
if ($A->{h}->pumpable)
{
	# (without the fix: the cancel ends it with the 40003 of a cancel)
	sql1("SELECT pg_cancel_backend($A->{pid})");
}
$A->{h}->finish;
my $aerr = ${ $A->{err} };
like($aerr, qr/ERROR:\s+40003: dragonraft group 20 went away while the transaction waited for its turn/,
	'A ends with 40003: its group went away');
like($aerr, qr/made again since/, '... and the group 20 here now is another');
kill 'CONT', $apid;
is(sql1(q{SELECT count(*) FROM dragonraft.replicated_tables WHERE relid = 'u'::regclass}), '0',
	'u is not replicated on node 1');
is(sql1(q{SELECT count(*) FROM pg_trigger WHERE tgrelid = 'u'::regclass}), '0', 'and has no trigger');
is(sql1('SELECT apply_pid FROM dragonraft.node_status()'), $apid, 'the same apply worker runs on node 1');

done_testing();
