# A table's registration or an execute() command in the log before its
# proposer's own member info (review 45, hole 1).  Each node proposes its
# member info (client address, encoding, locale) to a group once it knows a
# leader, at its next turn: a replicate_table() right after create_group()
# came first in the log.  A node of another locale that joined later and
# replayed the log found no proposer's info at the registration, made the
# table, and stored upper('é') as 'é' where the others have 'É' (silently).
# Now replicate_table(), resend_table() and execute() wait (cancellable,
# bounded) until the proposer's own info is committed in the group, so that
# every registration and command follows it, and the joiner stops at the
# registration as in TAP 124; a group's creation removes the
# client_address file, so that a restart before the info committed sends
# it.  dragonraft.testing_member_info_delay holds
# each new member's info 3 s, so that the registration is always early.
# Node 4 runs dragonraft in database loc (UTF8, locale C), as in TAP 124.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $c = DragonCluster->new(4, conf => qq{
dragonraft.testing_member_info_delay = 3000
max_worker_processes = 16
});
my ($collate, $ctype) = $c->template_locale;
plan skip_all => "the template database's locale is C already" if $ctype eq 'C';

my $N4 = $c->node(4);
sub sql4 { return $N4->safe_psql('loc', $_[0]); }
ok($c->loc_database(4, 'C'), "node 4's engine worker runs in database loc");
is(sql4(q{SELECT upper('é') = 'é'}), 't', "upper('é') is 'é' in node 4's database");

