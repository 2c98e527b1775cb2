# dragonraft.table_digest on the LEADER is of exactly the applied index it
# returns, under concurrent writes (helper digestidx).
# 1. A hammer: pgbench writers on the leader, digests on every member in
#    rounds (the leader's each pausing 20 ms inside its hold,
#    testing_hold_delay); every index digested on the leader and on a
#    follower agrees.
# 2. The hole: while a digest held the group's apply for longer than the
#    engine's request timeout (2 s here: 4 election timeouts of ticks), the
#    leader's later proposals, committed in the log but not handed to the
#    apply side, completed "committed" at their deadline (engine client.c,
#    eng_expire), and their backends committed locally at their turn, held
#    or not.  A digest reading the group's origin after such a commit
#    labelled a snapshot that lacked it with its index: a false divergence
#    against a follower's digest at that index.  Deterministic here: writer
#    A holds its turn 10 s (testing_commit_delay), the digest waits for its
#    drain meanwhile, writers B1-B3 propose then (each holds its own turn
#    0.3 s), and the digest pauses 1.5 s between its snapshot and its read
#    of the origin (the apply is held then, so the pause must change
#    nothing).  Its index must be A's, and its digest the follower's at that
#    index.  (Without the fix: index A's + 3, the digest of A's; with only
#    the digest's own check, applied index published before the snapshot =
#    origin after it, kept: the digest fails instead.)
# 3. A check_consistency marker whose apply aborts after its checker took
#    the snapshot is applied again, and a second checker digests the same
#    index: the follower records the check once (twice before).
# 4. The hole of 2 in a full snapshot's export (the same hold): the
#    follower that loads it agrees with the others (it lacked B4-B6's
#    writes for good before).
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;

my $c = DragonCluster->new(3, conf => "dragonraft.compaction_overhead = 10\n");
$c->create_group(1);
my $l = $c->leader(1);
ok($l, "node $l leads group 1");
my ($f1, $f2) = grep { $_ != $l } $c->ids;

$c->node($l)->safe_psql('postgres', q{
CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL, who text);
INSERT INTO t SELECT g, g, 'init' FROM generate_series(1, 200) g;
SELECT dragonraft.replicate_table('t', 1);
});
# (settled: later parts count entries, and the group's own, the members'
# client addresses, may still come after caught_up; TAP 101 once saw them)
ok($c->settled(1), 'every member has the table');

# node id's "applied_index rows digest" (one table)
sub digest
{
	my ($id) = @_;
	return $c->query($id, "SELECT applied_index || ' ' || rows || ' ' || digest "
		  . "FROM dragonraft.table_digest(1)");
}

sub status
{
	my ($id, $col) = @_;
	return $c->poll($id, "SELECT $col FROM dragonraft.status WHERE group_id = 1") // '';
}

# A background psql on the leader running the given commands.
sub session
{
	my ($out, $err) = (\(my $o = ''), \(my $e = ''));
	my $h = IPC::Run::start([ 'psql', '-XAtq', '-v', 'ON_ERROR_STOP=1', '-d',
			$c->node($l)->connstr('postgres'), map { ('-c', $_) } @_ ],
		'>', $out, '2>', $err, IPC::Run::timeout(120));
	return { h => $h, out => $out, err => $err };
}

sub finish
{
	my ($s) = @_;
	$s->{h}->finish;
	return ($? >> 8, ${ $s->{out} }, ${ $s->{err} });
}

