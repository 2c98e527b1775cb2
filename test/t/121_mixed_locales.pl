# Members whose databases have the same encoding (UTF8) but another locale:
# node 3's dragonraft.database was made with LOCALE 'C', nodes 1 and 2 keep
# postgres (the template's locale, C.UTF-8 here).  No entry stops on that:
# the encoding is the same, yet each member's apply computes upper() of a
# stored generated column with its own LC_CTYPE and checks a CHECK
# (a < b) on text with its own LC_COLLATE, so a member diverges silently or
# its apply stops.  Members announce their database's locale in their
# member info; every member warns about one whose locale differs, and
# execute() and replicate_table() are refused (0A000) before anything is
# proposed while it is a member.  Once it is removed, they go on.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $c = DragonCluster->new(3);
my ($enc, $collate, $ctype) = split /\|/, $c->query(1,
	'SELECT pg_encoding_to_char(encoding), datcollate, datctype FROM pg_database WHERE datname = current_database()');
plan skip_all => "the template database is $enc, not UTF8" if $enc ne 'UTF8';
plan skip_all => "the template database's locale is C already" if $collate eq 'C' || $ctype eq 'C';

# Node 3 runs dragonraft in database loc: UTF8, locale C.
my $N3 = $c->node(3);
$c->use_database(3, 'loc', q{CREATE DATABASE loc ENCODING 'UTF8' LOCALE 'C' TEMPLATE template0});
# (the apply worker logs its warnings when it applies the member info)
sub log_has { return $c->log_has(@_); }
sub sql3 { return $N3->safe_psql('loc', $_[0]); }
ok($c->wait_until('node 3 engine worker',
		sub { sql3('SELECT engine_state FROM dragonraft.node_status()') eq 'running' }),
	"node 3's engine worker runs in database loc");

$c->query($_, "SELECT dragonraft.create_group(1, '" . $c->members . "')") for 1, 2;
sql3("SELECT dragonraft.create_group(1, '" . $c->members . "')");
$c->lead(1, 1) or die 'node 1 does not lead group 1';