my $def = q{(k int PRIMARY KEY, a text, b text CHECK (a < b), u text GENERATED ALWAYS AS (upper(a)) STORED)};
# The index of node id's member info of group g on node on (once the
# group's three infos are applied there).
sub info_index
{
	my ($on, $g, $id) = @_;
	$c->wait_until("the members' infos of group $g on node $on",
		sub { ($c->poll($on, "SELECT count(encoding) FROM dragonraft.members WHERE group_id = $g") // '') eq '3' })
	  or return 'none';
	return $c->query($on, "SELECT since_index FROM dragonraft.member_info WHERE group_id = $g AND node_id = $id");
}

# 1. Group 1 on nodes 1-3; its leader registers table z (made here only)
# at once, before its own info could be in the log.
$c->create_group(1, 1, 2, 3);
my $l = $c->leader(1) or die 'no leader of group 1';
my $L = $c->node($l);
my $t0 = time;
$L->safe_psql('postgres', "CREATE TABLE public.z $def; SELECT dragonraft.replicate_table('public.z', 1)");
my $took = time - $t0;
$L->safe_psql('postgres', "INSERT INTO public.z (k, a, b) VALUES (1, 'é', 'éé'), (2, 'a', 'b')");
my $reg = $c->query($l, q{SELECT since_index FROM dragonraft.tables WHERE relid = 'public.z'::regclass});
my $info = info_index($l, 1, $l);
cmp_ok($info, '<', $reg, "node ${l}'s member info (entry $info) comes before its registration of z (entry $reg) in the log");
note "replicate_table took ${took}s";
is($c->query($l, 'SELECT u FROM z WHERE k = 1'), 'É', "node $l stored upper('é') as 'É'");

# Node 4 joins group 1 and replays the log: it stops at the registration,
# naming its proposer (before, it made z and stored 'é').
sub join4 { return $c->join_loc(4, $_[0], 1, 2, 3); }
$L->safe_psql('postgres', "SELECT dragonraft.add_member(1, 4, '" . $c->raft_address(4) . "')");
my $err = join4(1);
like($err, qr/node 4 cannot apply the entries of group 1.*node $l registered a table in entry $reg of group 1 with a database of another locale than database "loc" of node 4/s,
	'join_group ends: node 4 stops at the registration, naming its proposer')
  or diag $err;
ok($c->log_has($N4, qr/DETAIL:  Node ${l}'s database has LC_COLLATE "\Q$collate\E", this one "C"\.  Node ${l}'s database has LC_CTYPE "\Q$ctype\E", this one "C"\.  Nothing of it was applied/),
	"node 4's log names both locales");
is(sql4(q{SELECT count(*) FROM dragonraft.tables WHERE relid::text = 'z'}), '0', 'node 4 replicates no table z');
is(sql4(q{SELECT to_regclass('public.z') IS NULL}) eq 't' ? 'no table'
	  : sql4(q{SELECT coalesce(string_agg(u, ',' ORDER BY k), 'empty') FROM public.z}),
	'no table', "node 4 has no table z (no 'é' stored)");

# 2. Group 2: its leader runs execute() at once: the command follows its
# info too.
$c->create_group(2, 1, 2, 3);
my $l2 = $c->leader(2) or die 'no leader of group 2';
$c->query($l2, "SELECT dragonraft.execute(2, \$\$CREATE TABLE public.y $def\$\$)");
my $cmd = $c->query($l2, q{SELECT max(index) FROM dragonraft.ddl_history WHERE group_id = 2 AND command LIKE 'CREATE TABLE public.y%'});
my $info2 = info_index($l2, 2, $l2);
cmp_ok($info2, '<', $cmd, "node ${l2}'s member info (entry $info2) comes before its execute() (entry $cmd)");

# 3. The wait is cancellable: statement_timeout ends it, nothing proposed;
# once the info is in, replicate_table() runs.
$c->create_group(3, 1, 2, 3);
my $l3 = $c->leader(3) or die 'no leader of group 3';
$c->query($l3, "CREATE TABLE public.x $def");
my ($state, $terr) = $c->sql_error($l3,
	"SET statement_timeout = '300ms'; SELECT dragonraft.replicate_table('public.x', 3)");
is($state, '57014', 'replicate_table right after create_group waits, and statement_timeout ends the wait')
  or diag $terr;
is($c->query($l3, q{SELECT count(*) FROM dragonraft.tables WHERE relid = 'public.x'::regclass}), '0',
	'nothing was registered');
my $info3 = info_index($l3, 3, $l3);
$c->query($l3, q{SELECT dragonraft.replicate_table('public.x', 3)});
cmp_ok($info3, '<', $c->query($l3, q{SELECT since_index FROM dragonraft.tables WHERE relid = 'public.x'::regclass}),
	'replicate_table once the info is in: it follows the info');

# 4. The wait is bounded: with the members' infos held 15 s, the leader's
# replicate_table ends with 55000 after 20 election timeouts (10 s), naming
# the cause, nothing proposed.
for my $id (1, 2, 3)
{
	$c->query($id, q{ALTER SYSTEM SET dragonraft.testing_member_info_delay = 15000});
	$c->query($id, 'SELECT pg_reload_conf()');
	$c->wait_until("the reload on node $id",
		sub { $c->node($id)->safe_psql('postgres', 'SHOW dragonraft.testing_member_info_delay') eq '15s' })
	  or die 'no reload';
}
$c->create_group(5, 1, 2, 3);
my $l5 = $c->leader(5) or die 'no leader of group 5';
$c->query($l5, "CREATE TABLE public.w $def");
$t0 = time;
($state, $terr) = $c->sql_error($l5, q{SELECT dragonraft.replicate_table('public.w', 5)});
$took = time - $t0;
is($state, '55000', 'replicate_table whose info does not come ends with 55000') or diag $terr;
like($terr, qr/dragonraft\.replicate_table refused: this node's member info is not in the log of group 5 yet.*DETAIL:.*\(now: node $l5\), and it did not commit within 10000 ms\.  Nothing was proposed\..*HINT:  Retry once dragonraft\.status shows a leader of group 5/s,
	'its message says why, and what to do');
cmp_ok($took, '>=', 9.5, "it waited (${took}s)");
cmp_ok($took, '<', 15, 'not longer than its bound');
is($c->query($l5, q{SELECT count(*) FROM dragonraft.tables WHERE relid = 'public.w'::regclass}), '0',
	'nothing was registered');
# A follower's replicate_table is refused at once, as before (25006).
my $f5 = (grep { $_ != $l5 } 1, 2, 3)[0];
$c->query($f5, "CREATE TABLE public.w $def");
($state, $terr) = $c->sql_error($f5, q{SELECT dragonraft.replicate_table('public.w', 5)});
is($state, '25006', "a follower's replicate_table gets 25006, not the wait") or diag $terr;
# Once the info is in, it runs.
my $info5 = info_index($l5, 5, $l5);
$c->query($l5, q{SELECT dragonraft.replicate_table('public.w', 5)});
cmp_ok($info5, '<', $c->query($l5, q{SELECT since_index FROM dragonraft.tables WHERE relid = 'public.w'::regclass}),
	'replicate_table once the info is in: it follows the info');

# 5. A group's creation removes the client_address file (it says every
# group has this node's info): node 3, killed before its info of group 6
# committed (held 15 s), sends it after its restart.  Before, the file still
# said so, node 3 never told group 6 its info, and its replicate_table()
# would have waited for it in vain.
my $N3 = $c->node(3);
my $file = $N3->data_dir . '/dragonraft/client_address';
ok($c->wait_until("node 3's client_address file", sub { -e $file }), "node 3's client_address file says every group has its info");
$c->create_group(6, 1, 2, 3);
ok(!-e $file, 'creating group 6 removed it');
$c->crash(3);
$c->close_poll(3);
$N3->start;
ok($c->wait_until("node 3's info in group 6 on node 1",
		sub { ($c->poll(1, 'SELECT count(encoding) FROM dragonraft.member_info WHERE group_id = 6 AND node_id = 3') // '') eq '1' }, 60),
	"restarted, node 3 sends its info to group 6");

done_testing();
