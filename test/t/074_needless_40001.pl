# Needless 40001s from execute() (closing note 18), which t/064's mechanism
# gave: a command whose entry follows another command its try did not see is
# skipped by every member alike, and its caller gets 40001.
#
# 1. A barrier, execute(g, 'SELECT 1') (SELECTs of constants only: the one
#    kind of SELECT execute() takes, a wait through the log), changes nothing
#    under any schema: a real command tried before it, whose entry follows
#    it, must not be skipped for it.  Made deterministic as in t/064: node B's
#    try of the command waits for a table that a session there holds while
#    node A's barrier is applied everywhere.
# 2. Nor is a barrier skipped for a real command that came first: the same
#    with the roles swapped (the barrier's try is held by a lock on
#    pg_sequence, which every try reads after it read the group's last
#    command).
# 3. A command skipped for another that came first changed nothing either:
#    in a new leader's backlog, a writer waiting for the leader's no-op must
#    not fail with 40001 for it (it does for a command that runs: that one may
#    need the writer's locks).  Node N's apply is held (a session there
#    locks table w) right before a change set of w and the skipped command,
#    and again (table v) at a change set after them; N becomes the leader, a
#    writer of table z waits there, the first hold ends (before the fix the
#    writer failed here), then the second.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;

# (sessions that hold a lock the apply worker waits for are not cancelled:
# the test holds them on purpose)
my $c = DragonCluster->new(3, conf => qq{
dragonraft.max_apply_lock_delay = -1
});
$c->create_group(1, 1, 2, 3);
my $l = $c->leader(1);
ok($l, "group 1 has a writable leader (node $l)");
my @others = grep { $_ != $l } (1 .. 3);

for my $t (qw(x w z))
{
	$c->node($l)->safe_psql('postgres',
		qq{SELECT dragonraft.execute(1, 'CREATE TABLE public.$t (k int PRIMARY KEY, v text)')});
	$c->node($l)->safe_psql('postgres', qq{SELECT dragonraft.replicate_table('public.$t', 1)});
}
$c->node($l)->safe_psql('postgres', q{INSERT INTO x VALUES (1, 'one')});
ok($c->caught_up(1), 'tables x, w and z are on every member');

