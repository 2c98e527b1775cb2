# Every member decides alike whether a change set was written under an older
# schema (skipped everywhere, 40001 for its writer), also one whose apply
# worker started again and read its schema index from
# dragonraft.ddl_history (dr_apply_rows_last_command: the last row that is
# neither a barrier nor a skipped command, read from the end, 64 rows a
# fetch).  t/146 shows that a barrier last makes no reads; this one that the
# real command before many barriers still counts.
#
# 1. A writer on the leader writes table t; a command that changes t, in
#    odd text (a comment first), is proposed from another member and
#    followed by 70 barriers in odd texts (comments, mixed case, several
#    SELECTs in one); a follower restarts (its history: the command, then
#    more barriers than one fetch).  The writer ends with 40001 and every
#    member skips its change set: the same rows everywhere.
# 2. The leader restarts with barriers last; a writer of t there commits
#    across another barrier (mixed case, a comment), and ends with 40001
#    across a command that starts with a constant SELECT but is none
#    ('SELECT 1; COMMENT ON ...'): the same rows everywhere.
# 3. A follower loads a snapshot whose history ends in a command that
#    changes t (COMMENT ON COLUMN: it does not wait for the writer's lock)
#    and 70 barriers; a writer of t that began before the command commits
#    after the load: 40001, and that member skips it too.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use PostgreSQL::Test::Utils;
use Test::More;

# (the writer holds t's lock while the leader's apply waits for it: not
# cancelled, as the test holds it on purpose)
# (and a member 5 entries behind the others' snapshots needs one)
my $c = DragonCluster->new(3,
	conf => "dragonraft.max_apply_lock_delay = -1\ndragonraft.compaction_overhead = 5\n");
$c->create_group(1, 1, 2, 3);
my $l = $c->leader(1);
ok($l, "group 1 has a writable leader (node $l)");
my $L = $c->node($l);
my ($f, $g) = grep { $_ != $l } (1 .. 3);
my $F = $c->node($f);
my $G = $c->node($g);
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, 'CREATE TABLE public.t (k int PRIMARY KEY, v int)')});
$L->safe_psql('postgres', q{SELECT dragonraft.replicate_table('public.t', 1)});
$L->safe_psql('postgres', q{INSERT INTO t SELECT n, 0 FROM generate_series(1, 5) n});
ok($c->caught_up(1), 'table t is on every member');

my @barriers = (
	q{SELECT 1},
	qq{-- a comment\nsElEcT ''x''},
	q{/* a comment */ SELECT 1; select NULL ;},
	qq{  \n\tSeLeCt 2 -- trailing},
);
my $barriers = join('', map { "SELECT dragonraft.execute(1, E'" . $barriers[ $_ % @barriers ] =~ s/\n/\\n/gr =~ s/\t/\\t/gr . "');\n" } 1 .. 70);

# Table t on every member, the same.
sub same_t
{
	my ($what) = @_;
	ok($c->caught_up(1), "every member applied the group's entries $what");
	my $rows = $c->contents($l, 't', 'k');
	is($c->contents($_, 't', 'k'), $rows, "node $_ has the leader's rows of t $what") for grep { $_ != $l } (1 .. 3);
	return $rows;
}

# A writer of t on the leader, its transaction open after its first write.
sub writer
{
	my ($set) = @_;
	my $w = $L->background_psql('postgres', on_error_stop => 0);
	$w->query_safe('\set VERBOSITY verbose');
	$w->query_safe("BEGIN; UPDATE t SET v = v + 1 WHERE k = $set");
	return $w;
}

# Its COMMIT: the error it ended with ('' if none).
sub commit
{
	my ($w) = @_;
	$w->query('COMMIT');
	my $err = $w->{stderr};
	$w->quit;
	return $err;
}

# ---- 1. a follower restarts after a command and 70 barriers ----
my $w = writer(1);
my $cmd = $G->safe_psql('postgres',
	q{SELECT dragonraft.execute(1, E'/* changes t */\n  Alter TABLE public.t ADD COLUMN c int')});
