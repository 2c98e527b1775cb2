# Review 24: a backend that waits in COMMIT on the leader is SIGKILLed, so
# the postmaster restarts every process (engine and apply workers
# included): crash recovery.  The entries proposed are committed in the
# log (or not), and each must then be on every member exactly once, the
# leader included, whose local commit never happened:
#  A. the backend whose turn came (its replication origin set up, its local
#     commit held by dragonraft.testing_commit_delay) is killed, with another
#     COMMIT waiting for its turn behind it;
#  B. the one waiting for its turn behind it is killed;
#  C. a COMMIT whose proposal waits for a quorum (the followers' servers
#     SIGSTOPped) is killed, the followers continued meanwhile.
# Then: the node comes back, every member applied everything and has the
# same rows, dragonraft.status is truthful, a later write and execute()
# work, nothing waits in pg_stat_activity.  And a COMMIT waiting for its turn
# terminated (pg_terminate_backend) three times leaves nothing behind, and so
# does one whose client vanished (its backend ends before its turn).
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;

my $c = DragonCluster->new(3, conf => "dragonraft.election_rtt = 60\nrestart_after_crash = on\n");
$c->create_group(1);
my $l = $c->leader(1);
$c->node($l)->safe_psql('postgres', q{CREATE TABLE t (id int PRIMARY KEY, v int);
	SELECT dragonraft.replicate_table('t', 1);});
ok($c->caught_up(1), 'table replicated');

# A psql session running sql on node id, named app.
sub session
{
	my ($id, $app, $sql) = @_;
	my $s = { in => \(my $in = "\\set VERBOSITY verbose\n$sql\n"), out => \(my $out = ''), err => \(my $err = '') };
	$s->{h} = IPC::Run::start(['psql', '-XAtq', '-d', $c->node($id)->connstr('postgres') . " application_name=$app"],
		'<', $s->{in}, '>', $s->{out}, '2>', $s->{err});
	return $s;
}

# The pid of app's backend once it waits on wait_event (LIKE pattern) or undef.
sub waiting
{
	my ($id, $app, $event, @s) = @_;
	my $pid;
	$c->wait_until("$app to wait", sub {
		$_->{h}->pump_nb for @s;
		$pid = $c->poll($id, "SELECT pid FROM pg_stat_activity WHERE application_name = '$app' "
			  . "AND state = 'active' AND coalesce(wait_event, '') LIKE '$event'");
		return defined $pid && $pid ne '';
	}) or return undef;
	return $pid;
}

sub finish { my ($s) = @_; eval { $s->{h}->finish; }; eval { $s->{h}->kill_kill; }; }

# A psql session on node id named app, connected and idle: the second
# writer of a pair, started before the first one takes its turn.  Its
# statement (send_sql) then reaches the server at once: a psql started only
# once the first writer holds its turn (3 s) may be later than that on a
# loaded machine (a psql start took 2 s there), and the second writer then
# commits after the first instead of waiting for its turn.
sub ready_session
{
	my ($id, $app) = @_;
	my $s = session($id, $app, "SELECT 'ready';");
	$c->wait_until("$app to connect", sub { $s->{h}->pump_nb; ${ $s->{out} } =~ /^ready$/m })
	  or die "$app did not connect";
	return $s;
}
sub send_sql { my ($s, $sql) = @_; ${ $s->{in} } .= "$sql\n"; $s->{h}->pump_nb; return $s; }

