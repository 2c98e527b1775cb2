# Review 3, the rest of the membership findings: a node that joined with
# only the leader's address learns every member's Raft address from the
# group and keeps up after the leadership moves (#4); join_group ends with
# an error when the joiner cannot apply the group's entries, and when the
# server's replication origins are all taken (#6); a table that the joiner
# refused is named to the client, and not read linearizably (#7); a joiner
# proposes its member info only once it caught up (#14); a removed node
# says so (#10).
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $c = DragonCluster->new(4);
$c->create_group(1, 1, 2, 3);
my $l = $c->leader(1);
ok($l, "group 1 has a writable leader (node $l)");
my $L = $c->node($l);
my $N4 = $c->node(4);
# The tables are made by hand (node 4 has its own, as a server that left a
# group keeps them): a CREATE TABLE through execute() would fail on node 4
# and stop its apply there.
$c->node($_)->safe_psql('postgres', 'CREATE TABLE t (id int PRIMARY KEY, v text)') for 1 .. 4;
$L->safe_psql('postgres', q{INSERT INTO t VALUES (1, 'one'); SELECT dragonraft.replicate_table('t', 1)});
ok($c->caught_up(1), 'nodes 1-3 replicate t');

# #4: node 4 joins as a voter knowing only the leader's address.
$L->safe_psql('postgres', "SELECT dragonraft.add_member(1, 4, '" . $c->raft_address(4) . "')");
$c->group_nodes(1, 1, 2, 3, 4);
$N4->safe_psql('postgres', "SELECT dragonraft.join_group(1, '" . $c->members($l) . "')");
my @others = grep { $_ != $l } 1 .. 3;
my $want = join(',', map { "$_=" . $c->raft_address($_) } @others);
ok( $c->wait_until('node 4 knows every member\'s address',
		sub {
			$N4->safe_psql('postgres',
				"SELECT string_agg(node_id || '=' || address, ',' ORDER BY node_id) FROM dragonraft.members "
				  . "WHERE group_id = 1 AND node_id NOT IN (4, $l)") eq $want;
		}),
	'a node that joined with the leader\'s address learns the other members\' from the group');

# The leadership moves to a node that node 4 was never told about.
my $new = $others[0];
ok($c->lead(1, $new), "node $new leads group 1");
$c->node($new)->safe_psql('postgres', "INSERT INTO t VALUES (2, 'two')");
ok($c->caught_up(1), 'node 4 applies the new leader\'s entries');
is($c->contents(4, 't', 'id'), $c->contents($new, 't', 'id'), 'node 4 has the new leader\'s rows');

# join_group on a member: it learns the addresses it is given.
my ($st, $msg) = $c->sql_error(4, "SELECT dragonraft.join_group(1, '" . $c->members(1, 2, 3) . "')");
is($st, '', 'join_group on a member succeeds');
like($msg, qr/already a member.*learned the addresses given for 3 other nodes/s, 'and says it learned the addresses');

# #6: a joiner whose apply fails (here a trigger of its own, which the apply
# worker fires: ENABLE ALWAYS) ends join_group with the apply's error.
$c->create_group(2, 1, 2, 3);
$l = $c->leader(2);
$L = $c->node($l);
$c->node($_)->safe_psql('postgres', 'CREATE TABLE t2 (id int PRIMARY KEY)') for 1 .. 3;
$L->safe_psql('postgres', q{INSERT INTO t2 VALUES (1); SELECT dragonraft.replicate_table('t2', 2)});
$N4->safe_psql('postgres', q{
CREATE TABLE t2 (id int PRIMARY KEY);
CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RAISE EXCEPTION 'boom %', NEW.id; END$$;
CREATE TRIGGER boom BEFORE INSERT ON t2 FOR EACH ROW EXECUTE FUNCTION boom();
ALTER TABLE t2 ENABLE ALWAYS TRIGGER boom});
$L->safe_psql('postgres', "SELECT dragonraft.add_member(2, 4, '" . $c->raft_address(4) . "', false)");
$c->group_nodes(2, 1, 2, 3, 4);
($st, $msg) = $c->sql_error(4,
	"SET statement_timeout = '120s'; SELECT dragonraft.join_group(2, '" . $c->members(1, 2, 3) . "')");
is($st, '55000', 'join_group ends when the joiner cannot apply the entries');
like($msg, qr/node 4 cannot apply the entries of group 2.*boom 1/s, 'and gives the apply\'s error');
# #14: meanwhile the joiner proposed no member info entry (each try would
# have timed out, its proposal applies only once it applied it, and grown
# the leader's log); it does once it caught up.
my $info = 'SELECT count(*) FROM dragonraft.member_info WHERE group_id = 2 AND node_id = 4';
is($L->safe_psql('postgres', $info), '0', 'a joiner that cannot apply proposes no member info');
# join_group run again once the cause is gone, as its hint says, waits for
# the apply worker's next try: after the fourth failure in a row that is 8 s
# away, more than join_group's bound for failing tries (10 election
# timeouts, 5 s).  Before, it returned at once ('already a member': node 4
# knows it is one), and without that it ended with 'every try failed' with
# no try made while it waited (found by doc65).
ok($c->wait_until('node 4 to fail to apply group 2 four times', sub {
	$c->poll(4, 'SELECT apply_errors >= 4 FROM dragonraft.stat_groups WHERE group_id = 2') eq 't' }),
	'node 4\'s apply of group 2 failed four times');
