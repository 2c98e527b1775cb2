# Admin DDL outside execute() that split members (ownedddl).  A member's
# apply checks a replicated table's rows as the table's owner: DROP OWNED BY
# a role through which the owner may call a CHECK's function (DROP OWNED
# revokes the role's privileges, as REVOKE does), REVOKE of that role from
# the owner, or ALTER ROLE owner NOINHERIT, run on one follower alone stopped that follower's apply at
# the next row ("permission denied for function").  REASSIGN OWNED of a role that owns a type the table uses, and
# ALTER SCHEMA ... RENAME TO of the schema of its CHECK's function, left
# that member with another owner or name, which a later execute() that
# names them meets there only.  Now refused (0A000) on any member outside
# execute(), and execute() of them runs on every member.  REVOKE USAGE on
# the schemas and type the table uses is harmless (the apply names none of
# them): a follower that ran it alone still applies the rows.
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
ok($l, 'group 1 has a writable leader');
my ($f, $g) = grep { $_ != $l } $c->ids;
my $L = $c->node($l);
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, $$CREATE ROLE tab_owner;
CREATE ROLE callers;
CREATE ROLE ty_owner;
CREATE ROLE heir;
GRANT callers TO tab_owner;
CREATE SCHEMA s;
CREATE SCHEMA fs;
GRANT USAGE ON SCHEMA s, fs TO PUBLIC;
CREATE TYPE s.e AS ENUM ('a', 'b');
ALTER TYPE s.e OWNER TO ty_owner;
CREATE FUNCTION fs.chk(int) RETURNS bool LANGUAGE sql IMMUTABLE AS 'SELECT $1 < 1000';
REVOKE EXECUTE ON FUNCTION fs.chk(int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fs.chk(int) TO callers;
CREATE TABLE s.t (id int PRIMARY KEY CHECK (fs.chk(id)), e s.e);
ALTER TABLE s.t OWNER TO tab_owner$$)});
$L->safe_psql('postgres', q{SELECT dragonraft.replicate_table('s.t', 1)});
$L->safe_psql('postgres', q{INSERT INTO s.t VALUES (1, 'a')});
ok($c->caught_up(1), 'every member has the first row');

my $status = q{SELECT state || coalesce(': ' || error, '') FROM dragonraft.status WHERE group_id = 1};
# The next row on the leader, and whether node id applies it (30 s).
sub applies
{
	my ($id, $row) = @_;
	$L->safe_psql('postgres', "INSERT INTO s.t VALUES $row");
	my $last = $L->safe_psql('postgres', q{SELECT commit_index FROM dragonraft.status WHERE group_id = 1});
	return $c->wait_until("node $id applied entry $last", sub {
		($c->poll($id, "SELECT applied_index >= $last FROM dragonraft.status WHERE group_id = 1") // '') eq 't' }, 30);
}

my ($state, $err) = $c->sql_error($f, 'DROP OWNED BY callers');
is($state, '0A000', 'a follower refuses DROP OWNED of a role that may call the CHECK\'s function')
	or diag $err;
($state, $err) = $c->sql_error($f, 'REVOKE callers FROM tab_owner');
is($state, '0A000', 'and REVOKE of that role from the table\'s owner') or diag $err;
($state, $err) = $c->sql_error($f, 'ALTER ROLE tab_owner NOINHERIT');
is($state, '0A000', 'and ALTER ROLE ... NOINHERIT of the owner') or diag $err;
ok(applies($f, q{(2, 'b')}), 'the follower applies the next row');
is($c->poll($f, $status), 'ok', 'its apply goes on') or diag $c->poll($f, $status);

($state, $err) = $c->sql_error($f, 'REASSIGN OWNED BY ty_owner TO heir');
is($state, '0A000', 'a follower refuses REASSIGN OWNED of the owner of a type the table uses')
	or diag $err;
($state, $err) = $c->sql_error($l, 'REASSIGN OWNED BY ty_owner TO heir');
is($state, '0A000', 'so does the leader') or diag $err;
($state, $err) = $c->sql_error($g, 'ALTER SCHEMA fs RENAME TO fs2');
is($state, '0A000', 'a follower refuses ALTER SCHEMA ... RENAME TO of the schema of the CHECK\'s function')
	or diag $err;
my $owner = q{SELECT typowner::regrole FROM pg_type WHERE oid = 's.e'::regtype};
is(join(' ', map { $c->query($_, $owner) } $c->ids), 'ty_owner ty_owner ty_owner',
	'no member gave the type another owner');

# Harmless: USAGE on the schemas and the type, revoked on one follower.
$c->node($f)->safe_psql('postgres',
	q{REVOKE USAGE ON SCHEMA s, fs FROM PUBLIC; REVOKE USAGE ON TYPE s.e FROM PUBLIC});
ok(applies($f, q{(3, 'b')}), 'a follower without USAGE on them for the owner applies the next row');
is($c->poll($f, $status), 'ok', 'its apply goes on') or diag $c->poll($f, $status);
$c->node($f)->safe_psql('postgres',
	q{GRANT USAGE ON SCHEMA s, fs TO PUBLIC; GRANT USAGE ON TYPE s.e TO PUBLIC});
# (the others too: the type's privileges, given back, are no longer its default)
$c->node($_)->safe_psql('postgres', q{REVOKE USAGE ON TYPE s.e FROM PUBLIC; GRANT USAGE ON TYPE s.e TO PUBLIC})
	for ($l, $g);

# Through execute() every member runs them, and applies the rows after.
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, $$REASSIGN OWNED BY ty_owner TO heir;
ALTER SCHEMA fs RENAME TO fs2;
GRANT EXECUTE ON FUNCTION fs2.chk(int) TO tab_owner;
DROP OWNED BY callers$$)});
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, 'ALTER TYPE s.e ADD VALUE ''c''')});
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, 'COMMENT ON FUNCTION fs2.chk(int) IS ''checked''')});
$L->safe_psql('postgres', q{INSERT INTO s.t VALUES (4, 'c')});
ok($c->caught_up(1), 'every member applied the commands and the row after them');
is(join(' ', map { $c->query($_, $owner) } $c->ids), 'heir heir heir', 'every member gave the type to heir');
for my $id ($f, $g)
{
	is($c->poll($id, $status), 'ok', "node $id applies on");
	is($c->contents($id, 's.t', 'id'), $c->contents($l, 's.t', 'id'), "node $id has the leader's rows");
	is($c->catalog($id), $c->catalog($l), "node $id has the leader's schemas, types and functions");
}

# Through execute() too: a REVOKE that leaves the owner unable to call the
# CHECK's function is refused on the leader, nothing proposed; before, every
# member ran it, the leader went on taking rows (its CHECK runs as the
# writer) and every follower's apply stopped at the next row.
($state, $err) = $c->sql_error($l, q{SELECT dragonraft.execute(1, 'REVOKE EXECUTE ON FUNCTION fs2.chk(int) FROM tab_owner')});
is($state, '0A000', 'execute() of a REVOKE that takes EXECUTE on the CHECK\'s function from the owner is refused')
	or diag $err;
ok(applies($f, q{(5, 'a')}), 'the follower applies the next row');
is(join(' ', map { $c->poll($_, $status) } $f, $g), 'ok ok', 'both followers apply on');

done_testing();
