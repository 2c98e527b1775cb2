# join_group says "caught up" only once the member applied what the leader
# had committed (review 4 #4): a snapshot sets the joiner's commit index to
# its own index, so comparing with that said "caught up" right after the
# load while the leader was far ahead.  Here the leader's exporter pauses
# after writing the file (dragonraft.testing_snapshot_delay) while the
# leader commits 50 more transactions; join_group then reports an entry at
# or past the leader's commit index, and node 4 has every row at once.
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
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, 'CREATE TABLE t (id int PRIMARY KEY)')});
$L->safe_psql('postgres', q{SELECT dragonraft.replicate_table('t', 1)});
$L->safe_psql('postgres', join('', map { "INSERT INTO t VALUES ($_);\n" } 1 .. 80));
ok($c->caught_up(1), 'the members caught up');
ok($c->compact(1, 1, 2, 3), 'nodes 1-3 compacted their logs');

sub set_delay
{
	my ($ms) = @_;
	$L->safe_psql('postgres', "ALTER SYSTEM SET dragonraft.testing_snapshot_delay = $ms");
	$L->safe_psql('postgres', 'SELECT pg_reload_conf()');
	return $c->wait_until("the leader to reload", sub { $L->safe_psql('postgres',
		q{SELECT setting FROM pg_settings WHERE name = 'dragonraft.testing_snapshot_delay'}) eq $ms });
}
ok(set_delay(600000), 'the leader\'s exports pause after writing their file');
$L->safe_psql('postgres', "SELECT dragonraft.add_member(1, 4, '" . $c->raft_address(4) . "')");
my ($jout, $jerr) = ('', '');
my $join = IPC::Run::start(['psql', '-XAtq', '-d', $N4->connstr('postgres'), '-c',
		"SELECT dragonraft.join_group(1, '" . $c->members(1, 2, 3) . "')"],
	'>', \$jout, '2>', \$jerr, IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
ok($c->wait_until('the export to be written', sub {
	$L->safe_psql('postgres', q{SELECT count(*) FROM dragonraft.stat_progress_snapshot
		WHERE role = 'sender' AND bytes_done > 0 AND bytes_done = bytes_total}) eq '1' }),
	'the leader wrote the snapshot and pauses');
$L->safe_psql('postgres', join('', map { "INSERT INTO t VALUES (" . (1000 + $_) . ");\n" } 1 .. 50));
my $commit = $L->safe_psql('postgres', 'SELECT commit_index FROM dragonraft.status WHERE group_id = 1');
ok(set_delay(0), 'the export goes on');
$join->finish;
like($jerr, qr/node 4 caught up with group 1 at entry (\d+)/, 'join_group ended caught up')
  or diag $jerr;
my ($at) = $jerr =~ /caught up with group 1 at entry (\d+)/;
cmp_ok($at // 0, '>=', $commit, 'at the leader\'s commit index or past it, not the snapshot\'s');
is($N4->safe_psql('postgres', 'SELECT count(*) FROM t'), '130', 'node 4 has every row when join_group returns');

done_testing();
