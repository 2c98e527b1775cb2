# Review 20: ways to make a replicated table's rows differ between members
# with no error anywhere.  Each part asserts what the design promises (equal
# ordered contents on every member, or a refusal); a part that fails is a
# silent divergence.
# 1. execute() of ALTER TABLE ... ADD COLUMN ... GENERATED ALWAYS AS (<an
#    expression with a literal each member reads itself>) STORED: each member
#    parses 'now' (or a TimeZone-read timestamptz) when it runs the command,
#    so its existing rows and every later row get its own value.
# 2. ALTER TYPE ... RENAME VALUE of an enum that a replicated column uses,
#    run directly on one member (a follower here): no 25006, no refusal.
# 3. CREATE OR REPLACE FUNCTION of the immutable function that a replicated
#    table's stored generated column calls, run directly on the leader:
#    the leader stores its new result, the followers compute the old one.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $c = DragonCluster->new(2);
$c->create_group(1);
my $l = $c->leader(1);
ok($l, "group 1 has a writable leader (node $l)");
my ($f) = grep { $_ != $l } $c->ids;
my ($L, $F) = ($c->node($l), $c->node($f));

sub same_rows
{
	my ($table, $order, $what) = @_;
	ok($c->caught_up(1), "$what: applied everywhere");
	for my $id ($c->ids)
	{
		is($c->node($id)->safe_psql('postgres',
				q{SELECT state FROM dragonraft.status WHERE group_id = 1}), 'ok',
			"$what: node $id applies the group");
	}
	my $want = $c->contents($l, $table, $order);
	is($c->contents($f, $table, $order), $want, "$what: the follower has the leader's rows")
	  or diag "leader: $want\nfollower: " . $c->contents($f, $table, $order);
}

# 1. A generated column with a literal each member reads itself.
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, 'CREATE TABLE public.gen (id int PRIMARY KEY, v int)')});
$L->safe_psql('postgres', "SELECT dragonraft.replicate_table('public.gen', 1)");
$L->safe_psql('postgres', "INSERT INTO gen VALUES (1, 10), (2, 20)");
my ($st, $err) = $c->sql_error($l, q{SELECT dragonraft.execute(1,
	$$ALTER TABLE public.gen ADD COLUMN at timestamptz GENERATED ALWAYS AS ('now'::timestamptz) STORED$$)});
diag "generated 'now' column: " . ($st eq '' ? 'accepted' : "refused: $err");
isnt($st, '', "a generated column of 'now' is refused");
$L->safe_psql('postgres', "INSERT INTO gen VALUES (3, 30)");
same_rows('gen', 'id', "generated column of 'now'");

# The same with a timestamptz literal that each member reads in its own
# TimeZone (the leader's session sets another one than the apply workers').
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, 'CREATE TABLE public.gen2 (id int PRIMARY KEY, v int)')});
$L->safe_psql('postgres', "SELECT dragonraft.replicate_table('public.gen2', 1)");
$L->safe_psql('postgres', "INSERT INTO gen2 VALUES (1, 10)");
($st, $err) = $c->sql_error($l, q{SET TimeZone = 'Asia/Tokyo'; SELECT dragonraft.execute(1,
	$$ALTER TABLE public.gen2 ADD COLUMN tz timestamptz GENERATED ALWAYS AS ('2026-01-01 00:00'::timestamptz) STORED$$)});
diag "generated TimeZone-read column: " . ($st eq '' ? 'accepted' : "refused: $err");
isnt($st, '', 'a generated column of a timestamptz literal is refused');
same_rows('gen2', 'id', 'generated column of a TimeZone-read literal');

# 2. An enum label renamed on one member only.
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, $$CREATE TYPE public.mood AS ENUM ('sad', 'ok', 'happy');
	CREATE TABLE public.feel (id int PRIMARY KEY, m public.mood)$$)});
