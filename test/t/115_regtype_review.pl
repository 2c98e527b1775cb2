# Review 38 (of 46d47e0, reg* columns refused): a composite type that a
# replicated table's column holds changes its attributes only through
# execute().  A composite value's send form carries its attributes, and
# record_recv refuses a value with another number of them: an ALTER TYPE
# ... ADD ATTRIBUTE run on the leader alone made its next row of that
# column unreadable to every follower, whose apply stopped there.  Now it
# is refused (0A000) outside execute(), on any member, and execute() of it
# keeps the members able to read each other's rows.
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
ok($l, 'group 1 has a writable leader');
my ($f) = grep { $_ != $l } $c->ids;
my ($L, $F) = map { $c->node($_) } ($l, $f);
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, $$CREATE TYPE public.pt AS (a int); CREATE TABLE public.ptab (id int PRIMARY KEY, p public.pt[])$$)});
$L->safe_psql('postgres', q{SELECT dragonraft.replicate_table('ptab', 1)});
$L->safe_psql('postgres', q{INSERT INTO ptab VALUES (1, ARRAY[ROW(1)::pt])});
ok($c->caught_up(1), 'every member has the first row');

my ($state, $err) = $c->sql_error($l, 'ALTER TYPE pt ADD ATTRIBUTE b int');
is($state, '0A000', 'the leader refuses ALTER TYPE ... ADD ATTRIBUTE outside execute()')
	or diag $err;
# The first row's value again: of the leader's type as it is now.
$L->safe_psql('postgres', q{INSERT INTO ptab SELECT 2, p FROM ptab WHERE id = 1});
my $last = $L->safe_psql('postgres', q{SELECT commit_index FROM dragonraft.status WHERE group_id = 1});
ok($c->wait_until("the follower applied entry $last", sub {
	($c->poll($f, "SELECT applied_index >= $last FROM dragonraft.status WHERE group_id = 1") // '') eq 't' }, 30),
	'the follower applied the second row');
is($c->poll($f, q{SELECT state || coalesce(': ' || error, '') FROM dragonraft.status WHERE group_id = 1}),
	'ok', 'its apply goes on');
($state, $err) = $c->sql_error($f, 'ALTER TYPE pt DROP ATTRIBUTE a');
is($state, '0A000', 'a follower refuses ALTER TYPE ... DROP ATTRIBUTE outside execute()')
	or diag $err;

# Through execute() every member changes the type in log order.
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, 'ALTER TYPE public.pt ADD ATTRIBUTE b int')});
$L->safe_psql('postgres', q{INSERT INTO ptab VALUES (3, ARRAY[ROW(3, 4)::pt])});
ok($c->caught_up(1), 'every member applied the ADD ATTRIBUTE and the row after it');
is($F->safe_psql('postgres', q{SELECT string_agg(id || ':' || p::text, ' ' ORDER BY id) FROM ptab}),
	$L->safe_psql('postgres', q{SELECT string_agg(id || ':' || p::text, ' ' ORDER BY id) FROM ptab}),
	'the follower has the leader\'s rows');
is($F->safe_psql('postgres', q{SELECT p::text FROM ptab WHERE id = 3}), '{"(3,4)"}',
	'with the new attribute');

# Review 38 residuals: RENAME ATTRIBUTE as well.  Run on one member alone it
# left the attribute named otherwise there, so a later command that names it
# (here execute() of a view over it) meant another attribute, or none, on
# some members.  Refused outside execute() on any member; execute() of it
# renames the attribute on every member.
($state, $err) = $c->sql_error($l, 'ALTER TYPE pt RENAME ATTRIBUTE b TO c');
is($state, '0A000', 'the leader refuses ALTER TYPE ... RENAME ATTRIBUTE outside execute()')
	or diag $err;
($state, $err) = $c->sql_error($f, 'ALTER TYPE pt RENAME ATTRIBUTE b TO c');
is($state, '0A000', 'so does a follower') or diag $err;
my $names = q{SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute WHERE attrelid = 'pt'::regclass AND attnum > 0};
is($L->safe_psql('postgres', $names) . ' ' . $F->safe_psql('postgres', $names), 'a,b a,b',
	'neither renamed the attribute');
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, 'ALTER TYPE public.pt RENAME ATTRIBUTE b TO c')});
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, 'CREATE VIEW public.pview AS SELECT id, (p[1]).c FROM public.ptab')});
$L->safe_psql('postgres', q{INSERT INTO ptab VALUES (4, ARRAY[ROW(5, 6)::pt])});
ok($c->caught_up(1), 'every member applied the rename, the view and the row after them');
is($F->safe_psql('postgres', $names), 'a,c', 'the follower\'s attribute is renamed');
is($F->safe_psql('postgres', q{SELECT string_agg(id || ':' || coalesce(c::text, '-'), ' ' ORDER BY id) FROM pview}),
	'1:- 2:- 3:4 4:6', 'the follower\'s view reads the renamed attribute');
is($c->poll($f, q{SELECT state || coalesce(': ' || error, '') FROM dragonraft.status WHERE group_id = 1}),
	'ok', 'its apply goes on');

# Review 38 residuals: the type's own name too (and its schema and owner).
# Renamed on one member alone, a later execute() that names the type meant
# another one, or none, there: it passed the try on the leader and stopped
# the apply where the name differed.  Refused outside execute() on any
# member; execute() of it renames the type on every member, and a later
# execute() that names the new name runs everywhere.
($state, $err) = $c->sql_error($l, 'ALTER TYPE pt RENAME TO pt2');
is($state, '0A000', 'the leader refuses ALTER TYPE ... RENAME TO outside execute()')
	or diag $err;
($state, $err) = $c->sql_error($f, 'ALTER TYPE pt RENAME TO pt2');
is($state, '0A000', 'so does a follower') or diag $err;
my $types = q{SELECT string_agg(typname, ',' ORDER BY typname) FROM pg_type WHERE typname IN ('pt', 'pt2')};
is($L->safe_psql('postgres', $types) . ' ' . $F->safe_psql('postgres', $types), 'pt pt',
	'neither renamed the type');
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, 'ALTER TYPE public.pt RENAME TO pt2')});
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, 'ALTER TYPE public.pt2 ADD ATTRIBUTE d int')});
$L->safe_psql('postgres', q{INSERT INTO ptab VALUES (5, ARRAY[ROW(7, 8, 9)::pt2])});
ok($c->caught_up(1), 'every member applied the rename, the command that names the new name and the row after them');
is($F->safe_psql('postgres', $types), 'pt2', 'the follower\'s type is renamed');
is($F->safe_psql('postgres', q{SELECT p::text FROM ptab WHERE id = 5}), '{"(7,8,9)"}',
	'the follower has the row with the attribute added under the new name');
is($c->poll($f, q{SELECT state || coalesce(': ' || error, '') FROM dragonraft.status WHERE group_id = 1}),
	'ok', 'its apply goes on');

done_testing();
