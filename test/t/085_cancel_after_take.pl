# A cancel (pg_cancel_backend) after the engine worker took a request does
# not stop the request: transfer_leader, create_group and snapshot() so
# cancelled must fail with 40003 ("it may still ..."), not 57014, which says
# that nothing happened (as membership changes do: TAP 079).  And a cancel
# that arrives after execute()'s command was applied, during its last query
# (which tells whether the command was skipped), must not say 57014 for a
# command that ran: 40003 (not held: a lock can hold that query up for as
# long as it is held, review 27).
# Each request is held in the engine by a condition (a stopped target, a
# lock the engine waits for, a stopped apply worker), never by a sleep.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;

my $c = DragonCluster->new(3, conf => "dragonraft.election_rtt = 100\n");
$c->create_group(1);
my $l = $c->leader(1);
ok($l, 'a leader');
my @f = grep { $_ != $l } $c->ids;

# psql on node $id running $sql, left open (more input may follow).
sub start_psql
{
	my ($id, $sql) = @_;
	my %s = (in => "\\set VERBOSITY verbose\n$sql\n", out => '', err => '');
	$s{h} = IPC::Run::start([ 'psql', '-XAtq', '-d', $c->node($id)->connstr('postgres') ],
		'<', \$s{in}, '>', \$s{out}, '2>', \$s{err});
	$s{h}->pump_nb while length $s{in};
	return \%s;
}

sub finish_psql
{
	my ($s) = @_;
	$s->{h}->finish;
	my ($st) = ($s->{err} =~ /ERROR:\s+([0-9A-Z]{5}):/);
	return $st // '';
}

# The backend on node $id running the statement labelled $label, once it
# waits for $type (a wait event type).
sub waiting_pid
{
	my ($id, $label, $type) = @_;
	my $pid;
	$c->wait_until("$label to wait ($type)", sub {
		$pid = $c->poll($id, "SELECT pid FROM pg_stat_activity WHERE query LIKE '%/* $label */%' "
			  . "AND wait_event_type = '$type' AND pid <> pg_backend_pid()");
		defined $pid && $pid ne '' });
	return $pid;
}

sub cancel
{
	my ($id, $pid) = @_;
	$c->poll($id, "SELECT pg_cancel_backend($pid)");
}

# 1. transfer_leader to a follower whose server is stopped: the engine waits
# for the target (two election timeouts, 10 s here) when the cancel comes.
my $t = $f[0];
kill 'STOP', $c->server_pids($t);
my $s = start_psql($l, "/* transfer */ SELECT dragonraft.transfer_leader(1, $t);");
my $pid = waiting_pid($l, 'transfer', 'Extension');
$c->taken($l, 1);
cancel($l, $pid);
my $st = finish_psql($s);
kill 'CONT', $c->server_pids($t);
is($st, '40003', 'a transfer_leader cancelled in the engine fails with 40003') or diag $s->{err};
like($s->{err}, qr/the leadership transfer of group 1 to node $t did not complete: it may still happen/,
	'and says it may still happen');
# (review 73: "canceling statement due to user request after the engine
# worker took the request.", the cancel's message made into a DETAIL)
like($s->{err}, qr/DETAIL:  The engine worker took the request before the statement ended \(canceling statement due to user request\)\./,
	'with a DETAIL in sentences');
ok($c->leader(1), 'group 1 has a leader afterwards');

# 2. create_group while another session holds a lock on
# pg_replication_origin that the engine worker waits for (it makes the new
# group's replication origin): the request is taken.  On a follower of
# group 1, whose leader goes on meanwhile.
my $n = $f[1];
my $locker = start_psql($n,
	"BEGIN; LOCK TABLE pg_catalog.pg_replication_origin IN EXCLUSIVE MODE; SELECT 'locked';");
$c->wait_until('the lock', sub { $locker->{h}->pump_nb; $locker->{out} =~ /locked/ });
my $members = '{"' . $n . '": "' . $c->raft_address($n) . '"}';
$s = start_psql($n, "/* create */ SELECT dragonraft.create_group(5, '$members');");
$pid = waiting_pid($n, 'create', 'Extension');
$c->wait_until('the engine worker to wait for the lock', sub {
	$c->poll($n, "SELECT count(*) FROM pg_locks WHERE relation = 'pg_replication_origin'::regclass "
		  . "AND NOT granted") eq '1' });
cancel($n, $pid);
$st = finish_psql($s);
$locker->{in} .= "COMMIT;\n";
finish_psql($locker);
is($st, '40003', 'a create_group cancelled in the engine fails with 40003') or diag $s->{err};
like($s->{err}, qr/the creation of group 5 on this node did not complete: it may still be created/,
	'and says it may still be created');
