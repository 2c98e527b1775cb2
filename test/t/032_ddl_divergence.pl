# A user AFTER TRUNCATE trigger that fires before dragonraft's and refills
# the table is applied after the TRUNCATE; and dragonraft's triggers that are
# not ENABLE ALWAYS (tables replicated by an older build) are made so when
# the apply worker starts.  (A command that fails on some members only:
# 034_ddl_outcome.pl.)
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

# A user AFTER TRUNCATE trigger that fires first (its name sorts before
# dragonraft's) and writes the table: the follower applies its row after the
# TRUNCATE, as the leader made it.
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, 'CREATE TABLE public.tt (id int PRIMARY KEY, v text)')});
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, $$CREATE FUNCTION public.refill() RETURNS trigger
	LANGUAGE plpgsql AS 'BEGIN INSERT INTO public.tt VALUES (1, ''refill''); RETURN NULL; END'$$)});
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, 'CREATE TRIGGER a_refill AFTER TRUNCATE ON public.tt
	FOR EACH STATEMENT EXECUTE FUNCTION public.refill()')});
$L->safe_psql('postgres', "SELECT dragonraft.replicate_table('public.tt', 1)");
$L->safe_psql('postgres', "INSERT INTO tt VALUES (2, 'x'); TRUNCATE tt");
$L->safe_psql('postgres', "BEGIN; INSERT INTO tt VALUES (3, 'y'); TRUNCATE tt; INSERT INTO tt VALUES (4, 'z'); COMMIT");
ok($c->caught_up(1), 'the truncates are applied');
is($c->contents($l, 'tt', 'id'), '(1,refill);(4,z)', 'the leader has the refilled row');
is($c->contents($f, 'tt', 'id'), '(1,refill);(4,z)', 'so has the follower');

# Triggers of an older build (ENABLE ORIGIN) are upgraded at the apply
# worker's start.
$F->safe_psql('postgres', q{UPDATE pg_trigger SET tgenabled = 'O' WHERE tgname LIKE 'dragonraft%'});
my $offset = -s $F->logfile;
$F->restart;
ok($c->wait_until('the follower\'s triggers upgraded', sub {
	$F->safe_psql('postgres', q{SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'dragonraft%' AND tgenabled <> 'A'}) eq '0' }),
	'every dragonraft trigger is ENABLE ALWAYS again');
like(slurp_file($F->logfile, $offset), qr/dragonraft upgraded a trigger: ALTER TABLE public\.tt ENABLE ALWAYS TRIGGER dragonraft_capture/,
	'the log says so');
ok($c->caught_up(1), 'the group goes on');

done_testing();
