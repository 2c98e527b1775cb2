# A proposal that the engine worker never took was not proposed (review 11
# F4): when the worker exits with a COMMIT's and an execute()'s proposals
# still in the request queue, both fail with 55000 and "Nothing was
# proposed", not 40003 (outcome unknown), and nothing of theirs is ever
# committed.  The worker is stopped (SIGSTOP) while they submit their
# proposals, then terminated.  The execute() passes its read barrier (which
# needs the worker) first and waits for a lock on lockme until the worker is
# stopped.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $c = DragonCluster->new(1);
my $N = $c->node(1);
$c->create_group(1);
ok($c->leader(1), 'group 1 has a leader');
sub sql { return $N->safe_psql('postgres', $_[0]); }
sql(q{SELECT dragonraft.execute(1, 'CREATE TABLE t (k int PRIMARY KEY)')});
sql(q{SELECT dragonraft.replicate_table('t', 1)});
sql(q{SELECT dragonraft.execute(1, 'CREATE TABLE lockme (k int PRIMARY KEY)')});
sql(q{SELECT dragonraft.replicate_table('lockme', 1)});
my ($term0, $commit0) = split /\|/, sql('SELECT term, commit_index FROM dragonraft.status WHERE group_id = 1');

sub background
{
	my ($sql) = @_;
	my $s = $N->background_psql('postgres', on_error_stop => 0);
	$s->query_safe('\set VERBOSITY verbose');
	$s->query_until(qr/started/, "\\echo started\n$sql");
	return $s;
}

my $reader = $c->idle_reader(1, 'lockme');
my $se = background("SELECT dragonraft.execute(1, 'ALTER TABLE public.lockme ADD COLUMN never int');\n");
ok( $c->wait_until('execute() to wait for the lock on lockme',
		sub { sql(q{SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'
		             AND query LIKE 'SELECT dragonraft.execute%'}) == 1 }),
	'execute() passed its read barrier and waits for a lock');

my $epid = sql('SELECT engine_pid FROM dragonraft.node_status()');
kill 'STOP', $epid;
my $si = background("INSERT INTO t VALUES (1);\n");
${ $reader->{in} } .= "COMMIT;\n";
$reader->{h}->finish;
ok( $c->wait_until('the COMMIT and the execute() to wait for the engine worker',
		sub {
			sql(q{SELECT string_agg(left(query, 11), ',' ORDER BY query) FROM pg_stat_activity
			       WHERE wait_event_type = 'Extension' AND backend_type = 'client backend'})
			  eq 'INSERT INTO,SELECT drag'
		}),
	'the COMMIT and the execute() wait for the stopped engine worker');
kill 'TERM', $epid;
kill 'CONT', $epid;
$si->query('SELECT 1');
like($si->{stderr}, qr/ERROR:\s+55000: dragonraft's engine on this node takes no transaction of group 1: the engine worker exited before it took it.*DETAIL:\s+Nothing was proposed/s,
	'the COMMIT fails with 55000: nothing was proposed');
$se->query('SELECT 1');
like($se->{stderr}, qr/ERROR:\s+55000: dragonraft's engine on this node takes no command of group 1: the engine worker exited before it took it.*DETAIL:\s+Nothing was proposed/s,
	'so does the execute()');
$_->quit for ($si, $se);

ok($N->poll_query_until('postgres',
		"SELECT engine_state = 'running' AND engine_pid <> $epid FROM dragonraft.node_status()"),
	'the postmaster starts the engine worker again');
ok($c->caught_up(1), 'the group applies again');
is(sql('SELECT term FROM dragonraft.status WHERE group_id = 1'), $term0 + 1,
	'the new worker began a term');
# (The new term's leader may also log its client address: dragonraft's own.)
is(sql("SELECT string_agg(command, ';' ORDER BY index) FROM dragonraft.ddl_history WHERE group_id = 1 AND index > $commit0"),
	'SELECT 1', 'the only command committed since is caught_up\'s execute()');
is(sql(q{SELECT count(*) FROM t}), '0', 'the row is not there');
is(sql(q{SELECT count(*) FROM pg_attribute WHERE attrelid = 'lockme'::regclass AND attname = 'never'}),
	'0', 'nor the column');
sql('INSERT INTO t VALUES (1)');
is(sql(q{SELECT count(*) FROM t}), '1', 'the same INSERT commits now');

# An execute() cancelled while its proposal waits in the queue of a stopped
# worker: 57014, and it says that nothing was proposed (review 13 F4: it said
# 40003, "it may still run on every member").
$reader = $c->idle_reader(1, 'lockme');
$se = background("SELECT dragonraft.execute(1, 'ALTER TABLE public.lockme ADD COLUMN never2 int');\n");
ok( $c->wait_until('execute() to wait for the lock on lockme again',
		sub { sql(q{SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'
		             AND query LIKE 'SELECT dragonraft.execute%'}) == 1 }),
	'execute() passed its read barrier and waits for a lock');
$epid = sql('SELECT engine_pid FROM dragonraft.node_status()');
kill 'STOP', $epid;
${ $reader->{in} } .= "COMMIT;\n";
$reader->{h}->finish;
ok( $c->wait_until('the execute() to wait for the engine worker',
		sub {
			sql(q{SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Extension'
			       AND query LIKE 'SELECT dragonraft.execute%'}) == 1
		}),
	'the execute() waits for the stopped engine worker');
sql(q{SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE 'SELECT dragonraft.execute%'});
$se->query('SELECT 1');
kill 'CONT', $epid;
like($se->{stderr}, qr/ERROR:\s+57014: canceling statement due to user request.*DETAIL:\s+The engine worker had not taken the command: nothing was proposed/s,
	'the cancelled execute() says that nothing was proposed');
$se->quit;
ok($c->caught_up(1), 'the group applies on');
is(sql(q{SELECT count(*) FROM pg_attribute WHERE attrelid = 'lockme'::regclass AND attname = 'never2'}),
	'0', 'and the column is not there');

# An execute() whose command committed, cancelled while it waits for this
# node's apply: 40003, it may still run (review 14 R2: it said "nothing was
# proposed", and a retry would run it twice).
my $apid = sql('SELECT apply_pid FROM dragonraft.node_status()');
kill 'STOP', $apid;
$se = background("SELECT dragonraft.execute(1, 'CREATE TABLE ran_once (a int)');\n");
ok( $c->wait_until('the command to commit, not applied here',
		sub { sql('SELECT commit_index > applied_index FROM dragonraft.status WHERE group_id = 1') eq 't' }),
	'the command committed and waits for the stopped apply worker');
sql(q{SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE 'SELECT dragonraft.execute%'});
$se->query('SELECT 1');
kill 'CONT', $apid;
like($se->{stderr}, qr/ERROR:\s+40003: the outcome of the command in dragonraft group 1 is unknown/,
	'the cancelled execute() says its outcome is unknown');
$se->quit;
ok($c->caught_up(1), 'the group applies on');
is(sql(q{SELECT count(*) FROM pg_class WHERE relname = 'ran_once'}), '1', 'and the command ran');

done_testing();