$N4->safe_psql('postgres', 'DROP TRIGGER boom ON t2');
($st, $msg) = $c->sql_error(4,
	"SET statement_timeout = '120s'; SELECT dragonraft.join_group(2, '" . $c->members(1, 2, 3) . "')");
is($st, '', 'join_group once the cause is gone waits for the next try, and returns');
like($msg, qr/node 4 joined group 2/, 'after waiting for node 4 to catch up');
ok($c->caught_up(2), 'without the trigger node 4 catches up');
is($c->contents(4, 't2', 'id'), '(1)', 'with the group\'s rows');
ok($c->wait_until('node 4\'s member info in group 2', sub { $L->safe_psql('postgres', $info) eq '1' }),
	'and then its member info reaches the group');

# #7: a joiner whose own copy of a group's table has rows refuses that table
# (a server that left the group kept its tables): join_group says so, and a
# linearizable read of it is refused as a local write is.
$c->create_group(3, 1, 2, 3);
$l = $c->leader(3);
$L = $c->node($l);
$c->node($_)->safe_psql('postgres', 'CREATE TABLE t3 (id int PRIMARY KEY)') for 1 .. 3;
$L->safe_psql('postgres', q{INSERT INTO t3 VALUES (1); SELECT dragonraft.replicate_table('t3', 3)});
$N4->safe_psql('postgres', 'CREATE TABLE t3 (id int PRIMARY KEY); INSERT INTO t3 VALUES (99)');
$L->safe_psql('postgres', "SELECT dragonraft.add_member(3, 4, '" . $c->raft_address(4) . "', false)");
$c->group_nodes(3, 1, 2, 3, 4);
($st, $msg) = $c->sql_error(4, "SELECT dragonraft.join_group(3, '" . $c->members(1, 2, 3) . "')");
is($st, '', 'join_group with a refused table returns');
like($msg, qr/WARNING:.*node 4 does not replicate some tables of group 3: t3 \(it has rows/s,
	'and warns the client, naming the table and why');
like($msg, qr/HINT:  Drop these tables here \(or rename them and their indexes\), then run dragonraft.resend_table on the group.s leader for each/,
	'and what to do');
($st, $msg) = $c->sql_error(4, "SET dragonraft.read_consistency = 'linearizable'; SELECT count(*) FROM t3");
is($st, '55000', 'a linearizable read of the refused table is refused');
like($msg, qr/table "t3" was refused by dragonraft group 3/, 'and says why');

# #6: the joiner's replication origin is made when its member starts, so
# join_group checks that one is free (here: all taken, by groups 1 to 3).
$N4->append_conf('postgresql.conf', 'max_replication_slots = 3');
$N4->restart;
$c->wait_until('the engine worker of node 4',
	sub { $N4->safe_psql('postgres', 'SELECT engine_state FROM dragonraft.node_status()') eq 'running' });
($st, $msg) = $c->sql_error(4, "SELECT dragonraft.join_group(4, '" . $c->members(1, 2, 3) . "')");
is($st, '53400', 'join_group with every replication origin taken is refused');
like($msg, qr/replication origins, as many as max_replication_slots allows/, 'and says why');
is($N4->safe_psql('postgres', 'SELECT count(*) FROM dragonraft.status WHERE group_id = 4'),
	'0', 'and leaves no member behind');

# #10: a node that applied its own removal says so: dragonraft.status,
# join_group (at once) and linearizable reads.  (A follower may never hear
# of its removal: the leader stops sending to it.  A leader that removes
# itself applies it.)
ok($c->lead(1, 4), 'node 4 leads group 1');
$N4->safe_psql('postgres', 'SELECT dragonraft.remove_member(1, 4)');
$c->group_nodes(1, 1, 2, 3);
ok( $c->wait_until('node 4 shows its removal',
		sub { $N4->safe_psql('postgres', 'SELECT state FROM dragonraft.status WHERE group_id = 1') eq 'removed' }),
	'a removed node\'s status says removed');
like($N4->safe_psql('postgres', 'SELECT error FROM dragonraft.status WHERE group_id = 1'),
	qr/node 4 was removed from group 1 .*leave_group\(1, force => true\)/, 'and what to do');
($st, $msg) = $c->sql_error(4, "SELECT dragonraft.join_group(1, '" . $c->members(1, 2, 3) . "')");
is($st, '22023', 'join_group on a removed node is refused');
like($msg, qr/node 4 was removed from group 1 and can never be a member again/, 'and says why');
($st, $msg) = $c->sql_error(4, "SET dragonraft.read_consistency = 'linearizable'; SELECT count(*) FROM t");
is($st, '55000', 'a linearizable read on a removed node is refused');
like($msg, qr/node 4 was removed from the group/, 'and says why');

done_testing();
