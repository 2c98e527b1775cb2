# Review 3 fixes (membership and linearizable reads): a change that would
# leave no quorum of voters that answer is refused unless forced (a live
# voter removed while another is down, a non-voter promoted before it caught
# up); a linearizable read in REPEATABLE READ or SERIALIZABLE is refused
# instead of returning stale rows; a read barrier does not wait for ever for
# an apply worker that does not move, nor for one that waits for a lock the
# reading transaction holds.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $c = DragonCluster->new(3);
$c->create_group(1, 1, 2, 3);
my $l = $c->leader(1);
ok($l, "group 1 has a writable leader (node $l)");
my ($f1, $f2) = grep { $_ != $l } 1 .. 3;
my $L = $c->node($l);
my $F = $c->node($f1);
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, 'CREATE TABLE t (id int PRIMARY KEY, v text)')});
$L->safe_psql('postgres', q{INSERT INTO t VALUES (1, 'one'); SELECT dragonraft.replicate_table('t', 1)});
ok($c->caught_up(1), 'nodes 1-3 replicate t');

# Linearizable reads: READ COMMITTED only.
for my $iso ('REPEATABLE READ', 'SERIALIZABLE')
{
	my ($st, $msg) = $c->sql_error($f1,
		"SET dragonraft.read_consistency = 'linearizable'; BEGIN ISOLATION LEVEL $iso; SELECT count(*) FROM t; COMMIT");
	is($st, '0A000', "a linearizable read in $iso is refused");
	like($msg, qr/read_barrier\(group_id\) before BEGIN/, 'and the hint says what to do');
}
is($F->safe_psql('postgres',
		"SET dragonraft.read_consistency = 'linearizable'; BEGIN; SELECT count(*) FROM t; COMMIT"),
	'1', 'a linearizable read in READ COMMITTED answers');

# A barrier whose apply does not move ends with an error: the apply worker
# stopped, then one waiting for a lock that the reading transaction holds.
my $apply = $F->safe_psql('postgres', 'SELECT apply_pid FROM dragonraft.node_status()');
kill 'STOP', $apply;
$L->safe_psql('postgres', "INSERT INTO t VALUES (2, 'two')");
my ($st, $msg) = $c->sql_error($f1, "SET statement_timeout = '180s'; SELECT dragonraft.read_barrier(1)");
kill 'CONT', $apply;
is($st, '55000', 'a read barrier does not wait for a stopped apply worker');
like($msg, qr/apply is stuck at entry .* did not move for/s, 'and says why');
ok($c->wait_until('the barrier once the apply worker runs again',
		sub { $c->sql_error($f1, 'SELECT dragonraft.read_barrier(1)') eq '' }),
	'once it runs again the barrier returns');

my $holder = $F->background_psql('postgres', on_error_stop => 0);
$holder->query_safe("BEGIN; SET LOCAL statement_timeout = '180s'; LOCK TABLE t IN SHARE MODE");
$L->safe_psql('postgres', "INSERT INTO t VALUES (3, 'three')");
$holder->query("SET dragonraft.read_consistency = 'linearizable'; SELECT count(*) FROM t");
like($holder->{stderr}, qr/apply is stuck .* waits for a lock that this transaction holds/s,
	'a linearizable read waiting for an apply blocked by its own lock fails at once');
$holder->query('ROLLBACK');
$holder->quit;
ok($c->caught_up(1), 'then the apply goes on');
is($F->safe_psql('postgres', 'SELECT count(*) FROM t'), '3', 'with every row');

# A quiescent group exchanges no heartbeats: there a member answers while the
# transport has a connection to it open.  Adding a voter that does not answer
# to three that do leaves a quorum of four: allowed.
my $stale = "last_contact < now() - 2 * current_setting('dragonraft.election_rtt')::int * "
  . "(SELECT setting::int FROM pg_settings WHERE name = 'dragonraft.rtt_ms') * interval '1 ms'";
ok( $c->wait_until('group 1 quiescent, its followers not heard from for a while',
		sub {
			$L->safe_psql('postgres',
				"SELECT (SELECT quiescent FROM dragonraft.status WHERE group_id = 1) AND bool_and($stale) "
				  . "FROM dragonraft.members WHERE group_id = 1 AND node_id <> $l") eq 't';
		}),
	'group 1 quiesces');
$L->safe_psql('postgres', "SELECT dragonraft.add_member(1, 7, '127.0.0.1:9')");
$L->safe_psql('postgres', 'SELECT dragonraft.remove_member(1, 7)');
pass('in a quiescent group the connected members answer');

# Membership: with voter f2 down, removing the live voter f1 would leave
# {leader, f2} of which one answers: refused.  A non-voter that never joined
# is not promoted.  force overrides; removing the down voter is allowed.
$c->node($f2)->stop('fast');
ok($c->wait_until("the leader to see node $f2 gone",
		sub { $L->safe_psql('postgres',
				"SELECT $stale FROM dragonraft.members WHERE group_id = 1 AND node_id = $f2") eq 't' }),
	"the leader no longer hears from node $f2");
($st, $msg) = $c->sql_error($l, "SELECT dragonraft.remove_member(1, $f1)");
is($st, '55000', 'removing a live voter while another is down is refused');
like($msg, qr/without a quorum that answers.*1 of its 2 voters would answer/s, 'and says why');
$L->safe_psql('postgres', "SELECT dragonraft.add_member(1, 8, '127.0.0.1:9', false)");
($st, $msg) = $c->sql_error($l, 'SELECT dragonraft.promote_member(1, 8)');
is($st, '55000', 'a non-voter that never joined is not promoted');
like($msg, qr/node 8 has not caught up.*does not answer/s, 'and the error says so');
$L->safe_psql('postgres', 'SELECT dragonraft.remove_member(1, 8)');
$L->safe_psql('postgres', "SELECT dragonraft.remove_member(1, $f2)");
is($L->safe_psql('postgres',
		q{SELECT string_agg(node_id::text, ',' ORDER BY node_id) FROM dragonraft.members WHERE group_id = 1}),
	join(',', sort { $a <=> $b } $l, $f1), 'removing the voter that is down is allowed');
$L->safe_psql('postgres', "INSERT INTO t VALUES (4, 'four')");
is($F->safe_psql('postgres',
		"SET dragonraft.read_consistency = 'linearizable'; SELECT count(*) FROM t WHERE id = 4"),
	'1', 'and the group goes on');

done_testing();
