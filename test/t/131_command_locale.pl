# An execute() command whose proposer's database has another locale (review
# 45, hole 3).  A member's apply stopped at a table's registration whose
# proposer's member info said another locale, but ran a command (CREATE
# TABLE with a CHECK on text, ALTER ... ADD CHECK, CREATE INDEX on an
# expression: what computes or checks values with LC_COLLATE and LC_CTYPE)
# as it came.  Now every command but a barrier is checked as a
# registration is, against its proposer's info as applied so far (it comes
# first in the log: the proposer waits for it, TAP 130), and the member of
# another locale stops at it before it runs, naming the proposer and both
# locales.  Node 4 runs dragonraft in database loc (UTF8, locale C), as in
# TAP 124; nodes 1-3 keep postgres (the template's locale).
#  1. Group 1 (nodes 1-3) has a barrier (check_consistency) and a command
#     that makes table c, no registration; node 4 joins it by the log: it
#     applies the barrier and stops at the command, with no table c (before,
#     join_group returned and node 4 had made c: silently).
#  2. Group 2 has node 4 as a member from the start, but node 4 starts its
#     member later: the leader's gate did not know node 4's info and let an
#     execute() through; node 4's apply stops at it (before, it ran it),
#     nodes 1-3 apply it and go on; the gate, which knows node 4's info
#     now, refuses the next command.
#  3. A member that knows no locale of the proposer (its info as an older
#     build's) applies the command, with a WARNING.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;

my $c = DragonCluster->new(4, conf => qq{
max_worker_processes = 16
});
my ($collate, $ctype) = $c->template_locale;
plan skip_all => "the template database's locale is C already" if $ctype eq 'C';

my $N4 = $c->node(4);
sub sql4 { return $N4->safe_psql('loc', $_[0]); }
ok($c->loc_database(4, 'C'), "node 4's engine worker runs in database loc");
sub status4 { return sql4("SELECT state || ': ' || coalesce(error, '') FROM dragonraft.status WHERE group_id = $_[0]"); }
sub has_table4 { return sql4("SELECT to_regclass('public.$_[0]') IS NOT NULL"); }

my $cdef = q{(k int PRIMARY KEY, a text CHECK (a < 'é'))};

