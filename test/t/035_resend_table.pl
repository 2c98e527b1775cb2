# A member that refused a table takes it after all (resend_table): node 3
# had a t of its own, with a row, when the group replicated t, so it refused
# t and guarded it.  Its hint says what to do: the DBA renames node 3's t
# and its index,
# and resend_table('t') on the leader sends t's definition and rows through
# the log again, under t's table id.  Node 3 then has the group's rows and
# follows later writes; nodes 1 and 2, which replicate t already, are
# unchanged (no rows doubled), and node 3's own table is left as it was.
# A table that is not replicated, or a resend on a follower, is refused; a
# resend racing a command that changes the table is skipped by every member.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;

my $c = DragonCluster->new(3);
my ($N1, $N2, $N3) = map { $c->node($_) } 1 .. 3;
$N3->safe_psql('postgres',
	q{CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'node 3 own row')});
$c->create_group(1);
my $l = $c->leader(1);
ok($l, 'group 1 has a writable leader');
$c->node($l)->safe_psql('postgres', 'SELECT dragonraft.transfer_leader(1, 1)') unless $l == 1;
ok($c->wait_until('node 1 to lead', sub { $c->leader(1) == 1 }), 'node 1 leads');
$_->safe_psql('postgres', 'CREATE TABLE t (id int PRIMARY KEY, v text)') for ($N1, $N2);
$N1->safe_psql('postgres', q{INSERT INTO t SELECT g, 'group row ' || g FROM generate_series(1, 50) g});
my $offset = -s $N3->logfile;
$N1->safe_psql('postgres', q{SELECT dragonraft.replicate_table('t', 1)});
$N1->safe_psql('postgres', q{INSERT INTO t SELECT g, 'group row ' || g FROM generate_series(51, 60) g});
ok($c->caught_up(1), 'the members caught up');
is($N3->safe_psql('postgres', q{SELECT state FROM dragonraft.tables WHERE relid = 't'::regclass}),
	'refused', 'node 3 refused t (it has a row of its own)');
like(slurp_file($N3->logfile, $offset),
	qr/HINT:  Drop the table on this node \(or rename it and its indexes\), then run dragonraft.resend_table\('public.t'\) on the group's leader/,
	"node 3's warning says how to take the table");
my ($st, $err) = $c->sql_error(3, q{INSERT INTO t VALUES (2, 'local')});
is($st, '55000', "node 3 refuses local writes to its refused t");
like($err, qr/HINT:  Drop the table on this node \(or rename it and its indexes\), then run dragonraft.resend_table/,
	'and its hint names resend_table');

# Run $sql on node 1 in an open transaction, then the command $command
# through node 2 (it lands before the transaction's entry in the log); once
# node 1's apply waits for the session's lock on $table, COMMIT.  Returns
# the session's stderr.
sub race_command
{
	my ($sql, $table, $command) = @_;
	my ($in, $out, $err) = ("BEGIN;\n$sql;\nSELECT 'read';\n", '', '');
	my $h = IPC::Run::start([ 'psql', '-XAtq', '-v', 'VERBOSITY=verbose', '-d', $N1->connstr('postgres') ],
		'<', \$in, '>', \$out, '2>', \$err);
	$h->pump until $out =~ /read/;
	$c->node(2)->safe_psql('postgres', "SELECT dragonraft.execute(1, '$command')");
	ok($c->wait_until("node 1's apply to wait for the session's lock on $table", sub {
		$N1->safe_psql('postgres', q{SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)
			WHERE NOT l.granted AND a.backend_type = 'dragonraft apply'}) ne '0' }),
		"node 1's apply waits for the session's lock on $table");
	$in .= "COMMIT;\n";
	$h->finish;
	return $err;
}

# The errors first.
$N1->safe_psql('postgres', 'CREATE TABLE plain (id int PRIMARY KEY)');
($st, $err) = $c->sql_error(1, q{SELECT dragonraft.resend_table('plain')});
is($st, '55000', 'resend_table of a table that is not replicated is refused');
like($err, qr/table "plain" is not replicated on this node/, 'and says so');
($st, $err) = $c->sql_error(2, q{SELECT dragonraft.resend_table('t')});
is($st, '25006', 'resend_table on a follower is refused with 25006');

# The DBA follows the hint.
$N3->safe_psql('postgres', 'ALTER TABLE t RENAME TO t_own; ALTER INDEX t_pkey RENAME TO t_own_pkey');
my $index1 = $N1->safe_psql('postgres', q{SELECT table_id FROM dragonraft.replicated_tables WHERE relid = 't'::regclass});

