# dragonraft's background workers (the apply worker, the engine worker, a
# snapshot's exporter and loader) connect as the bootstrap superuser.  Their
# own queries must not resolve an operator through the database's
# search_path, which its owner sets (review 13 F0: a database owner that is
# no superuser put an operator = (bigint, bigint) of a schema of its own
# first, and the apply worker ran it as superuser).  Commands through the log
# still run with the database's search_path.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $c = DragonCluster->new(1);
my $node = $c->node(1);
$c->create_group(1);
ok($c->leader(1), 'group 1 elects its member');
# (The test's own sessions keep pg_catalog's operators.)
sub sql { return $node->safe_psql('postgres', "SET search_path = pg_catalog, public;\n$_[0]"); }
sql(q{SELECT dragonraft.execute(1, 'CREATE TABLE t (id int PRIMARY KEY)')});
sql(q{SELECT dragonraft.replicate_table('t', 1)});
sql('CREATE ROLE dbo LOGIN; ALTER DATABASE postgres OWNER TO dbo');
# The owner's operator runs whatever it is asked to as whoever calls it; in
# a background worker (no application_name) it tries to make dbo a superuser.
my ($out, $err) = ('', '');
$node->psql('postgres', q{
CREATE SCHEMA ev;
CREATE TABLE ev.calls (who text, app text);
GRANT INSERT ON ev.calls TO PUBLIC;
CREATE FUNCTION ev.eq8(bigint, bigint) RETURNS boolean LANGUAGE plpgsql AS $f$
BEGIN
  IF current_setting('application_name') = '' AND current_user <> 'dbo' THEN
    BEGIN
      EXECUTE 'ALTER ROLE dbo SUPERUSER';
    EXCEPTION WHEN others THEN NULL;
    END;
    INSERT INTO ev.calls VALUES (current_user, current_setting('application_name'));
  END IF;
  RETURN $1 OPERATOR(pg_catalog.=) $2;
END $f$;
CREATE OPERATOR ev.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = ev.eq8);
ALTER DATABASE postgres SET search_path = ev, pg_catalog, public;
}, stdout => \$out, stderr => \$err, extra_params => [ '-U', 'dbo' ]);
is($err, '', 'the database owner sets its search_path and operator');
$node->restart;
ok($node->poll_query_until('postgres',
		"SELECT count(*) FROM dragonraft.status WHERE role = 'leader' AND applied_index = commit_index", '1'),
	'the group is back after a restart');
# A command through the log (it runs with the database's search_path: t2
# lands in ev, the first schema), rows, a snapshot.
sql(q{SELECT dragonraft.execute(1, 'CREATE TABLE t2 (id int PRIMARY KEY)')});
sql(q{INSERT INTO t VALUES (1)});
sql(q{SELECT dragonraft.snapshot(1)});
sql(q{SELECT dragonraft.execute(1, 'SELECT 1')});
is(sql(q{SELECT count(*) FROM ev.calls}), '0', 'no background worker called the owner\'s operator');
is(sql(q{SELECT rolsuper FROM pg_roles WHERE rolname = 'dbo'}), 'f', 'and dbo is no superuser');
is(sql(q{SELECT relnamespace::regnamespace FROM pg_class WHERE relname = 't2'}), 'ev',
	'the command ran with the database\'s search_path');
done_testing();
