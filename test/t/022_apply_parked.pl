# One group's entries fail to apply on a follower (a trigger of its table
# refuses them there): that group is parked on that follower only, the
# leader and the other follower go on, the follower's other group keeps
# applying, and once the cause is gone the parked group catches up with
# every row, a 5 MB one included (larger than the apply worker's queue).
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use PostgreSQL::Test::Utils;
use Test::More;

# Followers wait 1.5 s (not 0.5 s) for the leader before they campaign: its
# engine worker may be busy a moment sending them the 5 MB entry (on a
# loaded machine the leader of group 2 once lost its leadership to that,
# and the INSERT its outcome: 40003).
my $c = DragonCluster->new(3, conf => "dragonraft.election_rtt = 30\n");
$c->create_group($_) for 1 .. 2;
my $l1 = $c->leader(1) or die 'no leader of group 1';
my $l2 = $c->leader(2) or die 'no leader of group 2';
my ($f) = grep { $_ != $l2 } $c->ids;
my $F = $c->node($f);

# t2 (group 2) refuses rows wherever a local table fail_switch exists.
$c->node($l2)->safe_psql('postgres', q{SELECT dragonraft.execute(2, $$
CREATE TABLE t2 (id int PRIMARY KEY, v text);
CREATE FUNCTION t2_check() RETURNS trigger LANGUAGE plpgsql AS
  'BEGIN
     IF to_regclass(''public.fail_switch'') IS NOT NULL THEN
       RAISE EXCEPTION ''injected failure of row %'', NEW.id
         USING HINT = ''Drop public.fail_switch.'';
     END IF;
     RETURN NEW;
   END';
CREATE TRIGGER t2_check BEFORE INSERT ON t2 FOR EACH ROW EXECUTE FUNCTION t2_check();
ALTER TABLE t2 ENABLE ALWAYS TRIGGER t2_check;
$$)});
$c->node($l1)->safe_psql('postgres',
	q{SELECT dragonraft.execute(1, 'CREATE TABLE t1 (id int PRIMARY KEY)')});
ok($c->caught_up($_), "group $_ DDL applied everywhere") for 1 .. 2;
$c->node($l1)->safe_psql('postgres', q{SELECT dragonraft.replicate_table('t1', 1)});
$c->node($l2)->safe_psql('postgres', q{SELECT dragonraft.replicate_table('t2', 2)});
ok($c->caught_up($_), "group $_ table registered everywhere") for 1 .. 2;

# 1. Node $f refuses group 2's rows.
$F->safe_psql('postgres', 'CREATE TABLE public.fail_switch ()');
my $L2 = $c->node($l2);
$L2->safe_psql('postgres', "INSERT INTO t2 VALUES (1, repeat('x', 5000000))");
$L2->safe_psql('postgres', "INSERT INTO t2 VALUES ($_, 'row $_')") for 2 .. 50;
ok( $F->poll_query_until('postgres', q{
		SELECT state = 'apply_failed'
		   AND error LIKE 'apply worker: injected failure of row 1 (Drop public.fail_switch.)%'
		  FROM dragonraft.status WHERE group_id = 2}),
	"group 2 is apply_failed on node $f with the error and its hint");
is($F->safe_psql('postgres', 'SELECT count(*) FROM t2'), '0', 'none of its rows is applied there');
my $apid = $F->safe_psql('postgres', 'SELECT apply_pid FROM dragonraft.node_status()');

# Meanwhile group 1 goes on, on every node.
$c->node($l1)->safe_psql('postgres', "INSERT INTO t1 SELECT generate_series(1, 100)");
ok($c->caught_up(1), 'group 1 is applied everywhere meanwhile');
is($F->safe_psql('postgres', 'SELECT count(*) FROM t1'), '100', "node $f has group 1's rows");
for my $id (grep { $_ != $f } $c->ids)
{
	ok( $c->wait_until("node $id has group 2's rows",
			sub { $c->node($id)->safe_psql('postgres', 'SELECT count(*) FROM t2') eq '50' }),
		"node $id applies group 2");
}
ok( $F->poll_query_until('postgres',
		'SELECT apply_errors >= 2 FROM dragonraft.stat_groups WHERE group_id = 2'),
	"node $f tries group 2 again");
is($F->safe_psql('postgres', 'SELECT apply_pid FROM dragonraft.node_status()'),
	$apid, 'with the same apply worker');

# 2. The cause goes: group 2 catches up on node $f.
$F->safe_psql('postgres', 'DROP TABLE public.fail_switch');
ok($c->caught_up(2), "group 2 catches up on node $f");
is($c->contents($f, 't2', 'id'), $c->contents($l2, 't2', 'id'), 'with every row');
is($F->safe_psql('postgres', q{SELECT state FROM dragonraft.status WHERE group_id = 2}),
	'ok', 'and its status is ok again');
unlike(slurp_file($F->logfile), qr/are missing/, 'no entry was skipped');

# 3. After a restart of every server (shared memory new everywhere), writes
# go on and reach every member.
$c->node($_)->restart for $c->ids;
$l1 = $c->leader(1) or die 'no leader of group 1 after the restart';
$c->node($l1)->safe_psql('postgres', 'INSERT INTO t1 SELECT generate_series(101, 110)');
ok($c->caught_up(1), 'group 1 applied everywhere after the restart');
for my $id ($c->ids)
{
	is($c->node($id)->safe_psql('postgres', 'SELECT count(*) FROM t1'), '110',
		"node $id has the rows written after the restart");
}

$c->node($_)->stop('fast') for $c->ids;
done_testing();
