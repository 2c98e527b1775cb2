# Review 26.  Finding 1: the received snapshot file of a load that failed
# for a cause the user can fix (013: a table of node 4's own with a row) is
# deleted before the next try.  Before the fix node 4 tried the file that
# was gone again and again ("could not open snapshot file", apply_failed)
# until its server restarted.  Now the load that cannot open its file stops
# the group, which restarts in place (from its LogDB, as a server restart
# starts it) after a pause, gets another snapshot from the leader and
# joins, with no server restart; the error named the file meanwhile, and
# group 2 went on on node 4.
# What held: tables of other shapes come identical with the snapshot
# (identity, serial and stored generated columns, a dropped column,
# REPLICA IDENTITY FULL with no key, no identity at all, no rows, NULLs,
# values out of line, compressed or not), and once node 4 leads, its
# identity and serial sequences hand out no value twice.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use File::Basename;
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;

my $c = DragonCluster->new(4, conf => qq{
dragonraft.snapshot_entries = 100
dragonraft.compaction_overhead = 10
max_worker_processes = 16
});
$c->create_group(1, 1, 2, 3);
my $l = $c->leader(1);
ok($l, "group 1 has a writable leader (node $l)");
my $L = $c->node($l);
my $N4 = $c->node(4);
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, 'CREATE TABLE t (id int PRIMARY KEY, v text)')});
$L->safe_psql('postgres', q{INSERT INTO t SELECT g, 'row ' || g FROM generate_series(1, 1000) g});
$L->safe_psql('postgres', q{SELECT dragonraft.replicate_table('t', 1)});
# Tables of other shapes, which node 4 must end with too: an identity
# column (its sequence must not hand out a value twice once node 4 leads),
# a serial, a stored generated column, REPLICA IDENTITY FULL without a key,
# a table with neither (INSERT only), one with no rows, NULLs and values
# stored out of line, compressed or not, and a dropped column.
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, $$
	CREATE TABLE idt (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text);
	CREATE TABLE ser (id serial PRIMARY KEY, gone int, v text, g int GENERATED ALWAYS AS (length(v)) STORED);
	ALTER TABLE ser DROP COLUMN gone;
	CREATE TABLE full_ri (a int, b text);
	ALTER TABLE full_ri REPLICA IDENTITY FULL;
	CREATE TABLE log_only (a int, b text);
	CREATE TABLE empty_t (id int PRIMARY KEY, v text);
	CREATE TABLE big (id int PRIMARY KEY, comp text, raw bytea, n text);
	ALTER TABLE big ALTER COLUMN raw SET STORAGE EXTERNAL$$)});
$L->safe_psql('postgres', "SELECT dragonraft.replicate_table('$_', 1)") for qw(idt ser full_ri log_only empty_t big);
$L->safe_psql('postgres', q{
	INSERT INTO idt (v) SELECT 'i' || g FROM generate_series(1, 50) g;
	INSERT INTO ser (v) SELECT repeat('s', g) FROM generate_series(1, 30) g;
	INSERT INTO ser (v) VALUES (NULL);
	INSERT INTO full_ri VALUES (1, 'x'), (1, 'x'), (2, NULL), (NULL, NULL);
	INSERT INTO log_only VALUES (1, 'a'), (1, 'a');
	INSERT INTO big VALUES (1, repeat('compressible ', 50000), decode(repeat('ab', 300000), 'hex'), NULL),
		(2, NULL, NULL, 'n'), (3, '', '', '');
	UPDATE full_ri SET b = 'y' WHERE a = 2;
	DELETE FROM idt WHERE id > 45});
$L->safe_psql('postgres', join('', map { "INSERT INTO t VALUES (" . (2000 + $_) . ", 'later');\n" } 1 .. 150));
ok($c->caught_up(1), 'the members caught up');
my $index = $L->safe_psql('postgres', 'SELECT applied_index FROM dragonraft.status WHERE group_id = 1');
ok($c->compact(1, 1, 2, 3), 'nodes 1-3 compacted their logs');

