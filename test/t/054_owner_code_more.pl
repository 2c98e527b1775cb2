# More of a table owner's code that must run as that owner, never as the
# superuser that applies a registration or loads a snapshot (after TAP 053).
# PostgreSQL folds a call of an IMMUTABLE function with constant arguments
# when it validates a new CHECK constraint (as whoever runs the ALTER TABLE)
# and when it makes an index (as the table's owner): a member that made a
# table from a registration ran its whole definition as the superuser, the
# table its own, and a load made the ordinary tables that commands made
# (not replicated) so too.  A kept table's TRUNCATE trigger ran as its owner
# but what it SET stayed for the rest of the load: a search_path that puts
# the owner's schema first made the load's own queries (group_id = $1) run
# the owner's operator as the superuser.  The role own (not a superuser)
# owns functions that raise for any other caller.  Group 1 on nodes 1-3;
# the followers make r from its registration; one falls behind and loads a
# snapshot keeping its tables; node 4, bare, joins from a snapshot.  A
# stored generated column's expression runs while its table is made (the
# check that it is immutable): r and pl are made as own.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $c = DragonCluster->new(4, conf => qq{
dragonraft.snapshot_entries = 50
dragonraft.compaction_overhead = 5
});
$c->create_group(1, 1, 2, 3);
my $l = $c->leader(1);
ok($l, "group 1 has a writable leader (node $l)");
my $L = $c->node($l);

for my $id (1 .. 4)
{
	$c->node($id)->safe_psql('postgres', q{CREATE ROLE own LOGIN; GRANT dragonraft_admin TO own});
}
sub as_own { return $c->node($c->leader(1))->safe_psql('postgres', $_[0], extra_params => [ '-U', 'own' ]); }

$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, 'CREATE SCHEMA own_s AUTHORIZATION own')});
# c raises for any caller but own in dragonraft's workers (the tests' own
# queries plan with it too, as postgres); own_s.= (bigint, bigint) too; trg, a
# TRUNCATE trigger, puts own_s first in the search_path.
as_own(q{SELECT dragonraft.execute(1, $cmd$
CREATE FUNCTION own_s.worker() RETURNS boolean LANGUAGE sql STABLE
  RETURN (SELECT backend_type FROM pg_catalog.pg_stat_activity WHERE pid = pg_catalog.pg_backend_pid())
    IS DISTINCT FROM 'client backend';
CREATE FUNCTION own_s.c(v int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $f$
BEGIN
  IF current_user <> 'own' AND own_s.worker() THEN
    RAISE EXCEPTION 'c(%) run as %', v, current_user;
  END IF;
  RETURN v;
END $f$;
CREATE FUNCTION own_s.eq8(a bigint, b bigint) RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS $f$
BEGIN
  IF current_user <> 'own' AND own_s.worker() THEN
    RAISE EXCEPTION 'own_s.= run as %', current_user;
  END IF;
  RETURN a OPERATOR(pg_catalog.=) b;
END $f$;
CREATE OPERATOR own_s.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = own_s.eq8);
CREATE FUNCTION own_s.trg() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
  PERFORM pg_catalog.set_config('search_path', 'own_s, pg_catalog', false);
  RETURN NULL;
END $f$;
CREATE TABLE own_s.kt (id bigint PRIMARY KEY, v int);
CREATE TRIGGER kt_t BEFORE TRUNCATE ON own_s.kt FOR EACH STATEMENT EXECUTE FUNCTION own_s.trg();
ALTER TABLE own_s.kt ENABLE ALWAYS TRIGGER kt_t;
CREATE TABLE own_s.pl (v int CONSTRAINT pl_v CHECK (v > own_s.c(3)),
  w int GENERATED ALWAYS AS (v + own_s.c(7)) STORED);
CREATE INDEX pl_ix ON own_s.pl ((v + own_s.c(4)));
$cmd$)});
# r, made on the leader alone with its rows: the registration makes it on
# the followers.
as_own(q{CREATE TABLE own_s.r (id bigint PRIMARY KEY, v int, w int GENERATED ALWAYS AS (v + own_s.c(6)) STORED,
  CONSTRAINT r_v CHECK (v > own_s.c(0)));
CREATE INDEX r_ix ON own_s.r ((v + own_s.c(1)));
CREATE INDEX r_px ON own_s.r (id) WHERE v > own_s.c(2);
INSERT INTO own_s.r SELECT g, g FROM generate_series(1, 20) g;
INSERT INTO own_s.kt SELECT g, g FROM generate_series(1, 20) g});
as_own(q{SELECT dragonraft.replicate_table('own_s.r', 1)});
as_own(q{SELECT dragonraft.replicate_table('own_s.kt', 1)});
ok($c->caught_up(1), 'the members applied the commands and the rows');

sub owner_of
{
	my ($id, $rel) = @_;
	return $c->node($id)->safe_psql('postgres',
		qq{SELECT coalesce((SELECT relowner::regrole::text FROM pg_class WHERE oid = to_regclass('$rel')), 'missing')});
}

