# Review 28, finding 4: a follower whose LogDB file system stays full.  The
# engine worker stops with the error (ENOSPC, naming the journal file) in
# the server log and in node_status(), the postmaster starts it again, the
# group goes on without the node, and it catches up once there is room.
# While the disk stays full the engine worker restarts, runs for seconds (it
# reopens the LogDB, catches up a little, then a write fails again): between
# failures node_status() said 'running' with no error, so a monitor that
# polled it saw a healthy node most of the time (seen on a 40 MB tmpfs under
# the transfers load: 5-8 s of each 7-13 s cycle).  Now the failure stays in
# engine_error for the first minute of the next engine worker.
# The full disk is faked with test/engine/faultfs.c: DR_FAULT_WRITE_BYTES
# counts per process, so each new engine worker may write that much to its
# LogDB and then gets ENOSPC, as on a disk that stays full.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $shim = PostgreSQL::Test::Utils::tempdir() . '/libdr_faultfs.so';
system('cc', '-shared', '-fPIC', '-O2', '-o', $shim, "$ENV{DR_SCRIPTS}/../test/engine/faultfs.c", '-ldl') == 0
  or BAIL_OUT('cannot build faultfs.c');

my $c = DragonCluster->new(3, conf => "dragonraft.logdb_memtable_budget = 4\n");
$c->create_group(1, 1, 2, 3);
my $l = $c->leader(1);
ok($l, "group 1 has a leader (node $l)");
my $v = $l == 3 ? 2 : 3;    # the follower whose disk fills
my $L = $c->node($l);
my $V = $c->node($v);
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, 'CREATE TABLE t (id int PRIMARY KEY, v text)')});
$L->safe_psql('postgres', q{SELECT dragonraft.replicate_table('t', 1)});
ok($c->caught_up(1), 'the members applied the table');
{
	local $ENV{LD_PRELOAD} = $shim;
	local $ENV{DR_FAULT_DIR} = $V->data_dir . '/dragonraft/logdb';
	local $ENV{DR_FAULT_WRITE_BYTES} = 8 << 20;
	$V->restart;
}
my $first_pid = $c->query($v, 'SELECT engine_pid FROM dragonraft.node_status()');
my ($n, $failed_at, @healthy, %pids) = (0);
my $t0 = time;
while (time - $t0 < 60)
{
	$n++;
	$c->poll_result($l, "INSERT INTO t SELECT $n * 1000 + g, repeat(md5(g::text), 30) FROM generate_series(1, 100) g");
	my $s = $c->poll($v, q{SELECT engine_state || '|' || coalesce(engine_pid, 0) || '|' || coalesce(engine_error, '') FROM dragonraft.node_status()}) // next;
	my ($state, $pid, $error) = split /\|/, $s, 3;
	$pids{$pid} = 1 if $pid;
	$failed_at //= time if $error =~ /No space left on device/;
	push @healthy, sprintf('%.1f s', time - $failed_at) if defined $failed_at && $state eq 'running' && $error eq '';
	last if keys %pids >= 4 && defined $failed_at;
}
ok(defined $failed_at, 'node_status() reported the full disk') or BAIL_OUT('the disk never filled');
my $log = slurp_file($V->logfile);
like($log, qr/FATAL:  dragonraft engine stopped: .*No space left on device/, 'the server log has the failure');
cmp_ok(scalar(keys %pids), '>=', 3, 'the engine worker was started again and failed again (' . scalar(keys %pids) . ' engine pids)');
ok($c->wait_until('the others to apply', sub {
	($c->poll(6 - $l - $v, 'SELECT count(*) FROM t') // 0) == ($c->poll($l, 'SELECT count(*) FROM t') // -1) }),
	'the group goes on without the node');
is(scalar(@healthy), 0, 'while the disk stays full, node_status() never says running with no error')
  or diag('running with no error at ' . join(', ', @healthy[0 .. ($#healthy < 9 ? $#healthy : 9)]) . ' after the first failure');
# Room made (the server without the shim): it catches up.
$V->restart;
ok($c->caught_up(1), 'with room, the node catches up');
$c->same_logs(1, 'and holds the same Raft log as the others');
my $rows = q{SELECT count(*) || ' ' || md5(string_agg(t::text, ',' ORDER BY id)) FROM t};
is($c->query($v, $rows), $c->query($l, $rows), 'with the same rows');
is($c->query(6 - $l - $v, $rows), $c->query($l, $rows), 'and so has the third node');
done_testing();
