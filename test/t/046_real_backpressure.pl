# Real backpressure from the engine (review 11 F3), not dragonraft.testing_busy:
# the leader of a 3-node group whose followers are stopped holds an entry
# larger than its limit of uncommitted bytes (32 MiB; an entry that finds
# nothing uncommitted passes once), so the Raft core refuses every further
# proposal (ENGINE_ERR_BUSY: nothing appended).
# - A COMMIT and a dragonraft.execute() then wait (dragonraft.busy_waits shows
#   them) and append nothing: the leader's last index stays at the big entry;
#   once a follower is back the big entry commits, then each of them, once:
#   the commit index moves by exactly three, the rows and the command are there
#   once on every node.
# - Again with dragonraft.busy_timeout = 1 s: the COMMIT and the execute()
#   fail with 53000 ("Nothing was proposed"), and nothing of theirs commits
#   after the followers are back.
# The leader is node 1 with a long election timeout (60 s), so that its
# CheckQuorum keeps it leading while its followers are down; the followers
# come back one at a time, so that two restarted followers cannot elect one
# of them (pre-vote) and overwrite the big entry.  Once both are back they
# may still elect one of them (node 1 busy catching node 3 up on a loaded
# host): part 2 makes node 1 lead again first.  A wait the rest depends on
# that fails ends the test with what node 1 says (give_up).
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use PostgreSQL::Test::Utils;
use Test::More;

# Followers wait 2 s (not 0.5 s) for the leader before they campaign: its
# engine worker may be busy a moment sending them a 34 MiB entry.
my $c = DragonCluster->new(3, conf => "dragonraft.election_rtt = 40\n");
my $N1 = $c->node(1);
$N1->append_conf('postgresql.conf', 'dragonraft.election_rtt = 1200');
$N1->restart;
$c->create_group(1);
my $l = $c->leader(1);
ok($l, "group 1 has a leader (node $l)");
ok($c->lead(1, 1), 'node 1 leads group 1');

sub n1 { return $N1->safe_psql('postgres', $_[0]); }
sub indexes
{
	return split /\|/, $c->query(1, 'SELECT commit_index, last_index FROM dragonraft.status WHERE group_id = 1');
}
n1(q{SELECT dragonraft.execute(1, 'CREATE TABLE big (id int PRIMARY KEY, v text)')});
n1(q{SELECT dragonraft.replicate_table('big', 1)});
n1(q{SELECT dragonraft.execute(1, 'CREATE TABLE lockme (k int PRIMARY KEY)')});
n1(q{SELECT dragonraft.replicate_table('lockme', 1)});
ok($c->caught_up(1), 'every member has the tables');
# Each member proposes its client address once it knows a leader, backing
# off between tries, and the leader then proposes the members' addresses:
# one still to come would be the uncommitted entry the big one finds (it
# was: the big entry was refused, the small INSERT and the execute()
# appended).  Their entries are committed before the followers stop.
ok($c->settled(1), 'the log takes no entry of dragonraft\'s own any more');

# 34 values of 1 MiB: the change set goes detoasted into the entry (34 MiB).
my $big = sub {
	my ($from) = @_;
	return "INSERT INTO big SELECT i, repeat('x', 1048576) FROM generate_series($from, $from + 33) i;\n";
};

# A session that runs sql in the background: its output so far comes with
# the next call of $s->query.
sub background
{
	my ($sql) = @_;
	my $s = $N1->background_psql('postgres', on_error_stop => 0);
	$s->query_safe('\set VERBOSITY verbose');
	$s->query_until(qr/started/, "\\echo started\n$sql");
	return $s;
}

# Wait until node 1's log holds an entry after index $after.
sub appended
{
	my ($after) = @_;
	return $c->wait_until("an entry after $after in node 1's log",
		sub { (indexes())[1] > $after });
}

