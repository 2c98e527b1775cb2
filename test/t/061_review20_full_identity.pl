# Review 20: under REPLICA IDENTITY FULL (a table without a key) a follower
# found the row to update or delete by its type's equality operator
# (RelationFindReplTupleSeq), which holds rows equal that are not the same:
# numeric 1.0 and 1.00, float8 0 and -0, interval '1 day' and '24 hours',
# text under a case-insensitive collation.  The leader changed one of them,
# the follower the first equal one it met: both went on, with other rows.
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

sub same_rows
{
	my ($table, $order, $what) = @_;
	ok($c->caught_up(1), "$what: applied everywhere");
	is($c->node($_)->safe_psql('postgres', q{SELECT state FROM dragonraft.status WHERE group_id = 1}),
		'ok', "$what: node $_ applies the group") for $c->ids;
	my $want = $c->contents($l, $table, $order);
	is($c->contents($f, $table, $order), $want, "$what: the follower has the leader's rows")
	  or diag "leader: $want\nfollower: " . $c->contents($f, $table, $order);
}

$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, $$
	CREATE TABLE public.nf (n numeric, d float8, i interval, note text, g text GENERATED ALWAYS AS (upper(note)) STORED);
	ALTER TABLE public.nf REPLICA IDENTITY FULL$$)});
$L->safe_psql('postgres', "SELECT dragonraft.replicate_table('public.nf', 1)");
$L->safe_psql('postgres', q{INSERT INTO nf VALUES (1.00, 1, '1 day', 'a'), (1.0, 1, '1 day', 'a'),
	(2, 0, '1 day', 'b'), (2, '-0', '1 day', 'b'), (3, 1, '24 hours', 'c'), (3, 1, '1 day', 'c')});
same_rows('nf', 'n::text, d::text, i::text', 'the rows');
# One of each pair, picked by its text form, on the leader.
$L->safe_psql('postgres', q{DELETE FROM nf WHERE n::text = '1.0'});
$L->safe_psql('postgres', q{UPDATE nf SET note = 'minus zero' WHERE d::text = '-0'});
$L->safe_psql('postgres', q{UPDATE nf SET note = 'one day' WHERE i::text = '1 day' AND n = 3});
same_rows('nf', 'n::text, d::text, i::text', 'a delete and updates of one of two equal rows');

done_testing();
