# A snapshot loader outlives its engine worker (review 48, rev50): the
# engine worker exits (pg_terminate_backend), its apply worker with it, and
# the loader runs on.  The next engine worker reads each group's applied
# index from its replication origin when it starts; a loader that committed
# after that moved the origin under it.  So the new engine worker ends the
# loaders left behind before it reads the origins, and the snapshot is
# loaded again by the next apply worker.  Here node 3's loader of group 1
# pauses after its first table (dragonraft.testing_snapshot_delay); its
# apply worker is held on a lock (an idle reader of group 2's table, under
# max_apply_lock_delay = -1) so that it outlives the engine worker and the
# next apply worker waits for it; the pause ends once the new engine worker
# runs.  Afterwards node 3 agrees with node 1 (rows and table_digest), its
# origins equal its applied indexes, and it applies later writes.
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
dragonraft.max_apply_lock_delay = -1
});
my ($N1, $N3) = ($c->node(1), $c->node(3));
$c->groups_a_b_u;

# A function a parallel worker runs: it holds its slot for a while.
$N3->safe_psql('postgres', q{CREATE FUNCTION hold_slot(s float8) RETURNS int LANGUAGE plpgsql PARALLEL SAFE
	AS $$BEGIN PERFORM pg_sleep(s); RETURN 1; END$$});

# Node 3 stops; group 1 writes and compacts past it; node 3 loads its
# snapshot, paused.
my $loader = $c->load_paused_on_3(qq{max_worker_processes = 3
max_logical_replication_workers = 0
});

# The engine worker exits, its apply worker with it; the loader stays.  A
# parallel worker of a session takes the apply worker's background worker
# slot (max_worker_processes = 3 on node 3: the engine worker, the apply
# worker, the loader), so that the next engine worker starts and reads the
# origins, but cannot start an apply worker (which would end the loader)
# until the session ends.
my $engine = $N3->safe_psql('postgres', 'SELECT engine_pid FROM dragonraft.node_status()');
my $apply = $N3->safe_psql('postgres', 'SELECT apply_pid FROM dragonraft.node_status()');
my $offset = -s $N3->logfile;
$N3->safe_psql('postgres', "SELECT pg_terminate_backend($engine)");
ok($c->wait_until('the apply worker to exit', sub {
	$N3->safe_psql('postgres', "SELECT count(*) FROM pg_stat_activity WHERE pid IN ($apply, $engine)") eq '0' }),
	'the engine and apply workers of node 3 exited');
my $holder;
for my $try (1 .. 2)
{
	$holder = { in => \(my $in = "SET force_parallel_mode = on;\nSELECT pg_backend_pid();\nSELECT hold_slot(120);\n"),
		out => \(my $out = ''), err => \(my $err = '') };
	$holder->{h} = IPC::Run::start(['psql', '-XAtq', '-d', $N3->connstr('postgres')],
		'<', $holder->{in}, '>', $holder->{out}, '2>', $holder->{err});
	last if $c->wait_until('a parallel worker to hold a slot', sub {
		$holder->{h}->pump_nb;
		$N3->safe_psql('postgres', q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'parallel worker'}) eq '1' }, 20);
	$holder->{h}->kill_kill;
	$holder = undef;
}
ok($holder, 'a parallel worker holds the last background worker slot of node 3');
ok($c->wait_until('the next engine worker on node 3', sub {
	slurp_file($N3->logfile, $offset) =~ /dragonraft engine worker started for node 3/ }),
	'a new engine worker started on node 3');

# The pause ends: a loader still running commits now, under the new engine
# worker.  Then the slot is freed and the next apply worker starts.
$N3->safe_psql('postgres', 'ALTER SYSTEM SET dragonraft.testing_snapshot_delay = 0');
$N3->safe_psql('postgres', 'SELECT pg_reload_conf()');
ok($c->wait_until('the first loader to exit', sub {
	$N3->safe_psql('postgres', "SELECT count(*) FROM pg_stat_activity WHERE pid = $loader") eq '0' }),
	'the first loader is gone');
$N3->safe_psql('postgres', q{SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE 'SELECT hold_slot%' AND backend_type = 'client backend'});
$holder->{h}->finish;
ok($c->wait_until('the next apply worker on node 3', sub {
	my $p = $N3->safe_psql('postgres', 'SELECT apply_pid FROM dragonraft.node_status()');
	$p ne '' && $p ne '0' && $p ne $apply }), 'a new apply worker runs on node 3');

unlike(slurp_file($N3->logfile, $offset), qr/\[$loader\] LOG:  dragonraft loaded the snapshot/,
	'the first loader did not commit under the new engine worker');
ok($c->wait_until('node 3 to load the snapshot of group 1 again', sub {
	slurp_file($N3->logfile, $offset) =~ /dragonraft loaded the snapshot of group 1/ }),
	'node 3 loaded the snapshot of group 1 under the new workers');
# Node 3 is consistent, and follows.
$N1->safe_psql('postgres', q{INSERT INTO a VALUES (5001, 'after the engine worker restart')});
$N1->safe_psql('postgres', q{INSERT INTO u VALUES (1, 'after')});
ok($c->caught_up($_), "node 3 catches up with group $_") for (1, 2);
for my $t ([ 'a', 1 ], [ 'b', 1 ], [ 'u', 2 ])
{
	is($c->contents(3, $t->[0], 'id'), $c->contents(1, $t->[0], 'id'), "node 3's $t->[0] equals node 1's");
}
for my $g (1, 2)
{
	is($N3->safe_psql('postgres', qq{SELECT pg_replication_origin_progress('dragonraft_$g', false) = '0/0'::pg_lsn + applied_index
		FROM dragonraft.status WHERE group_id = $g}), 't', "node 3's origin of group $g equals its applied index");
	my $digest = qq{SELECT applied_index, string_agg(rows || ':' || digest, ',' ORDER BY relid::regclass::text)
		FROM dragonraft.table_digest($g) GROUP BY applied_index};
	# (at the same applied index: node 1 may have applied an entry more, as a no-op of a
	# new term, when first asked)
	my ($d1, $d3);
	ok($c->wait_until("node 3's and node 1's table_digest of group $g at one index", sub {
		$d3 = $N3->safe_psql('postgres', $digest);
		$d1 = $N1->safe_psql('postgres', $digest);
		$d1 eq $d3 }, 60), "node 3's table_digest of group $g equals node 1's")
	  or diag "node 1: $d1\nnode 3: $d3";
}
is($N3->safe_psql('postgres', q{SELECT count(*) FROM dragonraft.status WHERE state = 'stopped'}), '0',
	'no group is stopped on node 3');
is($N3->safe_psql('postgres', 'SELECT count(*) FROM dragonraft.stat_progress_snapshot'), '0',
	'no snapshot job is left behind on node 3');
done_testing();
