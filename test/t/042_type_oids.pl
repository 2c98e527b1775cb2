# Values travel in their types' binary send form, and the binary forms of
# arrays and composite types name their element and column types by OID.
# Types made through execute() have other OIDs on each member: PostgreSQL
# 15's receive functions take a user-defined type's OID as the one expected
# (they check built-in ones), so the tables stay equal.  This test keeps it so.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $c = DragonCluster->new(3);
# Each member takes other OIDs for what comes next.
for my $id ($c->ids)
{
	$c->node($id)->safe_psql('postgres', "CREATE TYPE local_$_ AS (x int)") for (1 .. $id * 3);
}
$c->create_group(1);
my $l = $c->leader(1);
ok($l, 'group 1 has a writable leader');
my $L = $c->node($l);
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, $$
	CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
	CREATE TYPE pair AS (a int, b text, m mood);
	CREATE DOMAIN posint AS int CHECK (VALUE > 0);
	CREATE TYPE pairs AS (p pair, ps pair[]);
	CREATE TYPE moodrange AS RANGE (subtype = mood);
	CREATE TABLE t (id int PRIMARY KEY, m mood, ms mood[], p pair, ps pair[], d posint,
		ds posint[], n pairs, r moodrange, rm moodmultirange, i int[], j jsonb)
$$)});
$L->safe_psql('postgres', q{SELECT dragonraft.replicate_table('t', 1)});
$L->safe_psql('postgres', q{INSERT INTO t VALUES
	(1, 'ok', '{sad,happy}', '(1,one,ok)', ARRAY['(2,two,sad)', '(3,,)']::pair[], 4, '{5,6}',
	 ROW('(7,seven,happy)', ARRAY['(8,eight,ok)']::pair[])::pairs, '[sad,happy)',
	 '{[sad,ok), [happy,happy]}', '{1,2}', '{"k": [1]}'),
	(2, NULL, '{}', NULL, '{}', NULL, NULL, NULL, 'empty', '{}', NULL, NULL)});
$L->safe_psql('postgres', q{UPDATE t SET ms = ms || 'ok'::mood, ps[1].b = 'TWO' WHERE id = 1});
ok($c->caught_up(1), 'every member applied the rows');
my $want = $c->contents($l, 't', 'id');
for my $id ($c->ids)
{
	is($c->node($id)->safe_psql('postgres', q{SELECT state FROM dragonraft.status WHERE group_id = 1}),
		'ok', "node $id applies the group");
	is($c->contents($id, 't', 'id'), $want, "node $id has the same rows");
}
isnt($c->node(1)->safe_psql('postgres', q{SELECT 'pair'::regtype::oid}),
	$c->node(3)->safe_psql('postgres', q{SELECT 'pair'::regtype::oid}), 'under other type OIDs');

# table_digest and check_consistency hash the values' send forms: the OIDs
# in those of arrays, composites and ranges of these types differ on each
# member, and the digests do not.
my %d = map { $_ => $c->query($_, "SELECT rows || ' ' || digest FROM dragonraft.table_digest(1) "
	  . "WHERE relid = 't'::regclass") } $c->ids;
like($d{$l}, qr/^2 [0-9a-f]{64}$/, "node ${l}'s digest of t");
is($d{$_}, $d{$l}, "node $_: the same digest of t") for grep { $_ != $l } $c->ids;
my $m = $c->query($l, 'SELECT dragonraft.check_consistency(1)');
my %checked;
for my $id ($c->ids)
{
	$c->wait_until("node $id to record the check at $m", sub {
		$c->poll($id, "SELECT count(*) > 0 FROM dragonraft.consistency_checks "
			  . "WHERE group_id = 1 AND log_index = $m") eq 't' });
	$checked{$id} = $c->query($id, "SELECT concat_ws(' ', relid::regclass, rows, digest, error) "
		  . "FROM dragonraft.consistency_checks WHERE group_id = 1 AND log_index = $m");
}
like($checked{$l}, qr/^t 2 [0-9a-f]{64}$/, "the check at $m: node ${l}'s digest of t");
is($checked{$_}, $checked{$l}, "the check at $m: node $_ agrees") for grep { $_ != $l } $c->ids;

$L->safe_psql('postgres', q{DELETE FROM t WHERE id = 1});
ok($c->caught_up(1), 'a delete by key goes through');
is($c->contents($_, 't', 'id'), $c->contents($l, 't', 'id'), "node $_ deleted it") for $c->ids;

done_testing();
