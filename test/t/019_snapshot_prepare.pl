# Review 4 #5d, #5e, #8 and #11 on full snapshots.  Group 1 on nodes 1-3;
# a bare node 4 joins from a snapshot:
# - #8: the exporter reads what its tables need before it holds the group's
#   apply (their definitions) or after (their sequences): while a session on
#   the leader keeps the owned sequence of one of them locked, the exporter
#   waits for it with the group's writes going on, past a lock timeout;
# - #5d: a column default whose text holds ";" and a newline;
# - #5e: node 4 has a table of its own whose primary key index has the name
#   of the snapshot's: the load fails before anything changes, with an error
#   naming that index, and is tried again once the index is renamed;
# - #11: the snapshot comes from a member where a command of the group
#   failed and was skipped: node 4's dragonraft.ddl_history says that its
#   commands came with the snapshot, and its ddl_failures that the command
#   is missing here because it was skipped there;
# - snapfix's leftovers: node 4 misses commands that change a table on
#   which it has a view of its own, and add a value to an enum type it has:
#   its load fails with an error naming the view, and is tried again once it
#   is gone; the load adds the value (usable by the rows it loads).
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;

my $c = DragonCluster->new(4, conf => qq{
dragonraft.snapshot_entries = 50
dragonraft.compaction_overhead = 5
max_worker_processes = 16
});
$c->create_group(1, 1, 2, 3);
my $l = $c->leader(1);
ok($l, "group 1 has a writable leader (node $l)");
my $f = $l == 3 ? 2 : 3;
my ($L, $F, $N4) = ($c->node($l), $c->node($f), $c->node(4));

sub status
{
	my ($node) = @_;
	return $c->query($c->id_of($node),
		q{SELECT state || coalesce(': ' || error, '') FROM dragonraft.status WHERE group_id = 1});
}

$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, $$CREATE TYPE mood AS ENUM ('ok');
  CREATE TABLE t1 (id serial PRIMARY KEY, note text DEFAULT E'first;\nsecond', m mood);
  CREATE TABLE t2 (id int PRIMARY KEY, v text);
  CREATE TABLE w (id int PRIMARY KEY)$$)});
$L->safe_psql('postgres', "SELECT dragonraft.replicate_table('$_', 1)") for qw(t1 t2 w);
$L->safe_psql('postgres', q{INSERT INTO t1 DEFAULT VALUES; INSERT INTO t1 DEFAULT VALUES;
  INSERT INTO t1 DEFAULT VALUES; INSERT INTO t2 SELECT g, 'two' FROM generate_series(1, 5) g});

# A command fails on node f, which a DBA skips there.
$F->safe_psql('postgres', 'CREATE TABLE clash (id int)');
my $idx = $L->safe_psql('postgres', q{SELECT dragonraft.execute(1, 'CREATE TABLE clash (id int, v text)')});
ok($c->wait_until('node f stops', sub { status($F) =~ /^apply_failed/ }), "node $f stops at the command");
$F->safe_psql('postgres', "SELECT dragonraft.skip_command(1, $idx)");
ok($c->wait_until('node f goes on', sub { status($F) eq 'ok' }), "node $f skips it and goes on");
like($F->safe_psql('postgres', 'SELECT last_error FROM dragonraft.ddl_failures WHERE group_id = 1'),
	qr/^relation "clash" already exists/, "node ${f}'s ddl_failures shows its own error");

# Node f leads; the members compact their logs.
ok($c->lead(1, $f), "node $f leads group 1");
$L = $F;
$L->safe_psql('postgres', join('', map { "INSERT INTO w VALUES ($_);\n" } 1 .. 60));
ok($c->caught_up(1), 'the members caught up');
ok($c->compact(1, 1, 2, 3), 'nodes 1-3 compacted their logs');