# A resend racing a command that changes t: the command (from node 2) comes
# first in the log, so the rows and definition the resend read are older
# than t's at its place in the log.  Its session fails with 40001 and every
# member skips it (node 3 would otherwise make t without the new column).
$offset = -s $N3->logfile;
my $err = race_command(q{SELECT dragonraft.resend_table('t')}, 't',
	'ALTER TABLE IF EXISTS t ADD COLUMN z int NOT NULL DEFAULT 7');
like($err, qr/ERROR:  40001:/, 'the resend racing the command fails with 40001');
ok($c->caught_up(1), 'the members applied the command and the resend');
like(slurp_file($N3->logfile, $offset), qr/dragonraft skipped entry \d+ of group 1: the command at entry \d+ changed its table after it was read/,
	'node 3 skipped the resend built before the command');
is($N3->safe_psql('postgres', q{SELECT count(*) FROM dragonraft.replicated_tables WHERE state = 'replicated'}), '0',
	'node 3 still does not replicate t');

$N1->safe_psql('postgres', q{SELECT dragonraft.resend_table('t')});
ok($c->caught_up(1), 'the members applied the resent registration');
is($N3->safe_psql('postgres', q{SELECT state || ' ' || table_id FROM dragonraft.replicated_tables WHERE relid = 't'::regclass}),
	"replicated $index1", 'node 3 replicates t now, under its table id');
is($c->contents(3, 't', 'id'), $c->contents(1, 't', 'id'), "node 3's t has the group's 60 rows");
is($N3->safe_psql('postgres', q{SELECT count(*) FROM t_own}), '1', "node 3's own table keeps its row");
$N3->safe_psql('postgres', q{INSERT INTO t_own VALUES (2, 'mine again')});
is($N3->safe_psql('postgres', q{SELECT count(*) FROM t_own}), '2', "and takes local writes again (its guard is gone)");
is($N3->safe_psql('postgres', q{SELECT count(*) FROM pg_trigger WHERE tgrelid = 't'::regclass AND tgname = 'dragonraft_refused'}),
	'0', 'the new t carries no guard');
for my $id (1, 2)
{
	is($c->node($id)->safe_psql('postgres', 'SELECT count(*) FROM t'), '60',
		"node $id, which replicated t already, has its 60 rows, none doubled");
}

# Later writes reach node 3's t.
$N1->safe_psql('postgres', q{UPDATE t SET v = 'changed' WHERE id <= 5; DELETE FROM t WHERE id > 55; INSERT INTO t VALUES (100, 'after')});
ok($c->caught_up(1), 'the members applied the later writes');
is($c->contents($_, 't', 'id'), $c->contents(1, 't', 'id'), "node $_ has the same t as node 1") for (2, 3);

# A replicate_table racing a command, the same way: the command comes first in
# the log, after replicate_table read u's definition.  The table is not
# replicated yet, so any command there counts: the session fails with 40001,
# every member skips the registration (none refuses u, none replicates it), and
# the retry replicates u with the command's column on every member.
$N1->safe_psql('postgres', q{SELECT dragonraft.execute(1, 'CREATE TABLE public.u (id int PRIMARY KEY)')});
ok($c->caught_up(1), 'every member has u');
$offset = -s $N3->logfile;
$err = race_command(q{SELECT dragonraft.replicate_table('u', 1)}, 'u',
	'ALTER TABLE public.u ADD COLUMN z int NOT NULL DEFAULT 7');
like($err, qr/ERROR:  40001: could not serialize access: a command run through dragonraft.execute in group 1 came between replicate_table and its entry/,
	'the replicate_table racing the command fails with 40001');
ok($c->caught_up(1), 'the members applied the command and the registration');
like(slurp_file($N3->logfile, $offset), qr/dragonraft skipped entry \d+ of group 1: the command at entry \d+ came after its table was read/,
	'node 3 skipped the registration built before the command');
for my $id (1 .. 3)
{
	is($c->node($id)->safe_psql('postgres',
		q{SELECT count(*) FROM dragonraft.replicated_tables WHERE relid = 'u'::regclass}),
		'0', "node $id neither replicates nor refused u");
}
$N1->safe_psql('postgres', q{SELECT dragonraft.replicate_table('u', 1)});
$N1->safe_psql('postgres', q{INSERT INTO u (id) VALUES (1)});
ok($c->caught_up(1), 'the members applied the retried registration');
for my $id (1 .. 3)
{
	is($c->node($id)->safe_psql('postgres',
		q{SELECT state || ' ' || (SELECT string_agg(id || ':' || z, ',') FROM u)
		  FROM dragonraft.replicated_tables WHERE relid = 'u'::regclass}),
		'replicated 1:7', "node $id replicates u with the command's column");
}
done_testing();
