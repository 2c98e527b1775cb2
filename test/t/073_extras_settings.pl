# Review 22 (item 4, execute()'s fixed settings): dragonraft.table_definition
# renders a table's constants with fixed settings (DateStyle ISO, TimeZone
# UTC, ...), but dragonraft.table_extras, which carries the table's
# policies and triggers (their WHEN) to the members in a registration and a
# snapshot, rendered them with the caller's: a date in a policy became
# '02/01/2026' under DateStyle 'SQL, DMY', which a member with the default
# DateStyle (MDY) read as February 1: the members' policies differ.
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
my ($f) = grep { $_ != $l } $c->ids;

# A table of the leader's own, with a policy and a trigger WHEN holding a
# date, replicated by a session with DateStyle 'SQL, DMY'.
$c->node($l)->safe_psql('postgres', q{CREATE TABLE public.p (id int PRIMARY KEY, d date);
	ALTER TABLE public.p ENABLE ROW LEVEL SECURITY;
	CREATE POLICY pol ON public.p USING (d >= '2026-01-02');
	CREATE FUNCTION public.tf() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END';
	CREATE TRIGGER tr BEFORE INSERT ON public.p FOR EACH ROW WHEN (NEW.d >= '2026-01-03') EXECUTE FUNCTION public.tf()});
$c->node($f)->safe_psql('postgres', q{CREATE FUNCTION public.tf() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END'});
$c->node($l)->safe_psql('postgres', q{SET DateStyle = 'SQL, DMY';
	SELECT dragonraft.replicate_table('public.p', 1)});
ok($c->caught_up(1), 'the registration is applied everywhere');
my $q = q{SET DateStyle = 'ISO, MDY';
	SELECT (SELECT pg_get_expr(polqual, polrelid) FROM pg_policy WHERE polname = 'pol') || ' / ' ||
	       (SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgname = 'tr')};
my $want = $c->node($l)->safe_psql('postgres', $q);
my $got = $c->node($f)->safe_psql('postgres', $q);
diag "leader: $want\nfollower: $got";
like($want, qr/2026-01-02.*2026-01-03/, 'the leader\'s policy and trigger say January 2 and 3');
is($got, $want, 'the follower\'s policy and trigger say the same');

# Part 2 (same item): settings that change how a command's text parses, not
# in execute()'s fixed list: a member with transform_null_equals = on in
# postgresql.conf made "a = NULL" of a CHECK "a IS NULL", and one with
# array_nulls = off read '{NULL}' as the string "NULL": the members'
# constraints differed (a row the leader took could stop the other's apply).
$c->node($f)->append_conf('postgresql.conf', "transform_null_equals = on\narray_nulls = off\n");
$c->node($f)->restart;
$c->create_group(2);
$l = $c->leader(2);
$c->node($l)->safe_psql('postgres', q{SELECT dragonraft.execute(2, $$CREATE TABLE public.tn (id int PRIMARY KEY,
	a int CHECK (a = NULL OR a > 0), t text[] CHECK (t <> '{NULL}'))$$)});
ok($c->caught_up(2), 'the command is applied everywhere');
$q = q{SELECT string_agg(pg_get_constraintdef(oid), '; ' ORDER BY conname) FROM pg_constraint
	WHERE conrelid = 'public.tn'::regclass AND contype = 'c'};
my @defs = map { $c->node($_)->safe_psql('postgres', $q) } $c->ids;
diag "node $_: $defs[$_ - 1]" for $c->ids;
is($defs[1], $defs[0], 'the members\' constraints are the same');
done_testing();
