# Review 26 finding 2: a load holds about four locks per table it makes (the
# table, its key's index, its TOAST table and index) until it commits, in
# PostgreSQL's one lock table of max_locks_per_transaction x (MaxBackends +
# max_prepared_transactions) entries.  Node 4 has a small one
# (max_locks_per_transaction = 10, the minimum, and 20 connections: 400
# locks) and joins a group of 200 tables: before the fix its load ran out of the lock table late ("out of
# shared memory"), was tried again for ever, and every try filled the lock
# table, so that node 4's other sessions failed too.  Now the load is
# refused before it takes any lock, with an error naming
# max_locks_per_transaction and the value it needs; status shows it; other
# sessions of node 4 take their locks meanwhile; with the setting raised
# (it takes a restart) node 4 loads the snapshot.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;

my $n = 200;
my $c = DragonCluster->new(4, conf => qq{
dragonraft.snapshot_entries = 100
dragonraft.compaction_overhead = 10
max_worker_processes = 16
});
my $N4 = $c->node(4);
$N4->append_conf('postgresql.conf', "max_locks_per_transaction = 10\nmax_connections = 20\n");
$N4->restart;
$c->create_group(1, 1, 2, 3);
my $l = $c->leader(1);
ok($l, "group 1 has a writable leader (node $l)");
my $L = $c->node($l);
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, 'CREATE TABLE t (id int PRIMARY KEY, v text)')});
$L->safe_psql('postgres', q{SELECT dragonraft.replicate_table('t', 1)});
for (my $i = 1; $i <= $n; $i += 100)
{
	my $cmd = join('', map { "CREATE TABLE m$_ (id int PRIMARY KEY, v text);" } $i .. $i + 99);
	$L->safe_psql('postgres', "SELECT dragonraft.execute(1, '$cmd')");
}
$L->safe_psql('postgres', join('', map { "INSERT INTO t VALUES ($_, 'r');\n" } 1 .. 150));
ok($c->caught_up(1), 'the members caught up');
my $index = $L->safe_psql('postgres', 'SELECT applied_index FROM dragonraft.status WHERE group_id = 1');
ok($c->compact(1, 1, 2, 3), 'nodes 1-3 compacted their logs');

# The lock table's slots as PostgreSQL counts them (MaxBackends + max_prepared_transactions).
my $slots = $N4->safe_psql('postgres', q{SELECT current_setting('max_connections')::int
	+ current_setting('autovacuum_max_workers')::int + 1 + current_setting('max_worker_processes')::int
	+ current_setting('max_wal_senders')::int + current_setting('max_prepared_transactions')::int});
diag "node 4's lock table: 10 x $slots";

$L->safe_psql('postgres', "SELECT dragonraft.add_member(1, 4, '" . $c->raft_address(4) . "')");
my ($jout, $jerr) = ('', '');
my $join = IPC::Run::start(['psql', '-XAtq', '-d', $N4->connstr('postgres'), '-c',
		"SELECT dragonraft.join_group(1, '" . $c->members(1, 2, 3) . "')"],
	'>', \$jout, '2>', \$jerr, IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
my $error = '';
ok($c->wait_until('node 4 to refuse the load', sub {
	$error = $c->poll(4, q{SELECT coalesce(error, '') FROM dragonraft.status WHERE group_id = 1}) // '';
	$error =~ /max_locks_per_transaction/ }), 'node 4 refuses the load');
diag "node 4 said: $error";
my ($needed, $room, $least) =
  $error =~ /needs about (\d+) locks to load, more than the lock table holds \((\d+)\).*max_locks_per_transaction to at least (\d+)/;
ok(defined $least, 'the error says how many locks the load needs and the setting it takes');
is($room, 10 * $slots, 'the room it names is max_locks_per_transaction x the lock table slots');
cmp_ok($needed, '>=', 4 * ($n + 1), 'it counts about four locks per table');
is($least, int(($needed + $slots - 1) / $slots), 'and names the max_locks_per_transaction that holds them');
like($N4->safe_psql('postgres', q{SELECT state FROM dragonraft.status WHERE group_id = 1}),
	qr/apply_failed|catching_up|snapshotting/, 'status shows the group is not caught up');
# Other sessions of node 4 are not starved: the load takes no lock, try after try.
my $off4 = -s $N4->logfile;
my $tries = 0;
my $bad = '';
$c->wait_until('node 4 to try the load again twice', sub {
	my ($st, $err) = $c->sql_error(4, 'BEGIN; ' . join('', map { "CREATE TABLE o$_ (id int PRIMARY KEY, v text);" } 1 .. 40) . ' ROLLBACK');
	$bad .= $err if $st ne '';
	$tries = () = slurp_file($N4->logfile, $off4) =~ /needs about \d+ locks to load/g;
	$tries >= 2 });
cmp_ok($tries, '>=', 2, 'node 4 tries the load again');
is($bad, '', 'a session of node 4 takes 160 locks meanwhile');
unlike(slurp_file($N4->logfile), qr/out of shared memory/, 'no session of node 4 ran out of the lock table');

$N4->safe_psql('postgres', "ALTER SYSTEM SET max_locks_per_transaction = $least");
$N4->restart;
ok($c->wait_until('node 4 to load the snapshot', sub {
	($c->poll(4, q{SELECT state = 'ok' AND applied_index >= } . $index .
		q{ FROM dragonraft.status WHERE group_id = 1}) // '') eq 't' }), "with max_locks_per_transaction = $least node 4 loads it");
eval { $join->finish; };
$c->group_nodes(1, 1, 2, 3, 4);
ok($c->caught_up(1), 'node 4 follows');
is($c->contents(4, 't', 'id'), $c->contents($l, 't', 'id'), "node 4's t equals the leader's");
is($N4->safe_psql('postgres', q{SELECT count(*) FROM pg_class WHERE relname ~ '^m[0-9]+$' AND relkind = 'r'}), $n,
	"node 4 has the $n tables");
done_testing();