# Group 2, on nodes 1-4: node 4 applies its writes while group 1 restarts there.
$c->create_group(2, 1, 2, 3, 4);
my $l2 = $c->leader(2);
ok($l2, "group 2 has a writable leader (node $l2)");
$c->node($l2)->safe_psql('postgres', q{SELECT dragonraft.execute(2, 'CREATE TABLE g2 (id int PRIMARY KEY)')});
$c->node($l2)->safe_psql('postgres', q{SELECT dragonraft.replicate_table('g2', 2)});

$N4->safe_psql('postgres', q{CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (-1, 'mine')});
$L->safe_psql('postgres', "SELECT dragonraft.add_member(1, 4, '" . $c->raft_address(4) . "')");
my ($jout, $jerr) = ('', '');
my $join = IPC::Run::start(['psql', '-XAtq', '-d', $N4->connstr('postgres'), '-c',
		"SELECT dragonraft.join_group(1, '" . $c->members(1, 2, 3) . "')"],
	'>', \$jout, '2>', \$jerr, IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
my $error = '';
ok($c->wait_until('node 4 to report the failed load', sub {
	$error = $N4->safe_psql('postgres', q{SELECT coalesce(error, '') FROM dragonraft.status WHERE group_id = 1});
	$error ne '' }), 'node 4 reports that the load failed');
diag "node 4 said: $error";

my $dir = $N4->data_dir . '/dragonraft/snapshots';
my @files = glob("$dir/snap-*");
diag "node 4's snapshot files: @files";
ok(@files >= 1, 'node 4 holds the received file');
my $names = join('|', map { quotemeta(basename($_)) } @files);
# The leader's next export waits (dragonraft.testing_snapshot_delay) while
# the status of node 4 is looked at.
$L->safe_psql('postgres', 'ALTER SYSTEM SET dragonraft.testing_snapshot_delay = 600000');
$L->safe_psql('postgres', 'SELECT pg_reload_conf()');
my $off4 = -s $N4->logfile;
unlink @files;
$N4->safe_psql('postgres', 'DELETE FROM t');
ok($c->wait_until('node 4 to say that its snapshot file is gone', sub {
	slurp_file($N4->logfile, $off4) =~ /could not open snapshot file "[^"]*\/(?:$names)"/ }),
	'node 4 says that its snapshot file is gone, and names it');
ok($c->wait_until('node 4 to restart the group', sub {
	slurp_file($N4->logfile, $off4) =~ /group 1 restarts on node 4 in \d+ ms to get another snapshot/ }),
	'node 4 restarts group 1 in place to get another snapshot');
ok($c->wait_until('node 4 to start group 1 again', sub {
	slurp_file($N4->logfile, $off4) =~ /group 1 restarted on node 4 from its LogDB/ }), 'node 4 starts group 1 again');
my ($state, $shown) = split /\|/, $N4->safe_psql('postgres',
	q{SELECT state, coalesce(error, '') FROM dragonraft.status WHERE group_id = 1});
isnt($state, 'stopped', "group 1 runs on node 4 while it waits for another snapshot ($state)");
like($shown, qr/could not open snapshot file/, 'and its status shows why it needs one');
$l2 = $c->leader(2);
$c->node($l2)->safe_psql('postgres', 'INSERT INTO g2 SELECT generate_series(1, 100)');
ok($c->caught_up(2), 'group 2 goes on on node 4 meanwhile');
is($c->contents(4, 'g2', 'id'), $c->contents($l2, 'g2', 'id'), "node 4's g2 equals its leader's");
unlike(slurp_file($N4->logfile, $off4), qr/group 2 restart/, 'node 4 did not restart group 2');
$L->safe_psql('postgres', 'ALTER SYSTEM RESET dragonraft.testing_snapshot_delay');
$L->safe_psql('postgres', 'SELECT pg_reload_conf()');
ok($c->wait_until('node 4 to load a snapshot without a restart', sub {
	($c->poll(4, q{SELECT state = 'ok' AND applied_index >= } . $index .
		q{ FROM dragonraft.status WHERE group_id = 1}) // '') eq 't' }), 'without a server restart node 4 loads a snapshot');
is($c->poll(4, q{SELECT coalesce(error, '') FROM dragonraft.status WHERE group_id = 1}), '', 'and shows no error');
eval { $join->finish; };
diag "join_group said: $jerr";
$c->group_nodes(1, 1, 2, 3, 4);
$L->safe_psql('postgres', q{UPDATE t SET v = 'after' WHERE id <= 10; INSERT INTO idt (v) VALUES ('after')});
ok($c->caught_up(1), 'node 4 follows the later writes');
is($c->contents(4, 't', 'id'), $c->contents($l, 't', 'id'), "node 4's t equals the leader's");
my %order = (idt => 'id', ser => 'id', full_ri => 't::text', log_only => 't::text', empty_t => 'id', big => 'id');
for my $tab (sort keys %order)
{
	is($c->contents($_, $tab, $order{$tab}), $c->contents($l, $tab, $order{$tab}), "node $_: $tab equals the leader's")
	  for grep { $_ != $l } 1 .. 4;
}
is($c->query(4, q{SELECT pg_column_compression(comp) || ' ' || length(raw) FROM big WHERE id = 1}),
	$c->query($l, q{SELECT pg_column_compression(comp) || ' ' || length(raw) FROM big WHERE id = 1}),
	'node 4 stores the values as the leader does');
# Node 4 leads: its identity and serial sequences hand out new values.
ok($c->lead(1, 4), 'node 4 leads group 1');
my ($st, $err) = $c->sql_error(4, q{INSERT INTO idt (v) VALUES ('on 4'); INSERT INTO ser (v) VALUES ('on 4')});
is($st, '', 'node 4 inserts with its identity and serial sequences') or diag $err;
ok($c->caught_up(1), 'the members have those rows');
is($c->contents($_, 'idt', 'id'), $c->contents(4, 'idt', 'id'), "node $_: idt equals node 4's") for 1 .. 3;

# Finding 3: node 3 falls behind a compacted log while its snapshot
# directory is not writable (mode 0500): each stream from the leader (node
# 4) fails at once ("cannot create").  Before the fix the leader exported
# its tables again right away, about 5 times a second for as long as the
# receiver failed (every export reads every table of the group, writes a
# file of their size and holds the group's apply); now each failed stream
# puts the next export off by an election timeout, doubling up to 32 of
# them.  Once the directory is writable again node 3 catches up.
my $N3 = $c->node(3);
$N3->stop('fast');
$c->node(4)->safe_psql('postgres', join('', map { "INSERT INTO t VALUES (" . (5000 + $_) . ", 'past 3');\n" } 1 .. 150));
ok($c->compact(1, 1, 2, 4), 'nodes 1, 2 and 4 compacted group 1');
my $dir3 = $N3->data_dir . '/dragonraft/snapshots';
chmod 0500, $dir3 or die "chmod $dir3: $!";
$off4 = -s $c->node(4)->logfile;
$N3->start;
ok($c->wait_until('node 4 to export a snapshot for node 3', sub {
	slurp_file($c->node(4)->logfile, $off4) =~ /exported a snapshot of group 1/ }), 'node 4 exports a snapshot for node 3');
sleep 10;    # (a rate: what happens in 10 s)
my $exports = () = slurp_file($c->node(4)->logfile, $off4) =~ /exported a snapshot of group 1/g;
cmp_ok($exports, '<=', 8, "node 4 exported $exports snapshots in about 10 s while node 3 could not take them");
chmod 0700, $dir3 or die "chmod $dir3: $!";
ok($c->caught_up(1), 'node 3 caught up once its snapshot directory is writable');
is($c->contents(3, 't', 'id'), $c->contents(4, 't', 'id'), "node 3's t equals the leader's");
my @left = glob("$dir/snap-*");
is("@left", '', 'no snapshot file left on node 4');

done_testing();