sub back_after_crash
{
	$c->wait_until("node $l to come back", sub { defined $c->poll($l, 'SELECT 1') });
	$c->wait_until("node ${l}'s engine", sub {
		($c->poll($l, 'SELECT engine_state FROM dragonraft.node_status()') // '') eq 'running' });
}

# Every member: group ok, applied = commit, the same rows as the others.
sub agree
{
	my ($what) = @_;
	ok($c->caught_up(1), "$what: every member caught up");
	my %rows;
	for my $id ($c->ids)
	{
		$rows{ $c->contents($id, 't', 'id') }++;
		my $st = $c->poll($id, "SELECT state, applied_index = commit_index FROM dragonraft.status WHERE group_id = 1");
		is($st, 'ok|t', "$what: node ${id}'s status");
	}
	is(scalar(keys %rows), 1, "$what: the members have the same rows") or diag explain \%rows;
}

my $k = 0;
for my $kind ('A', 'B', 'C')
{
	$k += 10;
	$l = $c->leader(1);
	my @f = grep { $_ != $l } $c->ids;
	my ($a, $b, $victim);
	if ($kind eq 'C')
	{
		kill 'STOP', map { $c->server_pids($_) } @f;
		$a = session($l, 'a', "INSERT INTO t VALUES ($k, 1);");
		$victim = waiting($l, 'a', '%', $a);
	}
	else
	{
		$a = session($l, 'a', "SET dragonraft.testing_commit_delay = '60s';\nINSERT INTO t VALUES ($k, 1);");
		waiting($l, 'a', 'Extension', $a);
		$b = session($l, 'b', "INSERT INTO t VALUES ($k + 1, 1);");
		my $bpid = waiting($l, 'b', 'Extension', $a, $b);
		# b waits for its turn once its entry is committed in the log
		$c->wait_until('the entry of b in the log', sub {
			($c->poll($l, "SELECT commit_index - applied_index FROM dragonraft.status WHERE group_id = 1") // 0) >= 2 });
		$victim = $kind eq 'A'
		  ? $c->poll($l, "SELECT pid FROM pg_stat_activity WHERE application_name = 'a'")
		  : $bpid;
	}
	ok($victim, "$kind: the victim waits in COMMIT");
	kill 'KILL', $victim;
	# (the postmaster reaped it: its crash restart has begun)
	$c->wait_until("$kind: the victim gone", sub {
		open(my $fh, '<', "/proc/$victim/stat") or return 1;
		my $st = <$fh> // '';
		return $st =~ /^\d+ \(.*\) Z /;
	});
	kill 'CONT', map { $c->server_pids($_) } @f if $kind eq 'C';
	finish($_) for grep { defined } ($a, $b);
	back_after_crash();
	$c->leader(1);
	agree("$kind");
	my $n = $c->query($c->leader(1), "SELECT count(*) FROM t WHERE id BETWEEN $k AND $k + 1");
	diag "$kind: $n of its rows committed";
	ok($kind eq 'C' || $n == 2, "$kind: the entries committed in the log are there");
	$l = $c->leader(1);
	$c->node($l)->safe_psql('postgres', "INSERT INTO t VALUES ($k + 5, 5)");
	$c->node($l)->safe_psql('postgres', "SELECT dragonraft.execute(1, 'SELECT 1')");
	agree("$kind, a later write");
}

# pg_terminate_backend of a COMMIT that waits for its turn, three times
# (each round the same: b terminated while a holds its turn, b's entry
# committed in the log; a turn one left taken would hold every later
# COMMIT, and a busy wait or a waiting backend left is counted at the end).
$l = $c->leader(1);
my @told;
for my $i (1 .. 3)
{
	my $id = 1000 + 2 * $i;
	my $b = ready_session($l, 'b');
	my $a = session($l, 'a', "SET dragonraft.testing_commit_delay = '3s';\nINSERT INTO t VALUES ($id, 1);");
	waiting($l, 'a', 'Extension', $a);
	send_sql($b, "INSERT INTO t VALUES ($id + 1, 1);");
	my $bpid = waiting($l, 'b', 'Extension', $a, $b);
	$c->wait_until('the entry of b in the log', sub {
		($c->poll($l, "SELECT commit_index - applied_index FROM dragonraft.status WHERE group_id = 1") // 0) >= 2 });
	$c->poll($l, "SELECT pg_terminate_backend($bpid)");
	finish($a);
	finish($b);
	push @told, "a: ${$a->{err}} b: ${$b->{err}}" if ${ $a->{err} } =~ /ERROR/;
}
is(scalar(@told), 0, 'every a committed') or diag join("\n", @told);
agree('terminated 3 times');
is($c->query($l, "SELECT count(*) FROM t WHERE id > 1000"), 6, 'every terminated COMMIT was applied from the log');
# A client that vanishes (SIGKILL of its psql) while its COMMIT waits for
# its turn: the backend notices (it looks at its socket) and ends before the
# turn comes; its entry is applied from the log.  (What is asked is seen in
# one poll: b's backend gone while a still holds its turn, 15 s, not a time:
# 'within 6 s' of an 8 s hold left the setup before the kill, on a loaded
# machine, little room.)
{
	my $b = ready_session($l, 'b');
	my $a = session($l, 'a', "SET dragonraft.testing_commit_delay = '15s';\nINSERT INTO t VALUES (3000, 1);");
	waiting($l, 'a', 'Extension', $a);
	send_sql($b, "INSERT INTO t VALUES (3001, 1);");
	my $bpid = waiting($l, 'b', 'Extension', $a, $b);
	$c->wait_until('the entry of b in the log', sub {
		($c->poll($l, "SELECT commit_index - applied_index FROM dragonraft.status WHERE group_id = 1") // 0) >= 2 });
	kill 'KILL', $b->{h}{KIDS}[0]{PID};
	my $seen = '';
	ok($c->wait_until('the backend of the vanished client to end', sub {
		$a->{h}->pump_nb;
		$seen = $c->poll($l, "SELECT count(*) FILTER (WHERE pid = $bpid) || ' ' || "
			  . "count(*) FILTER (WHERE application_name = 'a' AND state = 'active') FROM pg_stat_activity") // '';
		$seen =~ /^0 / }),
		'the backend of a vanished client ends');
	is($seen, '0 1', 'while its COMMIT waited for its turn: a still held its own');
	finish($a);
	eval { $b->{h}->finish; };
	unlike(${ $a->{err} }, qr/ERROR/, 'the COMMIT ahead of it committed');
	agree('a vanished client');
	is($c->query($l, 'SELECT count(*) FROM t WHERE id IN (3000, 3001)'), 2,
		"the vanished client's entry was applied from the log");
}
is($c->query($l, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Extension' AND backend_type = 'client backend'"),
	0, 'nothing waits');
is($c->query($l, q{SELECT count(*) FROM dragonraft.busy_waits}), 0, 'no busy wait left');
done_testing();