ok($cmd > 0, "the command is at entry $cmd");
$G->safe_psql('postgres', $barriers);
ok($c->wait_until("node $f to apply the barriers", sub {
	($c->poll($f, q{SELECT count(*) FROM dragonraft.ddl_history WHERE group_id = 1 AND index > } . $cmd) // 0) == 70 }),
	"node $f has the command and 70 barriers after it");
$F->restart;
ok($c->wait_until("node $f to apply again", sub {
	($c->poll($f, q{SELECT applied_index FROM dragonraft.status WHERE group_id = 1}) // 0) >= $cmd + 70 }),
	"node $f applies again after its restart");
like(commit($w), qr/ERROR:\s+40001:/, 'the writer that wrote t before the command ends with 40001');
is(same_t('after the writer that failed'), '(1,0,);(2,0,);(3,0,);(4,0,);(5,0,)', 'no member applied its change set');
ok($c->log_has($F, qr/skipped entry \d+ of group 1: the command at entry $cmd /),
	"node $f skipped the change set for the command before the barriers");

# ---- 2. the leader restarts with barriers last ----
$L->restart;
ok($c->lead(1, $l), "node $l leads group 1 again");
$w = writer(2);
$G->safe_psql('postgres', q{SELECT dragonraft.execute(1, E'/* a barrier */ SeLeCt 1')});
is(commit($w), '', 'a writer across a barrier commits on the restarted leader');
$w = writer(3);
$G->safe_psql('postgres', q{SELECT dragonraft.execute(1, 'SELECT 1; COMMENT ON COLUMN public.t.v IS ''x''')});
like(commit($w), qr/ERROR:\s+40001:/, 'a writer across a command that starts with a SELECT ends with 40001');
is(same_t('after the restarted leader\'s writers'), '(1,0,);(2,1,);(3,0,);(4,0,);(5,0,)',
	'every member applied the first change set and skipped the second');
# (the history's schema index, as each member reads it again now)
for my $id (1 .. 3)
{
	$c->node($id)->restart;
}
ok($c->lead(1, $l), "node $l leads group 1 after every node restarted");
$w = writer(4);
is(commit($w), '', 'a writer after the last command commits');
is(same_t('after every restart'), '(1,0,);(2,1,);(3,0,);(4,1,);(5,0,)', 'every member applied it');

# ---- 3. a snapshot whose history ends in a command and 70 barriers ----
$F->stop('fast');
$w = writer(5);
$cmd = $G->safe_psql('postgres', q{SELECT dragonraft.execute(1, E'-- t again\nCOMMENT ON COLUMN public.t.v IS ''y''')});
$G->safe_psql('postgres', $barriers);
ok($c->wait_until("node $l to apply the barriers", sub {
	($c->poll($l, q{SELECT count(*) FROM dragonraft.ddl_history WHERE group_id = 1 AND index > } . $cmd) // 0) == 70 }),
	"node $l applied the command and 70 barriers after it");
ok($c->compact(1, $l, $g), "nodes $l and $g compacted their logs: node $f needs a snapshot");
$F->start;
ok($c->wait_until("node $f to load a snapshot of group 1", sub { $c->snapshot_loads($f, 1) >= 1 }),
	"node $f loads a snapshot of group 1");
ok($c->wait_until("node $f to apply the snapshot", sub {
	($c->poll($f, q{SELECT applied_index FROM dragonraft.status WHERE group_id = 1}) // 0) >= $cmd + 70 }),
	"node $f applied up to the last barrier");
is($c->query($f, qq{SELECT string_agg(DISTINCT via, ',') FROM dragonraft.ddl_history WHERE group_id = 1 AND index >= $cmd}),
	'snapshot', "node $f has the command and the barriers from the snapshot");
like(commit($w), qr/ERROR:\s+40001:/, 'the writer that wrote t before the command ends with 40001');
is(same_t('after the load'), '(1,0,);(2,1,);(3,0,);(4,1,);(5,0,)', 'no member applied its change set');
ok($c->log_has($F, qr/skipped entry \d+ of group 1: the command at entry $cmd /),
	"node $f skipped the change set for the command in its snapshot");

# ---- 4. what 200000 barriers last cost an apply worker that starts ----
# (rows of node f's history only, after every entry: the parse of each
# barrier, about 2 kB, stayed in memory until the transaction's end, 450 MB
# at its peak here, 2 GB for a million)
$F->safe_psql('postgres', q{INSERT INTO dragonraft.ddl_history (group_id, index, command, role, tables)
	SELECT 1, 1000000000 + n, 'SELECT 1', 'postgres', '{}' FROM generate_series(1, 200000) n});
$F->restart;
ok($c->lead(1, $l), "node $l leads group 1");
$L->safe_psql('postgres', 'UPDATE t SET v = v + 1 WHERE k = 5');
same_t('after the restart with 200000 barriers last');
my $apply = $c->query($f, q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'dragonraft apply'});
my ($peak) = slurp_file("/proc/$apply/status") =~ /VmHWM:\s+(\d+) kB/;
cmp_ok($peak, '<', 200 * 1024, "node ${f}'s apply worker peaked at $peak kB");

done_testing();
