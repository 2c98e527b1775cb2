# The queries that read dragonraft.ddl_history for a group's commands
# (dr_apply_rows_last_command at an apply worker's start and a snapshot's
# load and export; dr_apply_rows_command_between at a writer's turn after a
# command it did not see) say the predicate of the partial index
# ddl_history_commands (DR_HISTORY_COMMANDS in snapshot.h; the index in
# dragonraft--1.0.sql): they read none of the barrier rows dragonraft
# writes in runs.  Should the two drift apart, the queries would still be
# right but read every barrier (a restart after 1,000,000 caught_up
# barriers: 3-6 s instead of 0.1 s), which no other test sees.  Here
# auto_explain logs the plans these queries run with, sequential and bitmap
# scans off (the table is small; JIT off: the costs of disabled
# scans would compile every query): each is an index scan of
# ddl_history_commands, which the planner may use only if the query's
# clauses imply the index's predicate.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $c = DragonCluster->new(1, conf => qq{
shared_preload_libraries = 'dragonraft,auto_explain'
auto_explain.log_min_duration = 0
auto_explain.log_nested_statements = on
enable_seqscan = off
enable_bitmapscan = off
jit = off
});
my $N = $c->node(1);
$c->create_group(1, 1);
ok($c->wait_until('node 1 to lead group 1', sub { $c->leader(1) }), 'node 1 leads group 1');
$N->safe_psql('postgres', q{SELECT dragonraft.execute(1, 'CREATE TABLE public.t (k int PRIMARY KEY)')});
$N->safe_psql('postgres', q{SELECT dragonraft.replicate_table('public.t', 1)});
ok($c->caught_up(1), 'table t is replicated (and a barrier is applied after it)');

# The plan logged after offset for the first query of the history whose
# text, after its group_id's clause, matches $rest.
sub plan_of
{
	my ($rest, $offset) = @_;
	my $plan;
	$c->wait_until("the plan of the history's query matching $rest", sub {
		my $log = substr(slurp_file($N->logfile), $offset);
		($plan) = $log =~ /(Query\ Text:\ SELECT\ index,\ command\ FROM\ dragonraft\.ddl_history
			\ WHERE\ group_id\ =\ \$1\ AND\ $rest.*?)(?:\n\S|\z)/sx;
		return defined $plan;
	});
	note $plan // 'no plan';
	return $plan // '';
}

# 1. The apply worker's start: the group's last command.
my $offset = -s $N->logfile;
$N->safe_psql('postgres',
	q{SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'dragonraft apply'});
ok($c->caught_up(1), 'a new apply worker applies the group');
like(
	plan_of(qr/(?!index > )[^\n]*ORDER BY index DESC\n/, $offset),
	qr/Index Scan Backward using ddl_history_commands on ddl_history/,
	'the group\'s last command is read through ddl_history_commands');

# 2. A writer whose transaction began before a command: at its turn, the
# commands since.
$offset = -s $N->logfile;
my $w = $N->background_psql('postgres');
$w->query_safe('BEGIN');
$w->query_safe('INSERT INTO t VALUES (1)');
$N->safe_psql('postgres', q{SELECT dragonraft.execute(1, 'CREATE TABLE public.u (k int PRIMARY KEY)')});
$w->query_safe('COMMIT');
$w->quit;
is($N->safe_psql('postgres', 'SELECT count(*) FROM t'), '1', 'the writer committed after the command');
like(
	plan_of(qr/index > \$2 /, $offset),
	qr/Index Scan Backward using ddl_history_commands on ddl_history/,
	'the commands between two entries are read through ddl_history_commands');

done_testing();
