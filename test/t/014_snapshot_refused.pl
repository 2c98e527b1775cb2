# A leader that refused one of its group's tables exports no snapshot (review
# 4 #8): node 3 had a t of its own, with a row, when the group replicated t,
# so it refused t; node 3 leads, node 2 falls behind a compacted log and
# needs a snapshot.  A snapshot from node 3 would lack t, and node 2's load
# would drop node 2's t with the group's rows: node 3 refuses to export,
# with an error that names t, and node 2 keeps its rows.  Once node 1 leads
# again, node 2 catches up from its snapshot.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $c = DragonCluster->new(3, conf => qq{
dragonraft.snapshot_entries = 20
dragonraft.compaction_overhead = 2
});
my ($N1, $N2, $N3) = map { $c->node($_) } 1 .. 3;
$N3->safe_psql('postgres', q{CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'node 3 own row')});
$c->create_group(1);
my $l = $c->leader(1);
ok($l, 'group 1 has a writable leader');
ok($c->lead(1, 1), 'node 1 leads');
# Nodes 1 and 2 make their t by hand: through execute(), node 3 would stop
# applying the group at a CREATE TABLE t that fails there (034).
$_->safe_psql('postgres', 'CREATE TABLE t (id int PRIMARY KEY, v text)') for ($N1, $N2);
$N1->safe_psql('postgres', q{SELECT dragonraft.execute(1, 'CREATE TABLE u (id int PRIMARY KEY)')});
$N1->safe_psql('postgres', q{INSERT INTO t SELECT g, 'group row' FROM generate_series(1, 100) g});
$N1->safe_psql('postgres', "SELECT dragonraft.replicate_table('$_', 1)") for qw(t u);
ok($c->caught_up(1), 'the members caught up');
is($N3->safe_psql('postgres', q{SELECT state FROM dragonraft.tables WHERE relid = 't'::regclass}),
	'refused', 'node 3 refused t (it has a row of its own)');
is($N2->safe_psql('postgres', 'SELECT count(*) FROM t'), '100', 'node 2 has the group\'s 100 rows of t');

ok($c->lead(1, 3), 'node 3 leads');
$N2->stop;
$N3->safe_psql('postgres', join('', map { "INSERT INTO u VALUES ($_);\n" } 1 .. 60));
for my $id (1, 3)
{
	my $index = $c->node($id)->safe_psql('postgres',
		'SELECT applied_index FROM dragonraft.status WHERE group_id = 1');
	ok($c->wait_until("node $id to compact", sub {
		$c->node($id)->safe_psql('postgres', 'SELECT dragonraft.snapshot(1)') >= $index }),
		"node $id compacted its log");
}
my $log_offset = -s $N3->logfile;
$N2->start;
ok($c->wait_until('node 3 to refuse the export', sub {
	slurp_file($N3->logfile, $log_offset) =~
	  /node 3 cannot export a snapshot of group 1: it does not replicate the group's table\(s\) public\.t/ }),
	'node 3 refuses to export a snapshot that would lack t, and says why');
is($N2->safe_psql('postgres', 'SELECT count(*) FROM t'), '100', 'node 2 keeps its rows of t');

ok($c->lead(1, 1), 'node 1 leads again');
ok($c->caught_up(1), 'node 2 catches up from node 1');
is($N2->safe_psql('postgres', 'SELECT count(*) FROM u'), '60', 'node 2 has the writes made meanwhile');
is($c->contents(2, 't', 'id'), $c->contents(1, 't', 'id'), "node 2's t equals node 1's");

done_testing();