my @f = grep { $_ != $l } (1, 2, 3);
my $b = $f[1];
my @rest = grep { $_ != $b } (1, 2, 3);
for my $id (@f)
{
	is(owner_of($id, 'own_s.r'), 'own', "node $id made r from its registration, owned by own");
	is(owner_of($id, 'own_s.r') eq 'missing' ? 'no r' : $c->node($id)->safe_psql('postgres', 'SELECT count(*) FROM own_s.r'),
		'20', "node $id has r's rows");
	is($c->node($id)->safe_psql('postgres', q{SELECT string_agg(conname || ' ' || convalidated, ', ' ORDER BY conname)
		FROM pg_constraint WHERE conrelid = to_regclass('own_s.r')}),
		'r_pkey true, r_v true', "node $id: r's constraints are valid");
}

# A follower falls behind a compacted log: its load keeps r and kt, and truncates them.
$c->node($b)->stop('fast');
$c->group_nodes(1, @rest);
for my $k (1 .. 6)
{
	as_own(join('', map { "UPDATE own_s.kt SET v = v + 1 WHERE id = $_;\n" } 1 .. 10));
}
ok($c->compact(1, @rest), 'the others compacted their logs');
$c->node($b)->start;
$c->group_nodes(1, 1, 2, 3);
ok($c->wait_until("node $b to load a snapshot", sub { $c->node($b)->safe_psql('postgres',
	q{SELECT snapshots_received >= 1 FROM dragonraft.stat_groups WHERE group_id = 1}) eq 't' }),
	"node $b loads a snapshot");
ok($c->caught_up(1), 'and catches up');
is(owner_of($b, 'own_s.kt') eq 'missing' ? 'no kt' : $c->contents($b, 'own_s.kt', 'id'),
	$c->contents($l, 'own_s.kt', 'id'), "node $b has kt's rows");

# Node 4, bare, joins from a snapshot: it makes r, kt and the plain table pl.
ok($c->compact(1, 1, 2, 3), 'the members compacted their logs');
$c->node($c->leader(1))->safe_psql('postgres', "SELECT dragonraft.add_member(1, 4, '" . $c->raft_address(4) . "')");
$c->node(4)->safe_psql('postgres', "SELECT dragonraft.join_group(1, '" . $c->members(1, 2, 3) . "')");
$c->group_nodes(1, 1, 2, 3, 4);
ok($c->wait_until('node 4 to load a snapshot', sub { $c->node(4)->safe_psql('postgres',
	q{SELECT snapshots_received >= 1 FROM dragonraft.stat_groups WHERE group_id = 1}) eq 't' }),
	'the bare node 4 joins from a snapshot');
ok($c->caught_up(1), 'and catches up');
is(owner_of(4, 'own_s.pl'), 'own', 'node 4 made the plain table pl, owned by own');
is($c->node(4)->safe_psql('postgres', q{SELECT string_agg(conname || ' ' || convalidated, ', ' ORDER BY conname)
	FROM pg_constraint WHERE conrelid = to_regclass('own_s.pl')}),
	'pl_v true', "node 4: pl's CHECK is valid");
is(owner_of(4, 'own_s.r') eq 'missing' ? 'no r' : $c->contents(4, 'own_s.r', 'id'),
	$c->contents($l, 'own_s.r', 'id'), "node 4 has r's rows");

# A member's apply worker reads a table's indexes for the first time when
# it applies its first row after a start, or when a registration finds the
# table there already (its check that the table is empty planned a query):
# what of their expressions is constant ran as the superuser.
my $x = (grep { $_ != $c->leader(1) } (1, 2, 3))[0];
$c->node($x)->restart;
as_own(q{INSERT INTO own_s.r VALUES (100, 100)});
ok($c->caught_up(1), "every member applied a row of r, node $x after a restart");
is(owner_of($x, 'own_s.r') eq 'missing' ? 'no r' : $c->contents($x, 'own_s.r', 'id'),
	$c->contents($c->leader(1), 'own_s.r', 'id'), "node $x has r's rows");
my $r2 = q{CREATE TABLE own_s.r2 (id bigint PRIMARY KEY, v int);
CREATE INDEX r2_ix ON own_s.r2 ((v + own_s.c(5)));};
$c->node($x)->safe_psql('postgres', $r2, extra_params => [ '-U', 'own' ]);
as_own($r2 . q{INSERT INTO own_s.r2 SELECT g, g FROM generate_series(1, 5) g});
as_own(q{SELECT dragonraft.replicate_table('own_s.r2', 1)});
ok($c->caught_up(1), 'every member applied the registration of r2');
is(owner_of($_, 'own_s.r2') eq 'missing' ? 'no r2' : $c->node($_)->safe_psql('postgres',
	q{SELECT count(*) || ' ' || (SELECT state FROM dragonraft.replicated_tables WHERE relid = 'own_s.r2'::regclass)
	  FROM own_s.r2}), '5 replicated', "node $_ replicates r2 with its rows")
  for $c->ids;

# Nobody ran own's code as another role.
for my $id ($c->ids)
{
	my $log = slurp_file($c->node($id)->logfile);
	my @bad = $log =~ /((?:c\(\d\)|own_s\.=) run as (?!own\b)\w+)/g;
	is(join(', ', @bad), '', "node $id: none of own's code ran as another role");
}
done_testing();
