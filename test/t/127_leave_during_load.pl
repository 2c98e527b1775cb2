# A joining member's snapshot load cut by a crash, then a leave during the
# next load (review 46).
#
# Node 3 joins group 30 (nodes 1 and 2, log compacted: it needs a full
# snapshot), and its server is killed (SIGKILL to all its processes) while
# the load is open (dragonraft.testing_snapshot_delay pauses it after its
# first table).  Started again, it loads the snapshot again (the first
# load rolled back with the crash): join_group, called again, returns once
# it caught up, and its table is the leader's.  Then node 1 removes it and
# it leaves the group while a second group's load on it is open: leave_group
# waits for that load to commit, ends the member, and nothing of the group
# stays (status, origin, snapshot files); join_group of the group is
# refused after (left_groups), saying why, and the other members go on.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes;

my $c = DragonCluster->new(3, conf => qq{
dragonraft.snapshot_entries = 50
dragonraft.compaction_overhead = 5
});
my ($N1, $N2, $N3) = map { $c->node($_) } 1 .. 3;
my $snapdir = $N3->data_dir . '/dragonraft/snapshots';

# The snapshot files (not partial streams) of group g in node 3's snapshot directory.
sub snap_files
{
	my ($g) = @_;
	opendir(my $d, $snapdir) or return '';
	my @f = sort grep { /^snap-g$g-.*\.snap$/ } readdir $d;
	closedir $d;
	return join(' ', @f);
}

# What a load of group g's file on node 3 has read once it loaded its last
# table (a snapshot of one table): everything but the member info's rows (last
# in the file, loaded after the tables) and the trailer.  The history, which
# follows the tables in the file, is loaded before them.  And the bytes_done
# that stat_progress_snapshot showed before review 47: the file position
# after the table's rows.
sub load_read_after_tables
{
	my ($g) = @_;
	opendir(my $d, $snapdir) or die "$snapdir: $!";
	my @f = grep { /^snap-g$g-.*\.snap\.recovering$/ } readdir $d;
	closedir $d;
	die "no file of group $g being loaded: @f" unless @f == 1;
	open(my $fh, '<:raw', "$snapdir/$f[0]") or die "$f[0]: $!";
	local $/;
	my $b = <$fh>;
	close $fh;
	my ($pos, $end, $members, $rows_end) = (48, length($b) - 16, undef, undef);
	while ($pos < $end) {
		my ($kind, undef, $len) = unpack('VVQ<', substr($b, $pos, 16));
		$pos += 16 + $len;
		if ($kind == 1) {    # a table, then its rows' section
			my (undef, undef, $rows) = unpack('VVQ<', substr($b, $pos, 16));
			$pos += 16 + $rows;
			$rows_end = $pos;
		}
		$members = $len if $kind == 4;
	}
	return (length($b), length($b) - 16 - $members, $rows_end);
}

# Node 3's origins and status rows agree, each origin at its group's applied index.
sub origins_wrong
{
	return $c->query(3, q{
		SELECT coalesce(string_agg(coalesce(o.roname, 'no origin of ' || s.group_id)
				|| ' at ' || coalesce(pg_replication_origin_progress(o.roname, false)::text, '-')
				|| ', applied ' || coalesce(s.applied_index::text, '-'), '; '), '')
		  FROM (SELECT roname FROM pg_replication_origin WHERE roname ~ '^dragonraft_[1-9]') o
		  FULL JOIN dragonraft.status s ON o.roname = 'dragonraft_' || s.group_id
		 WHERE o.roname IS NULL OR s.group_id IS NULL
		    OR pg_replication_origin_progress(o.roname, false) <> '0/0'::pg_lsn + s.applied_index});
}

# The table digests of group g on the leader and node 3 at one index: once
# the group settled (node 3, which just joined, proposes its member info once
# it caught up, and the leader its members' addresses after it: entries that
# could come between the two digests, each then at its own index).
sub same_tables
{
	my ($g, $name) = @_;
	ok($c->settled($g), "the members of group $g caught up, the group settled");
	my $l = $c->leader($g);
	my $sql = "SELECT applied_index || ' ' || string_agg(relid::text || ' ' || rows || ' ' || digest, ', ')"
	  . " FROM dragonraft.table_digest($g) GROUP BY applied_index";
	is($c->query(3, $sql), $c->query($l, $sql), $name);
}