# Node 4 has a table of its own whose primary key index is named t2_pkey.
$N4->safe_psql('postgres', 'CREATE TABLE t2 (id int PRIMARY KEY); ALTER TABLE t2 RENAME TO t2_old;
  INSERT INTO t2_old VALUES (7)');

# A session on the leader keeps t1's sequence locked (ACCESS EXCLUSIVE): the
# command that execute() tries here first renames it, then waits for a table
# that another session keeps locked (it is cancelled later: it fails here,
# and nothing is proposed).
$L->safe_psql('postgres', 'CREATE TABLE blocker (id int)');
my ($bin, $bout, $berr) = ("BEGIN;\nLOCK TABLE blocker;\nSELECT 'locked';\n", '', '');
my $blocker = IPC::Run::start(['psql', '-XAtq', '-d', $L->connstr('postgres')],
	'<', \$bin, '>', \$bout, '2>', \$berr);
$blocker->pump until $bout =~ /locked/;
my ($lout, $lerr) = ('', '');
my $locker = IPC::Run::start(['psql', '-XAtq', '-d', $L->connstr('postgres'), '-c',
		q{SELECT dragonraft.execute(1, 'ALTER SEQUENCE t1_id_seq RENAME TO t1_id_seq_held;
		    LOCK TABLE blocker')}],
	'>', \$lout, '2>', \$lerr, IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
ok($c->wait_until('the session to lock the sequence', sub {
	$L->safe_psql('postgres', q{SELECT count(*) FROM pg_locks WHERE relation = 't1_id_seq'::regclass
		AND granted AND mode = 'AccessExclusiveLock'}) eq '1' }),
	'a session on the leader locks the sequence of t1');
my $log_offset = -s $L->logfile;
$L->safe_psql('postgres', "SELECT dragonraft.add_member(1, 4, '" . $c->raft_address(4) . "')");
my ($jout, $jerr) = ('', '');
my $join = IPC::Run::start(['psql', '-XAtq', '-d', $N4->connstr('postgres'), '-c',
		"SELECT dragonraft.join_group(1, '" . $c->members(1, 2, 3) . "')"],
	'>', \$jout, '2>', \$jerr, IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
my $waiting = q{SELECT p.phase FROM dragonraft.stat_progress_snapshot p
  JOIN pg_locks k ON k.pid = p.pid AND NOT k.granted
 WHERE p.role = 'sender' AND k.relation = 't1_id_seq'::regclass};
ok($c->wait_until('the exporter to wait for the sequence', sub {
	$L->safe_psql('postgres', $waiting) ne '' }), 'the exporter waits for the lock on the sequence');
is($L->safe_psql('postgres', $waiting), 'exporting', 'after the group\'s apply was held and released');
# (40 transactions, 40 entries, from one session)
$L->safe_psql('postgres', join('', map { "INSERT INTO w VALUES ($_);\n" } 61 .. 100));
ok($c->wait_until('the exporter to wait for over a second', sub {
	$L->safe_psql('postgres', q{SELECT count(*) FROM pg_locks WHERE relation = 't1_id_seq'::regclass
		AND NOT granted AND waitstart < now() - interval '1 s'}) eq '1' }),
	'the exporter keeps waiting, past a lock timeout');
$L->safe_psql('postgres', 'INSERT INTO w VALUES (101)');
is($L->safe_psql('postgres', 'SELECT count(*) FROM w'), '101', 'the group\'s writes went on meanwhile');
unlike(slurp_file($L->logfile, $log_offset), qr/could not export a snapshot of group 1/,
	'no export failed for the lock');
$L->safe_psql('postgres', q{SELECT pg_cancel_backend(pid) FROM pg_locks
  WHERE relation = 't1_id_seq'::regclass AND granted AND mode = 'AccessExclusiveLock'});
$locker->finish;
like($lerr, qr/canceling statement due to user request/, 'the session ends, and its command with it');
$bin .= "COMMIT;\n";
$blocker->finish;

# #5e: node 4's load fails on the name, before anything changes.
$join->finish;
like($jerr, qr/index public\.t2_pkey of table public\.t2_old here has a name that table public\.t2 of the snapshot of group 1 needs/,
	'node 4\'s load fails with an error naming its index that has a name the snapshot needs') or diag $jerr;
is($N4->safe_psql('postgres', q{SELECT to_regclass('t1') IS NULL AND to_regclass('t2') IS NULL}), 't',
	'and loads nothing');
$N4->safe_psql('postgres', 'ALTER INDEX t2_pkey RENAME TO t2_old_pkey');
$c->group_nodes(1, 1, 2, 3, 4);
ok($c->wait_until('node 4 to install a snapshot', sub { $N4->safe_psql('postgres',
		q{SELECT snapshots_received >= 1 FROM dragonraft.stat_groups WHERE group_id = 1}) eq 't' }),
	'once the index is renamed, the load is tried again and node 4 installs the snapshot');
ok($c->caught_up(1), 'every member caught up');
for my $t (qw(t1 t2 w))
{
	is($c->contents(4, $t, 'id'), $c->contents($f, $t, 'id'), "node 4's $t equals the leader's");
	is($N4->safe_psql('postgres', "SELECT dragonraft.table_definition('$t')"),
		$L->safe_psql('postgres', "SELECT dragonraft.table_definition('$t')"),
		"node 4's $t is defined as the leader's");
}
is($N4->safe_psql('postgres', q{SELECT pg_get_expr(adbin, adrelid) FROM pg_attrdef
    WHERE adrelid = 't1'::regclass AND adnum = 2}), "'first;
second'::text",
	"node 4's t1 has the default whose literal holds a semicolon and a newline");
is($c->contents(4, 't2_old', 'id'), '(7)', "node 4's own t2_old is left alone");

# #11: node 4's history says that its commands came with the snapshot.
my $hist = q{SELECT string_agg(via, ',' ORDER BY index) FROM dragonraft.ddl_history
  WHERE group_id = 1 AND command <> 'SELECT 1'};
is($N4->safe_psql('postgres', $hist), 'replayed,snapshot',
	'node 4\'s history: the commands came with the snapshot, and the load ran the one that makes a type');
like($N4->safe_psql('postgres', 'SELECT failed || \' \' || last_error FROM dragonraft.ddl_failures WHERE group_id = 1'),
	qr/^1 not run here: it was skipped on the member that exported the snapshot loaded here, where it failed: relation "clash" already exists/,
	'node 4\'s ddl_failures says the command was skipped where the snapshot came from');
like($L->safe_psql('postgres', 'SELECT last_error FROM dragonraft.ddl_failures WHERE group_id = 1'),
	qr/^relation "clash" already exists/, "node ${f}'s own is unchanged");
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, 'CREATE TYPE later AS ENUM (''a'')')});
ok($c->caught_up(1), 'a command after the join');
is($N4->safe_psql('postgres', $hist), 'replayed,snapshot,log', 'node 4 ran the later command itself');

# Commands of the group that node 4 misses: one changes t2, on which node 4
# has a view of its own, another adds a value to the enum type (which node 4
# has), used by a row.  Its load, which replaces t2, fails with an error
# naming the view; once it is gone, the load is tried again and succeeds,
# with the value.
$N4->safe_psql('postgres', 'CREATE VIEW t2_report AS SELECT count(*) FROM t2');
$N4->stop('fast');
$c->group_nodes(1, 1, 2, 3);
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, 'ALTER TABLE t2 ADD COLUMN c int')});
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, $$ALTER TYPE mood ADD VALUE 'glad'$$)});
$L->safe_psql('postgres', q{INSERT INTO t1 (m) VALUES ('glad')});
$L->safe_psql('postgres', join('', map { "INSERT INTO t2 VALUES (1$_, 'later', $_);\n" } 1 .. 60));
ok($c->caught_up(1), 'the members caught up');
ok($c->compact(1, 1, 2, 3), 'nodes 1-3 compacted their logs');
$N4->start;
ok($c->wait_until('node 4 to refuse the snapshot', sub { status($N4) =~
		/view public\.t2_report here depends on table public\.t2 of group 1, which a snapshot replaces here/ }),
	'node 4\'s load fails with an error naming its view on the table it replaces');
is($N4->safe_psql('postgres', 'SELECT * FROM t2_report'), '5', 'nothing was loaded');
$N4->safe_psql('postgres', 'DROP VIEW t2_report');
$c->group_nodes(1, 1, 2, 3, 4);
ok($c->caught_up(1), 'once the view is gone, node 4 loads the snapshot and catches up');
is($N4->safe_psql('postgres', q{SELECT enum_range(NULL::mood)::text || ' ' || via FROM dragonraft.ddl_history
		WHERE group_id = 1 AND command LIKE '%ADD VALUE%'}), '{ok,glad} replayed',
	'the load added the value its rows use, running the command again');
is($c->contents(4, $_, 'id'), $c->contents($f, $_, 'id'), "node 4's $_ equals the leader's") for qw(t1 t2);

done_testing();
