# A COMMIT that gave up on an engine worker that stopped answering after the
# worker took its proposal (40003: it may still commit, at an index the
# backend does not know) leaves its group's rows on that node possibly
# lacking that entry until the worker finishes it.  No later writer there may
# propose from such rows (review 13 F3: the next writer of the same key, same
# leader and term, committed its entry after it, and every member's apply
# stopped on a duplicate key): it is refused with 40001, nothing proposed,
# until the engine worker finished the proposal and its entry is applied.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use PostgreSQL::Test::Utils;
use Test::More;

# A long election timeout: the followers must not elect while the leader's
# worker is stopped.
my $c = DragonCluster->new(3, conf => "dragonraft.election_rtt = 30\n");
$c->create_group(1);
my $l = $c->leader(1);
my @f = grep { $_ != $l } $c->ids;
my $L = $c->node($l);
sub lsql { return $L->safe_psql('postgres', $_[0]); }
lsql(q{SELECT dragonraft.execute(1, 'CREATE TABLE t (id int PRIMARY KEY, who text)')});
lsql(q{SELECT dragonraft.replicate_table('t', 1)});
# (settled: the members' infos and the leader's addresses, entries of
# dragonraft's own proposed on their own after the group starts, would
# otherwise count as A's entry below, or as one of the four writers')
ok($c->settled(1), 'table t replicated');
sub epid { return $c->node($_[0])->safe_psql('postgres', 'SELECT engine_pid FROM dragonraft.node_status()'); }
my $lpid = epid($l);
my @fpids = map { epid($_) } @f;
my $last0 = lsql('SELECT last_index FROM dragonraft.status WHERE group_id = 1');

sub session
{
	my $s = $L->background_psql('postgres', on_error_stop => 0);
	$s->query_safe(q{\set VERBOSITY verbose});
	return ($s, $s->query_safe('SELECT pg_backend_pid()'));
}
my ($a, $apid) = session();
my ($b, $bpid) = session();

# The followers' workers stop, so the leader's worker takes A's proposal and
# waits for a quorum; then the leader's worker stops too, and the followers
# run again.
kill 'STOP', @fpids;
$a->query_until(qr/started/, "\\echo started\nINSERT INTO t VALUES (5, 'A');\n");
ok($L->poll_query_until('postgres', "SELECT last_index > $last0 FROM dragonraft.status WHERE group_id = 1"),
	'the leader appended A\'s entry');
kill 'STOP', $lpid;
kill 'CONT', @fpids;
lsql("SELECT pg_cancel_backend($apid)");
$a->query('SELECT 1');
like($a->{stderr}, qr/40003: .*Its change set was proposed, then the engine worker stopped answering/s,
	'A gives up after an election timeout: 40003, its outcome unknown');

# B writes the same key on the same leader (same term) while the worker is
# still stopped: A's row is not there, since A's transaction ended.
$b->query("INSERT INTO t VALUES (5, 'B')");
like($b->{stderr}, qr/40001: could not serialize access: an earlier transaction of dragonraft group 1 is being applied from the log.*Nothing was proposed/s,
	'B is refused with 40001, nothing proposed');
$b->{stderr} = '';
$b->query("INSERT INTO t VALUES (6, 'B')");
like($b->{stderr}, qr/40001/, 'so is a write of another key, while the worker has not finished A\'s proposal');

kill 'CONT', $lpid;
ok($c->caught_up(1), 'the group goes on once the worker runs again');
# A's entry commits unless the followers elected meanwhile without it.
my $rows = $c->contents($l, 't', 'id');
ok($rows eq '(5,A)' || $rows eq '', "A's row is there as its entry's fate says, B's is not ($rows)");
is($c->contents($_, 't', 'id'), $rows, "node $_ has the same rows") for @f;
my $l2 = $c->leader(1);
$c->node($l2)->safe_psql('postgres', "INSERT INTO t VALUES (6, 'B')");
ok($c->caught_up(1), 'a write after it commits and every member applies it');
is($c->contents($_, 't', 'id'), ($rows eq '' ? '' : "$rows;") . '(6,B)', "node $_ has it") for $c->ids;
$_->quit for ($a, $b);

