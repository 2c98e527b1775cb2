# Members whose databases have different encodings: node 3's
# dragonraft.database is a LATIN1 database, nodes 1 and 2 keep postgres
# (UTF8).  Values, commands and definitions travel in the log in their
# proposer's database encoding: node 3 took node 1's UTF8 'é' (c3 a9) for
# two LATIN1 characters 'Ã©' and stored them (silent divergence), and
# nodes 1 and 2 ran node 3's command with its LATIN1 byte e9 as is: a column
# default invalid in their UTF8 catalog (values would have stopped them with
# "invalid byte sequence").  Now
# every entry that carries text says its encoding, and a member whose
# database has another stops that group's apply at the first such entry,
# with an error naming the proposer and both encodings, before it stores
# anything of it; the others go on.
#
# That stop comes late (the group is wedged on that member), so members
# also announce their database's encoding and locale in their member info
# (dragonraft.members shows them), every member warns once about one whose
# database differs from its own, and execute() and replicate_table() are
# refused (0A000) before anything is proposed while a member's info says
# another encoding.  The apply's stop stays the backstop for what the gate
# cannot see: a member whose info is not known yet (part 1: node 3 starts
# group 1 after the table came) or says nothing (an older build's: part 3
# stands for one by clearing the encoding of its row).
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $c = DragonCluster->new(3);
my $enc = $c->query(1, 'SELECT pg_encoding_to_char(encoding) FROM pg_database WHERE datname = current_database()');
plan skip_all => "the template database is $enc, not UTF8" if $enc ne 'UTF8';

# Node 3 runs dragonraft in database latin.
my $N3 = $c->node(3);
$c->use_database(3, 'latin', q{CREATE DATABASE latin ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0});
# (the apply worker logs its warnings when it applies the member info)
sub log_has { return $c->log_has(@_); }
sub sql3 { return $N3->safe_psql('latin', $_[0]); }

# Group 1 starts on nodes 1 and 2 only (a majority): node 3, whose info
# would refuse what part 1 proposes, starts it once the table came.
$c->group_nodes(1, 1, 2);
$c->query($_, "SELECT dragonraft.create_group(1, '" . $c->members . "')") for 1, 2;
ok($c->wait_until('node 3 engine worker',
		sub { $N3->safe_psql('latin', 'SELECT engine_state FROM dragonraft.node_status()') eq 'running' }),
	"node 3's engine worker runs in database latin");

# state and error of group g on node 3 (database latin)
sub status3 { return sql3("SELECT state || ': ' || coalesce(error, '') FROM dragonraft.status WHERE group_id = $_[0]"); }
# the same on node id (database postgres)
sub status_of { return $c->query($_[0], "SELECT state || ': ' || coalesce(error, '') FROM dragonraft.status WHERE group_id = $_[1]"); }

# 1. Group 1, led by node 1 (UTF8): a table with 'é' in its definition and
# rows, proposed while node 3 is not running the group (its info not known).
$c->lead(1, 1) or die 'node 1 does not lead group 1';
my $l = 1;
my $L = $c->node($l);
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, $$CREATE TABLE public.x (k int PRIMARY KEY, v text DEFAULT 'é')$$)});
$L->safe_psql('postgres', q{SELECT dragonraft.replicate_table('public.x', 1)});
$L->safe_psql('postgres', q{INSERT INTO x VALUES (1, 'é'), (2, DEFAULT)});
my $last = $L->safe_psql('postgres', q{SELECT dragonraft.execute(1, 'SELECT 1')});
$c->group_nodes(1, 1, 2, 3);
sql3("SELECT dragonraft.create_group(1, '" . $c->members . "')");

# Node 3 either holds what node 1 holds, character for character, or
# stopped before storing any of it (no table, or no row); never 'Ã©'.
my $done = $c->wait_until('node 3 to apply group 1 or stop',
	sub { sql3("SELECT applied_index >= $last OR state = 'apply_failed' FROM dragonraft.status WHERE group_id = 1") eq 't' });
ok($done, 'node 3 applied group 1 or stopped');
my $rows3 = sql3(q{SELECT to_regclass('public.x') IS NULL}) eq 't' ? 'no table' : sql3(
	q{SELECT coalesce(string_agg(k || ':' || length(v) || ':' || (v = chr(233)), ',' ORDER BY k), 'no rows') FROM x});
