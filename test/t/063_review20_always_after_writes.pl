# Review 20: an AFTER ROW trigger ENABLE ALWAYS of a replicated
# table that writes another replicated table of the group.  On the leader its
# write is captured and shipped; on a follower the apply fires the trigger
# too (its write is not captured there), and then applies the shipped write:
# the second table gets the row twice on the follower.  A table without a
# replica identity (INSERT only) took both silently; now the follower's
# apply stops with an error naming the table, until the trigger is fixed.
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
my $L = $c->node($l);
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, $$
	CREATE TABLE public.orders (id int PRIMARY KEY, v int);
	CREATE TABLE public.journal (order_id int, note text);
	CREATE FUNCTION public.journal_it() RETURNS trigger LANGUAGE plpgsql AS
	  'BEGIN INSERT INTO public.journal VALUES (NEW.id, ''new''); RETURN NULL; END';
	CREATE TRIGGER journal_it AFTER INSERT ON public.orders FOR EACH ROW EXECUTE FUNCTION public.journal_it();
	ALTER TABLE public.orders ENABLE ALWAYS TRIGGER journal_it$$)});
$L->safe_psql('postgres', "SELECT dragonraft.replicate_table('public.$_', 1)") for qw(journal orders);
$L->safe_psql('postgres', "INSERT INTO orders VALUES (1, 10), (2, 20)");
my $end = $c->wait_until('the follower has the journal or stopped', sub {
	my $st = $c->node($f)->safe_psql('postgres', "SELECT state || ' ' || coalesce(error, '') FROM dragonraft.status WHERE group_id = 1");
	return "stopped: $st" if $st =~ /trigger that fires on apply writes replicated table "journal"/;
	return $c->contents($f, 'journal', 'order_id, note') eq $c->contents($l, 'journal', 'order_id, note') ? 'same' : 0;
}, 20);
ok($end, 'the follower ends with the leader\'s journal, or stops')
  or diag "leader: " . $c->contents($l, 'journal', 'order_id, note') . "\nfollower: " . $c->contents($f, 'journal', 'order_id, note');

diag "end: $end" if $end;
# The trigger skips its write on apply: the follower goes on, with the rows.
$c->node($_)->safe_psql('postgres', q{CREATE OR REPLACE FUNCTION public.journal_it() RETURNS trigger
	LANGUAGE plpgsql AS 'BEGIN IF current_setting(''session_replication_role'') <> ''replica'' THEN
	INSERT INTO public.journal VALUES (NEW.id, ''new''); END IF; RETURN NULL; END'}) for $c->ids;
$L->safe_psql('postgres', "INSERT INTO orders VALUES (3, 30)");
ok($c->caught_up(1), 'the follower goes on');
is($c->contents($f, 'journal', 'order_id, note'), $c->contents($l, 'journal', 'order_id, note'),
	'with the leader\'s journal');

done_testing();
