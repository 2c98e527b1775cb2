# Write-path fixes of review 2, on three nodes: a transaction that changes
# one row twice applies on the followers (each op is a replication step);
# the capture trigger cannot be forged or bypassed; ALTER INDEX / ALTER TYPE
# on objects that are not tables pass the DDL hook; TRUNCATE of tables
# related by a foreign key applies on the followers.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $c = DragonCluster->new(3);
$c->create_group(1);
my $l = $c->leader(1);
ok($l, "group 1 has a writable leader (node $l)");
my @followers = grep { $_ != $l } $c->ids;
my $L = $c->node($l);

# Every member applied everything, its group is ok, and has the leader's rows.
sub same_everywhere
{
	my ($table, $order, $what) = @_;
	ok($c->caught_up(1), "$what: every member applied it");
	my $want = $c->contents($l, $table, $order);
	for my $f (@followers)
	{
		is($c->node($f)->safe_psql('postgres',
				"SELECT state FROM dragonraft.status WHERE group_id = 1"),
			'ok', "$what: node $f applies on");
		is($c->contents($f, $table, $order), $want, "$what: node $f has the leader's $table");
	}
	return $want;
}

# 1. One transaction changes a row twice (review 2, #1).
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, $$
CREATE TABLE acc (id int PRIMARY KEY, bal int);
CREATE TABLE swap (id int PRIMARY KEY DEFERRABLE INITIALLY DEFERRED, v text);
$$)});
$L->safe_psql('postgres', "SELECT dragonraft.replicate_table('$_', 1)") for qw(acc swap);
$L->safe_psql('postgres', q{
INSERT INTO acc VALUES (1, 100), (3, 30);
INSERT INTO swap VALUES (1, 'one'), (2, 'two');
BEGIN; INSERT INTO acc VALUES (2, 0); UPDATE acc SET bal = 5 WHERE id = 2; COMMIT;
BEGIN; UPDATE acc SET bal = bal - 10 WHERE id = 1; UPDATE acc SET bal = bal - 10 WHERE id = 1; COMMIT;
BEGIN; UPDATE acc SET bal = 0 WHERE id = 3; DELETE FROM acc WHERE id = 3; COMMIT;
BEGIN; INSERT INTO acc VALUES (4, 4); DELETE FROM acc WHERE id = 4; INSERT INTO acc VALUES (4, 44); COMMIT;
UPDATE swap SET id = 3 - id;
});
is(same_everywhere('acc', 'id', 'a row changed twice'), '(1,80);(2,5);(4,44)',
	'the leader has the rows');
is(same_everywhere('swap', 'id', 'a key swap under a deferrable key'), '(1,two);(2,one)',
	'the keys are swapped');
