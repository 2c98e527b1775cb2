# A group made again on a node under the same id (review 44): what the apply
# worker still had of the earlier group must not reach the new one.
#
# Node 2's apply worker is stopped (SIGSTOP) from before group 30 is made on
# nodes 1, 2 and 3 until after node 2 left it, dropped and created the
# extension again, forgot that it left (forget_left_group) and made group 30 again
# alone: its queue holds the first group 30's entries from entry 1 (a
# command, a table's registration, rows), then the new group's.  The apply
# worker took every entry of the group id for the group on the node now: it
# applied the old group's entries as the new group's first ones, moved the
# new origin past them and skipped the new group's own entries at those
# indexes (its command never ran; the old group's table was registered in
# it).  The engine worker now says which group's entry (DrGroup.made) each
# message carries, and the apply worker drops those of a group gone since.
#
# Part 2: a snapshot loader registered for a group (node 3 joins group 40)
# that starts only after the node left the group and made it again (its
# postmaster stopped meanwhile) took the new group for its own: its failure
# stopped the new group, or it loaded the old group's snapshot into it.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use PostgreSQL::Test::Utils;
use Test::More;

# (no batch stays open once the queue is empty: none holds a lock when the
# apply worker stops)
# (part 2: a member that joins group 40 needs a snapshot)
my $c = DragonCluster->new(3, conf => "dragonraft.apply_batch_delay = 0\n"
	  . "dragonraft.snapshot_entries = 50\ndragonraft.compaction_overhead = 5\n");
my $N1 = $c->node(1);
my $N2 = $c->node(2);
my $N3 = $c->node(3);
sub sql1 { return $N1->safe_psql('postgres', $_[0]); }
sub sql2 { return $N2->safe_psql('postgres', $_[0]); }
sub sql3 { return $N3->safe_psql('postgres', $_[0]); }
my $addr2 = $c->raft_address(2);

# Group 10 starts node 2's apply worker (it leaves the group too before
# DROP EXTENSION, which a member of any group is refused).
$c->create_group(10, 1, 2, 3);
ok($c->caught_up(10), 'group 10 applies on every node');
ok($c->lead(10, 1), 'node 1 leads group 10');
# Settled before node 2's apply worker stops: the members' infos and a new
# leader's addresses are entries of dragonraft's own, proposed on their own
# after a group starts or its leadership moves; one that reached node 2's
# apply worker as it stopped would leave it inside a batch of group 10,
# whose origin leave_group(10) below would then wait for for ever.
die 'group 10 did not settle' unless $c->settled(10);
my $apid2;
ok($c->wait_until('the apply worker of node 2',
		sub { ($apid2 = sql2('SELECT apply_pid FROM dragonraft.node_status()')) ne '' }),
	'node 2 runs its apply worker');

# 1. Group 30 is made and written while node 2's apply worker is stopped.
kill 'STOP', $apid2;
$c->create_group(30, 1, 2, 3);
# (the test's helpers look at nodes 1 and 3 only: node 2 is not applying)
$c->group_nodes(30, 1, 3);
ok($c->lead(30, 1), 'node 1 leads group 30');
sql1(q{SELECT dragonraft.execute(30, 'CREATE TABLE t30 (a int PRIMARY KEY, b text)')});
sql1(q{SELECT dragonraft.replicate_table('t30', 30)});
sql1("INSERT INTO t30 VALUES ($_, 'old $_')") for 1 .. 10;
my $last = sql1(q{SELECT dragonraft.execute(30, 'CREATE TABLE old30 (a int)')});
ok($c->wait_until("node 2 to know that entry $last of group 30 committed",
		sub { sql2('SELECT commit_index FROM dragonraft.status WHERE group_id = 30') >= $last }),
	"node 2 has group 30's entries up to $last waiting for its stopped apply worker");
is(sql2('SELECT applied_index FROM dragonraft.status WHERE group_id = 30'), '0',
	'node 2 applied none of them');

# Node 2 leaves it, drops and creates the extension again, forgets that it
# left group 30, and makes group 30 again alone.
sql1('SELECT dragonraft.remove_member(30, 2, true)');
sql2('SELECT dragonraft.leave_group(30, force => true)');
sql1('SELECT dragonraft.remove_member(10, 2, true)');
sql2('SELECT dragonraft.leave_group(10, force => true)');
$c->group_nodes(10, 1, 3);
sql2('DROP EXTENSION dragonraft');
sql2('CREATE EXTENSION dragonraft');
sql2('SELECT dragonraft.forget_left_group(30, 2)');
ok($c->wait_until('the engine worker of node 2',
		sub { sql2('SELECT engine_state FROM dragonraft.node_status()') eq 'running' }),
	'node 2 runs its engine worker again');