# 1. Node 3 joins group 30; its server is killed while the load is open.
my $l = $c->group_needing_snapshots(30, 1, 2);
$N3->append_conf('postgresql.conf', "dragonraft.testing_snapshot_delay = 600000\n");
$N3->reload;
$c->node($l)->safe_psql('postgres', "SELECT dragonraft.add_member(30, 3, '" . $c->raft_address(3) . "')");
my $j = $c->start_join(3, 30, 1, 2);
ok($c->paused_load(3, 30), 'node 3 loads a snapshot of group 30, paused after its first table');
ok($c->crash(3), 'node 3 is killed during the load');
$j->{h}->finish;
$c->close_poll(3);
$N3->append_conf('postgresql.conf', "dragonraft.testing_snapshot_delay = 0\n");
$N3->start;
ok($c->wait_until('node 3 to run its engine worker',
		sub { ($c->poll(3, 'SELECT engine_state FROM dragonraft.node_status()') // '') eq 'running' }),
	'node 3 runs its engine worker again');
$j = $c->start_join(3, 30, 1, 2);
ok($c->wait_until('join_group to return', sub { $j->{h}->pump_nb; !$j->{h}->pumpable }),
	'join_group, called again, returns');
$j->{h}->finish;
# (the restarted engine worker may finish the join before the call: then
# node 3 is a member that caught up already, and says so)
like(${ $j->{err} }, qr/NOTICE:  node 3 (caught up with|is already a member of) group 30/, 'node 3 caught up with group 30')
  or diag ${ $j->{err} };
$c->group_nodes(30, 1, 2, 3);
same_tables(30, "node 3's t is the leader's");
is($c->query(3, 'SELECT snapshots_received FROM dragonraft.stat_groups WHERE group_id = 30') > 0 ? 1 : 0, 1,
	'node 3 took a snapshot of group 30');
is(origins_wrong(), '', "node 3's origins are its groups' at their applied indexes");
is(snap_files(30), '', 'no snapshot file of group 30 stays on node 3');

# 2. Group 31 needs a snapshot on node 3 too; node 3 leaves group 30 while
# its load of group 31 is open, and group 31 while it is open.
$c->create_group(31, 1, 2);
$l = $c->leader(31);
$c->node($l)->safe_psql('postgres', qq{
	SELECT dragonraft.execute(31, 'CREATE TABLE t31 (id int PRIMARY KEY, v text)');
	SELECT dragonraft.replicate_table('t31', 31);
	INSERT INTO t31 SELECT g, 'row ' || g FROM generate_series(1, 1000) g;
} . join('', map { "INSERT INTO t31 VALUES (" . (2000 + $_) . ", 'later');\n" } 1 .. 60));
ok($c->caught_up(31), 'nodes 1 and 2 caught up with group 31');
ok($c->compact(31, 1, 2), 'nodes 1 and 2 compacted group 31: node 3 needs a snapshot');
# (paused until the test ends the pause, once leave_group(31) waits for it)
$N3->safe_psql('postgres', 'ALTER SYSTEM SET dragonraft.testing_snapshot_delay = 600000');
$N3->reload;
$c->node($l)->safe_psql('postgres', "SELECT dragonraft.add_member(31, 3, '" . $c->raft_address(3) . "')");
$j = $c->start_join(3, 31, 1, 2);
my $loader = $c->paused_load(3, 31);
ok($loader, 'node 3 loads a snapshot of group 31, paused after its first table');
# (review 47: join_group's NOTICE said 14148, then 13874 of 14411 bytes)
my ($size, $read, $rows_end) = load_read_after_tables(31);
is($c->query(3, q{SELECT bytes_total || ' ' || bytes_done FROM dragonraft.stat_progress_snapshot
		WHERE group_id = 31 AND role = 'receiver'}), "$size $read",
	"the load's bytes done are the bytes it read, not its position in the file ($rows_end)");
$l = $c->leader(30);
$c->node($l)->safe_psql('postgres', 'SELECT dragonraft.remove_member(30, 3)');
my ($ret, $out, $err) = $N3->psql('postgres', 'SELECT dragonraft.leave_group(30, true)');
is($ret, 0, 'node 3 leaves group 30 while a load of group 31 is open') or diag $err;
like($err, qr/NOTICE:  the tables of group 30 stay on this node, no longer replicated: t/,
	'its table stays, no longer replicated');
is($c->poll(3, "SELECT count(*) FROM pg_stat_activity WHERE pid = $loader") // '', '1',
	'the load of group 31 was not disturbed');
$l = $c->leader(31);
$c->node($l)->safe_psql('postgres', 'SELECT dragonraft.remove_member(31, 3)');
my $leave = $c->start_session(3, 'SELECT dragonraft.leave_group(31, true)');
ok($c->wait_until('leave_group(31) to wait for the origin lock of the load', sub {
	$c->query(3, qq{SELECT count(*) FROM pg_locks WHERE pid = $leave->{pid} AND NOT granted
		AND locktype = 'object' AND classid = 'pg_replication_origin'::regclass
		AND objid = (SELECT roident FROM pg_replication_origin WHERE roname = 'dragonraft_31')}) eq '1' }),
	'leave_group(31) waits for the open load');
is($c->query(3, "SELECT count(*) FROM pg_stat_activity WHERE pid = $loader"), '1', 'the load is still open then');
$N3->safe_psql('postgres', 'ALTER SYSTEM SET dragonraft.testing_snapshot_delay = 0');
$N3->reload;
ok($leave->{h}->finish, 'node 3 leaves group 31 once its load ends') or diag ${ $leave->{err} };
$j->{h}->finish;
note "join_group(31): ${ $j->{err} }";
{
	# The figures of a load's phase never go back.
	my ($back, $prev, $last) = ('', -1, '');
	while (${ $j->{err} } =~ /NOTICE:  joining group 31: (\w+) a snapshot([^,]*), (\d+) of \d+ bytes/g) {
		my ($phase, $again, $n) = ($1, $2, $3);
		$prev = -1 if $phase ne $last || $again ne '';
		$back .= " $prev then $n ($phase)" if $n < $prev;
		($prev, $last) = ($n, $phase);
	}
	is($back, '', "join_group's NOTICEs of a load never go back");
}
# (it fails once the member is gone, or, seeing the load's commit first,
# in its last read barrier: either way saying why)
like(${ $j->{err} }, qr/ERROR:  [^\n]*\nDETAIL:  \S/, 'the join_group waiting for group 31 fails with a detail');
# (the apply worker frees the load's job once it sees its loader gone)
$c->wait_until('the load of group 31 to end on node 3',
	sub { $c->query(3, 'SELECT count(*) FROM dragonraft.stat_progress_snapshot') eq '0' });
is($c->query(3, q{SELECT (SELECT count(*) FROM dragonraft.status) || ' '
		|| (SELECT count(*) FROM pg_replication_origin WHERE roname ~ '^dragonraft_') || ' '
		|| (SELECT count(*) FROM dragonraft.replicated_tables) || ' '
		|| (SELECT count(*) FROM pg_trigger WHERE tgrelid IN ('t'::regclass, to_regclass('t31'))
			AND tgname LIKE 'dragonraft%') || ' '
		|| (SELECT count(*) FROM dragonraft.stat_progress_snapshot)}),
	'0 0 0 0 0', 'node 3 has no status row, origin, table registration, capture trigger or load of either group')
  or diag $c->query(3, 'SELECT * FROM dragonraft.stat_progress_snapshot');
is(snap_files(30) . snap_files(31), '', 'no snapshot file of either group stays on node 3');
my ($state, $msg) = $c->sql_error(3, "SELECT dragonraft.join_group(30, '" . $c->members(1, 2) . "')");
is($state, '55000', 'join_group(30) on node 3 is refused after the leave');
like($msg, qr/node 3 left group 30 and cannot be its member again.*HINT:  Remove node 3 on the group's leader/s,
	'saying why and what to do');

# The groups go on on nodes 1 and 2.
$c->group_nodes($_, 1, 2) for 30, 31;
for my $g (30, 31)
{
	$l = $c->leader($g);
	my $t = $g == 30 ? 't' : 't31';
	$c->node($l)->safe_psql('postgres', "INSERT INTO $t VALUES (9000 + $g, 'after')");
	ok($c->caught_up($g), "group $g applies on nodes 1 and 2");
}
is($N1->safe_psql('postgres', 'SELECT digest FROM dragonraft.table_digest(30)'),
	$N2->safe_psql('postgres', 'SELECT digest FROM dragonraft.table_digest(30)'),
	'nodes 1 and 2 agree on group 30');
unlike(slurp_file($N3->logfile), qr/are missing/, 'node 3 never found entries missing');

done_testing();
