# An export waits for a session's lock on one of the group's tables before
# it holds the group's apply (review 4 #7): on the leader a session keeps t
# locked (ACCESS EXCLUSIVE) in an open transaction while node 4 joins; the
# exporter waits for that lock with the group's writes going on (no export
# fails for a lock timeout, each having held the apply first), and once the
# session commits the export runs and node 4 joins.
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
my $L = $c->node($l);
my $N4 = $c->node(4);
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1,
	'CREATE TABLE t (id int PRIMARY KEY, v text); CREATE TABLE w (id int PRIMARY KEY)')});
$L->safe_psql('postgres', "SELECT dragonraft.replicate_table('$_', 1)") for qw(t w);
$L->safe_psql('postgres', join('', map { "INSERT INTO t VALUES ($_, 'row');\n" } 1 .. 80));
ok($c->caught_up(1), 'the members caught up');
ok($c->compact(1, 1, 2, 3), 'nodes 1-3 compacted their logs');

# A session on the leader keeps t locked.
my ($lin, $lout, $lerr) = ("BEGIN;\nLOCK TABLE t IN ACCESS EXCLUSIVE MODE;\nSELECT 'locked';\n", '', '');
my $locker = IPC::Run::start(['psql', '-XAtq', '-d', $L->connstr('postgres')],
	'<', \$lin, '>', \$lout, '2>', \$lerr);
$locker->pump until $lout =~ /locked/;
my $log_offset = -s $L->logfile;
$L->safe_psql('postgres', "SELECT dragonraft.add_member(1, 4, '" . $c->raft_address(4) . "')");
my ($jout, $jerr) = ('', '');
my $join = IPC::Run::start(['psql', '-XAtq', '-d', $N4->connstr('postgres'), '-c',
		"SELECT dragonraft.join_group(1, '" . $c->members(1, 2, 3) . "')"],
	'>', \$jout, '2>', \$jerr, IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
ok($c->wait_until('the exporter to wait for the lock on t', sub {
	$L->safe_psql('postgres', q{SELECT count(*) FROM pg_locks
		WHERE relation = 't'::regclass AND NOT granted AND mode = 'AccessShareLock'}) eq '1' }),
	'the leader\'s exporter waits for the lock on t');
# Meanwhile the group writes, for longer than a lock timeout (an election timeout).
# (40 transactions, 40 entries, from one session: 40 psqls took over 10 s
# under load, and the join gave up after 30 s without entries)
$L->safe_psql('postgres', join('', map { "INSERT INTO w VALUES ($_);\n" } 1 .. 40));
# Its wait outlasts a lock timeout (an election timeout, 500 ms): it is not cancelled.
ok($c->wait_until('the exporter to wait for over a second', sub {
	$L->safe_psql('postgres', q{SELECT count(*) FROM pg_locks WHERE relation = 't'::regclass
		AND NOT granted AND waitstart < now() - interval '1 s'}) eq '1' }),
	'the exporter keeps waiting, past a lock timeout');
$L->safe_psql('postgres', 'INSERT INTO w VALUES (41)');
is($L->safe_psql('postgres', 'SELECT count(*) FROM w'), '41', 'the group\'s writes went on');
unlike(slurp_file($L->logfile, $log_offset), qr/could not export a snapshot of group 1/,
	'no export failed for the lock');
$lin .= "COMMIT;\n";
$locker->finish;
$join->finish;
like($jerr, qr/node 4 caught up with group 1/, 'node 4 joined once the lock was released')
  or diag $jerr;
$c->group_nodes(1, 1, 2, 3, 4);
ok($c->caught_up(1), 'every member caught up');
is($c->contents(4, 't', 'id'), $c->contents($l, 't', 'id'), "node 4's t equals the leader's");
is($c->contents(4, 'w', 'id'), $c->contents($l, 'w', 'id'), "node 4's w equals the leader's");
# The exporter's session locks end with it: a command on t runs on every member.
is($L->safe_psql('postgres', q{SELECT count(*) FROM pg_locks l WHERE l.relation IN ('t'::regclass, 'w'::regclass)
	AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = l.pid)}), '0',
	'no lock of the exporter is left behind it');
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, 'ALTER TABLE t ADD COLUMN x int')});
ok($c->caught_up(1), 'a command on t after the export is applied everywhere');

done_testing();