# A COMMIT during a leadership transfer (the Raft core takes no proposal
# until it ends) waits for its end as for backpressure, shown in
# dragonraft.busy_waits, then commits or is told the new leader (review 13
# F7: 55000, "see the server log").  The target's worker is stopped, so the
# transfer stays open until it is sent on again.
# The transfer ends by itself after an election timeout (1.5 s): both
# sessions start before it, and the polls reuse one session, so that a loaded
# machine's psql starts do not use that time up.
my $L2 = $c->node($l2);
my ($tgt) = grep { $_ != $l2 } $c->ids;
my $tpid = epid($tgt);
my $tr = $L2->background_psql('postgres', on_error_stop => 0);
my $w = $L2->background_psql('postgres', on_error_stop => 0);
$w->query_safe(q{\set VERBOSITY verbose});
my $wpid = $w->query_safe('SELECT pg_backend_pid()');
$c->query($l2, 'SELECT 1');
kill 'STOP', $tpid;
$tr->query_until(qr/tstarted/, "\\echo tstarted\nSELECT dragonraft.transfer_leader(1, $tgt);\n");
ok($c->wait_until('the transfer to start',
		sub { $c->query($l2, q{SELECT count(*) FROM pg_stat_activity
		        WHERE query LIKE 'SELECT dragonraft.transfer_leader%' AND wait_event_type = 'Extension'}) eq '1' }),
	'a transfer to a stopped node is under way');
$w->query_until(qr/wstarted/, "\\echo wstarted\nINSERT INTO t VALUES (7, 'T');\n");
ok($c->wait_until('the COMMIT to wait for the transfer',
		sub { ($c->poll($l2, "SELECT count(*) FROM dragonraft.busy_waits WHERE pid = $wpid") // '') eq '1' }),
	'the COMMIT waits for the transfer, shown in dragonraft.busy_waits');
kill 'CONT', $tpid;
$w->query('SELECT 1');
ok($w->{stderr} eq '' || $w->{stderr} =~ /ERROR:\s+25006: node $l2 is not the leader/,
	"it commits, or is told that this node no longer leads, with 25006 ($w->{stderr})");
$tr->query('SELECT 1');
$_->quit for ($tr, $w);
# (settled: a new leader proposes the members' addresses on its own)
ok($c->settled(1), 'the group goes on');
my $want = $c->contents($c->leader(1), 't', 'id');
is($c->contents($_, 't', 'id'), $want, "node $_ has the same rows") for $c->ids;

# Proposals given up on a stalled leader whose entries the next leader never
# had: the old leader's writers wait for a later term's no-op, not for their
# indexes, which nothing may ever fill (review 14 R3: when it led again,
# every writer got 40001 for as long as nothing else was committed).
my $l3 = $c->leader(1);
my $L3 = $c->node($l3);
my @f3 = grep { $_ != $l3 } $c->ids;
my @f3pids = map { epid($_) } @f3;
my $l3pid = epid($l3);
my $last3 = $L3->safe_psql('postgres', 'SELECT last_index FROM dragonraft.status WHERE group_id = 1');
# (The writers' sessions start first: with the followers stopped, the
# leader steps down after an election timeout, 1.5 s, which four psql
# starts took on a loaded machine.)
my @given;
for my $k (1 .. 4)
{
	my $h = $L3->background_psql('postgres', on_error_stop => 0);
	push @given, [ $h, $h->query_safe('SELECT pg_backend_pid()') ];
}
kill 'STOP', @f3pids;
for my $k (1 .. 4)
{
	$given[ $k - 1 ][0]->query_until(qr/started$k/, "\\echo started$k\nINSERT INTO t VALUES (20$k, 'lost');\n");
}
ok($L3->poll_query_until('postgres', "SELECT last_index >= $last3 + 4 FROM dragonraft.status WHERE group_id = 1"),
	'the stalled leader appended all four');
kill 'STOP', $l3pid;
$L3->safe_psql('postgres', "SELECT pg_cancel_backend($_->[1])") for @given;
for my $g (@given)
{
	$g->[0]->query('SELECT 1');
	like($g->[0]->{stderr}, qr/Its change set was proposed, then the engine worker stopped answering/, 'a writer gives up: outcome unknown');
	$g->[0]->quit;
}
# The followers lose what it sent them, and elect one of them.
for my $id (@f3) { $c->crash($id); $c->node($id)->start; }
ok($c->wait_until('a follower to lead', sub {
	grep { $c->node($_)->safe_psql('postgres', "SELECT role FROM dragonraft.status WHERE group_id = 1") eq 'leader' } @f3 }),
	'the followers elect a leader');
kill 'CONT', $l3pid;
ok($c->lead(1, $l3), 'the old leader leads again');
my ($rc3, $out3, $err3) = $L3->psql('postgres', q{INSERT INTO t VALUES (300, 'after')});
is($err3, '', 'a writer there commits');
ok($c->caught_up(1), 'every member applies it');
is($c->node($_)->safe_psql('postgres', "SELECT count(*) FROM t WHERE who IN ('lost', 'after')"), '1',
	"node $_ has the write after it and none that was given up") for $c->ids;

done_testing();
