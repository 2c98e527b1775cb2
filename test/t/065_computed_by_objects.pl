# What a member computes or checks a replicated table's rows with, changed
# directly on one member (the review 19 / 20 findings after the generated
# column's function of TAP 060): each part runs in a group of its own, so
# that one that stops a member's apply leaves the others to show theirs.
# 1. CREATE OR REPLACE FUNCTION of a CHECK constraint's function on a
#    follower: its apply refuses a row the leader took (the group stops there).
# 2. The same for the function of a unique index's expression (a duplicate
#    key on the follower only).
# 3. The same through a SQL-standard (BEGIN ATOMIC) function that the CHECK
#    calls, whose call pg_depend records.
# 4. ALTER TEXT SEARCH CONFIGURATION ... ALTER MAPPING of the configuration
#    a stored generated tsvector column names, on the leader: the leader
#    stores other lexemes than the followers compute; ALTER TEXT SEARCH
#    DICTIONARY of a dictionary it maps to (its stop words) alike.
# 5. REASSIGN OWNED of a replicated table's owner on a follower: the apply
#    runs the table's CHECK as its owner, and the new one may not call it.
# Each is refused outside dragonraft.execute(); through execute() it runs on
# every member and the group goes on.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $c = DragonCluster->new(2);
$c->create_group($_) for 1 .. 5;

sub same_rows
{
	my ($g, $table, $what) = @_;
	my $l = $c->leader($g);
	my ($f) = grep { $_ != $l } $c->ids;
	ok($c->caught_up($g), "$what: applied everywhere");
	for my $id ($c->ids)
	{
		is($c->node($id)->safe_psql('postgres',
				"SELECT coalesce(error, state) FROM dragonraft.status WHERE group_id = $g"), 'ok',
			"$what: node $id applies group $g");
	}
	my $want = $c->contents($l, $table, 'id');
	is($c->contents($f, $table, 'id'), $want, "$what: the follower has the leader's rows");
}

# Run sql on node id: refused (0A000) and says to use execute().
sub refused
{
	my ($id, $sql, $what) = @_;
	my ($st, $err) = $c->sql_error($id, $sql);
	diag "$what: " . ($st eq '' ? 'accepted' : "refused: $err");
	is($st, '0A000', "$what is refused outside execute()");
	like($err, qr/dragonraft\.execute/, "$what: the error says to use execute()") if $st ne '';
}

sub on_leader
{
	my ($g, $sql) = @_;
	return $c->node($c->leader($g))->safe_psql('postgres', $sql);
}

sub follower
{
	my ($g) = @_;
	my $l = $c->leader($g);
	my ($f) = grep { $_ != $l } $c->ids;
	return $f;
}

# 1. A CHECK constraint's function.
on_leader(1, q{SELECT dragonraft.execute(1, $$CREATE FUNCTION public.ok1(int) RETURNS bool
	IMMUTABLE LANGUAGE sql AS 'SELECT $1 > 0';
	CREATE TABLE public.ck (id int PRIMARY KEY CHECK (public.ok1(id)))$$)});
on_leader(1, "SELECT dragonraft.replicate_table('public.ck', 1)");
on_leader(1, 'INSERT INTO ck VALUES (1)');
refused(follower(1), q{CREATE OR REPLACE FUNCTION public.ok1(int) RETURNS bool
	IMMUTABLE LANGUAGE sql AS 'SELECT $1 > 5'}, 'replacing a CHECK function on a follower');
refused(follower(1), 'ALTER FUNCTION public.ok1(int) RENAME TO ok1b', 'renaming it');
on_leader(1, 'INSERT INTO ck VALUES (2)');
same_rows(1, 'ck', "a CHECK's function replaced on a follower");

# 2. A unique index's expression.
# (plpgsql: an SQL function would be inlined into the expression that the
# apply worker's relcache keeps until the index is invalidated)
on_leader(2, q{SELECT dragonraft.execute(2, $$CREATE FUNCTION public.norm(int) RETURNS int
	IMMUTABLE LANGUAGE plpgsql AS 'BEGIN RETURN $1; END';
	CREATE TABLE public.ix (id int PRIMARY KEY, v int);
	CREATE UNIQUE INDEX ix_norm ON public.ix (public.norm(v))$$)});
on_leader(2, "SELECT dragonraft.replicate_table('public.ix', 2)");
on_leader(2, 'INSERT INTO ix VALUES (1, 1)');
refused(follower(2), q{CREATE OR REPLACE FUNCTION public.norm(int) RETURNS int
	IMMUTABLE LANGUAGE plpgsql AS 'BEGIN RETURN 0; END'}, "replacing an index expression's function on a follower");
# (row 2 gets the key 0 there; row 3 the same: a duplicate key there only)
on_leader(2, 'INSERT INTO ix VALUES (2, 2)');
on_leader(2, 'INSERT INTO ix VALUES (3, 3)');
same_rows(2, 'ix', "an index expression's function replaced on a follower");

