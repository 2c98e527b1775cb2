# The leader of a group of two voters removes itself (remove_member(g,
# self, force => true)): it never commits its own removal, it hands the
# leadership over and the other voter commits it (review 41); the call
# returns once the removal is applied here: the new leader tells the old
# one in a last heartbeat, which its network, forgetting the removed node
# at once, dropped (the call timed out, and with the other voter down at
# first the removed node never learned of it).  With the other voter down
# nothing can commit: the call ends after its timeout with 40003, the
# removal may still happen, and it does once the other voter is back.  In
# both cases the members agree and writes go on.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $c = DragonCluster->new(4);

# Group 1 on nodes 1 and 2: the leader removes itself with the other up.
$c->create_group(1, 1, 2);
my $l = $c->leader(1);
ok($l, "group 1 has a writable leader (node $l)");
my ($o) = grep { $_ != $l } 1, 2;
my $L = $c->node($l);
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, 'CREATE TABLE t (id int PRIMARY KEY, v text)')});
$L->safe_psql('postgres', q{SELECT dragonraft.replicate_table('t', 1)});
$L->safe_psql('postgres', q{INSERT INTO t SELECT g, 'before' FROM generate_series(1, 50) g});
ok($c->caught_up(1), 'both replicate t');

my ($st, $msg) = $c->sql_error($l, "SELECT dragonraft.remove_member(1, $l)");
is($st, '55000', 'without force the leader of two does not remove itself');
($st, $msg) = $c->sql_error($l, "SELECT dragonraft.remove_member(1, $l, true)");
is($st, '', 'with force it does, and the call returns') or diag $msg;
is($c->query($l, 'SELECT state FROM dragonraft.status WHERE group_id = 1'), 'removed',
	'the call returned once the removal was applied here');
$c->group_nodes(1, $o);
is($c->leader(1), $o, "node $o leads the group alone");
# (node $o's dragonraft.members is its engine worker's copy, made every
# 100 ms: it can show the removal a little after the node leads, CI saw
# '1,2' once)
my $members = sub { $c->poll($o, 'SELECT string_agg(node_id::text, \',\') FROM dragonraft.members WHERE group_id = 1') // '' };
$c->wait_until("node ${o}'s members to show the removal", sub { $members->() eq "$o" });
is($members->(), "$o", 'its membership holds itself only');
$c->node($o)->safe_psql('postgres', q{INSERT INTO t VALUES (51, 'after')});
is($c->query($o, 'SELECT count(*) FROM t'), '51', 'and takes writes');
$L->safe_psql('postgres', 'SELECT dragonraft.leave_group(1, true)');
is($c->query($l, 'SELECT count(*) FROM dragonraft.status WHERE group_id = 1'), '0',
	'the removed node leaves the group');
is($c->query($l, 'SELECT count(*) FROM t'), '50', 'keeping its rows as they were at its removal');

# Group 2 on nodes 3 and 4: the other voter is down while the leader removes itself.
$c->create_group(2, 3, 4);
$l = $c->leader(2);
ok($l, "group 2 has a writable leader (node $l)");
($o) = grep { $_ != $l } 3, 4;
$L = $c->node($l);
$L->safe_psql('postgres', q{SELECT dragonraft.execute(2, 'CREATE TABLE u (id int PRIMARY KEY)')});
$L->safe_psql('postgres', q{SELECT dragonraft.replicate_table('u', 2)});
$L->safe_psql('postgres', q{INSERT INTO u SELECT generate_series(1, 10)});
ok($c->caught_up(2), 'both replicate u');
$c->node($o)->stop('immediate');
($st, $msg) = $c->sql_error($l,
	"SET statement_timeout = '3s'; SELECT dragonraft.remove_member(2, $l, true)");
note "remove_member with the other voter down: $st $msg";
isnt($st, '', 'with the other voter down the call does not complete');
like($msg, qr/may still/i, 'and its error says the removal may still happen');
is($c->query($l, 'SELECT string_agg(node_id::text, \',\' ORDER BY node_id) FROM dragonraft.members '
		  . 'WHERE group_id = 2'),
	'3,4', 'the membership has not changed meanwhile');
$c->node($o)->start;
ok($c->wait_until("node $o to lead group 2 alone",
		sub {
			($c->poll($o, 'SELECT role || \'/\' || (SELECT string_agg(node_id::text, \',\') '
				  . 'FROM dragonraft.members WHERE group_id = 2) FROM dragonraft.status '
				  . 'WHERE group_id = 2') // '') eq "leader/$o";
		}),
	"once node $o is back, it leads and the removal of node $l commits");
ok($c->wait_until("node $l to apply its removal",
		sub { ($c->poll($l, 'SELECT state FROM dragonraft.status WHERE group_id = 2') // '') eq 'removed' }),
	"node $l learns of its removal");
$c->group_nodes(2, $o);
$c->node($o)->safe_psql('postgres', 'INSERT INTO u VALUES (11)');
is($c->query($o, 'SELECT count(*) FROM u'), '11', 'the group goes on with one voter');

done_testing();
