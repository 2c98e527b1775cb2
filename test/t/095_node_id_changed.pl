# A server restarted with another dragonraft.node_id (a DBA's slip, user28):
# its LogDB holds its groups under the old id, so it starts none of them. The
# group's error must say that, and to set the id back: it said the LogDB had
# no record of the group and to remove the node, leave_group(g, true) and use
# a new node_id, which would throw away a member whose log is all there.
# - dragonraft.status and create_group name the old id and the setting;
# - with the id set back, the member runs again with its rows;
# - a LogDB that is really gone still gets the lost-log advice (020 has more).
use strict;
use warnings;
use File::Path qw(rmtree);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('idchange');
$node->init;
my $rport = PostgreSQL::Test::Cluster::get_free_port();
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'dragonraft'
dragonraft.listen_address = '127.0.0.1:$rport'
});
$node->append_conf('postgresql.conf', 'dragonraft.node_id = 1');
$node->start;

sub sql { return $node->safe_psql('postgres', $_[0]); }
my $members = qq{'{"1": "127.0.0.1:$rport"}'};

sql('CREATE EXTENSION dragonraft');
$node->poll_query_until('postgres',
	"SELECT engine_state = 'running' FROM dragonraft.node_status()")
  or die 'the engine worker did not start';

sub set_id
{
	my ($id) = @_;
	$node->stop;
	$node->append_conf('postgresql.conf', "dragonraft.node_id = $id");
	$node->start;
	$node->poll_query_until('postgres',
		"SELECT engine_state = 'running' AND node_id = $id FROM dragonraft.node_status()")
	  or die "the engine worker did not start as node $id";
}

sql("SELECT dragonraft.create_group(20, $members)");
ok($node->poll_query_until('postgres',
		q{SELECT role = 'leader' AND state = 'ok' FROM dragonraft.status WHERE group_id = 20}),
	'group 20 runs on node 1');
sql(q{SELECT dragonraft.execute(20, 'CREATE TABLE t (id int PRIMARY KEY)')});
sql(q{SELECT dragonraft.replicate_table('t', 20)});
sql('INSERT INTO t SELECT generate_series(1, 10)');
# Its member info applied (proposed once it knows a leader, at the engine's
# next housekeeping): with no member_info row, an origin without a LogDB is
# taken for a stray one, not a lost member (part 3; it failed so once).
ok($node->poll_query_until('postgres',
		q{SELECT count(*) > 0 FROM dragonraft.member_info WHERE group_id = 20 AND node_id = 1}),
	'node 1\'s member info of group 20 is applied');

# 1. Restarted as node 7.  (Until the engine worker runs, the group shows
# 'stopped' with "the engine worker is not running": the member's own error
# is waited for.)
set_id(7);
ok($node->poll_query_until('postgres',
		q{SELECT state = 'stopped' AND error LIKE 'this node%' FROM dragonraft.status WHERE group_id = 20}),
	'as node 7, group 20 is not started');
my $err = sql('SELECT error FROM dragonraft.status WHERE group_id = 20');
like($err,
	qr/^this node's LogDB holds group 20 as node 1, but dragonraft\.node_id is 7 now: set dragonraft\.node_id back to 1 and restart the server$/,
	'the error names the old node id and the setting');
unlike($err, qr/leave_group|new node_id/, 'and does not advise throwing the member away');
my ($rc, $stdout, $stderr) =
  $node->psql('postgres', qq{SELECT dragonraft.create_group(20, '{"7": "127.0.0.1:$rport"}')});
like($stderr, qr/group 20 cannot be started on this node: this node's LogDB holds group 20 as node 1/,
	'create_group says the same');
ok($node->log_contains(qr/dragonraft group 20 not started: this node's LogDB holds group 20 as node 1.*\n.*DETAIL:  A node's id never changes/),
	'so does the server log, with its own detail');

# 2. Set back: the member runs again, its rows there.
set_id(1);
ok($node->poll_query_until('postgres',
		q{SELECT role = 'leader' AND state = 'ok' FROM dragonraft.status WHERE group_id = 20}),
	'node 1 again: group 20 runs');
sql('INSERT INTO t VALUES (11)');
is(sql('SELECT count(*) FROM t'), '11', 'and takes writes, its rows all there');

# 3. A LogDB really gone: the lost-log advice, as before.
$node->stop;
rmtree($node->data_dir . '/dragonraft');
$node->start;
ok($node->poll_query_until('postgres',
		q{SELECT state = 'stopped' AND error LIKE 'this node%' FROM dragonraft.status WHERE group_id = 20}),
	'without its LogDB, group 20 is not started');
like(sql('SELECT error FROM dragonraft.status WHERE group_id = 20'),
	qr/this node was a member \(replication origin dragonraft_20, applied up to \d+\) but its LogDB has no record of the group; to rejoin/,
	'with the lost-log advice');

$node->stop;
done_testing();
