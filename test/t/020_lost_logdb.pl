# A member that lost its LogDB (DESIGN §10), on one node with single-member
# groups:
# - the engine worker restarts (pg_terminate_backend) with the LogDB gone:
#   status shows the group lost, never the state the previous engine worker
#   left in shared memory;
# - the way to rejoin works without a server restart: drop the group's
#   origin, create the group again; the new member starts from nothing,
#   member info included, and every group goes on applying;
#   replicate_table() of the lost group says why at once;
# - after a server restart too;
# - groups beyond dragonraft.max_groups at a restart are counted in
#   dragonraft.stat_node;
# - an origin named dragonraft_<n> that dragonraft did not make (no LogDB
#   record, no member info) is not shown as a lost group, and create_group
#   refuses that id while it exists.
use strict;
use warnings;
use File::Path qw(rmtree);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('lost');
$node->init;
my $rport = PostgreSQL::Test::Cluster::get_free_port();
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'dragonraft'
dragonraft.node_id = 1
dragonraft.listen_address = '127.0.0.1:$rport'
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION dragonraft');

sub sql { return $node->safe_psql('postgres', $_[0]); }
my $members = qq{'{"1": "127.0.0.1:$rport"}'};

sub engine_running
{
	my ($old_pid) = @_;
	$node->poll_query_until('postgres',
		"SELECT engine_state = 'running' AND engine_pid <> $old_pid FROM dragonraft.node_status()")
	  or die 'the engine worker did not start';
}

# Every group has applied all it committed, and its member info is there.
my $all_applied = q{
	SELECT count(*) FILTER (WHERE s.state = 'ok' AND s.applied_index = s.commit_index
	                        AND i.node_id IS NOT NULL) || '/' || count(*)
	  FROM dragonraft.status s LEFT JOIN dragonraft.member_info i USING (group_id, node_id)};

engine_running(0);
sql("SELECT dragonraft.create_group($_, $members)") for (20, 21);
ok($node->poll_query_until('postgres', $all_applied, '2/2'), 'groups 20 and 21 apply');

# 1. The LogDB goes while the server runs, and the engine worker restarts.
my $epid = sql('SELECT engine_pid FROM dragonraft.node_status()');
rmtree($node->data_dir . '/dragonraft');
sql("SELECT pg_terminate_backend($epid)");
engine_running($epid);
ok( $node->poll_query_until('postgres', q{
		SELECT string_agg(group_id || ' ' || state || ' ' || (role IS NULL), ', '
		                  ORDER BY group_id)
		  FROM dragonraft.status},
		'20 stopped true, 21 stopped true'),
	'after the engine worker restarts without its LogDB, both groups show stopped');
like(sql('SELECT error FROM dragonraft.status WHERE group_id = 20'),
	qr/this node was a member \(replication origin dragonraft_20, applied up to \d+\) but its LogDB has no record of the group/,
	'with the reason and how to rejoin');
my ($rc, $stdout, $stderr) =
  $node->psql('postgres', "SELECT dragonraft.create_group(20, $members)");
like($stderr, qr/group 20 cannot be started on this node: this node was a member/,
	'create_group refuses the lost group');
# replicate_table() of the lost group says so, with the reason, at once (it
# does not wait for this node's member info, which a stopped member never
# commits: before, it ended with 25006, "not the leader", which hid why).
sql('CREATE TABLE public.lost_t (k int PRIMARY KEY)');
($rc, $stdout, $stderr) = $node->psql('postgres', "\\set VERBOSITY verbose\nSELECT dragonraft.replicate_table('public.lost_t', 20)");
like($stderr, qr/ERROR:  55000: dragonraft group 20 is stopped on this node\n.*DETAIL:  This node was a member/,
	'replicate_table of the lost group says it is stopped, and why')
  or diag $stderr;
# Every function that takes the group says it alike, 55000 with the reason
# (review 69: "group 20 is stopped", "group 20 does not run", "group 20 has
# no log on this node", with or without the reason and a hint).
for my $f ('log_digest(20)', 'table_digest(20)', 'snapshot(20)', 'transfer_leader(20, 1)',
	'remove_member(20, 2)', 'read_barrier(20)', "execute(20, 'SELECT 1')")
{
	($rc, $stdout, $stderr) = $node->psql('postgres', "\\set VERBOSITY verbose\nSELECT dragonraft.$f");
	like($stderr, qr/ERROR:  55000: dragonraft group 20 is stopped on this node\n.*DETAIL:  This node was a member.*\nHINT:  See state and error in dragonraft.status, and the server log\./s,
		"$f says the group is stopped, why, and where to look")
	  or diag $stderr;
}

# 2. Rejoin as the hint says, without a restart: drop the origin, create.
sql(q{SELECT pg_replication_origin_drop('dragonraft_20')});
sql("SELECT dragonraft.create_group(20, $members)");
ok( $node->poll_query_until('postgres', q{
		SELECT state = 'ok' AND applied_index = commit_index AND applied_index > 0
		  FROM dragonraft.status WHERE group_id = 20}),
	'group 20 rejoins without a restart and applies its new log');
ok( $node->poll_query_until('postgres',
		q{SELECT count(*) FROM dragonraft.member_info WHERE group_id = 20}, '1'),
	'with its member info applied from the new log');

# 3. The same after a server restart, with the other group applying too.
sql(q{SELECT pg_replication_origin_drop('dragonraft_21')});
$node->restart;
engine_running(0);
is(sql(q{SELECT string_agg(group_id::text, ',') FROM dragonraft.status}), '20',
	'after a restart only group 20 runs: 21 has neither a LogDB record nor an origin');
sql("SELECT dragonraft.create_group(21, $members)");
$node->append_conf('postgresql.conf',
	"dragonraft.client_address = 'host=127.0.0.1 port=" . $node->port . " application_name=moved'");
$node->reload;
ok($node->poll_query_until('postgres', $all_applied, '2/2'), 'both groups apply after a restart');
ok( $node->poll_query_until('postgres',
		q{SELECT count(*) FROM dragonraft.member_info WHERE client_address LIKE '%moved'}, '2'),
	'a new entry reaches both groups');
unlike(slurp_file($node->logfile), qr/are missing|apply worker parked/,
	'no apply failed on the way');

# 4. Room for one group only after a restart; and someone else's origin.
sql(q{SELECT pg_replication_origin_create('dragonraft_77')});
sql(q{SELECT pg_replication_origin_advance('dragonraft_77', '0/12345')});
$node->append_conf('postgresql.conf', 'dragonraft.max_groups = 1');
$node->restart;
engine_running(0);
is(sql('SELECT count(*) FROM dragonraft.status WHERE group_id = 77'), '0',
	'an origin dragonraft_77 of no group of this node is not shown as a lost group');
like(slurp_file($node->logfile), qr/replication origin "dragonraft_77" is not taken for a group of this node/,
	'the log says so');
($rc, $stdout, $stderr) = $node->psql('postgres', "SELECT dragonraft.create_group(77, $members)");
like($stderr, qr/group 77 cannot be started on this node/, 'create_group refuses that id');
is( sql(q{SELECT (SELECT count(*) FROM dragonraft.status) || ' ' || groups_not_started
	        FROM dragonraft.stat_node}),
	'1 1', 'one group runs, and stat_node counts the one not started');
like(slurp_file($node->logfile), qr/dragonraft group 2[01] not started: dragonraft.max_groups \(1\) groups exist/,
	'the log names it');

$node->stop('fast');
done_testing();
