# execute() of one conflicting command on two nodes at once (review 19 F7,
# the part t/057 left open): each node tries the command first, and both
# tries pass when neither call's entry is applied on the other node yet.
# Both entries then land in the log, and the second failed on every member:
# each member's apply of the group stopped until a DBA skipped it there.
# Now a command's entry carries the group's last command its try saw, and a
# command with another one of its group between that and its own entry is
# skipped by every member alike (dragonraft.ddl_history.preempted_by): its
# caller gets 40001, nothing of it is applied anywhere, and the group goes on.
#
# The race is made deterministic with locks, not sleeps: a session on each
# calling node holds the table the command alters, so that both tries wait
# for it after their read barrier.  Node A's is let go first: its command is
# applied on A (its call returns) and reaches B, whose apply worker waits for
# the table behind B's try.  Then B's is let go: B's try runs before A's
# command is applied on B, and passes.
#
# Group 1 runs on nodes 1-3; node 4, bare, joins from a snapshot afterwards:
# its load replays the history's commands (their CREATE TYPE), and must not
# run the skipped one (the type exists by then: the load would fail).
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
my $c = DragonCluster->new(4, conf => qq{
dragonraft.max_apply_lock_delay = -1
dragonraft.snapshot_entries = 50
dragonraft.compaction_overhead = 5
});
$c->create_group(1, 1, 2, 3);
my $l = $c->leader(1);
ok($l, "group 1 has a writable leader (node $l)");
my ($na, $nb) = (1, 2);    # the calling nodes; node 3 only applies

$c->node($l)->safe_psql('postgres',
	q{SELECT dragonraft.execute(1, 'CREATE TABLE public.x (k int PRIMARY KEY, v text)')});
$c->node($l)->safe_psql('postgres', q{SELECT dragonraft.replicate_table('public.x', 1)});
$c->node($l)->safe_psql('postgres', q{INSERT INTO x VALUES (1, 'one')});
ok($c->caught_up(1), 'table x is on every member');

my %holder = map { $_ => $c->idle_reader($_, 'public.x') } ($na, $nb);