# execute() of command on node id, in the background.
sub start_execute
{
	my ($id, $command, $app) = @_;
	my $r = { out => \(my $out = ''), err => \(my $err = '') };
	$r->{h} = IPC::Run::start(
		[ 'psql', '-XAtq', '-d', $c->node($id)->connstr('postgres') . " application_name=$app",
			'-c', '\set VERBOSITY verbose', '-c', "SELECT dragonraft.execute(1, '$command')" ],
		'>', $r->{out}, '2>', $r->{err},
		IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
	return $r;
}

sub waits_for_lock
{
	my ($id, $app) = @_;
	return $c->wait_until(
		"node ${id}'s $app to wait for a lock",
		sub {
			$c->poll($id,
				qq{SELECT count(*) FROM pg_stat_activity WHERE application_name = '$app' AND wait_event_type = 'Lock'})
			  eq '1';
		});
}

my $history = q{SELECT string_agg((to_jsonb(h) - 'via')::text, E'\n' ORDER BY index)
                  FROM dragonraft.ddl_history h WHERE group_id = 1};

# ---- 1. a real command tried before a barrier whose entry precedes it ----
my ($na, $nb) = ($l, $others[0]);
my $holder = $c->idle_reader($nb, 'public.x');
my $call = start_execute($nb, 'ALTER TABLE public.x ADD COLUMN c int', 'cmd1');
ok(waits_for_lock($nb, 'cmd1'), "node $nb: execute() passed its read barrier and its try waits for table x");
my $barrier = $c->node($na)->safe_psql('postgres', q{SELECT dragonraft.execute(1, 'SELECT 1')});
like($barrier, qr/^\d+$/, "node $na: a barrier runs meanwhile");
ok( $c->wait_until(
		"node $nb to apply the barrier",
		sub {
			$c->poll($nb, qq{SELECT count(*) FROM dragonraft.ddl_history WHERE group_id = 1 AND index = $barrier})
			  eq '1';
		}),
	"node $nb applies the barrier while its try waits");
${ $holder->{in} } .= "COMMIT;\n";
$holder->{h}->finish;
$call->{h}->finish;
like(${ $call->{out} }, qr/^\d+$/, "node $nb: the command tried before the barrier runs");
is(${ $call->{err} }, '', "node $nb: no 40001 for the barrier");
my ($index) = ${ $call->{out} } =~ /^(\d+)$/;
$index //= 0;
ok($index > $barrier, 'its entry follows the barrier');
ok($c->caught_up(1), 'every member applies both');
my $rows = qq{SELECT string_agg(index || ' ' || coalesce(preempted_by::text, '-') || ' ' || coalesce(tables::text, 'any'),
                                ',' ORDER BY index)
                FROM dragonraft.ddl_history WHERE group_id = 1 AND index IN ($barrier, $index)};
for my $id (1 .. 3)
{
	like($c->query($id, $rows), qr/^$barrier - \{\},$index - \{\d+\}$/,
		"node $id: the barrier changed no table, and the command ran after it");
	is($c->query($id, q{SELECT count(*) FROM pg_attribute WHERE attrelid = 'public.x'::regclass AND attname = 'c'}),
		'1', "node $id: table x has column c");
}

# ---- 2. a barrier tried before a real command whose entry precedes it ----
# The barrier's try waits (after it read the group's last command) for a
# session of node B that holds pg_sequence, which every try reads first;
# meanwhile node A's real command is applied everywhere.
my $seqlock = { in => \(my $sin = "BEGIN;\nLOCK TABLE pg_catalog.pg_sequence IN ACCESS EXCLUSIVE MODE;\nSELECT 'locked';\n"),
	out => \(my $sout = ''), err => \(my $serr = '') };
$seqlock->{h} = IPC::Run::start([ 'psql', '-XAtq', '-d', $c->node($nb)->connstr('postgres') ],
	'<', $seqlock->{in}, '>', $seqlock->{out}, '2>', $seqlock->{err});
$seqlock->{h}->pump until ${ $seqlock->{out} } =~ /locked/;
$call = start_execute($nb, 'SELECT 2', 'barrier2');
ok(waits_for_lock($nb, 'barrier2'), "node $nb: a barrier's try waits for pg_sequence");
my $real = $c->node($na)->safe_psql('postgres', q{SELECT dragonraft.execute(1, 'COMMENT ON TABLE public.x IS ''real''')});
like($real, qr/^\d+$/, "node $na: a real command runs meanwhile");
${ $seqlock->{in} } .= "COMMIT;\n";
$seqlock->{h}->finish;
$call->{h}->finish;
like(${ $call->{out} }, qr/^\d+$/, "node $nb: the barrier tried before the command returns its index");
is(${ $call->{err} }, '', "node $nb: no 40001 for the command");
($index) = ${ $call->{out} } =~ /^(\d+)$/;
$index //= 0;
ok($index > $real, 'its entry follows the command');
ok($c->caught_up(1), 'every member applies both');
$rows = qq{SELECT string_agg(index || ' ' || coalesce(preempted_by::text, '-') || ' ' || coalesce(tables::text, 'any'),
                             ',' ORDER BY index)
             FROM dragonraft.ddl_history WHERE group_id = 1 AND index IN ($real, $index)};
is($c->query($_, $rows), "$real - any,$index - {}", "node $_: neither was skipped") for (1 .. 3);
is($c->query($_, q{SELECT obj_description('public.x'::regclass, 'pg_class')}), 'real', "node $_: the comment holds")
  for (1 .. 3);

# ---- 3. a skipped command in a new leader's backlog ----
# A command skipped for another (t/064), proposed by nodes A (the leader) and
# B at once; N, the third node, applies A's, then holds its apply right
# before a change set of w that comes before B's skipped command, and one of
# v that comes after it (so that a writer there sees the group's state between
# the two).
for my $t (qw(v))
{
	$c->node($l)->safe_psql('postgres',
		qq{SELECT dragonraft.execute(1, 'CREATE TABLE public.$t (k int PRIMARY KEY, v text)')});
	$c->node($l)->safe_psql('postgres', qq{SELECT dragonraft.replicate_table('public.$t', 1)});
}
$l = $c->leader(1);
ok($c->caught_up(1), 'table v is on every member');
my ($n1, $n2, $nn) = ($l, grep { $_ != $l } (1 .. 3));

# A session on node id holding table t in SHARE mode (a change set's apply waits).
sub lock_session
{
	my ($id, $t) = @_;
	my $r = { in => \(my $in = "BEGIN;\nLOCK TABLE public.$t IN SHARE MODE;\nSELECT pg_backend_pid();\n"),
		out => \(my $out = ''), err => \(my $err = '') };
	$r->{h} = IPC::Run::start([ 'psql', '-XAtq', '-d', $c->node($id)->connstr('postgres') ],
		'<', $r->{in}, '>', $r->{out}, '2>', $r->{err});
	$r->{h}->pump until ${ $r->{out} } =~ /^\d+\n/;
	return $r;
}

sub apply_waits_for
{
	my ($id, $t) = @_;
	return $c->wait_until(
		"node ${id}'s apply to wait for table $t",
		sub {
			$c->poll($id, qq{SELECT count(*) FROM pg_locks WHERE relation = 'public.$t'::regclass AND NOT granted}) eq '1';
		});
}

my %held = map { $_ => $c->idle_reader($_, 'public.x') } ($n1, $n2);
my %race = map { $_ => start_execute($_, "ALTER TABLE public.x ADD COLUMN d$_ int; COMMENT ON COLUMN public.x.k IS ''race''", "race$_") } ($n1, $n2);
ok(waits_for_lock($_, "race$_"), "node $_: the try of a racing command waits for table x") for ($n1, $n2);
${ $held{$n1}{in} } .= "COMMIT;\n";
$held{$n1}{h}->finish;
$race{$n1}{h}->finish;
my ($first) = ${ $race{$n1}{out} } =~ /^(\d+)$/;
$first //= 0;
ok($first > 0, "node $n1: its command runs");
ok( $c->wait_until(
		"node $nn to apply node ${n1}'s command",
		sub { $c->poll($nn, qq{SELECT count(*) FROM dragonraft.ddl_history WHERE group_id = 1 AND index = $first}) eq '1' }),
	"node $nn applies it");
my $lockw = lock_session($nn, 'w');
my $lockv = lock_session($nn, 'v');
$c->node($l)->safe_psql('postgres', q{INSERT INTO w VALUES (1, 'held')});
ok(apply_waits_for($nn, 'w'), "node $nn: its apply waits for table w");
${ $held{$n2}{in} } .= "COMMIT;\n";
$held{$n2}{h}->finish;
$race{$n2}{h}->finish;
like(${ $race{$n2}{err} }, qr/40001: could not serialize access: another command of dragonraft group 1 came first/,
	"node $n2: its command came second and is skipped (40001)");
my ($skipped) = ${ $race{$n2}{err} } =~ /before its entry \((\d+)\)/;
$skipped //= 0;
ok($skipped > $first, "the skipped command's entry ($skipped) follows node ${n1}'s ($first)");
$c->node($l)->safe_psql('postgres', q{INSERT INTO v VALUES (1, 'held')});
$c->node($l)->safe_psql('postgres', "SELECT dragonraft.transfer_leader(1, $nn)");
ok( $c->wait_until(
		"node $nn to lead group 1",
		sub { ($c->poll($nn, q{SELECT role FROM dragonraft.status WHERE group_id = 1}) // '') eq 'leader' }),
	"node $nn leads group 1, its backlog held");
my $writer = { out => \(my $wout = ''), err => \(my $werr = '') };
$writer->{h} = IPC::Run::start(
	[ 'psql', '-XAtq', '-v', 'VERBOSITY=verbose', '-d', $c->node($nn)->connstr('postgres') . ' application_name=writer',
		'-c', q{INSERT INTO z VALUES (1, 'after') RETURNING k} ],
	'>', $writer->{out}, '2>', $writer->{err},
	IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
ok( $c->wait_until(
		"node ${nn}'s writer to wait for the new leader's no-op",
		sub {
			$c->poll($nn, q{SELECT count(*) FROM pg_stat_activity WHERE application_name = 'writer' AND wait_event_type = 'Extension'})
			  eq '1';
		}),
	"node $nn: a writer of z waits for its backlog");
${ $lockw->{in} } .= "COMMIT;\n";
$lockw->{h}->finish;
ok(apply_waits_for($nn, 'v'), "node $nn applies the change set of w and the skipped command, and waits for table v");
is($c->poll($nn, q{SELECT count(*) FROM pg_stat_activity WHERE application_name = 'writer'}),
	'1', "node $nn: the writer still waits for the no-op");
${ $lockv->{in} } .= "COMMIT;\n";
$lockv->{h}->finish;
$writer->{h}->finish;
like(${ $writer->{out} }, qr/^1$/m, "node $nn: the writer's INSERT runs once the backlog is applied");
is(${ $writer->{err} }, '', "node $nn: no 40001 for the skipped command in the backlog");
ok($c->caught_up(1), 'every member goes on');
my $h1 = $c->query(1, $history);
is($c->query($_, $history), $h1, "node $_ has node 1's dragonraft.ddl_history") for (2, 3);
is($c->query(1, qq{SELECT preempted_by FROM dragonraft.ddl_history WHERE group_id = 1 AND index = $skipped}),
	$first, 'the skipped command names the one that came first');
is($c->contents($_, 'z', 'k'), '(1,after)', "node $_ has the writer's row") for (1 .. 3);
is($c->contents($_, 'w', 'k'), '(1,held)', "node $_ has w's row") for (1 .. 3);
is($c->contents($_, 'v', 'k'), '(1,held)', "node $_ has v's row") for (1 .. 3);

done_testing();