sql2(qq{SELECT dragonraft.create_group(30, '{"2": "$addr2"}')});
ok($c->wait_until('the new group 30 to have a leader on node 2',
		sub { sql2('SELECT leader_id FROM dragonraft.status WHERE group_id = 30') eq '2' }),
	'node 2 leads the new group 30');
is(sql2('SELECT apply_pid FROM dragonraft.node_status()'), $apid2,
	'node 2 has the same (stopped) apply worker');
kill 'CONT', $apid2;

# The new group's commands, written past the old group's last index.
my $n = 0;
my $idx = 0;
while ($idx <= $last + 2)
{
	# (each try adds an entry, or its statement_timeout ends it: bounded)
	die "group 30 on node 2 is at $idx after $n commands" if $n >= 3 * ($last + 3);
	$n++;
	# (one that waits in vain for its apply gives up: its entry stays)
	my ($ret, $out) = $N2->psql('postgres',
		"SET statement_timeout = '5s'; SELECT dragonraft.execute(30, 'CREATE TABLE new30_$n (a int)')");
	$idx = $ret == 0 ? $out : sql2('SELECT commit_index FROM dragonraft.status WHERE group_id = 30');
}
ok($c->wait_until('the new group 30 to be applied on node 2',
		sub { sql2('SELECT applied_index > 0 AND applied_index = commit_index FROM dragonraft.status WHERE group_id = 30') eq 't' }),
	'the new group 30 is applied on node 2');
is(sql2(q{SELECT count(*) FROM pg_class WHERE relname LIKE 'new30\_%'}), "$n",
	"the new group's $n commands ran on node 2");
is(sql2(q{SELECT count(*) FROM pg_class WHERE relname IN ('t30', 'old30')}), '0',
	"none of the old group's commands ran on node 2");
is(sql2('SELECT count(*) FROM dragonraft.replicated_tables WHERE group_id = 30'), '0',
	'the new group 30 has no table of the old one');
is(sql2('SELECT count(*) FROM dragonraft.ddl_history WHERE group_id = 30'), "$n",
	"its command history is the new group's");
is(sql2(q{SELECT pg_replication_origin_progress('dragonraft_30', false) = '0/0'::pg_lsn + applied_index
		FROM dragonraft.status WHERE group_id = 30}), 't',
	'the origin of the new group 30 holds its applied index');
is(sql2(q{SELECT string_agg(node_id::text, ',') FROM dragonraft.member_info WHERE group_id = 30}),
	'2', 'its member info is its own');
is(sql2(q{SELECT coalesce(error, '') FROM dragonraft.status WHERE group_id = 30}), '',
	'no error on the new group 30');
is(sql2('SELECT apply_pid FROM dragonraft.node_status()'), $apid2,
	'the same apply worker on node 2');

# The old group 30 goes on on nodes 1 and 3, alike.
sql1("INSERT INTO t30 VALUES (11, 'after')");
ok($c->caught_up(30), 'the old group 30 applies on nodes 1 and 3');
is(sql3('SELECT digest FROM dragonraft.table_digest(30) WHERE relid = \'t30\'::regclass'),
	sql1('SELECT digest FROM dragonraft.table_digest(30) WHERE relid = \'t30\'::regclass'),
	'nodes 1 and 3 have the same t30');
ok($c->caught_up(10), 'group 10 applies on nodes 1 and 3');

# Each node has the origins of its groups, and no other.
for my $id (1, 2, 3)
{
	is($c->node($id)->safe_psql('postgres',
			q{SELECT string_agg(roname, ',' ORDER BY roname) FROM pg_replication_origin}),
		$id == 2 ? 'dragonraft_30' : 'dragonraft_10,dragonraft_30',
		"node $id has the origins of its groups");
}

