# A barrier (execute(g, 'SELECT 1'): SELECTs of constants, such as
# caught_up's and check_consistency's marker) changes no schema: the apply
# never counts it as the group's last command.  Neither may an apply worker
# that starts again (a restart of its node) or a member that loaded a
# snapshot whose history ends in a barrier: a follower that did took the
# barrier's index for its schema index, and every change set of the leader
# (written under the last real command, an older index) made it read
# dragonraft.ddl_history (an SQL query, tens of microseconds of the apply
# worker per change set) until the next real command.  The follower's
# DEBUG1 line "dragonraft reads the commands of group ..." counts those
# reads (dr_apply_rows_command_between).
#
# 1. The follower restarts with a barrier as the last row of the history;
#    the leader's single-row updates are applied there without a read.
# 2. The follower loads a snapshot whose history ends in a barrier: the
#    same.
# (That a real command still counts, after the barriers too, is t/030's,
# t/034's, t/057's and t/074's; part 2 sees the apply worker's count after
# the load, the loader's own and a skipped command last are t/148's.)
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use PostgreSQL::Test::Utils;
use Test::More;

# (a member 5 entries behind the others' snapshots needs one)
my $c = DragonCluster->new(3, conf => "dragonraft.compaction_overhead = 5\n");
$c->create_group(1, 1, 2, 3);
my $l = $c->leader(1);
ok($l, "group 1 has a writable leader (node $l)");
my $L = $c->node($l);
my ($f) = grep { $_ != $l } (1 .. 3);
my $F = $c->node($f);
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, 'CREATE TABLE public.t (k int PRIMARY KEY, v int)')});
$L->safe_psql('postgres', q{SELECT dragonraft.replicate_table('public.t', 1)});
$L->safe_psql('postgres', q{INSERT INTO t SELECT g, 0 FROM generate_series(1, 20) g});
ok($c->caught_up(1), 'table t is on every member');

my $last = q{SELECT command FROM dragonraft.ddl_history WHERE group_id = 1 ORDER BY index DESC LIMIT 1};
my $updates = join('', map { "UPDATE t SET v = v + 1 WHERE k = $_;\n" } 1 .. 20);

# The reads of the history in node f's log after offset.
sub reads_since
{
	my ($offset) = @_;
	my $log = slurp_file($F->logfile);
	my @reads = substr($log, $offset) =~ /dragonraft reads the commands of group 1 /g;
	return scalar @reads;
}

# 20 single-row updates on the leader, applied on node f: the reads of the
# history there meanwhile.
sub reads_for_updates
{
	ok($c->lead(1, $l), "node $l leads group 1");
	my $offset = -s $F->logfile;
	$L->safe_psql('postgres', $updates);
	ok($c->caught_up(1), 'the updates are applied on every member');
	is($c->query($f, 'SELECT sum(v) FROM t'), $c->query($l, 'SELECT sum(v) FROM t'),
		"node $f has the leader's rows");
	return reads_since($offset);
}

# ---- 1. a restart with a barrier last ----
is($c->query($f, $last), 'SELECT 1', "node $f: the last row of the history is a barrier");
$F->append_conf('postgresql.conf', "log_min_messages = debug1\n");
$F->restart;
ok($c->caught_up(1), "node $f applies again after its restart");
is(reads_for_updates(), 0, "node $f, restarted after a barrier, reads no history for the leader's updates");

# ---- 2. a snapshot whose history ends in a barrier ----
$F->stop('fast');
$L->safe_psql('postgres', $updates);
my @others = grep { $_ != $f } (1 .. 3);
ok($c->caught_up(1), 'the other members apply the updates');
ok($c->compact(1, @others), "nodes @others compacted their logs: node $f needs a snapshot");
$F->start;
ok($c->wait_until("node $f to load a snapshot of group 1", sub { $c->snapshot_loads($f, 1) >= 1 }),
	"node $f loads a snapshot of group 1");
ok($c->caught_up(1), "node $f applies again after the load");
is($c->query($f, $last), 'SELECT 1', "node $f: the last row of the history is a barrier");
is(reads_for_updates(), 0, "node $f, after the snapshot, reads no history for the leader's updates");

done_testing();
