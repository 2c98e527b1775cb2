# Barriers (execute(g, 'SELECT 1'), check_consistency's marker: SELECTs of
# constants) change no table: what reads the group's history for its last
# command passes over them, and over commands skipped for another
# (preempted_by), at no cost for the texts dragonraft writes.
#
# 1. A full snapshot's export (snapshot_export.c) compares the group's last
#    command when it described the tables with the one under its snapshot:
#    it counted every row of the history, so a barrier applied in between
#    made it start over ("the tables of group 1 changed while their
#    snapshot was prepared").  Node l's single apply worker is held (a
#    session there locks table u of group 2, which node g leads) while a
#    barrier of group 1 waits to be applied there; node f needs a snapshot
#    of group 1 from node l, which describes the tables and waits for its
#    apply; the lock ends: the export goes on once, without starting over.
# 2. An apply worker that starts (node f restarted; a write of the leader
#    then) with 1000 barriers of
#    caught_up's text, 10 check_consistency markers and a skipped command
#    after the group's last command finds that command having parsed one
#    row (its DEBUG1 line; dr_sql_tables_barrier parsed each barrier, about
#    2.7 us a row).
# 3. A snapshot's load ends with the group's last command as the loader
#    counts it (its LOG line): a command, then barriers of several texts
#    (caught_up's, a marker, one in other words) and a skipped command last.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use PostgreSQL::Test::Utils;
use Test::More;

# (the session holds u's lock while node l's apply waits for it: not
# cancelled, as the test holds it on purpose; a member 5 entries behind the
# others' snapshots needs one)
my $c = DragonCluster->new(3,
	conf => "dragonraft.max_apply_lock_delay = -1\ndragonraft.compaction_overhead = 5\n");
$c->create_group(1, 1, 2, 3);
my $l = $c->leader(1);
ok($l, "group 1 has a writable leader (node $l)");
my $L = $c->node($l);
my ($f, $g) = grep { $_ != $l } (1 .. 3);
my $F = $c->node($f);
my $G = $c->node($g);
$c->create_group(2, $l, $g);
ok($c->lead(2, $g), "node $g leads group 2 (nodes $l and $g)");
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, 'CREATE TABLE public.t (k int PRIMARY KEY, v int)')});
$L->safe_psql('postgres', q{SELECT dragonraft.replicate_table('public.t', 1)});
$L->safe_psql('postgres', q{INSERT INTO t SELECT n, 0 FROM generate_series(1, 5) n});
$G->safe_psql('postgres', q{SELECT dragonraft.execute(2, 'CREATE TABLE public.u (k int PRIMARY KEY)')});
$G->safe_psql('postgres', q{SELECT dragonraft.replicate_table('public.u', 2)});
ok($c->caught_up(1) && $c->caught_up(2), 'tables t and u are on every member');

my $last_row = q{SELECT command FROM dragonraft.ddl_history WHERE group_id = 1 ORDER BY index DESC LIMIT 1};