# ---- 1. the hammer ----
# (the members' infos and addresses are in the log once every member knows
# every member's client address: no entry of the group but the tests' after)
ok($c->wait_until('every member to know the client addresses', sub {
	for my $id ($c->ids)
	{
		return 0 unless ($c->poll($id, 'SELECT count(*) FROM dragonraft.members '
				  . 'WHERE group_id = 1 AND client_address IS NOT NULL') // '') eq '3';
	}
	return 1 }), 'every member knows every client address');
$c->node($l)->safe_psql('postgres',
	'ALTER SYSTEM SET dragonraft.testing_hold_delay = 20; SELECT pg_reload_conf()');
ok($c->wait_until("node $l to pause its digests", sub {
	$c->query($l, 'SHOW dragonraft.testing_hold_delay') eq '20ms' }),
	"node ${l}'s digests pause 20 ms inside their hold");
my $script = PostgreSQL::Test::Utils::tempdir() . '/update.sql';
PostgreSQL::Test::Utils::append_to_file($script,
	"\\set id random(1, 200)\nUPDATE t SET v = v + 1 WHERE id = :id;\n");
my ($bout, $berr) = ('', '');
my $bench = IPC::Run::start([ 'pgbench', '-n', '-c', '4', '-T', '12', '-R', '80', '-f', $script,
		'-d', $c->node($l)->connstr('postgres') ], '>', \$bout, '2>', \$berr);
my %seen;    # applied index -> node -> "rows digest"
my ($rounds, $next) = (0, 0);
while ($bench->pumpable)
{
	my ($li, $ld) = split / /, digest($l), 2;
	$seen{$li}{$l} = $ld;
	# a follower's digests until one is at or past the leader's index
	for (1 .. 8)
	{
		my $f = ($f1, $f2)[ $next++ % 2 ];
		my ($fi, $fd) = split / /, digest($f), 2;
		$seen{$fi}{$f} = $fd;
		last if $fi >= $li;
	}
	$rounds++;
	$bench->pump_nb;
}
$bench->finish;
is($? >> 8, 0, 'pgbench succeeded') or diag($berr);
like($bout, qr/number of failed transactions: 0 /, 'no write failed');
$c->node($l)->safe_psql('postgres',
	'ALTER SYSTEM RESET dragonraft.testing_hold_delay; SELECT pg_reload_conf()');
my ($compared, @differ) = (0);
for my $i (sort { $a <=> $b } keys %seen)
{
	my @fs = grep { $_ != $l } sort keys %{ $seen{$i} };
	next unless defined $seen{$i}{$l} && @fs;
	$compared++;
	push @differ, "index $i: node $l $seen{$i}{$l}; " . join('; ', map { "node $_ $seen{$i}{$_}" } @fs)
	  if grep { $seen{$i}{$_} ne $seen{$i}{$l} } @fs;
}
note("$rounds rounds; $compared indexes digested on the leader and a follower");
ok($compared >= 5, "the leader's digests met a follower's at several indexes ($compared)");
is(join("\n", @differ), '', "every one of them agrees with the follower's at its index");

# ---- 2. writers whose proposals expired during the hold ----
# Writer name on the leader updating row id, holding its turn delay ms: its
# session and the index of its entry, once committed in the log.
sub holder
{
	my ($name, $id, $delay) = @_;
	my $before = status($l, 'commit_index');
	my $s = session("SET dragonraft.testing_commit_delay = $delay",
		"UPDATE t SET v = v + 1, who = '$name' WHERE id = $id");
	my $index;
	ok($c->wait_until("${name}'s entry committed", sub {
		my $ci = status($l, 'commit_index');
		$index = $ci if $ci > $before;
		return defined $index }), "writer ${name}'s entry is committed in the log");
	return ($s, $index);
}

# (A's hold, 10 s, has to cover the looks below, a psql's start and the
# digest's wait: 5 s was little on a loaded machine.)
my ($a, $n) = holder('A', 1, 10000);
ok($c->wait_until("node $f1 to apply A's entry", sub { status($f1, 'applied_index') == $n }),
	"node $f1 applied it (index $n)");
is($c->query($l, 'SELECT who FROM t WHERE id = 1'), 'init',
	'the leader has not committed it: A holds its turn');
my $at_n = digest($f1);
like($at_n, qr/^$n 200 [0-9a-f]{64}$/, "node ${f1}'s digest at $n, before any later write");

my $d = session('SET dragonraft.testing_hold_delay = 1500',
	"SELECT applied_index || ' ' || rows || ' ' || digest FROM dragonraft.table_digest(1)");
ok($c->wait_until('the digest to wait for its hold', sub {
	($c->poll($l, "SELECT count(*) FROM dragonraft.stat_progress_snapshot "
			  . "WHERE role = 'digest' AND phase = 'waiting for apply'") // '') eq '1' }, 10),
	"the leader's digest waits for the drain (A's commit)");
my @b = map { session('SET dragonraft.testing_commit_delay = 300',
		"UPDATE t SET v = v + 10, who = 'B$_' WHERE id = " . (10 + $_)) } 1 .. 3;
my ($rc, $out, $err) = finish($a);
is($rc, 0, 'writer A committed') or diag($err);
for my $i (1 .. 3)
{
	($rc, $out, $err) = finish($b[ $i - 1 ]);
	is($rc, 0, "writer B$i committed") or diag($err);
}
($rc, $out, $err) = finish($d);
is($rc, 0, "the leader's digest succeeded") or diag($err);
chomp $out;
my ($li) = $out =~ /^(\d+) /;
ok($c->wait_until("node $f1 to apply everything", sub {
	my $la = status($l, 'applied_index');
	return $la eq status($l, 'commit_index') && status($f1, 'applied_index') eq $la }),
	"node $f1 applied every entry");
my $at_rest = digest($f1);
my ($ri) = $at_rest =~ /^(\d+) /;
is($ri, $n + 3, "the writers' entries came after A's (node $f1 at rest at " . ($n + 3) . ')');
is($li, $n, "the leader's digest is at A's entry, where its hold drained: B1-B3 waited");
my $truth = !defined $li ? '(none)' : $li == $n ? $at_n : $li == $ri ? $at_rest : "(no digest of node $f1 at $li)";
is($out, $truth, "the leader's digest is node ${f1}'s at the same index");

# ---- 3. a check whose apply aborts and is tried again is recorded once ----
# On f2 the commit of the marker's apply fails once (a deferred trigger on
# its ddl_history row, enabled ALWAYS: the apply runs as a replica), after
# its checker took the snapshot: that checker records, the apply tries the
# marker again, and a second checker records the same index.
$c->node($f2)->safe_psql('postgres', q{
CREATE SEQUENCE public.fail_once;
CREATE FUNCTION public.fail_once() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF nextval('public.fail_once') = 1 THEN
    RAISE EXCEPTION 'testing: the commit of the marker''s apply fails once';
  END IF;
  RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER fail_once AFTER INSERT ON dragonraft.ddl_history
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
  WHEN (NEW.command = 'SELECT ''dragonraft.check_consistency''')
  EXECUTE FUNCTION public.fail_once();
ALTER TABLE dragonraft.ddl_history ENABLE ALWAYS TRIGGER fail_once;
});
my $m = $c->query($l, 'SELECT dragonraft.check_consistency(1)');
ok($c->wait_until("node $f2 to apply the marker at $m at its second try", sub {
	($c->poll($f2, "SELECT applied_index >= $m FROM dragonraft.status WHERE group_id = 1") // '') eq 't' }),
	"node $f2 applied the marker");
is($c->query($f2, 'SELECT last_value FROM public.fail_once'), '2',
	"node ${f2}'s apply of the marker failed once at its commit, then committed");
ok($c->wait_until("node ${f2}'s checkers to end", sub {
	($c->poll($f2, "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'dragonraft snapshot checker'") // '') eq '0'
	  && ($c->poll($f2, "SELECT count(*) FROM dragonraft.consistency_checks WHERE group_id = 1 AND log_index = $m") // 0) > 0 }),
	"node ${f2}'s checkers recorded and ended");
my %checks;
for my $id ($l, $f2)
{
	ok($c->wait_until("node $id to record the check at $m", sub {
		($c->poll($id, "SELECT count(*) FROM dragonraft.consistency_checks WHERE group_id = 1 AND log_index = $m") // 0) > 0 }),
		"node $id recorded the check at $m");
	$checks{$id} = $c->query($id, "SELECT string_agg(concat_ws(' ', relid, rows, digest, error), '; ' ORDER BY relid) "
		  . "FROM dragonraft.consistency_checks WHERE group_id = 1 AND log_index = $m");
}
like($checks{$l}, qr/^t 200 [0-9a-f]{64}$/, "node $l: one row for t at $m");
is($checks{$f2}, $checks{$l}, "node $f2 recorded the check at $m once, as node $l did");

# ---- 4. the same hole in a full snapshot's export ----
# Node f1 is stopped while the group goes on and the others compact their
# logs: at its start it needs a full snapshot, which the leader exports
# while writer A2 holds its turn 20 s (f1's start, and the leader's next
# dial of it, up to 5 s after the last failed one, come first: the export
# has to begin within the hold); B4-B6 propose during the export's
# hold, and the exporter pauses 1.5 s after its snapshot (testing_hold_delay).
# The snapshot must be of exactly its index: f1 loads it, applies the rest,
# and digests as the leader does.  (Before the fix the export was labelled
# A2's + 3 with A2's rows: f1 never got B4-B6's.)
$c->node($f1)->stop;
$c->node($l)->safe_psql('postgres',
	join('', map { "UPDATE t SET v = v + 100 WHERE id = " . (100 + $_) . ";\n" } 1 .. 15));
ok($c->compact(1, $l, $f2), "nodes $l and $f2 compacted their logs: node $f1 needs a snapshot");
$c->node($l)->safe_psql('postgres',
	'ALTER SYSTEM SET dragonraft.testing_hold_delay = 1500; SELECT pg_reload_conf()');
my ($a2, $n2) = holder('A2', 2, 20000);
$c->node($f1)->start;
ok($c->wait_until('the export to wait for its drain', sub {
	($c->poll($l, "SELECT count(*) FROM dragonraft.stat_progress_snapshot "
			  . "WHERE role = 'sender' AND phase = 'waiting for apply'") // '') eq '1' }, 18),
	"node $l exports a snapshot for node $f1, waiting for A2's commit");
my @b2 = map { session('SET dragonraft.testing_commit_delay = 300',
		"UPDATE t SET v = v + 10, who = 'B$_' WHERE id = " . (10 + $_)) } 4 .. 6;
($rc, $out, $err) = finish($a2);
is($rc, 0, 'writer A2 committed') or diag($err);
for my $i (4 .. 6)
{
	($rc, $out, $err) = finish($b2[ $i - 4 ]);
	is($rc, 0, "writer B$i committed") or diag($err);
}
$c->node($l)->safe_psql('postgres',
	'ALTER SYSTEM RESET dragonraft.testing_hold_delay; SELECT pg_reload_conf()');
ok($c->caught_up(1), "node $f1 loaded the snapshot and caught up");
my ($exported) = PostgreSQL::Test::Utils::slurp_file($c->node($l)->logfile)
  =~ /exported a snapshot of group 1 at entry (\d+)/;
is($exported, $n2, "the export is at A2's entry, where its hold drained: B4-B6 waited");
my %rest = map { my $d = digest($_); $d =~ s/^\d+ //; $_ => $d } ($l, $f1, $f2);
is($rest{$f1}, $rest{$l}, "node $f1 (from the snapshot) agrees with node $l");
is($rest{$f2}, $rest{$l}, "node $f2 agrees with node $l");

done_testing();
