# A follower's apply of a group fails (a trigger refuses the row there) and
# the group is parked on it, its committed entries held back in the engine,
# while the leader lets the group go quiet (quiescence).  Once the cause is
# gone the follower applies the group again, and its status says 'ok' again,
# although nothing else happens in the group: the end of the hold is a status
# change of its own (stall034: the status once kept saying catching_up,
# apply_held, until the next Raft event).  The engine worker refreshes the
# status every 100 ms, at the first pass of its loop after that (the loop
# runs at each Raft tick, and whenever woken): with ticks of 95 ms the
# refresh is due about half of the time at the wake-up that follows the
# follower's apply, which takes a random while here, and the round repeats.
# An election timeout of 6 ticks (570 ms; the default is 10 x 50 ms): the
# group goes quiet after 1.7 s (3 election timeouts) while the parked apply
# was tried at 0 and 1 s, so that the next try, 2 s later, finds the cause
# gone (with 10 ticks, the quiet came at 2.85 s, and the row waited for the
# try at 7 s).
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $rounds = 6;
my $c = DragonCluster->new(3, conf => "dragonraft.rtt_ms = 95\ndragonraft.election_rtt = 6\n");
$c->create_group(1);
my $l = $c->leader(1) or die 'no leader of group 1';
my ($f) = grep { $_ != $l } $c->ids;
my ($L, $F) = ($c->node($l), $c->node($f));

# t refuses rows wherever a local table fail_switch exists, and is slow to
# take them wherever slow_switch does.
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, $$
CREATE TABLE t (id int PRIMARY KEY, v text);
CREATE FUNCTION t_check() RETURNS trigger LANGUAGE plpgsql AS
  'BEGIN
     IF to_regclass(''public.fail_switch'') IS NOT NULL THEN
       RAISE EXCEPTION ''injected failure of row %'', NEW.id;
     END IF;
     IF to_regclass(''public.slow_switch'') IS NOT NULL THEN
       PERFORM pg_sleep(random() * 0.3);
     END IF;
     RETURN NEW;
   END';
CREATE TRIGGER t_check BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION t_check();
ALTER TABLE t ENABLE ALWAYS TRIGGER t_check;
$$)});
ok($c->caught_up(1), 'the table is on every member');
$L->safe_psql('postgres', q{SELECT dragonraft.replicate_table('t', 1)});
ok($c->caught_up(1), 'and registered everywhere');
$F->safe_psql('postgres', 'CREATE TABLE public.slow_switch ()');

sub status_row
{
	return $c->poll($f,
		q{SELECT state || '|' || quiescent || '|' || applied_index || '|' || commit_index
		  FROM dragonraft.status WHERE group_id = 1}) // '';
}

my @stuck;
for my $i (1 .. $rounds)
{
	$F->safe_psql('postgres', 'CREATE TABLE public.fail_switch ()');
	$L->safe_psql('postgres', "INSERT INTO t VALUES ($i, 'row $i')");
	$c->wait_until("node $f parks group 1 (round $i)", sub { status_row() =~ /^apply_failed\|/ })
	  or die "round $i: node $f did not park group 1";
	$c->wait_until("group 1 is quiescent on node $f while parked (round $i)",
		sub { status_row() =~ /^apply_failed\|true\|/ })
	  or die "round $i: group 1 did not go quiet";
	$F->safe_psql('postgres', 'DROP TABLE public.fail_switch');
	$c->wait_until("node $f applies row $i",
		sub { ($c->poll($f, 'SELECT count(*) FROM t') // '') eq $i })
	  or die "round $i: node $f did not apply the row";
	# Nothing else happens in the group: its status must still come back.
	my $st = '';
	push @stuck, "round $i: $st"
	  unless $c->wait_until("node ${f}'s status to say ok (round $i)",
		sub { ($st = status_row()) =~ /^ok\|/ }, 5);
	# The next round starts from a group that applied everything here (an
	# entry wakes the group, and with it a status that stuck).
	$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, 'SELECT 1')});
	ok($c->caught_up(1), "round $i: every member catches up");
}
is(join('; ', @stuck), '',
	"each time node $f applied the parked group again, its status said ok again");
is($c->contents($f, 't', 'id'), $c->contents($l, 't', 'id'), "node $f has every row");

done_testing();