# What node 1 says when a wait of the test failed: its view of group 1, the
# writers waiting for it, its client sessions.
sub diagnosis
{
	my @q = (
		q{SELECT concat_ws(' ', 'role', role, 'term', term, 'leader', leader_id, 'commit', commit_index,
		         'applied', applied_index, 'last', last_index, 'state', state, error)
		    FROM dragonraft.status WHERE group_id = 1},
		q{SELECT 'busy_waits: ' || count(*) FROM dragonraft.busy_waits},
		q{SELECT string_agg(concat_ws(' ', pid, state, wait_event_type, wait_event, left(query, 60)), E'\n')
		    FROM pg_stat_activity WHERE backend_type = 'client backend' AND application_name <> 'dragoncluster_poll'});
	diag(join("\n", "node 1 says:", map { $c->poll(1, $_) // '(node 1 cannot be reached)' } @q));
	return;
}

# A wait the rest of the test depends on failed: say what node 1 says and
# end here, with a plan, its sessions killed (each would otherwise wait out
# its own timeout, and die: the test then ended with no plan).
sub give_up
{
	my @sessions = @_;
	diagnosis();
	eval { ($_->{run} // $_->{h})->kill_kill; } for grep { defined } @sessions;
	done_testing();
	exit;
}

# execute() needs a quorum for its read barrier: it passes it first, then
# waits for a lock on lockme (it tries its command here before it proposes
# it) that an idle reader holds until the followers are down.  The reader,
# and the session of the execute().  (Its commands name lockme with its
# schema: a command on an unknown table would make the waiting INSERT fail
# with 40001 if it came first in the log.)
sub execute_held
{
	my ($settings, $command) = @_;
	my $reader = $c->idle_reader(1, 'lockme');
	ok($reader, 'a session holds a lock on lockme');
	my $s = background("$settings\nSELECT dragonraft.execute(1, '$command') > 0 AS executed;\n");
	ok( $c->wait_until('execute() to wait for the lock on lockme',
			sub { n1(q{SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'
			             AND query LIKE 'SELECT dragonraft.execute%'}) == 1 }),
		'execute() passed its read barrier and waits for the lock');
	return ($reader, $s);
}

sub release
{
	my ($reader) = @_;
	${ $reader->{in} } .= "COMMIT;\n";
	$reader->{h}->finish;
	return;
}

# ---- 1. A COMMIT and an execute() wait, then commit once ----
my ($reader, $sc) = execute_held("SET dragonraft.busy_timeout = '5min';",
	'ALTER TABLE public.lockme ADD COLUMN after_busy int');
my ($commit0, $last0) = indexes();
is($commit0, $last0, 'nothing uncommitted');
$c->node($_)->stop for (2, 3);
my $sa = background($big->(1));
ok(appended($last0), 'the big entry is appended, and waits for a quorum') or give_up($reader, $sc, $sa);
my $sb = background("SET dragonraft.busy_timeout = '5min';\nINSERT INTO big VALUES (-1, 'b');\n");
ok( $c->wait_until('the INSERT to wait for the group',
		sub { $c->query(1, 'SELECT count(*) FROM dragonraft.busy_waits WHERE group_id = 1') == 1 }),
	'dragonraft.busy_waits shows the INSERT waiting for group 1')
  or diag(n1(q{SELECT string_agg(concat_ws(' ', pid, state, wait_event_type, wait_event, left(query, 60)), E'\n')
                FROM pg_stat_activity WHERE backend_type = 'client backend'}));
release($reader);
ok( $c->wait_until('the execute() to wait for the group too',
		sub { $c->query(1, 'SELECT count(*) FROM dragonraft.busy_waits WHERE group_id = 1') == 2 }),
	'once the lock is free, the execute() waits for group 1 too');
# (Each proposes again every 10 ms: seen at once, both may not be asleep.)
ok( $c->wait_until('the INSERT and the execute() to sleep on Extension at once',
		sub {
			n1(q{SELECT string_agg(a.query, ' | ' ORDER BY a.query) FROM dragonraft.busy_waits b
			       JOIN pg_stat_activity a USING (pid) WHERE a.wait_event_type = 'Extension'})
			  =~ /^INSERT INTO big VALUES \(-1, 'b'\); \| SELECT dragonraft\.execute/
		}),
	'they are the INSERT and the execute(), waiting on Extension');
# The view shows a wait until its proposal is taken, the proposals made again
# every 10 ms included: with node 1's engine worker stopped, their next
# proposals wait for it (within 10 ms), and both waits still show.  (Which of
# the two a backend is in cannot be seen from SQL: the view is read back to
# back for a second or two, and must show both every time.)
my $e1 = n1('SELECT engine_pid FROM dragonraft.node_status()');
kill 'STOP', $e1;
my @seen;
my $end = time + 2;
push @seen, $c->query(1, 'SELECT count(*) FROM dragonraft.busy_waits WHERE group_id = 1')
  while time < $end;
kill 'CONT', $e1;
my @missed = grep { $_ ne '2' } @seen;
is(scalar(@missed), 0,
	'dragonraft.busy_waits shows both all along, their proposals made again included ('
	  . scalar(@seen) . ' reads; the first that did not: ' . join(' ', @missed[0 .. ($#missed < 4 ? $#missed : 4)]) . ')');
my ($commit1, $last1) = indexes();
is($last1, $last0 + 1, 'while they wait, the log holds the big entry and nothing of theirs');
is($commit1, $commit0, 'and nothing commits');

$c->node(2)->start;
ok( $c->wait_until('the INSERT and the execute() to commit',
		sub { $c->query(1, 'SELECT count(*) FROM dragonraft.busy_waits') == 0 && (indexes())[0] >= $commit0 + 3 }),
	'with node 2 back, they stop waiting and commit');
$sa->query('SELECT 1');
$sb->query('SELECT 1');
like($sc->query('SELECT 1'), qr/^t$/m, 'execute() returned its index');
is($sa->{stderr} . $sb->{stderr} . $sc->{stderr}, '', 'the three of them without an error');
$_->quit for ($sa, $sb, $sc);
my ($commit2) = indexes();
is($commit2, $commit0 + 3, 'the commit index moved by three entries: one each');
$c->node(3)->start;
ok($c->caught_up(1), 'every member applied them');
for my $id ($c->ids)
{
	is( $c->node($id)->safe_psql('postgres',
			q{SELECT count(*), count(*) FILTER (WHERE id = -1) FROM big}),
		'35|1', "node $id has the big change set and the waiting INSERT's row, once");
	is( $c->node($id)->safe_psql('postgres',
			q{SELECT count(*), count(*) FILTER (WHERE a.attname IS NOT NULL)
			    FROM dragonraft.ddl_history h
			    LEFT JOIN pg_attribute a ON a.attrelid = 'lockme'::regclass AND a.attname = 'after_busy'
			   WHERE h.command LIKE '%after_busy%'}),
		'1|1', "node $id ran the waiting command once");
}

# ---- 2. busy_timeout ends the wait with 53000, nothing proposed ----
# From where part 1 started.  Node 1 may not lead any more: while node 3
# catches up on part 1's big entry, node 1 may send node 2 no heartbeat for
# 2 s on a loaded host, and nodes 2 and 3, both running again, elect one of
# them (a CI run, and beside two busy loops: node 1 then refused the big
# INSERT as a follower, 25006, and the test waited for its entry until it
# timed out, and died).
ok($c->lead(1, 1), 'node 1 leads group 1 again') or give_up();
ok($c->settled(1), 'the log takes no entry of dragonraft\'s own any more') or give_up();
($reader, $sc) = execute_held('SET dragonraft.busy_timeout = 1000;', 'ALTER TABLE public.lockme ADD COLUMN never_busy int');
($commit0, $last0) = indexes();
is($commit0, $last0, 'nothing uncommitted');
$c->node($_)->stop for (2, 3);
$sa = background($big->(101));
ok(appended($last0), 'another big entry is appended, and waits') or give_up($reader, $sc, $sa);
my ($state, $err) = $c->sql_error(1, "SET dragonraft.busy_timeout = 1000;\nINSERT INTO big VALUES (-2, 'd');");
is($state, '53000', 'a COMMIT that stays busy past dragonraft.busy_timeout fails with 53000');
like($err, qr/dragonraft group 1 is busy.*Nothing was proposed; it waited \d+ ms/s, 'saying that nothing was proposed');
release($reader);
$sc->query('SELECT 1');
like($sc->{stderr}, qr/ERROR:\s+53000: dragonraft group 1 is busy/, 'so does an execute()');
$sc->quit;
is(n1('SELECT count(*) FROM dragonraft.busy_waits'), '0', 'no wait is left behind');
# Nor by a writer terminated as it waits.
my $st = background("SET dragonraft.busy_timeout = '5min';\nINSERT INTO big VALUES (-3, 't');\n");
my $stpid;
ok( $c->wait_until('another INSERT to wait',
		sub { $stpid = $c->query(1, 'SELECT max(pid) FROM dragonraft.busy_waits'); $stpid ne '' }),
	'another INSERT waits');
n1("SELECT pg_terminate_backend($stpid)");
ok( $c->wait_until('the terminated writer to go',
		sub { $c->query(1, "SELECT count(*) FROM pg_stat_activity WHERE pid = $stpid") == 0 }),
	'it is terminated');
is(n1('SELECT count(*) FROM dragonraft.busy_waits'), '0', 'and leaves no row in dragonraft.busy_waits');
eval { $st->quit; };    # (its psql may have exited already: a broken pipe)
($commit1, $last1) = indexes();
is($last1, $last0 + 1, 'the log holds the big entry only');
$c->node(2)->start;
ok($c->wait_until('the big entry to commit', sub { (indexes())[0] > $commit0 }), 'it commits with node 2 back');
$sa->query('SELECT 1');
is($sa->{stderr}, '', 'its COMMIT succeeds');
$sa->quit;
($commit2) = indexes();
is($commit2, $commit0 + 1, 'the commit index moved by the big entry only');
$c->node(3)->start;
ok($c->caught_up(1), 'every member applied it');
for my $id ($c->ids)
{
	is( $c->node($id)->safe_psql('postgres',
			q{SELECT count(*), count(*) FILTER (WHERE id = -2),
			         NOT EXISTS (SELECT FROM pg_attribute WHERE attrelid = 'lockme'::regclass
			                        AND attname = 'never_busy')
			    FROM big}),
		'69|0|t', "node $id has neither the row nor the column of the writers that gave up");
}

done_testing();