$L->safe_psql('postgres', "SELECT dragonraft.replicate_table('public.feel', 1)");
$L->safe_psql('postgres', "INSERT INTO feel VALUES (1, 'sad'), (2, 'happy')");
# (the follower has the table replicated before it is tried there: a rename
# that came first was accepted, the table not yet replicated, and its apply
# of the rows then failed on 'sad')
ok($c->caught_up(1), 'the follower applied replicate_table and the rows');
($st, $err) = $c->sql_error($f, q{ALTER TYPE public.mood RENAME VALUE 'sad' TO 'glad'});
diag "RENAME VALUE on the follower: " . ($st eq '' ? 'accepted' : "refused: $err");
isnt($st, '', 'RENAME VALUE of a replicated column\'s enum outside execute() is refused');
($st, $err) = $c->sql_error($f, q{CREATE TYPE public.moods AS (m public.mood[])});
($st, $err) = $c->sql_error($f, q{ALTER TYPE public.mood RENAME VALUE 'ok' TO 'fine'});
isnt($st, '', '... and so it is through an array in a composite type');
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, $$ALTER TYPE public.mood RENAME VALUE 'happy' TO 'glad'$$)});
same_rows('feel', 'id', 'enum label renamed on a follower');

# 3. The function of a stored generated column replaced on the leader only.
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, $$CREATE FUNCTION public.twice(int) RETURNS int
	IMMUTABLE LANGUAGE sql AS 'SELECT $1 * 2';
	CREATE TABLE public.calc (id int PRIMARY KEY, v int, w int GENERATED ALWAYS AS (public.twice(v)) STORED)$$)});
$L->safe_psql('postgres', "SELECT dragonraft.replicate_table('public.calc', 1)");
$L->safe_psql('postgres', "INSERT INTO calc VALUES (1, 1)");
($st, $err) = $c->sql_error($l, q{CREATE OR REPLACE FUNCTION public.twice(int) RETURNS int
	IMMUTABLE LANGUAGE sql AS 'SELECT $1 * 3'});
diag "CREATE OR REPLACE FUNCTION on the leader: " . ($st eq '' ? 'accepted' : "refused: $err");
isnt($st, '', 'CREATE OR REPLACE FUNCTION of a generated column\'s function outside execute() is refused');
$L->safe_psql('postgres', "INSERT INTO calc VALUES (2, 2)");
same_rows('calc', 'id', 'generated column function replaced on the leader');

# 4. execute() of ALTER TABLE on a parent that is not replicated recurses
#    into its replicated inheritance child / partition: the fill of the new
#    column is not checked (check_execute looked at the named table only),
#    and a direct ALTER TABLE of the parent changed the child on one member.
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, $$CREATE TABLE public.par (id int, v int);
	CREATE TABLE public.kid (PRIMARY KEY (id)) INHERITS (public.par);
	CREATE TABLE public.pp (id int PRIMARY KEY, v int) PARTITION BY RANGE (id);
	CREATE TABLE public.pp1 PARTITION OF public.pp FOR VALUES FROM (0) TO (100)$$)});
for my $t ('kid', 'pp1')
{
	($st, $err) = $c->sql_error($l, "SELECT dragonraft.replicate_table('public.$t', 1)");
	diag "replicate_table($t): " . ($st eq '' ? 'accepted' : "refused: $err");
	next if $st ne '';
	$L->safe_psql('postgres', "INSERT INTO $t VALUES (1, 1), (2, 2)");
	my $parent = $t eq 'kid' ? 'par' : 'pp';
	($st, $err) = $c->sql_error($l, "SELECT dragonraft.execute(1,
		'ALTER TABLE public.$parent ADD COLUMN r float8 DEFAULT random()')");
	diag "execute(ALTER TABLE $parent ADD COLUMN r DEFAULT random()): " . ($st eq '' ? 'accepted' : "refused: $err");
	isnt($st, '', "execute() of a random() fill through the parent of $t is refused");
	same_rows($t, 'id', "random() fill through the parent of $t");
	($st, $err) = $c->sql_error($l, "ALTER TABLE public.$parent ADD COLUMN q int DEFAULT 7");
	diag "direct ALTER TABLE $parent ADD COLUMN q on the leader: " . ($st eq '' ? 'accepted' : "refused: $err");
	isnt($st, '', "a direct ALTER TABLE of the parent of $t is refused");
	$L->safe_psql('postgres', "SELECT dragonraft.execute(1, 'ALTER TABLE public.$parent ADD COLUMN q int DEFAULT 7')");
	same_rows($t, 'id', "a column added directly through the parent of $t");
}

done_testing();
