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
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $c = DragonCluster->new(1);
my $N = $c->node(1);
sub sql { return $N->safe_psql('postgres', $_[0]); }
$c->create_group(1);
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

done_testing();