# Node 1 learns node 3's locale from its member info.
ok($c->wait_until('every member of group 1 known on node 1',
		sub { ($c->poll(1, q{SELECT count(encoding) FROM dragonraft.members WHERE group_id = 1}) // '') eq '3' }),
	"node 1's members view knows every member's encoding and locale");
is($c->query(1, q{SELECT string_agg(concat_ws(':', node_id, encoding, lc_collate, lc_ctype, locale_provider, coalesce(icu_locale, '-')), ',' ORDER BY node_id)
		FROM dragonraft.members WHERE group_id = 1}),
	"1:UTF8:$collate:$ctype:libc:-,2:UTF8:$collate:$ctype:libc:-,3:UTF8:C:C:libc:-",
	'the members view shows each member\'s locale');
ok(log_has($c->node(1), qr/WARNING:  node 3, a member of group 1, has a database of another encoding or locale than database "postgres" of node 1\n.*DETAIL:  Node 3's database has LC_COLLATE "C", this one "\Q$collate\E"\.  Node 3's database has LC_CTYPE "C", this one "\Q$ctype\E"\./),
	"node 1's log warns of node 3's locale, naming both");
ok(log_has($N3, qr/WARNING:  node 1, a member of group 1, has a database of another encoding or locale than database "loc" of node 3/),
	"node 3's log warns of node 1's locale");

# The gate: nothing proposed, on any member.
sub log_state
{
	my @last = map { $c->poll($_, 'SELECT last_index FROM dragonraft.status WHERE group_id = 1') // '' } 1, 2;
	push @last, sql3('SELECT last_index FROM dragonraft.status WHERE group_id = 1');
	my $commit = $c->poll(1, 'SELECT commit_index FROM dragonraft.status WHERE group_id = 1') // '';
	return (grep { $_ ne $commit } @last) ? undef : $commit;
}
sub tables_state
{
	return join ' ', (map { $c->query($_, q{SELECT count(*) FROM dragonraft.tables}) } 1, 2),
	  sql3(q{SELECT count(*) FROM dragonraft.tables});
}
my $before = $c->wait_until('group 1 at one index on every member', \&log_state) or die 'group 1 does not settle';
my $tables_before = tables_state();
$c->query(1, 'CREATE TABLE public.z (k int PRIMARY KEY, a text, b text CHECK (a < b), u text GENERATED ALWAYS AS (upper(a)) STORED)');
for my $call ([ 'execute', q{SELECT dragonraft.execute(1, 'CREATE TABLE public.w (k int)')} ],
	[ 'replicate_table', q{SELECT dragonraft.replicate_table('public.z', 1)} ])
{
	my ($state, $err) = $c->sql_error(1, $call->[1]);
	is($state, '0A000', "$call->[0]() on node 1 is refused with 0A000");
	like($err, qr/dragonraft\.$call->[0] refused: node 3, a member of group 1, has a database of another encoding or locale/,
		"$call->[0]()'s error names node 3");
	like($err, qr/DETAIL:  Node 3's database has LC_COLLATE "C", this one "\Q$collate\E"\.  Node 3's database has LC_CTYPE "C", this one "\Q$ctype\E"\./,
		"$call->[0]()'s DETAIL has both locales");
	like($err, qr/HINT:  Every member's dragonraft\.database must have the same encoding and locale/,
		"$call->[0]()'s HINT says what to do");
}
is(log_state(), $before, 'nothing was proposed: group 1 is at the same index on every member');
is(tables_state(), $tables_before, 'no member replicates a table');
is($c->query(1, q{SELECT to_regclass('public.w') IS NULL}), 't', 'node 1 made no table w');
{
	my $err = '';
	$N3->psql('loc', "\\set VERBOSITY verbose\nSELECT dragonraft.execute(1, 'CREATE TABLE public.w (k int)')", stderr => \$err);
	like($err, qr/ERROR:  0A000: dragonraft\.execute refused: node 1, a member of group 1/, 'node 3 refuses execute() too, naming node 1');
}

# A barrier computes nothing with the locale: check_consistency (its marker
# is one) still runs, and every member, node 3 too, records the check.
my $m = $c->query(1, 'SELECT dragonraft.check_consistency(1)');
ok($m > $before, 'check_consistency runs on node 1 while node 3 has another locale');
ok($c->wait_until("node 3 to record the check at $m",
		sub { sql3("SELECT count(*) FROM dragonraft.consistency_checks WHERE group_id = 1 AND log_index = $m") > 0 }),
	'node 3 applies the marker and records the check');

# Removed, node 3 no longer holds the group back (its member_info row stays:
# the gate looks at members only).
$c->query(1, 'SELECT dragonraft.remove_member(1, 3)');
$c->group_nodes(1, 1, 2);
$c->query(1, q{SELECT dragonraft.replicate_table('public.z', 1)});
is($c->query(1, q{SELECT group_id FROM dragonraft.tables WHERE relid = 'public.z'::regclass}), '1',
	'replicate_table() runs once node 3 is removed');
ok($c->wait_until('node 2 to replicate z',
		sub { ($c->poll(2, q{SELECT count(*) FROM dragonraft.tables WHERE relid = to_regclass('public.z')}) // '') eq '1' }),
	'node 2 replicates it');

# A member whose info an older build sent (no encoding nor locale: NULL)
# sends it again once this build starts: its client_address file, which an
# older build wrote with the address only, does not say them.
my $N2 = $c->node(2);
my $file = $N2->data_dir . '/dragonraft/client_address';
# (written once every group of node 2 applied its info: wait for it)
ok($c->wait_until("node 2's client_address file", sub { -f $file }),
	"node 2 wrote its client_address file");
like(slurp_file($file), qr/\nencoding 6 provider c collate \Q$collate\E ctype \Q$ctype\E icu $/,
	"node 2's client_address file says its encoding and locale");
$c->close_poll(2);
$N2->stop;
$c->query(1, q{UPDATE dragonraft.member_info SET encoding = NULL, lc_collate = NULL, lc_ctype = NULL, locale_provider = NULL WHERE group_id = 1 AND node_id = 2});
my ($addr) = split /\n/, slurp_file($file);
open(my $fh, '>', $file) or die "cannot write $file: $!";
print $fh $addr;
close($fh);
$N2->start;
ok($c->wait_until("node 2's locale on node 1 again",
		sub { ($c->poll(1, q{SELECT concat_ws(':', encoding, lc_collate, lc_ctype, locale_provider) FROM dragonraft.member_info WHERE group_id = 1 AND node_id = 2}) // '') eq "UTF8:$collate:$ctype:libc" }),
	'a member whose file an older build wrote sends its info again, with its encoding and locale');

done_testing();