# 3. Through a BEGIN ATOMIC function.
on_leader(3, q{SELECT dragonraft.execute(3, $$CREATE FUNCTION public.inner3(int) RETURNS bool
	IMMUTABLE LANGUAGE sql AS 'SELECT $1 > 0';
	CREATE FUNCTION public.outer3(i int) RETURNS bool IMMUTABLE LANGUAGE sql
	BEGIN ATOMIC SELECT public.inner3(i); END;
	CREATE TABLE public.ck3 (id int PRIMARY KEY CHECK (public.outer3(id)))$$)});
on_leader(3, "SELECT dragonraft.replicate_table('public.ck3', 3)");
refused(follower(3), q{CREATE OR REPLACE FUNCTION public.inner3(int) RETURNS bool
	IMMUTABLE LANGUAGE sql AS 'SELECT $1 > 5'},
	'replacing a function that a CHECK reaches through a BEGIN ATOMIC body');
on_leader(3, 'INSERT INTO ck3 VALUES (1)');
same_rows(3, 'ck3', 'a function under a BEGIN ATOMIC one replaced on a follower');

# 4. A text search configuration under a stored generated column.
on_leader(4, q{SELECT dragonraft.execute(4, $$CREATE TEXT SEARCH CONFIGURATION public.cfg (COPY = pg_catalog.simple);
	CREATE TEXT SEARCH DICTIONARY public.dict (TEMPLATE = pg_catalog.simple);
	ALTER TEXT SEARCH CONFIGURATION public.cfg ALTER MAPPING FOR asciiword WITH public.dict;
	CREATE TABLE public.doc (id int PRIMARY KEY, body text,
	  tsv tsvector GENERATED ALWAYS AS (to_tsvector('public.cfg'::regconfig, body)) STORED)$$)});
on_leader(4, "SELECT dragonraft.replicate_table('public.doc', 4)");
on_leader(4, q{INSERT INTO doc (id, body) VALUES (1, 'running dogs')});
refused($c->leader(4), 'ALTER TEXT SEARCH CONFIGURATION public.cfg ALTER MAPPING FOR asciiword WITH english_stem',
	"ALTER TEXT SEARCH CONFIGURATION of a generated column's configuration on the leader");
refused($c->leader(4), 'ALTER TEXT SEARCH DICTIONARY public.dict (StopWords = english)',
	"ALTER TEXT SEARCH DICTIONARY of a dictionary under it");
on_leader(4, q{INSERT INTO doc (id, body) VALUES (2, 'running cats')});
same_rows(4, 'doc', 'a text search configuration changed on the leader');
on_leader(4, q{SELECT dragonraft.execute(4,
	'ALTER TEXT SEARCH CONFIGURATION public.cfg ALTER MAPPING FOR asciiword WITH english_stem')});
on_leader(4, q{INSERT INTO doc (id, body) VALUES (3, 'running cows')});
same_rows(4, 'doc', 'the configuration changed through execute()');
is($c->contents(follower(4), 'doc', 'id') =~ /'run'/ ? 1 : 0, 1, 'which every member applies');

# 5. REASSIGN OWNED of a replicated table's owner on a follower.
for my $id ($c->ids)
{
	$c->node($id)->safe_psql('postgres', 'CREATE ROLE alice; CREATE ROLE bob');
}
on_leader(5, q{SELECT dragonraft.execute(5, $$CREATE FUNCTION public.ok5(int) RETURNS bool
	IMMUTABLE LANGUAGE sql AS 'SELECT $1 > 0';
	REVOKE EXECUTE ON FUNCTION public.ok5(int) FROM PUBLIC;
	GRANT EXECUTE ON FUNCTION public.ok5(int) TO alice;
	CREATE TABLE public.own (id int PRIMARY KEY CHECK (public.ok5(id)));
	ALTER TABLE public.own OWNER TO alice$$)});
on_leader(5, "SELECT dragonraft.replicate_table('public.own', 5)");
on_leader(5, 'INSERT INTO own VALUES (1)');
refused(follower(5), 'REASSIGN OWNED BY alice TO bob', "REASSIGN OWNED of a replicated table's owner on a follower");
on_leader(5, 'INSERT INTO own VALUES (2)');
same_rows(5, 'own', "a replicated table's owner changed on a follower");
is($c->node(follower(5))->safe_psql('postgres', q{SELECT relowner::regrole FROM pg_class WHERE oid = 'own'::regclass}),
	'alice', 'the follower keeps the owner');
on_leader(5, q{SELECT dragonraft.execute(5, 'REASSIGN OWNED BY alice TO bob; GRANT EXECUTE ON FUNCTION public.ok5(int) TO bob')});
on_leader(5, 'INSERT INTO own VALUES (3)');
same_rows(5, 'own', 'REASSIGN OWNED through execute()');
# What a role owns that no replicated table depends on goes on as before.
$c->node(follower(5))->safe_psql('postgres', 'CREATE TABLE alice_local (i int); ALTER TABLE alice_local OWNER TO alice');
$c->node(follower(5))->safe_psql('postgres', 'REASSIGN OWNED BY alice TO bob');
is($c->node(follower(5))->safe_psql('postgres', q{SELECT relowner::regrole FROM pg_class WHERE oid = 'alice_local'::regclass}),
	'bob', 'REASSIGN OWNED of a role that owns no replicated table passes');

done_testing();
