# Review 38 residuals: a composite type that a replicated table's column
# holds renames its attributes only through execute(), as it adds or drops
# them.  ALTER TYPE ... RENAME ATTRIBUTE run on one member alone left its
# type's attribute named otherwise than on the others, so a later command
# that names it (here execute() of a view over it) meant another attribute,
# or none, on some members.  Now it is refused (0A000) outside execute(), on
# any member, and execute() of it renames the attribute on every member.
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
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, $$CREATE TYPE public.rt AS (a int); CREATE TABLE public.rtab (id int PRIMARY KEY, p public.rt)$$)});
$L->safe_psql('postgres', q{SELECT dragonraft.replicate_table('rtab', 1)});
$L->safe_psql('postgres', q{INSERT INTO rtab VALUES (1, ROW(1)::rt)});
ok($c->caught_up(1), 'every member has the first row');

my ($state, $err) = $c->sql_error($l, 'ALTER TYPE rt RENAME ATTRIBUTE a TO b');
is($state, '0A000', 'the leader refuses ALTER TYPE ... RENAME ATTRIBUTE outside execute()')
	or diag $err;
($state, $err) = $c->sql_error($f, 'ALTER TYPE rt RENAME ATTRIBUTE a TO b');
is($state, '0A000', 'so does a follower') or diag $err;
my $names = q{SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute WHERE attrelid = 'rt'::regclass AND attnum > 0};
is($L->safe_psql('postgres', $names), 'a', 'the leader\'s attribute keeps its name');
is($F->safe_psql('postgres', $names), 'a', 'and the follower\'s');

# Through execute() every member renames it in log order, and a later
# command that names the new name runs alike everywhere.
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, 'ALTER TYPE public.rt RENAME ATTRIBUTE a TO b')});
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, 'CREATE VIEW public.rview AS SELECT id, (p).b FROM public.rtab')});
$L->safe_psql('postgres', q{INSERT INTO rtab VALUES (2, ROW(2)::rt)});
ok($c->caught_up(1), 'every member applied the rename, the view and the row after them');
is($F->safe_psql('postgres', $names), 'b', 'the follower\'s attribute is renamed');
is($F->safe_psql('postgres', q{SELECT string_agg(id || ':' || b, ' ' ORDER BY id) FROM rview}),
	'1:1 2:2', 'the follower\'s view reads the renamed attribute of both rows');
is($c->poll($f, q{SELECT state || coalesce(': ' || error, '') FROM dragonraft.status WHERE group_id = 1}),
	'ok', 'its apply goes on');

done_testing();
