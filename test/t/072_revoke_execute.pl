# Review 22: what a member checks a replicated table's rows with may change
# only through execute() (TAP 065) -- but the privilege to call it is per
# node.  A follower's apply runs the table's CHECK constraints (and index
# expressions) as the table's owner, and a function call checks EXECUTE
# for that role: REVOKE EXECUTE ON FUNCTION ... FROM PUBLIC on one member
# (a DBA hardening one server) made its apply fail with "permission denied
# for function" on the next row the leader took, and the group stopped
# there.  Such a REVOKE is refused outside execute() now.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $c = DragonCluster->new(2);
$c->create_group(1);
$c->node($_)->safe_psql('postgres', 'CREATE ROLE alice') for $c->ids;
my $l = $c->leader(1);
my ($f) = grep { $_ != $l } $c->ids;
$c->node($l)->safe_psql('postgres', q{SELECT dragonraft.execute(1, $$CREATE FUNCTION public.pos(int) RETURNS bool
	IMMUTABLE LANGUAGE sql AS 'SELECT $1 > 0';
	CREATE TABLE public.acct (id int PRIMARY KEY CHECK (public.pos(id)));
	ALTER TABLE public.acct OWNER TO alice$$)});
$c->node($l)->safe_psql('postgres', "SELECT dragonraft.replicate_table('public.acct', 1)");
$c->node($l)->safe_psql('postgres', 'INSERT INTO acct VALUES (1)');
ok($c->caught_up(1), 'the first row is applied everywhere');

# On the follower only: the function no longer executable by PUBLIC.
my ($st, $err) = $c->sql_error($f, 'REVOKE EXECUTE ON FUNCTION public.pos(int) FROM PUBLIC');
diag 'REVOKE EXECUTE on the follower: ' . ($st eq '' ? 'accepted' : "refused: $err");
is($st, '0A000', 'REVOKE EXECUTE of a CHECK\'s function is refused outside execute()');
($st, $err) = $c->sql_error($f, 'REVOKE ALL ON ALL FUNCTIONS IN SCHEMA public FROM PUBLIC');
is($st, '0A000', 'and so is REVOKE ... ON ALL FUNCTIONS IN SCHEMA');
# What no replicated table uses, a GRANT, and GRANT OPTION FOR go on as before.
$c->node($f)->safe_psql('postgres', q{CREATE FUNCTION public.mine(int) RETURNS int LANGUAGE sql AS 'SELECT $1';
	REVOKE EXECUTE ON FUNCTION public.mine(int) FROM PUBLIC;
	GRANT EXECUTE ON FUNCTION public.pos(int) TO alice;
	REVOKE GRANT OPTION FOR EXECUTE ON FUNCTION public.pos(int) FROM alice});
pass('a REVOKE of a function no replicated table uses, a GRANT and GRANT OPTION FOR pass');
$c->node($l)->safe_psql('postgres', 'INSERT INTO acct VALUES (2)');
ok($c->caught_up(1), 'a row after the REVOKE is applied everywhere');
for my $id ($c->ids)
{
	is($c->node($id)->safe_psql('postgres',
			"SELECT coalesce(error, state) FROM dragonraft.status WHERE group_id = 1"), 'ok',
		"node $id applies group 1");
}
is($c->contents($f, 'acct', 'id'), $c->contents($l, 'acct', 'id'), 'the follower has the leader\'s rows');
# Through execute() every member revokes alike (the owner keeps its own grant).
$c->node($l)->safe_psql('postgres', q{SELECT dragonraft.execute(1,
	'GRANT EXECUTE ON FUNCTION public.pos(int) TO alice; REVOKE EXECUTE ON FUNCTION public.pos(int) FROM PUBLIC')});
$c->node($l)->safe_psql('postgres', 'INSERT INTO acct VALUES (3)');
ok($c->caught_up(1), 'REVOKE through execute(): a row after it is applied everywhere');
is($c->contents($f, 'acct', 'id'), $c->contents($l, 'acct', 'id'), 'and the follower has the leader\'s rows');

# execute() of another group may not change them either (review 22): the
# try passed over what a table computes its rows with, so group 1's log
# replaced a function that group 2's CHECK calls, at another place in each
# member's apply of group 2.
$c->create_group(2);
$l = $c->leader(2);
$c->node($l)->safe_psql('postgres', q{SELECT dragonraft.execute(2, $$CREATE FUNCTION public.pos2(int) RETURNS bool
	IMMUTABLE LANGUAGE sql AS 'SELECT $1 > 0';
	CREATE TABLE public.acct2 (id int PRIMARY KEY CHECK (public.pos2(id)))$$)});
$c->node($l)->safe_psql('postgres', "SELECT dragonraft.replicate_table('public.acct2', 2)");
for my $cmd ('CREATE OR REPLACE FUNCTION public.pos2(int) RETURNS bool IMMUTABLE LANGUAGE sql AS \'SELECT $1 > 5\'',
	'REVOKE EXECUTE ON FUNCTION public.pos2(int) FROM PUBLIC')
{
	($st, $err) = $c->sql_error($c->leader(1), "SELECT dragonraft.execute(1, \$\$$cmd\$\$)");
	is($st, '0A000', "execute() of group 1 refuses what group 2's CHECK calls: $cmd");
	like($err, qr/replicated by dragonraft group 2, not by group 1/, 'naming both groups');
}
$c->node($l)->safe_psql('postgres', q{SELECT dragonraft.execute(2, $$CREATE OR REPLACE FUNCTION public.pos2(int) RETURNS bool
	IMMUTABLE LANGUAGE sql AS 'SELECT $1 > -5'$$)});
pass('execute() of group 2 replaces it');
$c->node($l)->safe_psql('postgres', 'INSERT INTO acct2 VALUES (-1)');
ok($c->caught_up(2), 'a row it allows is applied everywhere');
done_testing();