# execute() of the same command on node id, in the background.
sub start_execute
{
	my ($id, $command) = @_;
	my $r = { out => \(my $out = ''), err => \(my $err = '') };
	$r->{h} = IPC::Run::start(
		[ 'psql', '-XAtq', '-d', $c->node($id)->connstr('postgres') . ' application_name=xrace',
			'-c', '\set VERBOSITY verbose', '-c', "SELECT dragonraft.execute(1, '$command')" ],
		'>', $r->{out}, '2>', $r->{err},
		IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
	return $r;
}

# (as an SQL literal's contents)
my $race = q{ALTER TABLE public.x ADD COLUMN c int; CREATE TYPE public.mood AS ENUM (''calm'')};
my %call = map { $_ => start_execute($_, $race) } ($na, $nb);
for my $id ($na, $nb)
{
	ok( $c->wait_until(
			"node ${id}'s try to wait for table x",
			sub {
				$c->poll($id,
					q{SELECT count(*) FROM pg_stat_activity WHERE application_name = 'xrace' AND wait_event_type = 'Lock'})
				  eq '1';
			}),
		"node $id: execute() passed its read barrier and its try waits for table x");
}

# A goes first: its command is applied there, and reaches B, whose apply
# worker waits for table x behind B's try.
${ $holder{$na}{in} } .= "COMMIT;\n";
$holder{$na}{h}->finish;
$call{$na}{h}->finish;
like(${ $call{$na}{out} }, qr/^\d+$/, "node $na: execute() returns its command's index");
my ($na_index) = ${ $call{$na}{out} } =~ /^(\d+)$/;
$na_index //= 0;
is(${ $call{$na}{err} }, '', "node $na: no error");
ok( $c->wait_until(
		"node ${nb}'s apply worker to wait for table x",
		sub {
			$c->poll($nb,
				q{SELECT count(*) FROM pg_locks WHERE relation = 'public.x'::regclass AND NOT granted
				    AND pid NOT IN (SELECT pid FROM pg_stat_activity WHERE application_name = 'xrace')})
			  eq '1';
		}),
	"node $nb: the apply of node ${na}'s command waits behind node ${nb}'s try");

# B's try runs before A's command is applied on B: it passes.
${ $holder{$nb}{in} } .= "COMMIT;\n";
$holder{$nb}{h}->finish;
$call{$nb}{h}->finish;
is(${ $call{$nb}{out} }, '', "node $nb: execute() returns nothing");
like(${ $call{$nb}{err} }, qr/ERROR:  40001: could not serialize access: another command of dragonraft group 1 came first/,
	"node $nb: execute() fails with 40001: another command came first");
like(${ $call{$nb}{err} }, qr/The command at log index $na_index .*every member skipped this one.*HINT:  Retry/s,
	"node $nb: it names node ${na}'s command and says it can be retried");
my ($nb_index) = ${ $call{$nb}{err} } =~ /before its entry \((\d+)\)/;
$nb_index //= 0;

ok($c->caught_up(1), 'every member goes on applying the group');
for my $id (1 .. 3)
{
	is($c->query($id, q{SELECT state || coalesce('|' || error, '') FROM dragonraft.status WHERE group_id = 1}),
		'ok', "node $id: the group applies, no error");
	ok( $c->node($id)->log_contains(
			qr/LOG:  dragonraft skipped the command at entry $nb_index of group 1: the command at entry $na_index came first/),
		"node $id: its server log says it skipped node ${nb}'s command, and why");
}

# Every member has the same history: B's command there, skipped for A's.
# (how each command reached the node aside: node 4's came with a snapshot)
my $history = q{SELECT string_agg((to_jsonb(h) - 'via')::text, E'\n' ORDER BY index)
                  FROM dragonraft.ddl_history h WHERE group_id = 1};
my $h1 = $c->query(1, $history);
is($c->query($_, $history), $h1, "node $_ has node 1's dragonraft.ddl_history") for (2, 3);
my $raced = q{SELECT string_agg(index || ' ' || coalesce(to_jsonb(h)->>'preempted_by', '-') || ' '
                                || coalesce(error, '-') || ' ' || coalesce(tables::text, 'any'), ',' ORDER BY index)
                FROM dragonraft.ddl_history h WHERE group_id = 1 AND command LIKE 'ALTER TABLE public.x ADD COLUMN c%'};
is($c->query(1, $raced), "$na_index - - any,$nb_index $na_index - {}",
	"both commands are in the history: node ${na}'s ran, node ${nb}'s was skipped for it and changed nothing");
my $cat = $c->catalog(1);
is($c->catalog($_), $cat, "node $_ has node 1's schema") for (2, 3);
is($c->query($_, q{SELECT count(*) FROM pg_attribute WHERE attrelid = 'public.x'::regclass AND attname = 'c'}),
	'1', "node $_: table x has column c") for (1 .. 3);

# Writes go on, with the new column.
$l = $c->leader(1);
$c->node($l)->safe_psql('postgres', q{INSERT INTO x VALUES (2, 'two', 22); UPDATE x SET c = 11 WHERE k = 1});
ok($c->caught_up(1), 'a write after the race is applied everywhere');
is($c->contents($_, 'x', 'k'), '(1,one,11);(2,two,22)', "node $_ has the rows") for (1 .. 3);

# B can retry: a command tried against the schema as it is now passes.
($call{$nb}) = start_execute($nb, 'ALTER TABLE public.x ADD COLUMN d int');
$call{$nb}{h}->finish;
like(${ $call{$nb}{out} }, qr/^\d+$/, "node $nb: a retried command runs");
ok($c->caught_up(1), 'and every member applies it');
is($c->query($_, q{SELECT count(*) FROM pg_attribute WHERE attrelid = 'public.x'::regclass AND attname = 'd'}),
	'1', "node $_: table x has column d") for (1 .. 3);

# Enough entries for a compaction: the bare node 4 joins from a snapshot, and
# its load replays the history without the skipped command.
for my $k (1 .. 6)
{
	$c->node($c->leader(1))
	  ->safe_psql('postgres', join('', map { "INSERT INTO x VALUES (" . ($k * 100 + $_) . ", 'w');\n" } 1 .. 10));
}
# (a snapshot on every member now: the one snapshot_entries asks for runs in
# the background, and on a busy machine node 4 came before the compaction and
# joined from the entries)
ok($c->compact(1, 1, 2, 3), 'every member took a snapshot: the log is compacted');
$c->node($c->leader(1))->safe_psql('postgres', "SELECT dragonraft.add_member(1, 4, '" . $c->raft_address(4) . "')");
$c->node(4)->safe_psql('postgres', "SELECT dragonraft.join_group(1, '" . $c->members(1, 2, 3) . "')");
$c->group_nodes(1, 1, 2, 3, 4);
ok( $c->wait_until(
		'node 4 to load a snapshot',
		sub {
			($c->poll(4, q{SELECT snapshots_received >= 1 FROM dragonraft.stat_groups WHERE group_id = 1}) // '')
			  eq 't';
		}),
	'the bare node 4 joins from a snapshot');
ok($c->caught_up(1), 'and catches up');
is($c->query(4, q{SELECT state || coalesce('|' || error, '') FROM dragonraft.status WHERE group_id = 1}),
	'ok', 'node 4: its load replayed the history, the skipped command left out');
is($c->query(4, $history), $c->query(1, $history), "node 4 has node 1's dragonraft.ddl_history");
is($c->query(4, $raced), $c->query(1, $raced), 'in which the skipped command stays skipped');
is($c->catalog(4), $c->catalog(1), "node 4 has node 1's schema");
is($c->contents(4, 'x', 'k'), $c->contents(1, 'x', 'k'), "node 4 has node 1's rows");

done_testing();
