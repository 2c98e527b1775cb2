# An ERROR or a FATAL raised inside a callback that the engine or libuv
# calls into the engine worker (dragonraft.testing_error_at) ends the
# engine worker alone and cleanly, from every place it can come from: a
# request's completion callback run in the round (a write's commit), one
# run at once inside an engine call of the main loop, outside libuv (a
# transfer to the node that leads already), the status copy of a new
# leader inside the round (dr_engine_status_lead), and a FATAL inside the
# round (the state machine's apply callback), whose proc_exit runs inside
# libuv's callback.  Each time the worker says it exits from inside its
# engine (neither libuv's loop, which may point into the abandoned stack
# frames, nor the engine, which may be in the middle of its round, is run
# or closed again: only the LogDB is closed), it exits with exit code 1,
# the postmaster does not reset the server (an open session survives), the
# next engine worker runs the group and a write commits.  TAP 159 is the
# ERROR in the apply callback.
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
$c->query(1, 'INSERT INTO t VALUES (0)');

# A session open across the engine workers' exits: a reset would end it.
my $s = $c->start_session(1, 'SELECT pg_sleep(600)');
my $next_id = 1;

# Set dragonraft.testing_error_at to $at, make the engine meet it ($trigger),
# and check the worker that raised it ($level) exited cleanly and alone.
sub error_ends_worker
{
	my ($at, $level, $trigger, $what) = @_;
	my $log_at = -s $node->logfile;
	my $since = sub { substr(slurp_file($node->logfile), $log_at) };
	$c->query(1, "ALTER SYSTEM SET dragonraft.testing_error_at = '$at'");
	$c->query(1, 'SELECT pg_reload_conf()');
	my $w = $trigger->();
	my $pid;
	ok($c->wait_until("the $level of $at", sub {
		($pid) = $since->() =~ /\[(\d+)\] $level:  dragonraft.testing_error_at is "$at"/;
		$pid }), "$what: the engine worker raises the $level");
	$c->query(1, 'ALTER SYSTEM RESET dragonraft.testing_error_at');
	$c->query(1, 'SELECT pg_reload_conf()');
	ok($c->wait_until('the engine worker to exit', sub { !kill 0, $pid }), "$what: it exited");
	ok($c->wait_until('its exit in the log', sub {
		$since->() =~ /background worker "dragonraft engine" \(PID $pid\) exited with exit code 1/ }),
		"$what: it exited cleanly (exit code 1)");
	like($since->(), qr/\[$pid\] LOG:  dragonraft engine worker for node 1 exits from inside its engine/,
		"$what: it did not run libuv nor close the engine again");
	ok($c->engine_running(1), "$what: the next engine worker runs");
	ok($c->wait_until('a write to commit', sub {
		my ($state) = $c->sql_error(1, "INSERT INTO t VALUES ($next_id)");
		$state eq '' }), "$what: a write on the group commits");
	is($c->query(1, "SELECT count(*) FROM t WHERE id = $next_id"), '1', "$what: its row is there");
	$next_id++;
	unlike($since->(), qr/terminated by signal|was terminated|all server processes terminated; reinitializing/,
		"$what: the postmaster did not reset the server");
	is($c->query(1, "SELECT count(*) FROM pg_stat_activity WHERE pid = $s->{pid}"), '1',
		"$what: the open session survived");
	$w->{h}->finish if $w;
}

# A write's commit: its completion callback runs in the round (eng_flush
# inside engine_run_round, inside libuv's check callback).
error_ends_worker('completion', 'ERROR', sub { $c->start_session(1, 'INSERT INTO t VALUES (-1)') },
	'a completion in the round');
# A transfer to the leader itself completes at once, inside
# engine_transfer_leader, which the main loop calls as it takes the request.
error_ends_worker('completion', 'ERROR',
	sub { $c->start_session(1, 'SELECT dragonraft.transfer_leader(1, 1)') },
	'a completion at once in a request');
# The engine worker that starts next leads the group in a new term: the
# status copy of its lead, inside the round.
error_ends_worker('lead', 'ERROR', sub {
		my $engine = $c->process_of(1, qr/dragonraft engine/);
		$c->query(1, "SELECT pg_terminate_backend($engine)");
		undef },
	'the status copy of a new leader');
# A FATAL in the apply callback: its proc_exit runs inside the round.
error_ends_worker('fatal_in_round', 'FATAL',
	sub { $c->start_session(1, 'INSERT INTO t VALUES (-2)') }, 'a FATAL inside the round');

# Two handles of one kind: a second check handle on the engine worker's loop
# (dragonraft.testing_second_check, read at its start), after engine_uv's,
# which runs the round.  While the round runs, libuv holds the second one in
# a list on its stack (uv__run_check): the exit must not touch the loop.
$c->query(1, 'ALTER SYSTEM SET dragonraft.testing_second_check = on');
$c->query(1, 'SELECT pg_reload_conf()');
my $old = $c->process_of(1, qr/dragonraft engine/);
$c->query(1, "SELECT pg_terminate_backend($old)");
ok($c->wait_until('the next engine worker', sub {
	my $pid = $c->process_of(1, qr/dragonraft engine/);
	defined $pid && $pid != $old }), 'the engine worker restarts with a second check handle');
ok($c->wait_until('a write to commit', sub {
	my ($state) = $c->sql_error(1, 'INSERT INTO t VALUES (-4)');
	$state eq '' }), 'it runs the group');
error_ends_worker('completion', 'ERROR', sub { $c->start_session(1, 'INSERT INTO t VALUES (-3)') },
	'a completion in the round beside a second check handle');

$c->query(1, "SELECT pg_cancel_backend($s->{pid})");
$s->{h}->finish;
like(${ $s->{err} }, qr/canceling statement due to user request/,
	'the session ends at its cancel, not at a reset');
done_testing();
