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
($state, $err) = $c->sql_error(3, "SELECT dragonraft.join_group(1, '$members')");
is($state, '55000', 'and after a restart');

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

done_testing();
