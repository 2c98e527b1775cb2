# A node whose database has another locale joins a group that already has
# replicated tables (review 45).  The gate (execute(), replicate_table())
# refuses only what is proposed while a member's info says another locale:
# a node added later slipped through.  Node 4 runs dragonraft in database
# loc (UTF8, locale C); nodes 1-3 keep postgres (the template's locale).
# Table z has a stored generated column upper(a): under LC_CTYPE "C",
# upper('é') is 'é', so node 4 stored other values than the others and
# diverged silently (table_digest differs), whether it replayed the log or
# loaded a snapshot.  Now:
# 1. replaying the log, node 4's apply stops at the command that makes the
#    table (execute() of CREATE TABLE, before the table's registration),
#    naming its proposer and both locales (the proposer's member info came
#    before it); join_group ends with that (review 45 hole 3: before, it
#    ran the command, made the table, and stopped at the registration);
# 2. a snapshot says its exporter's locale: node 4 refuses to load one with
#    tables (no leader knew node 4's info, so add_member let it in);
# 3. add_member of node 4 is refused on a leader that knows its info (0A000).
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
plan skip_all => "the template database's locale is C already" if $ctype eq 'C';

my $N4 = $c->node(4);
sub sql4 { return $N4->safe_psql('loc', $_[0]); }
ok($c->loc_database(4, 'C'), "node 4's engine worker runs in database loc");
is(sql4(q{SELECT upper('é') = 'é'}), 't', "upper('é') is 'é' in node 4's database");
is($c->query(1, q{SELECT upper('é') = 'É'}), 't', "and 'É' in the others'");

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
# What node 4 holds of table t: 'no table', 'not replicated' (no rows), or
# row 1's u.
sub held4
{
	my ($t) = @_;
	return 'no table' if sql4("SELECT to_regclass('public.$t') IS NULL") eq 't';
	return 'not replicated' if sql4("SELECT count(*) FROM dragonraft.tables WHERE relid = 'public.$t'::regclass") eq '0'
	  && sql4("SELECT NOT EXISTS (SELECT FROM public.$t)") eq 't';
	return sql4("SELECT coalesce((SELECT u FROM public.$t WHERE k = 1), 'no row 1')");
}

# 1. Group 1, node 4 replays the log.
my $l = group_with_table(1, 'z');
my $L = $c->node($l);
$L->safe_psql('postgres', "SELECT dragonraft.add_member(1, 4, '" . $c->raft_address(4) . "')");
my $err = join4(1);
like($err, qr/node 4 cannot apply the entries of group 1.*node $l proposed a command in entry \d+ of group 1 with a database of another locale than database "loc" of node 4/s,
	'join_group ends: node 4 stops at the CREATE TABLE command, naming its proposer')
  or diag $err;
like(status4(1),
	qr/^apply_failed: apply worker: node $l proposed a command in entry \d+ of group 1 with a database of another locale than database "loc" of node 4 \(Every member's dragonraft\.database must have the same encoding and locale: leave the group here \(dragonraft\.leave_group\(1\)\)/,
	"node 4's status says why, and what to do");
ok($c->log_has($N4, qr/ERROR:  node $l proposed a command in entry \d+ of group 1 .*\n.*DETAIL:  Node ${l}'s database has LC_COLLATE "\Q$collate\E", this one "C"\.  Node ${l}'s database has LC_CTYPE "\Q$ctype\E", this one "C"\.  Nothing of it was applied/),
	"node 4's log names both locales");
is(held4('z'), 'no table', 'node 4 made no table z (nor holds its rows)');
is($c->query($l, 'SELECT u FROM z WHERE k = 1'), 'É', "node $l stored upper('é') as 'É'");

# 2. Group 3 with a table, its members' logs compacted: node 4 needs a
# snapshot.  No member knows node 4's info (a joiner proposes it once it
# caught up, and node 4 did not), so add_member lets it in; node 4 refuses
# the snapshot.
my $l3 = group_with_table(3, 'y');
ok($c->caught_up(3), 'group 3 caught up');
ok($c->compact(3, 1, 2, 3), 'nodes 1-3 compacted their logs of group 3');
$c->query($l3, "SELECT dragonraft.add_member(3, 4, '" . $c->raft_address(4) . "')");
$err = join4(3);
like($err, qr/node 4 cannot apply the entries of group 3.*snapshot file "[^"]*" of group 3 was made by node $l3 with a database of another locale than database "loc" of node 4/s,
	'join_group ends: node 4 refuses the snapshot, naming its exporter')
  or diag $err;
like(status4(3), qr/^apply_failed: apply worker: snapshot file "[^"]*" of group 3 was made by node $l3 with a database of another locale/,
	"node 4's status says why");
ok($c->log_has($N4, qr/DETAIL:  Node ${l3}'s database has LC_COLLATE "\Q$collate\E", this one "C"\.  Node ${l3}'s database has LC_CTYPE "\Q$ctype\E", this one "C"\.  Nothing of it was loaded/),
	"node 4's log names both locales");
like(held4('y'), qr/^(no table|not replicated)$/, 'node 4 loaded no table y');
is($c->query($l3, 'SELECT u FROM y WHERE k = 1'), 'É', "node $l3 stored upper('é') as 'É'");
# The others go on.
$c->query($l3, q{INSERT INTO y (k, a, b) VALUES (100, 'é', 'éé')});
ok($c->caught_up(3), 'group 3 goes on on nodes 1-3');

# 3. Group 2 made with node 4 (no tables: allowed, warned): its members
# know node 4's info.  Group 4's leader, a member of group 2, refuses to
# add node 4 to group 4.
$c->group_nodes(2, 1, 2, 3, 4);
$c->query($_, "SELECT dragonraft.create_group(2, '" . $c->members . "')") for 1, 2, 3;
sql4("SELECT dragonraft.create_group(2, '" . $c->members . "')");
$c->create_group(4, 1, 2, 3);
my $l2 = $c->leader(4) or die 'no leader of group 4';
ok($c->wait_until("node 4's locale known on node $l2",
		sub { ($c->poll($l2, q{SELECT lc_ctype FROM dragonraft.member_info WHERE group_id = 2 AND node_id = 4}) // '') eq 'C' }),
	"node $l2 knows node 4's locale from group 2");
my ($state, $aerr) = $c->sql_error($l2, "SELECT dragonraft.add_member(4, 4, '" . $c->raft_address(4) . "')");
is($state, '0A000', 'add_member of node 4 is refused with 0A000');
like($aerr, qr/dragonraft\.add_member refused: node 4 has a database of another encoding or locale than node $l2.*DETAIL:  Node 4's database has LC_COLLATE "C", this one "\Q$collate\E"\..*HINT:  Every member's dragonraft\.database must have the same encoding and locale/s,
	"add_member's error names both locales and the fix");
is($c->query($l2, 'SELECT count(*) FROM dragonraft.members WHERE group_id = 4 AND node_id = 4'), '0',
	'node 4 is not a member of group 4');

done_testing();
