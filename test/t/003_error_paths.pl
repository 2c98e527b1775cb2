# The error paths of the engine worker and the apply worker (DESIGN §3, §10),
# on one node with single-member groups:
# - the engine worker's other threads block every signal;
# - SIGKILL of the apply worker with entries in flight: the postmaster's
#   crash restart brings the groups back, the apply worker resumes at the
#   durable applied index, and no entry is applied twice;
# - an entry that fails to apply parks its group only (state apply_failed,
#   retried with backoff) while the other groups go on, and it resumes once
#   the cause is gone;
# - a group whose entries wait for the apply worker shows catching_up;
# - create_group counts every replication origin of the server against
#   max_replication_slots, so that no group is created whose origin the
#   apply worker could not use;
# - a backend waiting on the engine worker gets an error when the worker
#   exits, and can be cancelled (statement_timeout) without leaving its
#   request behind;
# - SIGKILL of the engine worker: crash restart, groups come back;
# - a dragonraft.database that does not exist: node_status() says so.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $timeout = $PostgreSQL::Test::Utils::timeout_default;

my $node = PostgreSQL::Test::Cluster->new('solo');
$node->init;
my $rport = PostgreSQL::Test::Cluster::get_free_port();
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'dragonraft'
dragonraft.node_id = 1
dragonraft.listen_address = '127.0.0.1:$rport'
restart_after_crash = on
max_replication_slots = 10
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION dragonraft');
$node->poll_query_until('postgres',
	"SELECT engine_state = 'running' FROM dragonraft.node_status()")
  or die 'engine worker did not start';

sub sql { return $node->safe_psql('postgres', $_[0]); }

sub create_group
{
	my ($g) = @_;
	sql("SELECT dragonraft.create_group($g, '{\"1\": \"127.0.0.1:$rport\"}')");
}

# Every group has applied all it committed, and its member info is there.
my $all_applied = q{
	SELECT count(*) FILTER (WHERE s.state = 'ok' AND s.applied_index = s.commit_index
	                        AND i.node_id IS NOT NULL) || '/' || count(*)
	  FROM dragonraft.status s LEFT JOIN dragonraft.member_info i USING (group_id, node_id)};

my ($rc, $stdout, $stderr);

sub engine_pid { return sql('SELECT engine_pid FROM dragonraft.node_status()'); }
sub apply_pid { return sql('SELECT apply_pid FROM dragonraft.node_status()'); }

create_group(1);
ok($node->poll_query_until('postgres', $all_applied, '1/1'), 'group 1 elects itself and applies');

# 1. Every thread of the engine worker but the main one blocks every signal
# (PostgreSQL's latch and handlers belong to the main thread).
my $epid = engine_pid();
my @tasks = grep { $_ != $epid } map { m{/(\d+)$} ? $1 : () } glob("/proc/$epid/task/*");
ok(@tasks >= 3, 'the engine worker has RocksDB and libuv threads');
my $unblockable = (1 << (9 - 1)) | (1 << (19 - 1)) | (1 << (32 - 1)) | (1 << (33 - 1));
my @open;
for my $tid (@tasks)
{
	no warnings 'portable';    # 64-bit masks
	my ($blk) = slurp_file("/proc/$epid/task/$tid/status") =~ /^SigBlk:\s*([0-9a-f]+)$/m;
	push @open, $tid if (hex($blk) | $unblockable) != ~0;
}
is("@open", '', 'every other thread blocks every signal it can');

# 2. SIGKILL of the apply worker while entries wait for it.
my $apid = apply_pid();
kill 'STOP', $apid;
create_group($_) for 2 .. 6;
ok( $node->poll_query_until('postgres',
		q{SELECT count(*) FILTER (WHERE commit_index >= 3 AND applied_index = 0) FROM dragonraft.status},
		'5'),
	'five new groups commit entries that the stopped apply worker has not applied');
ok( $node->poll_query_until('postgres',
		q{SELECT count(*) FILTER (WHERE state = 'catching_up') FROM dragonraft.status}, '5'),
	'they show catching_up while their committed entries wait (fewer than 100 of them)');
my $log_offset = -s $node->logfile;
kill 'KILL', $apid;
$node->wait_for_log(qr/all server processes terminated; reinitializing/, $log_offset);
ok($node->poll_query_until('postgres', $all_applied, '6/6'),
	'after the crash restart every group applied what it committed');
my $log = slurp_file($node->logfile, $log_offset);
like($log, qr/dragonraft apply worker for node 1 started in database "postgres"/,
	'the apply worker logs its start');
like($log, qr/It resumes \d+ groups after their applied indexes: group \d+ at \d+/,
	'and where each group resumes');
unlike($log, qr/are missing/, 'no entry was skipped');
is(sql('SELECT count(*) FROM dragonraft.member_info'), '6', 'one member info row per group');

