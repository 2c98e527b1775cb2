# An ERROR raised inside the engine's round (an engine or libuv callback
# into the engine worker: here the state machine's apply callback, with
# dragonraft.testing_error_at = 'error_in_round') ends the engine worker, and only it:
# the background worker's handler longjmps out of uv_run and calls
# proc_exit(1), whose stop_engine then closes only the LogDB (it runs
# neither libuv nor the engine again: TAP 161); a crash of the worker there
# would make the postmaster reset the whole server (every backend killed,
# crash recovery).  The next engine worker runs the group, and a write
# commits.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $c = DragonCluster->new(1);
my $node = $c->node(1);
$c->create_group(1, 1);
ok($c->leader(1), 'node 1 leads group 1');
$c->query(1, q{SELECT dragonraft.execute(1, 'CREATE TABLE t (id int PRIMARY KEY)')});
$c->query(1, q{SELECT dragonraft.replicate_table('t', 1)});
$c->query(1, 'INSERT INTO t VALUES (1)');
my $engine = $c->process_of(1, qr/dragonraft engine/);
ok($engine, 'node 1 runs an engine worker');

# A session open across the engine worker's exit: a reset would end it.
my $s = $c->start_session(1, 'SELECT pg_sleep(600)');
my $log_at = -s $node->logfile;
$c->query(1, q{ALTER SYSTEM SET dragonraft.testing_error_at = 'error_in_round'});
$c->query(1, 'SELECT pg_reload_conf()');
# Its commit hands the engine a committed entry: the ERROR comes in the round.
my $w = $c->start_session(1, 'INSERT INTO t VALUES (2)');
ok($c->log_has($node, qr/ERROR:  dragonraft.testing_error_at is "error_in_round"/),
	'the engine worker raises the ERROR inside its round');
$c->query(1, 'ALTER SYSTEM RESET dragonraft.testing_error_at');
$c->query(1, 'SELECT pg_reload_conf()');
ok($c->wait_until('the engine worker to exit', sub { !kill 0, $engine }), 'the engine worker exited');
ok($c->log_has($node, qr/background worker "dragonraft engine" \(PID $engine\) exited with exit code 1/),
	'it exited cleanly (exit code 1)');
ok($c->engine_running(1), 'the next engine worker runs');
my $log = substr(slurp_file($node->logfile), $log_at);
unlike($log, qr/terminated by signal|was terminated|all server processes terminated; reinitializing/,
	'the postmaster did not reset the server');
is($c->query(1, "SELECT count(*) FROM pg_stat_activity WHERE pid = $s->{pid}"), '1',
	'the open session survived');
ok($c->wait_until('a write to commit', sub {
	my ($state) = $c->sql_error(1, 'INSERT INTO t VALUES (3)');
	$state eq '' }), 'a write on the group commits');
$w->{h}->finish;
is($c->query(1, 'SELECT count(*) FROM t WHERE id IN (1, 3)'), '2', 'the rows are there');
$c->query(1, "SELECT pg_cancel_backend($s->{pid})");
$s->{h}->finish;
like(${ $s->{err} }, qr/canceling statement due to user request/, 'the session ends at its cancel, not at a reset');
done_testing();
