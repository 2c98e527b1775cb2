# Review 21: what a COMMIT on the leader is told must be true.
#
# 1. An error after the entry committed in the log: a transaction that
# wrote a replicated table and ran NOTIFY waits in COMMIT, after
# dragonraft's PRE_COMMIT, for the NOTIFY queue's lock, which another
# session's COMMIT holds (here while it waits for a synchronous standby
# that is not there); lock_timeout (or a cancel) ended that wait with
# 55P03 (57014), and the apply worker then applied the committed entry on
# every member: a transaction told it failed, not that it may have
# committed (40003), was there.
#
# 2. A leader's whole server (postmaster and every child) SIGSTOPped
# until the others elect a leader, while clients wait on COMMIT there, then
# continued; three times, under a transfer load.  What each client was told
# must be true: every COMMITted transfer on every node, nothing that failed
# anywhere, the balances consistent, the members identical.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use Transfers;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;

my $c = DragonCluster->new(3, conf => "wal_level = replica\nmax_wal_senders = 10\n");
$c->create_group(1);
my $l = $c->leader(1);
Transfers::setup($c, 1, $l);
ok($c->caught_up(1), 'tables replicated');

# 1. An error in COMMIT after the entry committed.
my $L = $c->node($l);
$L->safe_psql('postgres', q{CREATE TABLE notes (n int)});
$L->safe_psql('postgres', q{ALTER SYSTEM SET synchronous_standby_names = 'nobody'; SELECT pg_reload_conf()});
my ($o1, $e1, $o2, $e2) = ('', '', '', '');
my $s1 = IPC::Run::start([ 'psql', '-XAtq', '-d', $L->connstr('postgres'), '-c',
		q{BEGIN; INSERT INTO notes VALUES (1); NOTIFY other; COMMIT;} ],
	'>', \$o1, '2>', \$e1);
ok($c->wait_until('a COMMIT holding the NOTIFY lock to wait for the standby', sub {
	($c->poll($l, q{SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'}) // 0) >= 1 }),
	'a COMMIT with NOTIFY waits for a synchronous standby (holding the NOTIFY lock)');
my $s2 = IPC::Run::start([ 'psql', '-XAtq', '-d', $L->connstr('postgres'), '-c', '\set VERBOSITY verbose', '-c',
		q{SET lock_timeout = '1s'; BEGIN; INSERT INTO transfers VALUES (-1, 1, 2, 0); NOTIFY mine; COMMIT;} ],
	'>', \$o2, '2>', \$e2);
# It waits for the NOTIFY lock, then past its lock_timeout (1 s): ended by
# it (before the fix), or still waiting.
my $mine = q{FROM pg_stat_activity WHERE query LIKE '%NOTIFY mine%' AND pid <> pg_backend_pid()};
ok($c->wait_until('the COMMIT with NOTIFY to wait for the lock', sub {
	($c->poll($l, "SELECT count(*) $mine AND wait_event_type = 'Lock'") // 0) >= 1 }),
	'the second COMMIT waits for the NOTIFY lock');
ok($c->wait_until('the COMMIT with NOTIFY to wait past its lock_timeout, or to end', sub {
	($c->poll($l, "SELECT count(*) = 0 OR bool_and(now() - query_start > interval '1.5 s') $mine") // '') eq 't' }),
	'and past its lock_timeout, or it ended');
$L->safe_psql('postgres', q{SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE wait_event = 'SyncRep'});
$s1->finish;
$s2->finish;
$L->safe_psql('postgres', q{ALTER SYSTEM RESET synchronous_standby_names; SELECT pg_reload_conf()});
my ($st2) = $e2 =~ /ERROR:\s+([0-9A-Z]{5}):/;
$st2 //= '';
diag "the COMMIT with NOTIFY: " . ($st2 eq '' ? 'committed' : $e2);
ok($c->caught_up(1), 'every member caught up');
for my $id ($c->ids)
{
	my $n = $c->query($id, 'SELECT count(*) FROM transfers WHERE id = -1');
	ok($st2 eq '' || $st2 eq '40003' || $n eq '0',
		"node $id: a COMMIT that failed with '$st2' left no row ($n)");
}
$c->node($c->leader(1))->safe_psql('postgres', 'DELETE FROM transfers WHERE id = -1');
my $load = Transfers->start($c, 4);
ok($load->wait_commits(20), 'transfers commit');

for my $round (1 .. 3)
{
	$l = $c->leader(1);
	my @pids = $c->server_pids($l);
	ok(kill('STOP', @pids), "round $round: leader node $l stopped (SIGSTOP of its server)");
	my @others = grep { $_ != $l } $c->ids;
	ok($c->wait_until("a leader other than node $l", sub {
		grep { my $r = $c->poll($_, q{SELECT role FROM dragonraft.status WHERE group_id = 1}) // '';
			$r eq 'leader' } @others }),
		"round $round: the others elect a leader while node $l is stopped");
	kill('CONT', @pids);
	ok($load->wait_commits(20), "round $round: transfers commit after node $l continued");
}
my %r = $load->stop;
ok($c->caught_up(1), 'every member caught up');
Transfers::check($c, \%r, 'after three stopped leaders');

$c->node($_)->stop('fast') for $c->running;
done_testing();
