# Review 21: a bare node that joins from a full snapshot and crashes before
# the WAL of its load reaches the disk.  The load commits asynchronously
# (synchronous_commit = off, as every apply; a load that truncates tables
# it kept is flushed anyway, since its commit drops files, but a bare node's
# load only makes tables); the engine saves the installed snapshot in the
# LogDB (the log below it gone) once the load's applied index is in shared
# memory, not once it is durable.  After the crash the tables and the
# replication origin are as before the load and the LogDB starts at the
# snapshot: before the fix the member's apply stopped for good on "entries
# 1 to 111 of group 1 are missing" (apply_failed, a voter with no tables);
# the loader now commits with synchronous_commit = local.
# wal_writer_delay is 10 s on that node, so that the window is
# dragonraft's own WAL flush (once a second).
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use Transfers;
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $c = DragonCluster->new(4, conf => qq{
dragonraft.snapshot_entries = 50
dragonraft.compaction_overhead = 5
});
$c->create_group(1, 1, 2, 3);
my $l = $c->leader(1);
my $L = $c->node($l);
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, 'CREATE TABLE t (id int PRIMARY KEY)')});
$L->safe_psql('postgres', q{SELECT dragonraft.replicate_table('t', 1)});
$L->safe_psql('postgres', join('', map { "INSERT INTO t VALUES ($_);\n" } 1 .. 100));
ok($c->compact(1, 1, 2, 3), 'the log is compacted');
my $snap = $c->query($l, 'SELECT snapshot_index FROM dragonraft.status WHERE group_id = 1');

my $N4 = $c->node(4);
$N4->append_conf('postgresql.conf', "wal_writer_delay = '10s'\n");
$N4->restart;
# (join_group refuses to run before node 4's engine worker does: CI saw
# it once, add_member having returned at once)
$c->engine_running(4);
$L->safe_psql('postgres', "SELECT dragonraft.add_member(1, 4, '" . $c->raft_address(4) . "')");
my ($jout, $jerr) = ('', '');
my $join = IPC::Run::start(
	[ 'psql', '-XAtq', '-d', $N4->connstr('postgres'), '-c',
		"SELECT dragonraft.join_group(1, '" . $c->members(1, 2, 3) . "')" ],
	'>', \$jout, '2>', \$jerr);
# Crash it as soon as it shows the snapshot installed.
my $deadline = time + 60;
my $seen = '';
while (time < $deadline)
{
	$seen = $c->poll(4, 'SELECT snapshot_index FROM dragonraft.status WHERE group_id = 1') // '';
	last if $seen ne '' && $seen >= $snap;
}
ok($seen ne '' && $seen >= $snap, "node 4 installed the snapshot at $seen");
$c->crash(4);
eval { $join->finish; };
$N4->start;
my $origin = $c->query(4, q{SELECT remote_lsn FROM pg_replication_origin_status s
	JOIN pg_replication_origin o ON o.roident = s.local_id WHERE o.roname = 'dragonraft_1'});
diag "after the crash node 4's origin is at $origin (snapshot at $seen)";
# (the leader as nodes 1 to 3 see it: node 4 loads the snapshot again)
my $lid = $c->leader(1);
ok($lid, "group 1 has a writable leader (node $lid)");
$c->group_nodes(1, 1, 2, 3, 4);
$c->node($lid)->safe_psql('postgres', 'INSERT INTO t VALUES (1001)');
my $want = $c->contents($lid, 't', 'id');
ok( $c->wait_until('node 4 to apply every row', sub {
		($c->poll(4, q{SELECT state FROM dragonraft.status WHERE group_id = 1}) // '') eq 'ok'
		  && ($c->poll(4, q{SELECT to_regclass('public.t') IS NOT NULL}) // '') eq 't'
		  && ($c->poll(4, q{SELECT coalesce(string_agg(t::text, ';' ORDER BY id), '') FROM t t}) // '') eq $want }),
	"node 4 has the leader's rows after the crash that lost its load");
diag "node 4: " . $c->query(4, q{SELECT state || ' ' || applied_index || ' ' || coalesce(error, '') FROM dragonraft.status WHERE group_id = 1});
# Membership under a transfer load: a follower removed, the leadership
# moved, then the old leader removed; the remaining members have every
# acknowledged transfer, none that failed, and the same rows.
$lid = $c->leader(1);
ok($lid, "group 1 has a writable leader (node $lid)");
Transfers::setup($c, 1, $lid);
ok($c->caught_up(1), 'transfer tables replicated');
my $load = Transfers->start($c, 4, pin => $lid);
ok($load->wait_commits(20), 'transfers commit');
my ($gone) = grep { $_ != $lid } $c->ids;
$c->node($lid)->safe_psql('postgres', "SELECT dragonraft.remove_member(1, $gone)");
my @members = grep { $_ != $gone } $c->ids;
$c->group_nodes(1, @members);
ok($load->wait_commits(20), "transfers commit after node $gone was removed");
my ($next_leader) = grep { $_ != $lid } @members;
ok($c->lead(1, $next_leader), "node $next_leader leads group 1");
my %r = $load->stop;
$load = Transfers->start($c, 4, pin => $next_leader);
ok($load->wait_commits(20), "transfers commit on the new leader $next_leader");
$c->node($next_leader)->safe_psql('postgres', "SELECT dragonraft.remove_member(1, $lid)");
@members = grep { $_ != $lid } @members;
$c->group_nodes(1, @members);
ok($load->wait_commits(20), "transfers commit after the old leader $lid was removed");
my %r2 = $load->stop;
%r = (%r, %r2);
ok($c->caught_up(1), 'the remaining members caught up');
$want = $c->contents($next_leader, 'transfers', 'id');
my %present = map { $_ => 1 } split /\n/, $c->query($next_leader, 'SELECT id FROM transfers ORDER BY id');
for my $id (@members)
{
	is($c->contents($id, 'transfers', 'id'), $want, "node $id has the leader's transfers");
	is($c->query($id, 'SELECT sum(balance) FROM accounts'), '20000', "node $id: the balances sum up");
}
my @lost = grep { $r{$_} eq 'committed' && !$present{$_} } keys %r;
is(scalar(@lost), 0, 'every acknowledged transfer is there') or diag "missing: @lost";
my @ghost = grep { defined $r{$_} && $r{$_} =~ /^failed/ } keys %present;
is(scalar(@ghost), 0, 'no transfer that failed is there') or diag join ', ', map { "$_: $r{$_}" } @ghost;
my %count;
$count{ $r{$_} }++ for keys %r;
diag('membership load: ' . join(', ', map { "$_ $count{$_}" } sort keys %count));

$c->node($_)->stop('fast') for $c->running;
done_testing();