# Node 2 restarts: the new group 30 goes on from its origin.
$N2->restart;
ok($c->wait_until('the new group 30 to have a leader on node 2 again',
		sub { ($c->poll(2, 'SELECT leader_id FROM dragonraft.status WHERE group_id = 30') // '') eq '2' }),
	'node 2 leads the new group 30 after its restart');
$n++;
$c->query(2, "SELECT dragonraft.execute(30, 'CREATE TABLE new30_$n (a int)')");
is(sql2(q{SELECT count(*) FROM pg_class WHERE relname LIKE 'new30\_%'}), "$n",
	"the new group's $n commands ran on node 2");
is(sql2(q{SELECT pg_replication_origin_progress('dragonraft_30', false) = '0/0'::pg_lsn + applied_index
		AND applied_index = commit_index FROM dragonraft.status WHERE group_id = 30}), 't',
	'the origin of group 30 on node 2 holds its applied index after the restart');

# 2. A snapshot loader that starts late: node 3 joins group 40 (of nodes 1
# and 2, compacted: it needs a snapshot) while its postmaster is stopped
# (SIGSTOP), so the apply worker's loader is registered and not started;
# meanwhile node 3 leaves every group, drops and creates the extension and
# makes group 40 again alone.  Once the postmaster goes on, the loader must
# not load the first group 40's snapshot into the new one.
my $l40 = $c->group_needing_snapshots(40, 1, 2);
my $addr3 = $c->raft_address(3);
$c->node($l40)->safe_psql('postgres', "SELECT dragonraft.add_member(40, 3, '$addr3')");
$c->query(3, 'SELECT 1'); # (node 3's poll session, connected before the stop)
my ($jin, $jout, $jerr) = ("SELECT 1;\n", '', '');
my $join = IPC::Run::start(['psql', '-XAtq', '-d', $N3->connstr('postgres')],
	'<', \$jin, '>', \$jout, '2>', \$jerr);
$join->pump until $jout =~ /^1\n/;
my $pm3 = $N3->{_pid};
kill 'STOP', $pm3;
$jin .= "SELECT dragonraft.join_group(40, '" . $c->members(1, 2, 3) . "');\n";
$join->pump_nb;
ok($c->wait_until('node 3\'s apply worker to register a loader of group 40',
		sub { ($c->poll(3, q{SELECT count(*) FROM dragonraft.stat_progress_snapshot
				WHERE group_id = 40 AND role = 'receiver' AND coalesce(pid, 0) = 0}) // '') eq '1' }),
	'node 3 has a loader of group 40 registered, not started (its postmaster is stopped)');
$c->node($l40)->safe_psql('postgres', 'SELECT dragonraft.remove_member(40, 3, true)');
$c->query(3, 'SELECT dragonraft.leave_group(40, true)');
for my $g (10, 30)
{
	$c->group_nodes($g, 1, 3);
	my $l = $c->leading($g);
	if ($l == 3)
	{
		$c->query(3, "SELECT dragonraft.transfer_leader($g, 1)");
		$l = 1;
		$c->wait_until("node 1 to lead group $g",
			sub { sql1("SELECT role FROM dragonraft.status WHERE group_id = $g") eq 'leader' });
	}
	sql1("SELECT dragonraft.remove_member($g, 3, true)");
	$c->query(3, "SELECT dragonraft.leave_group($g, true)");
	$c->group_nodes($g, 1);
}
$c->query(3, 'DROP EXTENSION dragonraft');
$c->query(3, 'CREATE EXTENSION dragonraft');
$c->query(3, 'SELECT dragonraft.forget_left_group(40, 3)');
$c->query(3, qq{SELECT dragonraft.create_group(40, '{"3": "$addr3"}')});
ok($c->wait_until('the new group 40 to have a leader on node 3',
		sub { ($c->poll(3, 'SELECT leader_id FROM dragonraft.status WHERE group_id = 40') // '') eq '3' }),
	'node 3 leads the new group 40');
kill 'CONT', $pm3;
$join->finish;
note "join_group: $jout / $jerr";
# The loader ran (or never will): its job is gone.
ok($c->wait_until('the loader of node 3 to end',
		sub { ($c->poll(3, q{SELECT count(*) FROM dragonraft.stat_progress_snapshot WHERE group_id = 40}) // '') eq '0' }),
	'node 3\'s loader of group 40 ended');
my $cmd = $c->query(3, q{SELECT dragonraft.execute(40, 'CREATE TABLE new40 (a int)')});
ok($c->wait_until('the new group 40 to be applied on node 3',
		sub { ($c->poll(3, 'SELECT applied_index > 0 AND applied_index = commit_index FROM dragonraft.status WHERE group_id = 40') // '') eq 't' }),
	'the new group 40 is applied on node 3');
is($c->query(3, q{SELECT count(*) FROM pg_class WHERE relname = 't' AND relnamespace = 'public'::regnamespace}), '0',
	'the old group 40\'s table is not on node 3');
is($c->query(3, 'SELECT count(*) FROM dragonraft.replicated_tables WHERE group_id = 40'), '0',
	'the new group 40 has no table');
is($c->query(3, q{SELECT count(*) FROM pg_class WHERE relname = 'new40'}), '1',
	'its command ran');
is($c->query(3, q{SELECT pg_replication_origin_progress('dragonraft_40', false) = '0/0'::pg_lsn + applied_index
		FROM dragonraft.status WHERE group_id = 40}), 't',
	'the origin of the new group 40 holds its applied index');
is($c->query(3, 'SELECT applied_index <= commit_index FROM dragonraft.status WHERE group_id = 40'), 't',
	'and it is not past its commit index');

done_testing();
