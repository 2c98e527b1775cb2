# execute()'s command text read the same way wherever it is read (review 25).
# A command runs with standard_conforming_strings on (execute()'s fixed
# settings), but its text was also parsed with the session's or the member's
# own: check_utility_only (the proposer's session), command_table (each
# member's apply worker: ddl_history.tables, which decides which writers are
# skipped) and dr_sql_tables_barrier.  backslash_quote was not fixed at all:
# an E'...' string's \' failed on a member whose postgresql.conf says
# backslash_quote = off, and the group stopped there.
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
$c->node($f)->append_conf('postgresql.conf', "backslash_quote = off\nstandard_conforming_strings = off\n");
$c->node($f)->restart;
$l = $c->leader(1);
($f) = grep { $_ != $l } $c->ids;
$c->node($l)->safe_psql('postgres', q{SELECT dragonraft.execute(1, $$CREATE TABLE public.q1 (k int PRIMARY KEY, s text)$$)});
$c->node($l)->safe_psql('postgres', q{SELECT dragonraft.replicate_table('public.q1', 1)});
ok($c->caught_up(1), 'the table is replicated everywhere');

# A session with standard_conforming_strings off: its check read one constant
# SELECT, the command runs as a SELECT and an INSERT on every member.
my ($rc, $out, $err) = $c->node($l)->psql('postgres',
	q{SET standard_conforming_strings = off; SELECT dragonraft.execute(1, $$SELECT 'x\'; INSERT INTO public.q1 VALUES (7, random()::text); --'$$)});
like($err, qr/changes rows/, 'a row write hidden in a string by the session\'s settings is refused');

# A string ending in a backslash: one ALTER TABLE of public.q1 as it runs; an
# unterminated string with standard_conforming_strings off (node $f's own).
$c->node($l)->safe_psql('postgres', q{SELECT dragonraft.execute(1, $$ALTER TABLE public.q1 ADD CONSTRAINT q1_c2 CHECK (s <> 'a\')$$)});
# An E'' string's \': refused with backslash_quote = off (node $f's own).
$c->node($l)->safe_psql('postgres', q{SELECT dragonraft.execute(1, $$ALTER TABLE public.q1 ADD CONSTRAINT q1_c3 CHECK (s <> E'it\'s')$$)});
$c->node($f)->safe_psql('postgres', q{SELECT dragonraft.execute(1, $$ALTER TABLE public.q1 ADD CONSTRAINT q1_c4 CHECK (s <> E'\'')$$)});
$c->node($l)->safe_psql('postgres', q{SELECT dragonraft.execute(1, $$SELECT E'\''$$)});
ok($c->caught_up(1), 'the commands are applied everywhere');
my $hist = q{SELECT string_agg(index || ' ' || coalesce(tables::text, 'any') || ' ' || coalesce(error, 'ok'), E'\n' ORDER BY index)
               FROM dragonraft.ddl_history WHERE group_id = 1};
my $cons = q{SELECT string_agg(conname || ' ' || pg_get_constraintdef(oid), E'\n' ORDER BY conname)
               FROM pg_constraint WHERE conrelid = 'public.q1'::regclass AND contype = 'c'};
for my $id ($l, $f)
{
	is($c->query($id, q{SELECT state || coalesce('|' || error, '') FROM dragonraft.status WHERE group_id = 1}),
		'ok', "node $id: the group applies, no error");
	is($c->query($id, 'SELECT count(*) FROM public.q1'), '0', "node $id: no row written by a command");
}
# (read with standard_conforming_strings on alike: a definition shows its strings by it)
my %out = map {
	my $id = $_;
	$id => [ map { $c->node($id)->safe_psql('postgres', "SET standard_conforming_strings = on; $_") } ($hist, $cons) ]
} ($l, $f);
is($out{$f}[0], $out{$l}[0], "node $f: the same history (the tables each command changes)");
is($out{$f}[1], $out{$l}[1], "node $f: the same constraints");
like($out{$l}[1], qr/q1_c2 CHECK \(\(s <> 'a\\'::text\)\)/, "node $l: q1_c2 compares with a\\");
done_testing();
