# A command run through dragonraft.execute that fails on some members only
# (review 2, #16 and #17): each member runs it as the role that called it, a
# member that lacks the role records the command as failed, and every such
# failure shows in dragonraft.ddl_failures and as a WARNING in that
# member's log.  Also: a user AFTER TRUNCATE trigger that fires before
# dragonraft's and refills the table is applied after the TRUNCATE; and
# dragonraft's triggers that are not ENABLE ALWAYS (tables replicated by an
# older build) are made so when the apply worker starts.
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

sub failures
{
	my ($node) = @_;
	return $node->safe_psql('postgres',
		"SELECT failed || '|' || last_error FROM dragonraft.ddl_failures WHERE group_id = 1");
}

# A role of the leader only.
$L->safe_psql('postgres', q{
CREATE ROLE only_on_leader;
GRANT dragonraft_admin TO only_on_leader;
GRANT CREATE ON SCHEMA public TO only_on_leader;
});
my $offset = -s $F->logfile;
$L->safe_psql('postgres', q{SET ROLE only_on_leader;
	SELECT dragonraft.execute(1, 'CREATE TABLE by_role (id int)')});
ok($c->caught_up(1), 'the command is applied on both members');
is($L->safe_psql('postgres', q{SELECT relowner::regrole FROM pg_class WHERE relname = 'by_role'}),
	'only_on_leader', 'the leader ran it as the role');
is($F->safe_psql('postgres', q{SELECT count(*) FROM pg_class WHERE relname = 'by_role'}), '0',
	'the follower did not run it');
is(failures($L), '', 'nothing failed on the leader');
is(failures($F), '1|role "only_on_leader", which proposed the command, does not exist on this node',
	'the follower shows the failure and why');
like(slurp_file($F->logfile, $offset),
	qr/WARNING:  dragonraft command of group 1 at entry \d+ failed on this node: role "only_on_leader"/,
	'the follower logs it');

# A table of the follower's own takes the name.
$F->safe_psql('postgres', 'CREATE TABLE local_only (id int)');
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, 'CREATE TABLE local_only (id int, v text)')});
ok($c->caught_up(1), 'the second command is applied on both members');
is(failures($F), '2|relation "local_only" already exists', 'the follower counts it and shows the last error');
is($F->safe_psql('postgres', q{SELECT last_command FROM dragonraft.ddl_failures WHERE group_id = 1}),
	'CREATE TABLE local_only (id int, v text)', 'and the command');
is(failures($L), '', 'still nothing on the leader');
# pg_monitor may read it.
$F->safe_psql('postgres', 'CREATE ROLE watcher IN ROLE pg_monitor');
is($F->safe_psql('postgres', 'SET ROLE watcher; SELECT failed FROM dragonraft.ddl_failures'), '2',
	'pg_monitor reads dragonraft.ddl_failures');

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
$offset = -s $F->logfile;
$F->restart;
ok($c->wait_until('the follower\'s triggers upgraded', sub {
	$F->safe_psql('postgres', q{SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'dragonraft%' AND tgenabled <> 'A'}) eq '0' }),
	'every dragonraft trigger is ENABLE ALWAYS again');
like(slurp_file($F->logfile, $offset), qr/dragonraft upgraded a trigger: ALTER TABLE tt ENABLE ALWAYS TRIGGER dragonraft_capture/,
	'the log says so');
ok($c->caught_up(1), 'the group goes on');

done_testing();