# ---- 1. a barrier applied while the export waits for the apply ----
$F->stop('fast');
$L->safe_psql('postgres', join('', map { "UPDATE t SET v = v + 1 WHERE k = $_;\n" } 1 .. 5)) for 1 .. 2;
ok($c->caught_up(1), "nodes $l and $g applied 10 updates");
ok($c->compact(1, $l, $g), "nodes $l and $g compacted their logs: node $f needs a snapshot");
my $offset = -s $L->logfile;
my $lock = $L->background_psql('postgres');
$lock->query_safe('BEGIN; LOCK TABLE u IN SHARE MODE');
$G->safe_psql('postgres', 'INSERT INTO u VALUES (1)');
ok($c->wait_until("node ${l}'s apply to wait for table u", sub {
	($c->poll($l, q{SELECT count(*) FROM pg_locks k JOIN pg_stat_activity a USING (pid)
		WHERE NOT k.granted AND a.backend_type = 'dragonraft apply'}) // 0) > 0 }),
	"node ${l}'s apply waits for table u");
my $barrier = $c->start_session($g, q{SELECT dragonraft.execute(1, 'SELECT 1')});
ok($c->wait_until("the barrier to be in node ${l}'s log", sub {
	($c->poll($g, q{SELECT applied_index FROM dragonraft.status WHERE group_id = 1}) // 0) >
	  ($c->poll($l, q{SELECT applied_index FROM dragonraft.status WHERE group_id = 1}) // 0) }),
	"node $g applied the barrier, node $l not yet");
$F->start;
ok($c->wait_until("node $l to export group 1 and wait for its apply", sub {
	($c->poll($l, q{SELECT count(*) FROM dragonraft.stat_progress_snapshot
		WHERE group_id = 1 AND role = 'sender' AND phase = 'waiting for apply'}) // 0) > 0 }),
	"node $l described the tables of group 1 and waits for its apply");
$lock->query_safe('COMMIT');
$lock->quit;
$barrier->{h}->finish;
ok($c->wait_until("node $f to load a snapshot of group 1", sub { $c->snapshot_loads($f, 1) >= 1 }),
	"node $f loads a snapshot of group 1");
ok($c->caught_up(1), 'every member applied group 1');
is($c->query($l, $last_row), 'SELECT 1', "node $l: the barrier is the last row of the history");
my $log = slurp_file($L->logfile, $offset);
unlike($log, qr/changed while their snapshot was prepared/, "node ${l}'s export did not start over for the barrier");
my @exports = $log =~ /exported a snapshot of group 1 /g;
is(scalar @exports, 1, "node $l exported one snapshot of group 1");

# ---- 2. an apply worker's start after barriers and a skipped command ----
my $cmd = $L->safe_psql('postgres', q{SELECT dragonraft.execute(1, 'COMMENT ON COLUMN public.t.v IS ''c''')});
ok($c->caught_up(1), "every member applied the command at entry $cmd");
# (rows of node f's history only, after every entry)
$F->safe_psql('postgres', qq{
	INSERT INTO dragonraft.ddl_history (group_id, index, command, role, tables)
	SELECT 1, 1000000000 + n, CASE WHEN n % 100 = 0 THEN 'SELECT ''dragonraft.check_consistency'''
	  ELSE 'SELECT 1' END, 'postgres', '{}' FROM generate_series(1, 1010) n;
	INSERT INTO dragonraft.ddl_history (group_id, index, command, role, tables, preempted_by)
	VALUES (1, 1000002000, 'COMMENT ON TABLE public.t IS ''skipped''', 'postgres', '{}', $cmd)});
$F->append_conf('postgresql.conf', "log_min_messages = debug1\n");
$offset = -s $F->logfile;
$F->restart;
# (its apply worker reads a group's history at the group's first entry)
ok($c->lead(1, $l), "node $l leads group 1");
$L->safe_psql('postgres', 'UPDATE t SET v = v + 1 WHERE k = 1');
ok($c->wait_until("node ${f}'s apply worker to find the last command", sub {
	slurp_file($F->logfile, $offset) =~ /found the last command of group 1 at entry/ }),
	"node ${f}'s apply worker read the history of group 1");
my ($found, $rows) = slurp_file($F->logfile, $offset) =~ /found the last command of group 1 at entry (\d+), parsing (\d+) rows/;
is($found, $cmd, "node ${f}'s apply worker counts the command at entry $cmd");
is($rows, 1, "node ${f}'s apply worker parsed the command's row only");
$F->safe_psql('postgres', q{DELETE FROM dragonraft.ddl_history WHERE index >= 1000000000});
$F->append_conf('postgresql.conf', "log_min_messages = warning\n");
$F->restart;

# ---- 3. a snapshot's load: the last command before barriers and a skipped one ----
$F->stop('fast');
$cmd = $L->safe_psql('postgres', q{SELECT dragonraft.execute(1, 'COMMENT ON COLUMN public.t.v IS ''d''')});
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, 'SELECT 1')});
$L->safe_psql('postgres', q{SELECT dragonraft.check_consistency(1)});
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, E'/* other words */ select 2, ''x''')});
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, 'SELECT 1')});
ok($c->caught_up(1), "nodes $l and $g applied the command at entry $cmd and four barriers");
# (a skipped command as the last row of the history the snapshot carries)
for my $node ($L, $G)
{
	$node->safe_psql('postgres', qq{INSERT INTO dragonraft.ddl_history (group_id, index, command, role, tables, preempted_by)
		VALUES (1, 1000002000, 'COMMENT ON TABLE public.t IS ''skipped''', 'postgres', '{}', $cmd)});
}
ok($c->compact(1, $l, $g), "nodes $l and $g compacted their logs: node $f needs a snapshot");
$offset = -s $F->logfile;
$F->start;
ok($c->wait_until("node $f to load a snapshot of group 1", sub {
	slurp_file($F->logfile, $offset) =~ /loaded the snapshot of group 1 / }),
	"node $f loads a snapshot of group 1");
like(slurp_file($F->logfile, $offset), qr/loaded the snapshot of group 1 .*, the group's last command at entry $cmd$/m,
	"node ${f}'s loader counts the command at entry $cmd");
ok($c->caught_up(1), "node $f applies group 1 after the load");
is($c->query($f, $last_row), q{COMMENT ON TABLE public.t IS 'skipped'}, "node $f: the skipped command is the last row of its history");
$L->safe_psql('postgres', 'UPDATE t SET v = v + 1 WHERE k = 1');
ok($c->caught_up(1), 'every member applied an update of t after the load');
is($c->contents($f, 't', 'k'), $c->contents($l, 't', 'k'), "node $f has the leader's rows of t");

done_testing();