# 3. An entry that fails to apply stops its group only: group 2 is parked,
# the other groups go on, and group 2 resumes once the cause is gone.
sql(q{
	CREATE FUNCTION public.refuse_member_info() RETURNS trigger LANGUAGE plpgsql AS
	  $$BEGIN
	    IF NEW.group_id = 2 THEN RAISE EXCEPTION 'injected apply failure'; END IF;
	    RETURN NEW;
	  END$$;
	CREATE TRIGGER refuse BEFORE INSERT OR UPDATE ON dragonraft.member_info
	  FOR EACH ROW EXECUTE FUNCTION public.refuse_member_info();
	ALTER TABLE dragonraft.member_info ENABLE ALWAYS TRIGGER refuse;
});
$apid = apply_pid();
$log_offset = -s $node->logfile;
my $moved = 'host=127.0.0.1 port=' . $node->port . ' application_name=moved';
$node->append_conf('postgresql.conf', "dragonraft.client_address = '$moved'");
$node->reload;
$node->wait_for_log(
	qr/ERROR:  injected apply failure\n.*?dragonraft apply of entry \d+ \(member info\) of group 2/s,
	$log_offset);
ok(1, 'the failure is logged with the group and entry');
ok( $node->poll_query_until('postgres', q{
		SELECT state || ': ' || error FROM dragonraft.status WHERE group_id = 2},
		'apply_failed: apply worker: injected apply failure'),
	'status shows group 2 apply_failed with the error');
ok( $node->poll_query_until('postgres',
		"SELECT count(*) FROM dragonraft.member_info WHERE client_address = '$moved'", '5'),
	'the other five groups apply the new client address meanwhile');
ok( $node->poll_query_until('postgres',
		q{SELECT apply_errors >= 2 FROM dragonraft.stat_groups WHERE group_id = 2}),
	'group 2 is tried again');
is(apply_pid(), $apid, 'by the same apply worker, which did not exit');
create_group(7);
ok( $node->poll_query_until('postgres', q{
		SELECT state = 'ok' AND applied_index = commit_index FROM dragonraft.status
		 WHERE group_id = 7}),
	'a group created meanwhile applies');
is(sql(q{SELECT state FROM dragonraft.status WHERE group_id = 2}), 'apply_failed',
	'while group 2 stays parked');
sql('DROP TRIGGER refuse ON dragonraft.member_info');
ok($node->poll_query_until('postgres', $all_applied, '7/7'), 'it resumes once the cause is gone');
is(sql("SELECT count(*) FROM dragonraft.member_info WHERE client_address = '$moved'"),
	'7', 'every group applied the new client address');
unlike(slurp_file($node->logfile, $log_offset), qr/are missing/, 'no entry was skipped');

# 3b. Replication origins: max_replication_slots (10) counts them all, and
# one of logical replication's holds a slot.  Groups 1 to 7 have 7 origins.
sql(q{SELECT pg_replication_origin_create('someone_else')});
sql(q{SELECT pg_replication_origin_advance('someone_else', '0/1')});
create_group($_) for 8 .. 9;
($rc, $stdout, $stderr) = $node->psql('postgres',
	"SELECT dragonraft.create_group(10, '{\"1\": \"127.0.0.1:$rport\"}')");
like($stderr, qr/this server has 10 replication origins, as many as max_replication_slots allows/,
	'the group beyond max_replication_slots origins is refused');
ok($node->poll_query_until('postgres', $all_applied, '9/9'), 'every group created applies');
sql(q{SELECT pg_replication_origin_drop('someone_else')});

# 4. A backend waiting on the engine worker gets an error when the worker exits.
$epid = engine_pid();
kill 'STOP', $epid;
my $waiter = $node->background_psql('postgres', on_error_stop => 0);
$waiter->query_safe(q{\set VERBOSITY verbose});
$waiter->query_until(qr/started/, q{\echo started
SELECT dragonraft.transfer_leader(1, 1);
});
ok( $node->poll_query_until('postgres', q{
		SELECT count(*) FROM pg_stat_activity
		 WHERE query LIKE 'SELECT dragonraft.transfer_leader%' AND wait_event_type = 'Extension'},
		'1'),
	'a backend waits on the stopped engine worker');
$log_offset = -s $node->logfile;
kill 'TERM', $epid;
kill 'CONT', $epid;
my $out = $waiter->query('SELECT 1');
like($waiter->{stderr}, qr/55000: dragonraft's engine on this node did not take the transfer_leader of group 1: the engine worker exited before it took it.*Nothing was done/s,
	'the waiting backend gets an error: nothing was done');
$waiter->quit;
$node->wait_for_log(qr/dragonraft engine worker for node 1 shutting down/, $log_offset);
($rc, $stdout, $stderr) = $node->psql('postgres',
	"SELECT dragonraft.create_group(10, '{\"1\": \"127.0.0.1:$rport\"}')");
like($stderr, qr/dragonraft engine worker is not running/,
	'a request while the worker is down fails at once');
ok( $node->poll_query_until('postgres',
		"SELECT engine_state = 'running' AND engine_pid <> $epid FROM dragonraft.node_status()"),
	'the postmaster starts the engine worker again');
ok($node->poll_query_until('postgres', $all_applied, '9/9'), 'with every group');

