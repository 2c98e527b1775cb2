# The engine worker's life cycle on one node: it starts with the server,
# shows in pg_stat_activity, survives a reload, stops cleanly with the
# server and comes back after a restart.  node_id = 0 leaves it off (and
# create_group says so), and a bad timing configuration stops the server
# with a clear error.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $worker = "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'dragonraft engine'";

my $node = PostgreSQL::Test::Cluster->new('node1');
$node->init;
my $port = PostgreSQL::Test::Cluster::get_free_port();
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'dragonraft'
dragonraft.node_id = 1
dragonraft.listen_address = '127.0.0.1:$port'
});
$node->start;

ok($node->poll_query_until('postgres', $worker, '1'),
	'engine worker appears in pg_stat_activity');
$node->safe_psql('postgres', 'CREATE EXTENSION dragonraft');
ok($node->poll_query_until('postgres',
		"SELECT engine_state = 'running' FROM dragonraft.node_status()"),
	'the engine worker runs');
is( $node->safe_psql(
		'postgres',
		"SELECT s.node_id || ' ' || s.engine_state || ' ' || (s.engine_pid = a.pid)
		   FROM dragonraft.node_status() s
		   JOIN pg_stat_activity a ON a.backend_type = 'dragonraft engine'"),
	'1 running true',
	'node_status reports the running worker and its pid');
ok(-d $node->data_dir . '/dragonraft', 'the worker created dragonraft.data_dir');

my $pid = $node->safe_psql('postgres',
	"SELECT pid FROM pg_stat_activity WHERE backend_type = 'dragonraft engine'");
my $reload_offset = -s $node->logfile;
$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
$node->wait_for_log(qr/dragonraft engine worker for node 1 reloaded its configuration/,
	$reload_offset);
is($node->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE backend_type = 'dragonraft engine'"),
	$pid, 'the same worker survives a configuration reload');

my $log_offset = -s $node->logfile;
$node->stop('fast');
my $log = slurp_file($node->logfile, $log_offset);
like($log, qr/dragonraft engine worker for node 1 shutting down/,
	'worker logs its clean shutdown');
unlike($log, qr/dragonraft engine.*terminated by signal/, 'worker exits cleanly on shutdown');

$node->start;
ok($node->poll_query_until('postgres', $worker, '1'), 'worker starts again after a restart');
ok($node->poll_query_until('postgres',
		"SELECT engine_state = 'running' FROM dragonraft.node_status()"),
	'and runs its engine again');
$node->stop('fast');

# node_id = 0: the library loads, the engine stays off.
my $off = PostgreSQL::Test::Cluster->new('node_off');
$off->init;
$off->append_conf('postgresql.conf', "shared_preload_libraries = 'dragonraft'\n");
$off->start;
$off->safe_psql('postgres', 'CREATE EXTENSION dragonraft');
is($off->safe_psql('postgres', 'SELECT node_id || \' \' || engine_state FROM dragonraft.node_status()'),
	'0 off', 'node_id 0 leaves the engine off');
is($off->safe_psql('postgres', $worker), '0', 'no engine worker with node_id 0');
my ($rc, $out, $err) = $off->psql('postgres',
	q{SELECT dragonraft.create_group(1, '{"1": "127.0.0.1:7401"}')});
like($err, qr/dragonraft.node_id is not set, so the engine is off/,
	'create_group says the engine is off');
$off->stop('fast');

# An engine worker that cannot start says why in node_status().
my $nosecret = PostgreSQL::Test::Cluster->new('node_nosecret');
$nosecret->init;
my $port2 = PostgreSQL::Test::Cluster::get_free_port();
$nosecret->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'dragonraft'
dragonraft.node_id = 2
dragonraft.listen_address = '127.0.0.1:$port2'
dragonraft.cluster_secret_file = 'no_such_secret'
});
$nosecret->start;
$nosecret->safe_psql('postgres', 'CREATE EXTENSION dragonraft');
ok( $nosecret->poll_query_until('postgres', q{
		SELECT engine_state = 'stopped'
		       AND engine_error LIKE 'dragonraft cannot open cluster secret file "no_such_secret": %'
		  FROM dragonraft.node_status()}),
	'node_status says why the engine worker stopped');
$nosecret->stop('fast');

# An election timeout not above the heartbeat interval is refused at start.
my $bad = PostgreSQL::Test::Cluster->new('node_bad');
$bad->init;
$bad->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'dragonraft'
dragonraft.node_id = 3
dragonraft.election_rtt = 2
dragonraft.heartbeat_rtt = 2
});
ok(!$bad->start(fail_ok => 1), 'server refuses to start with election_rtt <= heartbeat_rtt');
like(slurp_file($bad->logfile),
	qr/dragonraft.election_rtt must be greater than dragonraft.heartbeat_rtt/,
	'the refusal names the setting');

done_testing();
