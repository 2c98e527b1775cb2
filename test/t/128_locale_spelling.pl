# A node whose database has the same locale as the others' under another
# spelling of its name (LC_COLLATE and LC_CTYPE "C.utf8" where the others
# have "C.UTF-8": glibc takes the codeset case- and punctuation-blind, so
# both are one locale) is a member like any other (review 49).  The locale
# checks of review 45 compared the names as strings: node 4 could not join
# a group with tables at all (its apply stopped at the table's
# registration, it refused the snapshot), and add_member refused it.  Now:
# 1. node 4 replays a group's log with a table's registration and applies
#    its rows (upper('é') is 'É' there too);
# 2. add_member of node 4 on a leader that knows its info goes ahead;
# 3. node 4 loads a snapshot with tables;
# 4. DROP EXTENSION in another database than dragonraft.database goes ahead.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;

my $c = DragonCluster->new(4, conf => qq{
dragonraft.snapshot_entries = 50
dragonraft.compaction_overhead = 5
max_worker_processes = 16
});
my ($collate, $ctype) = $c->template_locale;
plan skip_all => "the template database's LC_CTYPE \"$ctype\" and LC_COLLATE \"$collate\" differ"
  if $ctype ne $collate;
# The same locale spelled otherwise.
(my $other = $ctype) =~ s/\.(?:UTF-8|utf8)$/$& eq '.utf8' ? '.UTF-8' : '.utf8'/e;
plan skip_all => "the template database's locale \"$ctype\" names no UTF-8 codeset"
  if $other eq $ctype;

my $N4 = $c->node(4);
sub sql4 { return $N4->safe_psql('loc', $_[0]); }
ok($c->loc_database(4, $other), "node 4's engine worker runs in database loc");
is(sql4('SELECT datctype FROM pg_database WHERE datname = current_database()'), $other,
	"node 4's database has LC_CTYPE \"$other\", the others \"$ctype\"");
is(sql4(q{SELECT upper('é') = 'É'}), 't', "upper('é') is 'É' in node 4's database too");

# join_group(g) on node 4 (database loc); returns its stderr once it ended.
sub join4 { return $c->join_loc(4, $_[0], 1, 2, 3); }
sub status4 { return sql4("SELECT state || ': ' || coalesce(error, '') FROM dragonraft.status WHERE group_id = $_[0]"); }
# Group g on nodes 1-3 with table $table (a CHECK on text, a stored generated
# upper()), its rows written once every member's info is known on the
# leader (so the registration comes after them in the log).  The leader.
sub group_with_table
{
	my ($g, $table) = @_;
	$c->create_group($g, 1, 2, 3);
	my $l = $c->leader($g) or die "no leader of group $g";
	$c->wait_until("the members' infos of group $g on node $l",
		sub { ($c->poll($l, "SELECT count(encoding) FROM dragonraft.members WHERE group_id = $g") // '') eq '3' })
	  or die 'no member infos';
	my $L = $c->node($l);
	$L->safe_psql('postgres', "SELECT dragonraft.execute($g, \$\$CREATE TABLE public.$table (k int PRIMARY KEY, a text, b text CHECK (a < b), u text GENERATED ALWAYS AS (upper(a)) STORED)\$\$)");
	$L->safe_psql('postgres', "SELECT dragonraft.replicate_table('public.$table', $g)");
	$L->safe_psql('postgres', "INSERT INTO public.$table (k, a, b) VALUES (1, 'é', 'éé'), (2, 'a', 'b')");
	$L->safe_psql('postgres', "INSERT INTO public.$table (k, a, b) SELECT g, 'x' || g, 'y' FROM generate_series(3, 60) g");
	return $l;
}
# Node 4's row 1 of table t once it caught up with group g.
sub row4
{
	my ($g, $t) = @_;
	$c->wait_until("node 4 to hold table ${t}'s 60 rows",
		sub { sql4("SELECT to_regclass('public.$t') IS NOT NULL") eq 't'
			  && sql4("SELECT count(*) FROM public.$t") eq '60' });
	return sql4("SELECT coalesce((SELECT u FROM public.$t WHERE k = 1), 'no row 1')");
}

# 1. Group 1, node 4 replays the log.
my $l = group_with_table(1, 'z');
$c->query($l, "SELECT dragonraft.add_member(1, 4, '" . $c->raft_address(4) . "')");
my $err = join4(1);
unlike($err, qr/ERROR/, 'node 4 joins group 1 replaying its log') or diag $err;
unlike(status4(1), qr/failed/, "node 4's member of group 1 did not stop") or diag status4(1);
is(row4(1, 'z'), 'É', "node 4 applied table z's rows: upper('é') is 'É'");

# 2. Group 2's leader knows node 4's info from group 1 and adds it.
$c->create_group(2, 1, 2, 3);
my $l2 = $c->leader(2) or die 'no leader of group 2';
ok($c->wait_until("node 4's locale known on node $l2",
		sub { ($c->poll($l2, q{SELECT lc_ctype FROM dragonraft.member_info WHERE group_id = 1 AND node_id = 4}) // '') eq $other }),
	"node $l2 knows node 4's locale \"$other\" from group 1");
my ($state, $aerr) = $c->sql_error($l2, "SELECT dragonraft.add_member(2, 4, '" . $c->raft_address(4) . "')");
is($state, '', 'add_member of node 4 goes ahead') or diag $aerr;

# 3. Group 3 with a table, its members' logs compacted: node 4 loads a
# snapshot.
my $l3 = group_with_table(3, 'y');
ok($c->caught_up(3), 'group 3 caught up');
ok($c->compact(3, 1, 2, 3), 'nodes 1-3 compacted their logs of group 3');
$c->query($l3, "SELECT dragonraft.add_member(3, 4, '" . $c->raft_address(4) . "')");
$err = join4(3);
unlike($err, qr/ERROR/, 'node 4 joins group 3 loading a snapshot') or diag $err;
unlike(status4(3), qr/failed/, "node 4's member of group 3 did not stop") or diag status4(3);
is(row4(3, 'y'), 'É', "node 4 loaded table y's rows");

# 4. Node 4 has the extension in database postgres too (made there first):
# dragonraft runs in database loc, and nothing of the groups is in postgres.
# DROP EXTENSION there goes ahead; it was refused while node 4 had groups or
# their origins (cluster-wide), and leave_group, as its hint said, is
# refused in a database that is not dragonraft.database.
is($N4->safe_psql('postgres', q{SELECT count(*) FROM pg_extension WHERE extname = 'dragonraft'}), '1',
	'node 4 has the extension in database postgres too');
($state, $aerr) = $c->sql_error(4, 'DROP EXTENSION dragonraft CASCADE');
is($state, '', 'DROP EXTENSION in database postgres, not dragonraft.database, goes ahead') or diag $aerr;
$c->query($l3, q{INSERT INTO y (k, a, b) VALUES (100, 'é', 'éé')});
ok($c->wait_until('node 4 to apply a write of group 3',
		sub { sql4('SELECT count(*) FROM public.y') eq '61' }),
	"node 4's groups go on in database loc");

done_testing();
