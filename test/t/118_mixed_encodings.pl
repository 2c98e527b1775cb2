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
$c->query(3, q{CREATE DATABASE latin ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0});
$N3->safe_psql('latin', 'CREATE EXTENSION dragonraft');
$N3->append_conf('postgresql.conf', "dragonraft.database = 'latin'\n");
$c->close_poll(3);
$N3->restart;
sub sql3 { return $N3->safe_psql('latin', $_[0]); }

for my $g (1, 2)
{
	my $m = $c->members;
	$c->query($_, "SELECT dragonraft.create_group($g, '$m')") for 1, 2;
	ok($c->wait_until('node 3 engine worker',
			sub { $N3->safe_psql('latin', 'SELECT engine_state FROM dragonraft.node_status()') eq 'running' }),
		"node 3's engine worker runs in database latin") if $g == 1;
	sql3("SELECT dragonraft.create_group($g, '$m')");
}

# state and error of group g on node 3 (database latin)
sub status3 { return sql3("SELECT state || ': ' || coalesce(error, '') FROM dragonraft.status WHERE group_id = $_[0]"); }
# the same on node id (database postgres)
sub status_of { return $c->query($_[0], "SELECT state || ': ' || coalesce(error, '') FROM dragonraft.status WHERE group_id = $_[1]"); }

# 1. Group 1, led by a UTF8 member: a table with 'é' in its definition and rows.
my $l = $c->leader(1) or die 'no leader of group 1';
if ($l == 3)
{
	sql3('SELECT dragonraft.transfer_leader(1, 1)');
	$l = 1;
	$c->wait_until('node 1 to lead group 1', sub { ($c->leader(1) // 0) == 1 }) or die 'no transfer';
}
my $L = $c->node($l);
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, $$CREATE TABLE public.x (k int PRIMARY KEY, v text DEFAULT 'é')$$)});
$L->safe_psql('postgres', q{SELECT dragonraft.replicate_table('public.x', 1)});
$L->safe_psql('postgres', q{INSERT INTO x VALUES (1, 'é'), (2, DEFAULT)});
my $last = $L->safe_psql('postgres', q{SELECT dragonraft.execute(1, 'SELECT 1')});

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

# 2. Group 2: node 3 (LATIN1) proposes a command with 'é' first; the UTF8
# members stop at it with the same error, node 3 applied its own.
$c->wait_until('a leader of group 2', sub { $c->leader(2) }) or die 'no leader of group 2';
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