ok($rows3 eq 'no table' || $rows3 eq 'no rows' || $rows3 eq '1:1:t,2:1:t',
	"node 3 stores no UTF8 bytes read as LATIN1 ($rows3)");
# (compared in node 3's database: its output is LATIN1 bytes)
my $default3 = sql3(q{SELECT coalesce((SELECT pg_get_expr(adbin, adrelid) = '''' || chr(233) || '''::text'
	FROM pg_attrdef WHERE adrelid = to_regclass('public.x'))::text, 'none')});
ok($default3 eq 'none' || $default3 eq 'true', "node 3's column default is not mangled ($default3)");
like(status3(1),
	qr/^apply_failed: .*node $l wrote entry \d+ of group 1 in encoding UTF8, but database "latin" of node 3 has encoding LATIN1 \(Give every member of a group a database of the same encoding\.\)$/s,
	'node 3 stopped at the first entry with text, naming both encodings and the fix');
is($rows3, 'no table', 'node 3 stopped before the table was made');
is($c->query($_, 'SELECT string_agg(k || \':\' || length(v), \',\' ORDER BY k) FROM x'), '1:1,2:1',
	"node $_ has both rows") for 1, 2;
like(status_of($_, 1), qr/^ok: $/, "group 1 goes on on node $_") for 1, 2;