# 5. A cancelled wait leaves nothing behind: the next request of the same
# session works.
$epid = engine_pid();
kill 'STOP', $epid;
my $session = $node->background_psql('postgres', on_error_stop => 0);
$session->query(q{SET statement_timeout = '300ms'});
$session->query('SELECT dragonraft.transfer_leader(1, 1)');
like($session->{stderr}, qr/canceling statement due to statement timeout/,
	'statement_timeout cancels the wait');
kill 'CONT', $epid;
$session->{stderr} = '';
$session->query(q{RESET statement_timeout});
is($session->query("SELECT 'transferred' FROM dragonraft.transfer_leader(1, 1)"),
	'transferred', 'the same session submits again once the engine is back');
$session->quit;

# 5b. A COMMIT waits for its proposal's outcome without taking a cancel, as
# long as the engine worker runs.  One that stopped answering (SIGSTOP here,
# a hung disk in life) does not hold the writer: a cancel, statement_timeout
# or pg_terminate_backend ends the wait after an election timeout, and the
# proposal the engine never took was not proposed (review 12).
sql(q{SELECT dragonraft.execute(1, 'CREATE TABLE stall (id int PRIMARY KEY)')});
sql(q{SELECT dragonraft.replicate_table('stall', 1)});
for my $how ('cancel', 'statement_timeout', 'terminate')
{
	$epid = engine_pid();
	kill 'STOP', $epid;
	my $w = $node->background_psql('postgres', on_error_stop => 0);
	my $wpid = $w->query_safe('SELECT pg_backend_pid()');
	$w->query_safe(q{\set VERBOSITY verbose});
	$w->query_safe(q{SET statement_timeout = '1s'}) if $how eq 'statement_timeout';
	$w->query_until(qr/started/, qq{\\echo started\nINSERT INTO stall VALUES (1);\n});
	ok( $node->poll_query_until('postgres',
			"SELECT wait_event_type = 'Extension' FROM pg_stat_activity WHERE pid = $wpid"),
		"$how: a COMMIT waits on the stopped engine worker");
	sql("SELECT pg_cancel_backend($wpid)") if $how eq 'cancel';
	sql("SELECT pg_terminate_backend($wpid)") if $how eq 'terminate';
	ok($node->poll_query_until('postgres', "SELECT count(*) FROM pg_stat_activity WHERE pid = $wpid AND state = 'active'", '0'),
		"$how: the writer stops waiting while the engine is still stopped");
	if ($how eq 'terminate')
	{
		is(sql("SELECT count(*) FROM pg_stat_activity WHERE pid = $wpid"), '0', 'terminate: the backend exits');
	}
	else
	{
		$w->query('SELECT 1');
		like($w->{stderr}, qr/55000: dragonraft's engine on this node takes no transaction of group 1: the engine worker stopped answering.*Nothing was proposed/s,
			"$how: with 55000, nothing proposed");
	}
	if ($how eq 'statement_timeout')
	{
		# The session's next COMMIT, its slot still held by the proposal the
		# stopped worker never took (review 13: it ignored statement_timeout).
		$w->{stderr} = '';
		$w->query_until(qr/again/, qq{\\echo again\nINSERT INTO stall VALUES (2);\n});
		ok($node->poll_query_until('postgres', "SELECT count(*) FROM pg_stat_activity WHERE pid = $wpid AND state = 'active'", '0'),
			"$how: the session's next COMMIT stops waiting too");
		$w->query('SELECT 1');
		like($w->{stderr}, qr/55000: dragonraft's engine on this node takes no transaction of group 1: the engine worker stopped answering.*Nothing was proposed/s,
			"$how: also with 55000, nothing proposed");
	}
	kill 'CONT', $epid;
	$w->quit;
}
ok($node->poll_query_until('postgres', $all_applied, '9/9'), 'the groups go on once the engine runs again');
is(sql('SELECT count(*) FROM stall'), '0', 'and nothing of the writers was committed');
sql('INSERT INTO stall VALUES (1)');
is(sql('SELECT count(*) FROM stall'), '1', 'a write after them commits');

# 6. SIGKILL of the engine worker: crash restart, and the groups come back.
$log_offset = -s $node->logfile;
kill 'KILL', engine_pid();
$node->wait_for_log(qr/all server processes terminated; reinitializing/, $log_offset);
ok($node->poll_query_until('postgres', $all_applied, '9/9'),
	'after SIGKILL of the engine worker every group is back');

# 7. A dragonraft.database that does not exist: the engine worker exits in its
# connection, and node_status() says so (it showed the engine off, no reason).
$node->append_conf('postgresql.conf', "dragonraft.database = 'no_such_db'");
$node->restart;
ok( $node->poll_query_until(
		'postgres', q{SELECT engine_state <> 'running' AND engine_error LIKE
		  '%could not connect to database "no_such_db" (dragonraft.database)%'
		  FROM dragonraft.node_status()}),
	'node_status() names the database the engine worker cannot connect to');
$node->append_conf('postgresql.conf', "dragonraft.database = 'postgres'");
$node->restart;
ok($node->poll_query_until('postgres', $all_applied, '9/9'),
	'with the database back the groups go on');

$node->stop('fast');
done_testing();
