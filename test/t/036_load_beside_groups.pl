# A snapshot load does not hold up the node's other groups (issue 14: "in
# the background so that other groups ... go on"): it runs in a loader of
# its own while the apply worker applies the rest.  Node 3 follows groups 1
# and 2; it falls behind group 1's compacted log and loads a snapshot that
# pauses after its first table (dragonraft.testing_snapshot_delay).  While
# that load is open, group 2's writes reach node 3, and group 1's writes
# wait there; once the load ends, node 3 applies them and is identical to
# the leader.  A load whose loader is terminated is tried again, and one
# whose apply worker exits is ended and made again by the next one.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $c = DragonCluster->new(3, conf => qq{
dragonraft.snapshot_entries = 50
dragonraft.compaction_overhead = 5
});
my ($N1, $N3) = ($c->node(1), $c->node(3));
$c->groups_a_b_u;

# Node 3 stops; group 1 writes and compacts past it; node 3 loads its
# snapshot, paused.
my $loader = $c->load_paused_on_3;

# Meanwhile group 2 goes on on node 3, and group 1's new writes wait there.
$N1->safe_psql('postgres', q{INSERT INTO u SELECT g, 'during' FROM generate_series(1, 10) g});
$N1->safe_psql('postgres', q{INSERT INTO a VALUES (5000, 'during the load')});
ok($c->wait_until('node 3 to apply group 2', sub {
	$N3->safe_psql('postgres', 'SELECT count(*) FROM u') eq '10' }),
	"node 3 applies group 2's writes while group 1's load is open");
is($N3->safe_psql('postgres', q{SELECT pid FROM dragonraft.stat_progress_snapshot
	WHERE group_id = 1 AND role = 'receiver' AND phase = 'loading'}), $loader,
	'and group 1 is still loading then');

# A loader that is terminated: its load is tried again.
my $offset = -s $N3->logfile;
$N3->safe_psql('postgres', "SELECT pg_terminate_backend($loader)");
# (once the terminated one is gone: with safe_psql in the poll session, the
# first poll found another pid 70 ms before that loader exited, the test
# read the next loader's pid too early and waited 180 s; and the apply
# worker logs its park only as it sees the exit.  A job whose loader exited
# shows pid 0 until its apply worker sees the exit: not a new loader, CI
# read that 0 as one and the next loader's pid as '')
my $live_loader = q{SELECT pid FROM dragonraft.stat_progress_snapshot
	WHERE group_id = 1 AND role = 'receiver' AND phase = 'loading' AND pid <> 0};
ok($c->wait_until('a new loader', sub {
	my $p = $N3->safe_psql('postgres', $live_loader);
	$p ne '' && $p ne $loader && !kill(0, $loader) }), 'a terminated load is tried again by a new loader');
ok($c->wait_until('the park in the log', sub { slurp_file($N3->logfile, $offset) =~ /parked group 1 after an error/ }),
	'the apply worker parked group 1 meanwhile');

# An apply worker that exits while its loader runs: the next one ends that
# loader before it applies anything (it could commit behind its back) and
# loads the snapshot again.
my $second = $N3->safe_psql('postgres', $live_loader);
like($second, qr/^[1-9][0-9]*$/, 'that loader is loading');
my $apply = $N3->safe_psql('postgres', q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'dragonraft apply'});
$N3->safe_psql('postgres', "SELECT pg_terminate_backend($apply)");
ok($c->wait_until('a new apply worker and loader', sub {
	my $p = $N3->safe_psql('postgres', q{SELECT string_agg(pid::text, ',') FROM dragonraft.stat_progress_snapshot
		WHERE group_id = 1 AND role = 'receiver' AND pid <> 0});
	$p =~ /^[0-9]+$/ && $p ne $second }), 'after its apply worker exits, one new loader loads the snapshot');
ok($c->wait_until('the old loader to exit', sub {
	$N3->safe_psql('postgres', "SELECT count(*) FROM pg_stat_activity WHERE pid = $second") eq '0' }),
	'the orphaned loader ended');
$N1->safe_psql('postgres', q{INSERT INTO a VALUES (5001, 'after the apply worker restart')});

$N3->safe_psql('postgres', 'ALTER SYSTEM SET dragonraft.testing_snapshot_delay = 0');
$N3->safe_psql('postgres', 'SELECT pg_reload_conf()');
ok($c->caught_up(1), 'node 3 catches up with group 1 once the load ends');
ok($c->caught_up(2), 'and with group 2');
for my $t ([ 'a', 1 ], [ 'b', 1 ], [ 'u', 2 ])
{
	is($c->contents(3, $t->[0], 'id'), $c->contents(1, $t->[0], 'id'), "node 3's $t->[0] equals node 1's");
}
like($N3->safe_psql('postgres', q{SELECT v FROM a WHERE id = 5000}), qr/during the load/,
	"group 1's write made during the load reached node 3");
is($N3->safe_psql('postgres', 'SELECT count(*) FROM dragonraft.stat_progress_snapshot'), '0',
	'no snapshot job is left behind on node 3');
done_testing();