# 2. The gate.  Node 3's member info of group 1 reached node 1 (node 3's
# engine proposed it, though its apply of group 1 stopped): node 1 knows
# its database is LATIN1, and refuses what would propose text for it.
ok($c->wait_until("node 3's encoding in node 1's member_info of group 1",
		sub { ($c->poll(1, q{SELECT encoding FROM dragonraft.member_info WHERE group_id = 1 AND node_id = 3}) // '') eq 'LATIN1' }),
	"node 1 knows node 3's database encoding");
my ($collate, $ctype) = split /\|/, $c->query(1, 'SELECT datcollate, datctype FROM pg_database WHERE datname = current_database()');
ok($c->wait_until('every member of group 1 known on node 1',
		sub { ($c->poll(1, q{SELECT count(encoding) FROM dragonraft.members WHERE group_id = 1}) // '') eq '3' }),
	"node 1's members view knows every member's encoding");
is($c->query(1, q{SELECT string_agg(concat_ws(':', node_id, encoding, lc_collate, lc_ctype, locale_provider, coalesce(icu_locale, '-')), ',' ORDER BY node_id)
		FROM dragonraft.members WHERE group_id = 1}),
	"1:UTF8:$collate:$ctype:libc:-,2:UTF8:$collate:$ctype:libc:-,3:LATIN1:C:C:libc:-",
	"the members view shows each member's encoding and locale");
is($c->query(1, q{SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute WHERE attrelid = 'dragonraft.members'::regclass AND attnum > 0}),
	'group_id,node_id,address,client_address,voting,match_index,lag_entries,last_contact,error,encoding,lc_collate,lc_ctype,locale_provider,icu_locale',
	'the new columns are the view\'s last');
ok(log_has($c->node(1), qr/WARNING:  node 3, a member of group 1, has a database of another encoding or locale than database "postgres" of node 1\n.*DETAIL:  Node 3's database has encoding LATIN1, this one UTF8\./),
	"node 1's log warns of node 3's database");

# The log of group 1 as it is on every member once nothing is in flight
# (node 3's info, the leader's addresses after it), and each member's
# replicated tables.
sub log_state
{
	my ($n1, $n2) = map { $c->poll($_, 'SELECT last_index FROM dragonraft.status WHERE group_id = 1') // '' } 1, 2;
	my $n3 = sql3('SELECT last_index FROM dragonraft.status WHERE group_id = 1');
	my $commit = $c->poll(1, 'SELECT commit_index FROM dragonraft.status WHERE group_id = 1') // '';
	return ($n1 eq $n2 && $n1 eq $n3 && $commit eq $n1) ? "$n1" : undef;
}
sub tables_state
{
	return join ' ', (map { $c->query($_, q{SELECT count(*) FROM dragonraft.tables}) } 1, 2),
	  sql3(q{SELECT count(*) FROM dragonraft.tables});
}
my $before = $c->wait_until('group 1 at one index on every member', \&log_state) or die 'group 1 does not settle';
my $tables_before = tables_state();
$c->query(1, 'CREATE TABLE public.z (k int PRIMARY KEY)');
for my $call ([ 'execute', q{SELECT dragonraft.execute(1, 'CREATE TABLE public.w (k int)')} ],
	[ 'replicate_table', q{SELECT dragonraft.replicate_table('public.z', 1)} ])
{
	my ($state, $err) = $c->sql_error(1, $call->[1]);
	is($state, '0A000', "$call->[0]() on node 1 is refused with 0A000");
	like($err, qr/dragonraft\.$call->[0] refused: node 3, a member of group 1, has a database of another encoding or locale/,
		"$call->[0]()'s error names node 3");
	like($err, qr/DETAIL:  Node 3's database has encoding LATIN1, this one UTF8\./, "$call->[0]()'s DETAIL has both encodings");
	like($err, qr/HINT:  Every member's dragonraft\.database must have the same encoding and locale \(CREATE DATABASE \.\.\. ENCODING \.\.\. LOCALE \.\.\. TEMPLATE template0\)\.  Remove the odd member: dragonraft\.remove_member\(1, 3\) on the leader, or dragonraft\.leave_group\(1\) on node 3\./,
		"$call->[0]()'s HINT says how to fix it");
}
is(log_state(), $before, 'nothing was proposed: group 1 is at the same index on every member');
is(tables_state(), $tables_before, 'no member replicates another table');
is($c->query(1, q{SELECT to_regclass('public.w') IS NULL}), 't', 'node 1 made no table w');
# (plain writes are not checked: the apply's stop is their backstop)
$L->safe_psql('postgres', q{INSERT INTO x VALUES (3, 'plain')});
is($c->query(1, 'SELECT count(*) FROM x'), '3', 'a plain write of a replicated table is not refused');

# 3. Group 2: node 3 (LATIN1) proposes a command with 'é' first; the UTF8
# members stop at it with the same error, node 3 applied its own.
for my $id (1, 2) { $c->query($id, "SELECT dragonraft.create_group(2, '" . $c->members . "')"); }
sql3("SELECT dragonraft.create_group(2, '" . $c->members . "')");
$c->wait_until('a leader of group 2', sub { $c->leader(2) }) or die 'no leader of group 2';
# Node 3 knows nodes 1 and 2 (UTF8) and refuses it, naming node 1 ...
ok($c->wait_until("nodes 1 and 2 known on node 3",
		sub { sql3(q{SELECT count(encoding) FROM dragonraft.member_info WHERE group_id = 2 AND node_id IN (1, 2)}) eq '2' }),
	"node 3 knows nodes 1 and 2's encodings");
{
	my $err = '';
	$N3->psql('latin', "\\set VERBOSITY verbose\nSELECT dragonraft.execute(2, 'CREATE TABLE public.v (k int)')", stderr => \$err);
	like($err, qr/ERROR:  0A000: dragonraft\.execute refused: node 1, a member of group 2, has a database of another encoding or locale.*DETAIL:  Node 1's database has encoding UTF8, this one LATIN1\./s,
		"node 3 refuses execute() too, naming node 1");
}
ok(log_has($N3, qr/WARNING:  node 1, a member of group 2, has a database of another encoding or locale than database "latin" of node 3/),
	"node 3's log warns of node 1's database");
# ... until their infos say no encoding (as an older build's would): then
# the apply's stop is what is left.
sql3(q{UPDATE dragonraft.member_info SET encoding = NULL, lc_collate = NULL, lc_ctype = NULL, locale_provider = NULL WHERE group_id = 2 AND node_id IN (1, 2)});
# (chr(233): this script's 'é' would reach the LATIN1 database as two characters)
sql3(q{SELECT dragonraft.execute(2, 'CREATE TABLE public.y (v text DEFAULT ' || quote_literal(chr(233)) || ')')});
is(sql3(q{SELECT pg_get_expr(adbin, adrelid) = '''' || chr(233) || '''::text' FROM pg_attrdef WHERE adrelid = 'public.y'::regclass}),
	't', 'node 3 ran its own command');
for my $id (1, 2)
{
	ok($c->wait_until("node $id to stop group 2",
			sub { status_of($id, 2) =~ /^apply_failed/ }), "node $id stops group 2");
	like(status_of($id, 2),
		qr/node 3 wrote entry \d+ of group 2 in encoding LATIN1, but database "postgres" of node $id has encoding UTF8 \(Give every member of a group a database of the same encoding\.\)$/,
		"node $id names node 3, both encodings and its database");
	is($c->query($id, q{SELECT to_regclass('public.y') IS NULL}), 't', "node $id made no table y");
}

done_testing();
