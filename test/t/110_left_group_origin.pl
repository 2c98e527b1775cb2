# A group's entries still in the apply worker's queue when this node leaves
# it do not make its replication origin again.  The apply worker made the
# origin of any group it had entries of; entries sent before leave_group
# stopped the member, read after leave_group dropped the origin, made it
# again: an origin without a LogDB marks a member that lost its LogDB, and
# create_group of that group then said so (regress membership in CI, where
# the apply worker lagged behind the group's bootstrap entries).
#
# The apply worker is stopped (SIGSTOP) while group 21 is created (its two
# bootstrap entries are committed at once and go into the queue) and left;
# then it goes on, and group 22, created after 21, is applied: so were the
# entries of 21 before it.
#
# Then the same with a group whose origin the apply worker had in hand
# already: node 2's apply worker, stopped, has entries of group 23 in its
# queue when node 2 leaves group 23 and creates group 24, whose new origin
# takes the id of 23's dropped one.  Applied with that id, 23's entries moved
# group 24's applied index past entries of 24 never applied (a command of 24
# was missing on node 2 while its applied index said it was there).
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $c = DragonCluster->new(2);
my $N = $c->node(1);
sub sql { return $N->safe_psql('postgres', $_[0]); }
$c->create_group(1, 1);
ok($c->caught_up(1), 'group 1 applies');

my $apid = sql('SELECT apply_pid FROM dragonraft.node_status()');
kill 'STOP', $apid;
my $addr = $c->raft_address(1);
# Node 1 with an unreachable second voter: it does not lead group 21.
sql(qq{SELECT dragonraft.create_group(21, '{"1": "$addr", "2": "127.0.0.1:9"}')});
# A group created after it, with a leader: its entries follow 21's.
sql(qq{SELECT dragonraft.create_group(22, '{"1": "$addr"}')});
ok($c->wait_until('group 22 to have a leader',
		sub { sql('SELECT leader_id FROM dragonraft.status WHERE group_id = 22') eq '1' }),
	'group 22 has a leader (the engine worker went past group 21\'s bootstrap entries)');
is(sql(q{SELECT count(*) FROM pg_replication_origin WHERE roname = 'dragonraft_21'}), '1',
	'group 21 has its origin');
sql('SELECT dragonraft.leave_group(21, force => true)');
is(sql(q{SELECT count(*) FROM pg_replication_origin WHERE roname = 'dragonraft_21'}), '0',
	'leave_group dropped it');
kill 'CONT', $apid;
ok($c->wait_until('group 22 to be applied',
		sub { sql('SELECT applied_index > 0 AND applied_index = commit_index FROM dragonraft.status WHERE group_id = 22') eq 't' }),
	'the apply worker went on past group 21\'s entries');
is(sql(q{SELECT count(*) FROM pg_replication_origin WHERE roname = 'dragonraft_21'}), '0',
	'the origin of group 21 is not made again');
is(sql('SELECT group_id FROM dragonraft.left_groups'), '21', 'node 1 left group 21');
my ($out, $err, $state) = $c->poll_result(1,
	qq{SELECT dragonraft.create_group(21, '{"1": "$addr", "2": "127.0.0.1:9"}')});
like($err, qr/left/, 'create_group of group 21 again says that this node left it');
unlike($err, qr/lost its LogDB|replication origin/, 'not that it lost its LogDB');
ok($c->caught_up(1), 'group 1 applies on');
is(sql('SELECT apply_pid FROM dragonraft.node_status()'), $apid, 'the same apply worker');

my $N2 = $c->node(2);
sub sql2 { return $N2->safe_psql('postgres', $_[0]); }
$c->create_group(23, 1, 2);
ok($c->caught_up(23), 'group 23 applies on nodes 1 and 2');
# Node 1 leads it: an execute() there does not wait for node 2's apply.
ok($c->lead(23, 1), 'node 1 leads group 23');
my $origin23 = sql2(q{SELECT roident FROM pg_replication_origin WHERE roname = 'dragonraft_23'});
my $apid2 = sql2('SELECT apply_pid FROM dragonraft.node_status()');
kill 'STOP', $apid2;
my $last = 0;
for my $i (1 .. 3)
{
	$last = sql("SELECT dragonraft.execute(23, 'SELECT $i')");
}
ok($c->wait_until("node 2 to know that entry $last of group 23 committed",
		sub { sql2('SELECT commit_index FROM dragonraft.status WHERE group_id = 23') >= $last }),
	'node 2 has committed entries of group 23 waiting for its stopped apply worker');
my $addr2 = $c->raft_address(2);
# (the engine worker handed them to the queue before it took this request)
sql2(qq{SELECT dragonraft.create_group(25, '{"2": "$addr2"}')});
ok($c->wait_until('group 25 to have a leader',
		sub { sql2('SELECT leader_id FROM dragonraft.status WHERE group_id = 25') eq '2' }),
	'node 2 leads group 25');
sql2('SELECT dragonraft.leave_group(23, force => true)');
sql2(qq{SELECT dragonraft.create_group(24, '{"2": "$addr2"}')});
is(sql2(q{SELECT roident FROM pg_replication_origin WHERE roname = 'dragonraft_24'}), $origin23,
	'the origin of group 24 has the id of 23\'s');
kill 'CONT', $apid2;
ok($c->wait_until('group 24 to have a leader',
		sub { sql2('SELECT leader_id FROM dragonraft.status WHERE group_id = 24') eq '2' }),
	'node 2 leads group 24');
sql2(q{SELECT dragonraft.execute(24, 'CREATE TABLE made_in_24 (a int)')});
is(sql2(q{SELECT count(*) FROM pg_class WHERE relname = 'made_in_24'}), '1',
	'a command of group 24 is applied on node 2');
is(sql2('SELECT applied_index <= commit_index FROM dragonraft.status WHERE group_id = 24'), 't',
	'and its applied index is not past its commit index');
is(sql2(q{SELECT count(*) FROM dragonraft.ddl_history WHERE group_id = 24}), '1',
	'its history has that command');
is(sql2('SELECT apply_pid FROM dragonraft.node_status()'), $apid2, 'the same apply worker on node 2');

done_testing();
