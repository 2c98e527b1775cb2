# Review 35 N4: a table_digest whose hold of the group's apply ended
# abnormally while it took its snapshot fails with 55000 ("the hold ...
# ended"), not XX000 ("the applied index ... moved").  Here the hold ends
# with the engine worker: the digest's backend pauses between its snapshot
# and its read of the origin (testing_hold_delay, up to 60 s, ended by a
# reload once the test saw the rest), the engine worker is terminated then,
# the next one starts and the member applies a later write before the pause
# ends.  Before the fix the digest compared the
# origin with the applied index published before its snapshot first
# (XX000), and the next engine worker never ended the claimed job of its
# predecessor (not DONE: the digest compared, or, had nothing moved,
# returned a digest taken without a hold).  Since rev63 a digest whose hold
# ended with its engine worker drops that snapshot and asks the next engine
# worker for a hold (TAP 136): it returns the digest (taken with no pause:
# the reload that ended the first set the delay back to 0).
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;

my $c = DragonCluster->new(3);
$c->create_group(1);
ok(my $l = $c->leader(1), 'group 1 has a leader');
my $f = (grep { $_ != $l } $c->ids)[0];    # the digest's node: a follower
$c->node($l)->safe_psql('postgres', q{
CREATE TABLE h (id int PRIMARY KEY, v text);
INSERT INTO h SELECT g, 'h' || g FROM generate_series(1, 20) g;
SELECT dragonraft.replicate_table('h', 1);
});
ok($c->caught_up(1), 'every member has the table');

# (ALTER SYSTEM, not SET: the pause ends at the reload that resets it)
$c->node($f)->safe_psql('postgres',
	"ALTER SYSTEM SET dragonraft.testing_hold_delay = '60s'; SELECT pg_reload_conf()");
ok($c->wait_until("node $f to pause its digests", sub {
	$c->query($f, 'SHOW dragonraft.testing_hold_delay') eq '1min' }),
	"node ${f}'s digests pause inside their hold");
my ($din, $dout, $derr) = ("\\set VERBOSITY verbose\nSELECT pg_backend_pid();\n", '', '');
my $digest = IPC::Run::start([ 'psql', '-XAtq', '-d', $c->node($f)->connstr('postgres') ],
	'<', \$din, '>', \$dout, '2>', \$derr, IPC::Run::timeout(150));
$digest->pump until $dout =~ /^(\d+)$/m;
my $dpid = $1;
$din .= "SELECT count(*) FROM dragonraft.table_digest(1);\n\\q\n";
ok($c->wait_until("the digest on node $f to pause in its hold", sub {
	$digest->pump_nb;
	$c->poll($f, "SELECT count(*) FROM pg_stat_activity WHERE pid = $dpid "
		  . "AND wait_event = 'PgSleep'") eq '1' }), "node ${f}'s digest pauses after its drain");
my $before = $c->query($f, 'SELECT applied_index FROM dragonraft.status WHERE group_id = 1');
my $epid = $c->query($f, 'SELECT engine_pid FROM dragonraft.node_status()');
$c->query($f, "SELECT pg_terminate_backend($epid)");
ok($c->wait_until("node ${f}'s engine worker to run again", sub {
	my $p = $c->poll($f, "SELECT engine_pid FROM dragonraft.node_status() WHERE engine_state = 'running'");
	defined $p && $p ne '' && $p ne $epid }, 30), "node ${f}'s engine worker runs again");
$c->node($l)->safe_psql('postgres', "INSERT INTO h VALUES (1000, 'after')");
ok($c->wait_until("node $f to apply the later write", sub {
	($c->poll($f, 'SELECT count(*) FROM h WHERE id = 1000') // '') eq '1' }, 30),
	"node $f applies a later write during the digest's pause");
cmp_ok($c->query($f, 'SELECT applied_index FROM dragonraft.status WHERE group_id = 1'), '>', $before,
	"node ${f}'s applied index moved during the pause");
is($c->poll($f, "SELECT wait_event FROM pg_stat_activity WHERE pid = $dpid") // '', 'PgSleep',
	'the digest still pauses');
$c->node($f)->safe_psql('postgres',
	'ALTER SYSTEM RESET dragonraft.testing_hold_delay; SELECT pg_reload_conf()');
$digest->finish;
unlike($derr, qr/ERROR/, 'the digest does not use the snapshot taken in the hold that ended')
  or diag($derr);
like($dout, qr/^\d+\n1$/, 'it returns the digest taken under the next engine worker\'s hold')
  or diag($dout);
unlike($derr, qr/XX000/, 'not an internal error');
like($c->query($f, 'SELECT count(*) FROM dragonraft.table_digest(1)'), qr/^1$/,
	"the next digest on node $f works");
ok($c->caught_up(1), 'every member applied everything');

done_testing();