# 1. Group 1: a barrier, then a command, and no registration.
$c->create_group(1, 1, 2, 3);
my $l = $c->leader(1) or die 'no leader of group 1';
my $L = $c->node($l);
my $mark = $c->query($l, 'SELECT dragonraft.check_consistency(1)');
$L->safe_psql('postgres', "SELECT dragonraft.execute(1, \$\$CREATE TABLE public.c $cdef\$\$)");
my $cmd = $c->query($l, q{SELECT max(index) FROM dragonraft.ddl_history WHERE group_id = 1 AND command LIKE 'CREATE TABLE public.c%'});
ok($c->caught_up(1), 'nodes 1-3 applied the command');
$L->safe_psql('postgres', "SELECT dragonraft.add_member(1, 4, '" . $c->raft_address(4) . "')");
my ($out, $err) = ('', '');
IPC::Run::run(['psql', '-XAtq', '-d', $N4->connstr('loc'), '-c',
		"SELECT dragonraft.join_group(1, '" . $c->members(1, 2, 3) . "')"],
	'>', \$out, '2>', \$err, IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
like($err, qr/node 4 cannot apply the entries of group 1.*node $l proposed a command in entry $cmd of group 1 with a database of another locale than database "loc" of node 4/s,
	'join_group ends: node 4 stops at the command, naming its proposer and the entry')
  or diag "join_group: out '$out', err '$err'";
like(status4(1),
	qr/^apply_failed: apply worker: node $l proposed a command in entry $cmd of group 1 with a database of another locale than database "loc" of node 4 \(Every member's dragonraft\.database must have the same encoding and locale/,
	"node 4's status says why, and what to do");
ok($c->log_has($N4, qr/ERROR:  node $l proposed a command in entry $cmd of group 1 .*\n.*DETAIL:  Node ${l}'s database has LC_COLLATE "\Q$collate\E", this one "C"\.  Node ${l}'s database has LC_CTYPE "\Q$ctype\E", this one "C"\.  Nothing of it was applied: this member would compute what the command defines or checks/),
	"node 4's log names both locales");
is(has_table4('c'), 'f', 'node 4 made no table c');
is(sql4("SELECT count(*) FROM dragonraft.consistency_checks WHERE group_id = 1 AND log_index = $mark"), '1',
	'node 4 applied the barrier before it (a barrier is not checked)');
is(sql4('SELECT applied_index FROM dragonraft.status WHERE group_id = 1'), $cmd - 1,
	'node 4 applied everything before the command');

# 2. Group 2: node 4 is a member from the start, but starts later: the
# leader's gate does not know node 4's info, and lets execute() through.
$c->group_nodes(2, 1, 2, 3);
my $m = $c->members(1, 2, 3, 4);
$c->query($_, "SELECT dragonraft.create_group(2, '$m')") for 1, 2, 3;
my $l2 = $c->leader(2) or die 'no leader of group 2';
my $L2 = $c->node($l2);
is($c->query($l2, 'SELECT count(*) FROM dragonraft.member_info WHERE group_id = 2 AND node_id = 4'), '0',
	"node $l2 does not know node 4's info of group 2");
$L2->safe_psql('postgres', "SELECT dragonraft.execute(2, \$\$CREATE TABLE public.d $cdef\$\$)");
my $cmd2 = $c->query($l2, q{SELECT max(index) FROM dragonraft.ddl_history WHERE group_id = 2 AND command LIKE 'CREATE TABLE public.d%'});
ok($c->caught_up(2), 'nodes 1-3 applied it');
sql4("SELECT dragonraft.create_group(2, '$m')");
ok($c->wait_until("node 4's member of group 2 to stop",
		sub { status4(2) =~ /^apply_failed/ }),
	"node 4's apply of group 2 stops");
like(status4(2),
	qr/^apply_failed: apply worker: node $l2 proposed a command in entry $cmd2 of group 2 with a database of another locale than database "loc" of node 4/,
	'at the command, naming its proposer');
is(has_table4('d'), 'f', 'node 4 made no table d');
# Node 4 proposed its info once it knew a leader (its apply stopped
# after): the gate knows it now, and refuses the next command.
ok($c->wait_until("node 4's info of group 2 on node $l2",
		sub { ($c->poll($l2, 'SELECT lc_ctype FROM dragonraft.member_info WHERE group_id = 2 AND node_id = 4') // '') eq 'C' }),
	"node $l2 knows node 4's locale now");
my ($state, $gerr) = $c->sql_error($l2, q{SELECT dragonraft.execute(2, 'CREATE INDEX ON public.d (lower(a))')});
is($state, '0A000', 'the gate refuses the next command (0A000)') or diag $gerr;
# The others go on (nodes 1-3, of the proposer's locale).
$c->query($l2, 'SELECT dragonraft.check_consistency(2)');
ok($c->caught_up(2), 'group 2 goes on on nodes 1-3');

# 3. A command whose proposer's info says no locale (as an older build's)
# on a member is applied there as it comes, with a WARNING that it could
# not be checked.
$c->create_group(3, 1, 2, 3);
my $l3 = $c->leader(3) or die 'no leader of group 3';
my $f3 = (grep { $_ != $l3 } 1, 2, 3)[0];
ok($c->wait_until("node ${l3}'s info of group 3 on node $f3",
		sub { ($c->poll($f3, "SELECT count(encoding) FROM dragonraft.member_info WHERE group_id = 3 AND node_id = $l3") // '') eq '1' }),
	"node $f3 knows node ${l3}'s locale");
$c->query($f3, "UPDATE dragonraft.member_info SET encoding = NULL, lc_collate = NULL, lc_ctype = NULL, locale_provider = NULL WHERE group_id = 3 AND node_id = $l3");
$c->query($l3, "SELECT dragonraft.execute(3, \$\$CREATE TABLE public.e $cdef\$\$)");
my $cmd3 = $c->query($l3, q{SELECT max(index) FROM dragonraft.ddl_history WHERE group_id = 3 AND command LIKE 'CREATE TABLE public.e%'});
ok($c->caught_up(3), "node $f3 applies it");
is($c->query($f3, q{SELECT to_regclass('public.e') IS NOT NULL}), 't', "node $f3 made table e");
ok($c->log_has($c->node($f3), qr/WARNING:  node $l3 proposed a command in entry $cmd3 of group 3 with no member info before it that says its database's locale/),
	"node ${f3}'s log warns that it could not check it");

done_testing();
