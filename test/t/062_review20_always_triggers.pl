# Review 20: a BEFORE ROW trigger ENABLE ALWAYS (or REPLICA) on a replicated
# table fires twice for each row: on the leader, whose capture ships the row
# it made, and again in each follower's apply, which changes the shipped row
# once more.  (A) the leader's table had one when it was replicated (the
# followers get it with the table's extras); (B) a follower kept its own
# empty table, defined alike, that has one.  Either the follower ends with
# the leader's rows or its apply stops with an error that names the
# trigger: never other rows and state ok.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $c = DragonCluster->new(2);
$c->create_group($_) for (1, 2);

# Group g's follower f ends with the leader's rows of table, or its apply of
# g stops with the trigger's error.
sub not_silent
{
	my ($g, $l, $f, $table, $what) = @_;
	my $want = $c->contents($l, $table, 'id');
	my $end = $c->wait_until("$what: the follower has the rows or stopped", sub {
		my $st = $c->node($f)->safe_psql('postgres',
			"SELECT state || ' ' || coalesce(error, '') FROM dragonraft.status WHERE group_id = $g");
		return "stopped: $st" if $st =~ /BEFORE ROW trigger/;
		return $c->contents($f, $table, 'id') eq $want ? 'same rows' : 0;
	});
	ok($end, "$what: the follower does not go on with rows of its own")
	  or diag "leader: $want\nfollower: " . $c->contents($f, $table, 'id');
	diag "$what: $end" if $end;
	return $f;
}

my $bump = q{CREATE FUNCTION public.bump() RETURNS trigger LANGUAGE plpgsql AS
	'BEGIN NEW.v := NEW.v + 1; RETURN NEW; END'};

# (A) group 1
my $l = $c->leader(1);
ok($l, "group 1 has a writable leader (node $l)");
my $L = $c->node($l);
$L->safe_psql('postgres', qq{SELECT dragonraft.execute(1, \$\$$bump;
	CREATE TABLE public.ta (id int PRIMARY KEY, v int);
	CREATE TRIGGER bump BEFORE INSERT OR UPDATE ON public.ta FOR EACH ROW EXECUTE FUNCTION public.bump();
	ALTER TABLE public.ta ENABLE ALWAYS TRIGGER bump\$\$)});
$L->safe_psql('postgres', "SELECT dragonraft.replicate_table('public.ta', 1)");
$L->safe_psql('postgres', "INSERT INTO ta VALUES (1, 10); UPDATE ta SET v = 20 WHERE id = 1");
my ($f) = grep { $_ != $l } $c->ids;
not_silent(1, $l, $f, 'ta', 'an ALWAYS BEFORE ROW trigger of the leader');

# (B) group 2
$l = $c->leader(2);
ok($l, "group 2 has a writable leader (node $l)");
$L = $c->node($l);
($f) = grep { $_ != $l } $c->ids;
$c->node($f)->safe_psql('postgres', q{CREATE TABLE public.tb (id int PRIMARY KEY, v int);
	CREATE FUNCTION public.bump2() RETURNS trigger LANGUAGE plpgsql AS
	'BEGIN NEW.v := NEW.v + 1; RETURN NEW; END';
	CREATE TRIGGER bump BEFORE INSERT OR UPDATE ON public.tb FOR EACH ROW EXECUTE FUNCTION public.bump2();
	ALTER TABLE public.tb ENABLE ALWAYS TRIGGER bump});
$L->safe_psql('postgres', "CREATE TABLE public.tb (id int PRIMARY KEY, v int)");
$L->safe_psql('postgres', "SELECT dragonraft.replicate_table('public.tb', 2)");
ok($c->caught_up(2), 'tb registered');
$L->safe_psql('postgres', "INSERT INTO tb VALUES (1, 10)");
not_silent(2, $l, $f, 'tb', "a follower's own ALWAYS BEFORE ROW trigger");

# A trigger that leaves the row as it comes is fine: the follower's is
# replaced by one that does (it checks only), and group 2 goes on.
$c->node($f)->safe_psql('postgres', q{CREATE OR REPLACE FUNCTION public.bump2() RETURNS trigger
	LANGUAGE plpgsql AS 'BEGIN IF NEW.v < 0 THEN RAISE ''negative''; END IF; RETURN NEW; END'});
$L->safe_psql('postgres', "INSERT INTO tb VALUES (2, 20); UPDATE tb SET v = 11 WHERE id = 1; DELETE FROM tb WHERE id = 2");
ok($c->caught_up(2), 'group 2 goes on');
is($c->contents($f, 'tb', 'id'), $c->contents($l, 'tb', 'id'), 'with the leader\'s rows');
is($c->node($f)->safe_psql('postgres', q{SELECT state FROM dragonraft.status WHERE group_id = 2}), 'ok', 'state ok');

done_testing();
