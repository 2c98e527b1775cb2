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
ok($c->caught_up(1), 'table t replicated');
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

done_testing();