$c->wait_until('group 5 to exist', sub {
	$c->poll($n, "SELECT count(*) FROM dragonraft.status WHERE group_id = 5 AND role = 'leader'") eq '1' });
my ($cst, $cerr) = $c->sql_error($n, "SELECT dragonraft.create_group(5, '$members')");
is($cst, '', 'it was created: create_group with the same members returns') or diag $cerr;

# 3. snapshot() of group 5 after a membership change that the stopped apply
# worker has not made durable: the engine waits with it.
my $apply = $c->node($n)->safe_psql('postgres', 'SELECT apply_pid FROM dragonraft.node_status()');
kill 'STOP', $apply;
($cst, $cerr) = $c->sql_error($n, "SELECT dragonraft.add_member(5, 9, '127.0.0.1:9', false)");
is($cst, '', 'a non-voter added to group 5') or diag $cerr;
$s = start_psql($n, "/* snapshot */ SELECT dragonraft.snapshot(5);");
$pid = waiting_pid($n, 'snapshot', 'Extension');
$c->taken($n, 1);
cancel($n, $pid);
$st = finish_psql($s);
kill 'CONT', $apply;
is($st, '40003', 'a snapshot() cancelled in the engine fails with 40003') or diag $s->{err};
like($s->{err}, qr/the snapshot of group 5 did not complete: it may still be taken/,
	'and says it may still be taken');
# (55006, "another membership change ... in progress", until the resumed
# apply worker made the change durable: a psql of its own took long enough)
$c->wait_until('the apply worker to make the membership change durable', sub {
	($cst, $cerr) = $c->sql_error($n, 'SELECT dragonraft.snapshot(5) > 0');
	return $cst ne '55006' });
is($cst, '', 'snapshot() works once the apply goes on') or diag $cerr;

# 4. execute() on the leader: its command applied here, its backend asks
# whether the command was skipped (dragonraft.ddl_history), which another
# session's lock holds up; the cancel comes then.  The command ran: 40003,
# and the session's next statement runs.
$l = $c->leader(1);
my $L = $c->node($l);
$apply = $L->safe_psql('postgres', 'SELECT apply_pid FROM dragonraft.node_status()');
kill 'STOP', $apply;
$s = start_psql($l, "/* execute */ SELECT dragonraft.execute(1, 'CREATE TABLE e1 (id int)') > 0;\n"
	  . "SELECT 'after';");
$c->wait_until('the command to be committed, not applied here', sub {
	$c->poll($l, "SELECT count(*) FROM dragonraft.ddl_history WHERE command LIKE 'CREATE TABLE e1%'") eq '0'
	  && $c->poll($l, 'SELECT commit_index > applied_index FROM dragonraft.status WHERE group_id = 1') eq 't' });
$pid = waiting_pid($l, 'execute', 'Extension');
kill 'STOP', $pid;
kill 'CONT', $apply;
$c->wait_until('the command to be applied', sub {
	$c->poll($l, "SELECT count(*) FROM pg_class WHERE relname = 'e1'") eq '1' });
$locker = start_psql($l, "BEGIN; LOCK TABLE dragonraft.ddl_history IN ACCESS EXCLUSIVE MODE; SELECT 'locked';");
$c->wait_until('the lock', sub { $locker->{h}->pump_nb; $locker->{out} =~ /locked/ });
kill 'CONT', $pid;
waiting_pid($l, 'execute', 'Lock');
cancel($l, $pid);
# the backend took the signal (SIGINT no longer pending)
$c->wait_until('the cancel to be taken', sub {
	open my $fh, '<', "/proc/$pid/status" or return 1;
	local $/;
	my $status = <$fh>;
	my ($p) = $status =~ /^SigPnd:\s*[0-9a-f]*([0-9a-f]{8})$/m;
	my ($sh) = $status =~ /^ShdPnd:\s*[0-9a-f]*([0-9a-f]{8})$/m;
	return !(hex($p // 0) & 2) && !(hex($sh // 0) & 2) });
$locker->{in} .= "COMMIT;\n";
finish_psql($locker);
$st = finish_psql($s);
is($st, '40003', 'an execute() cancelled after its command was applied fails with 40003') or diag $s->{err};
like($s->{err}, qr/the outcome of the command in dragonraft group 1 is unknown/, 'saying so');
chomp $s->{out};
is($s->{out}, "after", 'and the next statement runs') or diag $s->{out};
ok($c->caught_up(1), 'every member applies group 1 afterwards');
is($c->poll($f[0], "SELECT count(*) FROM pg_class WHERE relname = 'e1'"), '1', 'the command ran everywhere');

done_testing();
