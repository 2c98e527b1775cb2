# A writer whose transaction began before a command run through
# dragonraft.execute changed its table, and whose entry lands after that
# command in the log (review 2, #2): every member skips its entry and the
# writer gets 40001, so no member fails on columns that are gone (DROP
# COLUMN) or reads values as another type (ALTER COLUMN TYPE); the group goes
# on, and all members stay identical.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $c = DragonCluster->new(3);
$c->create_group(1);
my $l = $c->leader(1);
ok($l, "group 1 has a writable leader (node $l)");
my $L = $c->node($l);
$L->safe_psql('postgres',
	q{SELECT dragonraft.execute(1, 'CREATE TABLE t (id int PRIMARY KEY, v bigint, w text)')});
$L->safe_psql('postgres', "SELECT dragonraft.replicate_table('t', 1)");
$L->safe_psql('postgres', "INSERT INTO t VALUES (0, 0, 'before')");

# The writer holds its row lock (and its schema) while the command enters the
# log; the apply worker waits for the lock, so the writer's entry follows the
# command's.  (The command is run on a follower: on the leader, execute()
# would try it first and wait for the writer's lock, as ALTER TABLE does.)
my ($f) = grep { $_ != $l } $c->ids;
sub race
{
	my ($command, $row, $v) = @_;
	my $w = $L->background_psql('postgres', on_error_stop => 0);
	$w->query_safe("BEGIN; INSERT INTO t (id, v) VALUES ($row, $v)");
	my ($out, $err) = ('', '');
	my $ddl = IPC::Run::start(['psql', '-XAt', '-d', $c->node($f)->connstr('postgres'), '-c',
			"SELECT dragonraft.execute(1, '$command')"], '>', \$out, '2>', \$err);
	ok( $c->wait_until('the command waiting for the writer\'s lock', sub {
			$L->safe_psql('postgres',
				"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'dragonraft apply' AND wait_event_type = 'Lock'"
			) eq '1' }),
		"the apply of '$command' waits for the writer");
	$w->query("\\set VERBOSITY verbose\nCOMMIT");
	like($w->{stderr}, qr/40001.*changed a table of group 1/s,
		'the writer ends with 40001: its entry is skipped');
	$w->quit;
	$ddl->finish;
	is($err, '', "the command '$command' completes") or diag $err;
	ok($c->caught_up(1), 'every member applied the log past both entries');
	is($c->node($_)->safe_psql('postgres', "SELECT count(*) FROM t WHERE id = $row"), '0',
		"node $_ has no row of the skipped entry") for $c->ids;
	is($c->node($_)->safe_psql('postgres', "SELECT state FROM dragonraft.status WHERE group_id = 1"),
		'ok', "group 1 is ok on node $_") for $c->ids;
}

race('ALTER TABLE t ALTER COLUMN v TYPE timestamptz USING to_timestamp(v)', 1, '42');
race('ALTER TABLE t DROP COLUMN w', 2, 'now()');
# Schema-qualified: the command concerns table t only, and still skips it.
race('ALTER TABLE public.t ADD COLUMN z int', 4, 'now()');

# The group goes on: a write after the commands, on the new schema, reaches
# every member, and the tables are identical.
$L->safe_psql('postgres', "INSERT INTO t VALUES (3, to_timestamp(3), 3)");
ok($c->caught_up(1), 'a later write is applied everywhere');
my $want = $c->contents($l, 't', 'id');
is($c->contents($_, 't', 'id'), $want, "node $_ has the leader's rows") for $c->ids;
like(slurp_file($c->node($f)->logfile), qr/skipped entry \d+ of group 1/,
	'a follower logs the skipped entry');

done_testing();
