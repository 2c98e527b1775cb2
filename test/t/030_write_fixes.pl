# Write-path fixes of review 2, on three nodes: a transaction that changes
# one row twice applies on the followers (each op is a replication step);
# dragonraft's triggers cannot be forged, dropped, disabled or bypassed
# (session_replication_role = replica), execute() included; ALTER INDEX /
# ALTER TYPE on objects that are not tables pass the DDL hook; TRUNCATE of
# tables related by a foreign key applies on the followers; changes made by
# user triggers are applied after their cause; a follower refuses a write
# before it runs, and a new leader's writer waits for its backlog before it
# locks a row (or ends with 40001 when a command of that backlog may need its
# lock); drops that take part of a replicated table with them are refused;
# sequences called by defaults and descending ones follow a new leader; an
# identity FULL UPDATE a member could not apply is refused on the leader;
# execute() cancelled after proposing reports 40003; a member that refused a
# table refuses writes to it.
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
		is($c->query($f, "SELECT state FROM dragonraft.status WHERE group_id = 1"),
			'ok', "$what: node $f applies on");
		is($c->contents($f, $table, $order), $want, "$what: node $f has the leader's $table");
	}
	return $want;
}

# 1. One transaction changes a row twice (review 2, #1).
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, $$
CREATE TABLE acc (id int PRIMARY KEY, bal int);
CREATE TABLE swap (id int PRIMARY KEY DEFERRABLE INITIALLY DEFERRED, v text);
ALTER TABLE swap REPLICA IDENTITY FULL; -- a deferrable key cannot be the identity
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

# 2. The capture trigger cannot be forged (review 2, #5): a table's trigger
# must carry its own registration, and only replicate_table creates it.
my $acc_id = $L->safe_psql('postgres',
	"SELECT table_id FROM dragonraft.replicated_tables WHERE relid = 'acc'::regclass");
$L->safe_psql('postgres', q{
CREATE ROLE mallory LOGIN;
CREATE SCHEMA m AUTHORIZATION mallory;
SET ROLE mallory;
CREATE TABLE m.fake (id int PRIMARY KEY, bal int);
});
my ($st, $err) = $c->sql_error($l, "SET ROLE mallory; CREATE TRIGGER dragonraft_capture AFTER INSERT ON m.fake
	FOR EACH ROW EXECUTE FUNCTION dragonraft.capture('1', '$acc_id')");
is($st, '42501', 'a user cannot create the capture trigger');
($st, $err) = $c->sql_error($l, "CREATE TRIGGER other_name AFTER INSERT ON m.fake
	FOR EACH ROW EXECUTE FUNCTION dragonraft.capture('1', '$acc_id')");
is($st, '42501', 'not even a superuser, under another name');
$L->safe_psql('postgres', "CREATE FUNCTION m.noop() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NULL; END';
	CREATE TRIGGER t AFTER INSERT ON m.fake FOR EACH ROW EXECUTE FUNCTION m.noop()");
($st, $err) = $c->sql_error($l, 'ALTER TRIGGER t ON m.fake RENAME TO dragonraft_capture');
is($st, '42501', 'nor rename a trigger to its name');
# Nor through execute() (it runs as superuser on every member), which cannot
# stop or bypass capture either: every member refuses alike.
for my $cmd ("CREATE TABLE m.fake2 (id int PRIMARY KEY, bal int); CREATE TRIGGER dragonraft_capture AFTER INSERT ON m.fake2 FOR EACH ROW EXECUTE FUNCTION dragonraft.capture(''1'', ''$acc_id'')",
	'DROP TRIGGER dragonraft_capture ON acc', 'ALTER TABLE acc DISABLE TRIGGER dragonraft_capture',
	'ALTER TABLE acc DISABLE TRIGGER USER', 'ALTER TABLE acc ENABLE TRIGGER ALL')
{
	($st, $err) = $c->sql_error($l, "SELECT dragonraft.execute(1, '$cmd')");
	is($st, '42501', "execute() refuses $cmd before proposing it") or diag $err;
}
is($L->safe_psql('postgres', "SELECT count(*) FROM pg_class WHERE relname = 'fake2'"), '0',
	'the forging command left nothing');
$L->safe_psql('postgres', 'INSERT INTO acc VALUES (6, 6); DELETE FROM acc WHERE id = 6');
is(same_everywhere('acc', 'id', 'after the refused commands'), '(1,80);(2,5);(4,44)',
	'capture goes on');

# 3. session_replication_role = replica bypasses nothing (review 2, #6).
$L->safe_psql('postgres', "SET session_replication_role = replica; INSERT INTO acc VALUES (5, 55); TRUNCATE swap");
is(same_everywhere('acc', 'id', 'a write in replica mode'), '(1,80);(2,5);(4,44);(5,55)',
	'a leader\'s write in replica mode is replicated');
is(same_everywhere('swap', 'id', 'a TRUNCATE in replica mode'), '', 'and its TRUNCATE');
($st, $err) = $c->sql_error($followers[0], "SET session_replication_role = replica; INSERT INTO acc VALUES (6, 66)");
is($st, '25006', 'a follower refuses a write in replica mode');

# 4. ALTER INDEX and ALTER TYPE pass the DDL hook (review 2, #14), except on
# a replicated table's index.
$L->safe_psql('postgres', 'CREATE TABLE plain (id int PRIMARY KEY); CREATE TYPE comp AS (a int, b int)');
$L->safe_psql('postgres', 'ALTER INDEX plain_pkey RENAME TO plain_key; ALTER INDEX plain_key SET (fillfactor = 80);
	ALTER TYPE comp RENAME ATTRIBUTE a TO aa');
is($L->safe_psql('postgres', "SELECT count(*) FROM pg_class WHERE relname = 'plain_key'"), '1',
	'ALTER INDEX works on a table that is not replicated');
($st, $err) = $c->sql_error($l, 'ALTER INDEX acc_pkey RENAME TO acc_key');
is($st, '0A000', 'ALTER INDEX on a replicated table\'s index is refused');

# 5. TRUNCATE of tables a foreign key relates (review 2, #3).
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, $$
CREATE TABLE parent (id int PRIMARY KEY);
CREATE TABLE child (id int PRIMARY KEY, p int REFERENCES parent);
$$)});
$L->safe_psql('postgres', "SELECT dragonraft.replicate_table('$_', 1)") for qw(parent child);
$L->safe_psql('postgres', 'INSERT INTO parent VALUES (1), (2); INSERT INTO child VALUES (1, 1), (2, 2);
	TRUNCATE parent, child;
	INSERT INTO parent VALUES (3); INSERT INTO child VALUES (3, 3);
	BEGIN; INSERT INTO acc VALUES (7, 7); TRUNCATE parent CASCADE; INSERT INTO parent VALUES (4); COMMIT');
is(same_everywhere('parent', 'id', 'TRUNCATE of related tables'), '(4)', 'the leader has the parent rows');
is(same_everywhere('child', 'id', 'TRUNCATE ... CASCADE'), '', 'and no child rows');

# 6. Changes a user trigger makes are applied after the change that caused
# them (review 2, #4), although triggers named below dragonraft_capture fire
# first: a freed seat taken by the wait list; a row stamped by its own
# AFTER INSERT trigger.
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, $$
CREATE TABLE tickets (id int PRIMARY KEY, seat int UNIQUE, who text);
CREATE FUNCTION recycle() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
  IF OLD.seat <> NEW.seat THEN
    INSERT INTO tickets VALUES (NEW.id + 100, OLD.seat, 'waitlist');
  END IF;
  RETURN NULL;
END $f$;
CREATE TRIGGER a_recycle AFTER UPDATE ON tickets FOR EACH ROW EXECUTE FUNCTION recycle();
CREATE FUNCTION stamp() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
  IF NEW.who = 'stamp me' THEN
    UPDATE tickets SET who = 'stamped' WHERE id = NEW.id;
  END IF;
  RETURN NULL;
END $f$;
CREATE TRIGGER a_stamp AFTER INSERT ON tickets FOR EACH ROW EXECUTE FUNCTION stamp();
$$)});
$L->safe_psql('postgres', "SELECT dragonraft.replicate_table('tickets', 1)");
$L->safe_psql('postgres', "INSERT INTO tickets VALUES (1, 5, 'ann'), (2, 8, 'stamp me');
	UPDATE tickets SET seat = 6 WHERE id = 1;
	BEGIN; INSERT INTO tickets VALUES (3, 9, 'stamp me'); UPDATE tickets SET seat = 10 WHERE id = 3; COMMIT");
is(same_everywhere('tickets', 'id', 'changes made by user triggers'),
	'(1,6,ann);(2,8,stamped);(3,10,stamped);(101,5,waitlist);(103,9,waitlist)',
	'the leader has the triggers\' changes');

# 7. A write is checked before it touches a row (review 2, #2).  A follower
# refuses it before it waits for a row lock:
my ($f, $g) = @followers;
my $F = $c->node($f);
my $holder = $F->background_psql('postgres', on_error_stop => 0);
$holder->query_safe('BEGIN; SELECT * FROM acc WHERE id = 1 FOR UPDATE');
($st, $err) = $c->sql_error($f, "SET lock_timeout = '30s'; UPDATE acc SET bal = 0 WHERE id = 1");
is($st, '25006', 'a follower refuses a write before it waits for a row lock');
($st, $err) = $c->sql_error($f, "SET lock_timeout = '30s'; TRUNCATE acc");
is($st, '25006', 'and a TRUNCATE before it waits for the table lock');
($st, $err) = $c->sql_error($f, "COPY acc FROM PROGRAM 'echo 99	99'");
is($st, '25006', 'and a COPY');
# A new leader that has not applied its backlog yet: its writer waits before
# it locks a row that an older entry changes (the apply worker would wait
# for that lock, and the writer for the apply).  The local lock holds back
# this member's apply of the next two entries.
$L->safe_psql('postgres', 'UPDATE acc SET bal = bal + 1 WHERE id = 1; UPDATE acc SET bal = bal + 1 WHERE id = 2');
ok($c->wait_until("the apply worker of node $f to wait for the row lock", sub {
	($c->poll($f, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND backend_type LIKE 'dragonraft%'") // '') eq '1' }),
	'the apply worker of the future leader waits for the local lock');
$L->safe_psql('postgres', "SELECT dragonraft.transfer_leader(1, $f)");
ok($c->wait_until("node $f to lead", sub {
	($c->poll($f, 'SELECT role FROM dragonraft.status WHERE group_id = 1') // '') eq 'leader' }),
	'the leadership moved to the member with a backlog');
my ($wout, $werr) = ('', '');
my $writer = IPC::Run::start(['psql', '-XAt', '-d', $F->connstr('postgres'), '-c',
		'\set VERBOSITY verbose', '-c', "SET statement_timeout = '60s'", '-c',
		'UPDATE acc SET bal = bal + 1000 WHERE id = 2'],
	'>', \$wout, '2>', \$werr);
ok($c->wait_until('the writer to wait for the new leader\'s backlog', sub {
	($c->poll($f, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Extension' AND query LIKE 'UPDATE acc%'") // '') eq '1' }),
	'the writer on the new leader waits before it locks a row');
$holder->query_safe('COMMIT');
$holder->quit;
$writer->finish;
is($werr, '', 'the writer commits once the backlog is applied');
($l, @followers) = ($f, grep { $_ != $f } $c->ids);
is(same_everywhere('acc', 'id', 'after the new leader\'s first write'), '(1,81);(2,1006);(4,44);(5,55);(7,7)',
	'the new leader has every change');

# A utility command in the new leader's backlog needs the table lock its
# waiting writer holds: the writer ends with 40001 (nothing proposed) rather
# than wait for an apply that waits for it.
my ($next2) = grep { $_ != $l } $c->ids;
my $N = $c->node($next2);
$holder = $N->background_psql('postgres', on_error_stop => 0);
$holder->query_safe('BEGIN; SELECT * FROM acc WHERE id = 1 FOR UPDATE');
$c->node($l)->safe_psql('postgres', "UPDATE acc SET bal = bal + 1 WHERE id = 1;
	SELECT dragonraft.execute(1, 'ALTER TABLE acc ADD COLUMN w int')");
ok($c->wait_until("the apply worker of node $next2 to wait for the row lock", sub {
	($c->poll($next2, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND backend_type LIKE 'dragonraft%'") // '') eq '1' }),
	'the apply worker of the next leader waits for the local lock');
$c->node($l)->safe_psql('postgres', "SELECT dragonraft.transfer_leader(1, $next2)");
ok($c->wait_until("node $next2 to lead", sub {
	($c->poll($next2, 'SELECT role FROM dragonraft.status WHERE group_id = 1') // '') eq 'leader' }),
	'the leadership moved to the member with a command in its backlog');
($wout, $werr) = ('', '');
$writer = IPC::Run::start(['psql', '-XAt', '-d', $N->connstr('postgres'), '-c',
		'\set VERBOSITY verbose', '-c', "SET statement_timeout = '60s'", '-c',
		'UPDATE acc SET bal = bal + 1000 WHERE id = 2'],
	'>', \$wout, '2>', \$werr);
ok($c->wait_until('the writer to wait for the backlog', sub {
	($c->poll($next2, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Extension' AND query LIKE 'UPDATE acc%'") // '') eq '1' }),
	'the writer waits for the backlog');
$holder->query_safe('COMMIT');
$holder->quit;
$writer->finish;
like($werr, qr/ERROR:\s+40001:.*applies a command run through dragonraft.execute/,
	'the writer ends with 40001 when the backlog\'s command needs its lock');
($l, @followers) = ($next2, grep { $_ != $next2 } $c->ids);
$N->safe_psql('postgres', 'UPDATE acc SET bal = bal + 1000 WHERE id = 2');
is(same_everywhere('acc', 'id', 'after the retry'), '(1,82,);(2,2006,);(4,44,);(5,55,);(7,7,)',
	'the retry commits after the command');

# 8. DDL that drops or changes part of a replicated table past the statement
# hook is refused too (review 2, #7), on any member; through execute() it runs.
$L = $c->node($l);
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, $$
CREATE SCHEMA app;
CREATE TYPE app.color AS ENUM ('red');
CREATE TABLE app.t (id serial PRIMARY KEY, u int NOT NULL, c app.color);
CREATE UNIQUE INDEX t_u ON app.t (u);
$$)});
$L->safe_psql('postgres', "SELECT dragonraft.replicate_table('app.t', 1)");
ok($c->caught_up(1), 'app.t is replicated everywhere');
for my $ddl ('DROP SCHEMA app CASCADE', 'DROP TYPE app.color CASCADE', 'DROP INDEX app.t_u',
	'DROP SEQUENCE app.t_id_seq CASCADE',
	'ALTER SEQUENCE app.t_id_seq RESTART WITH 1', 'CREATE TABLE app.child () INHERITS (app.t)',
	'CREATE POLICY p ON app.t USING (false)')
{
	for my $id ($l, $followers[0])
	{
		my ($st) = $c->sql_error($id, "BEGIN; $ddl; ROLLBACK");
		is($st, '0A000', "node $id refuses $ddl");
	}
}
($st) = $c->sql_error($l, 'DROP TRIGGER dragonraft_capture ON app.t');
is($st, '42501', 'DROP TRIGGER of a capture trigger is refused');
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, 'DROP SCHEMA app CASCADE')});
ok($c->caught_up(1), 'a drop through execute() is applied everywhere');
is($c->node($_)->safe_psql('postgres',
		"SELECT count(*) FROM pg_namespace WHERE nspname = 'app'") . '/'
	  . $c->node($_)->safe_psql('postgres',
		"SELECT count(*) FROM dragonraft.replicated_tables WHERE relid IS NOT NULL AND NOT EXISTS (SELECT FROM pg_class WHERE oid = relid)"),
	'0/0', "node $_ dropped the schema and forgot its table") for $c->ids;

# 9. Sequences that a default calls without owning them, and descending ones,
# follow their tables to a new leader (review 2, #12).
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, $$
CREATE SEQUENCE free_seq;
CREATE TABLE free (id bigint PRIMARY KEY DEFAULT nextval('free_seq'), v int);
CREATE TABLE down (id int GENERATED ALWAYS AS IDENTITY (INCREMENT BY -1 START WITH -1) PRIMARY KEY, v int);
$$)});
$L->safe_psql('postgres', "SELECT dragonraft.replicate_table('$_', 1)") for qw(free down);
$L->safe_psql('postgres', 'INSERT INTO free (v) VALUES (1), (2), (3); INSERT INTO down (v) VALUES (1), (2), (3)');
ok($c->caught_up(1), 'the sequences\' rows are applied everywhere');
my $next = $followers[0];
ok($c->lead(1, $next), "node $next leads");
($l, @followers) = ($next, grep { $_ != $next } $c->ids);
$L = $c->node($l);
($st, $err) = $c->sql_error($l, 'INSERT INTO free (v) VALUES (4); INSERT INTO down (v) VALUES (4)');
is($st, '', 'the new leader hands out ids no row holds') or diag $err;
is(same_everywhere('free', 'id', 'a sequence called by a default'), '(1,1);(2,2);(3,3);(4,4)', 'free ids go on');
is(same_everywhere('down', 'id', 'a descending sequence'), '(-4,4);(-3,3);(-2,2);(-1,1)', 'descending ids go on');

# 10. An UPDATE or DELETE a member could not find the row of (REPLICA
# IDENTITY FULL, a column without equality) is refused on the leader (#13).
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, $$
CREATE TABLE js (id int, doc json); ALTER TABLE js REPLICA IDENTITY FULL;
$$)});
$L->safe_psql('postgres', "SELECT dragonraft.replicate_table('js', 1)");
$L->safe_psql('postgres', q{INSERT INTO js VALUES (1, '{"a": 1}')});
($st, $err) = $c->sql_error($l, q{UPDATE js SET doc = '{}'});
is($st, '55000', 'an UPDATE of an identity FULL table with a json column is refused');
like($err, qr/column "doc" has a type without an equality operator/, 'saying why');
is(same_everywhere('js', 'id', 'after the refused UPDATE'), '(1,"{""a"": 1}")', 'the row is unchanged');

# 11. execute() cancelled after it proposed: 40003, and the command runs (#17).
# The node's one apply worker waits for a reader's lock to apply a command
# of group 2 (proposed on another member: execute() tries its command on the
# calling node first, where it would wait for the reader itself); an
# execute() of group 1 there waits behind it.
$c->create_group(2);
ok($c->leader(2), 'group 2 has a leader');
my ($other) = grep { $_ != $l } $c->ids;
$c->node($other)->safe_psql('postgres', "SELECT dragonraft.execute(2, 'CREATE TABLE public.g2 (id int)')");
ok($c->caught_up(2), 'group 2 has its table everywhere');
$L->safe_psql('postgres', 'ALTER SYSTEM SET dragonraft.max_apply_lock_delay = -1; SELECT pg_reload_conf()');
ok($c->caught_up(1), 'the apply worker keeps a reader that blocks it');
my $reader = $L->background_psql('postgres', on_error_stop => 0);
$reader->query_safe('BEGIN; SELECT count(*) FROM g2');
$c->node($other)->safe_psql('postgres', "SELECT dragonraft.execute(2, 'ALTER TABLE public.g2 ADD COLUMN z int')");
my ($xout, $xerr) = ('', '');
my $exec = IPC::Run::start(['psql', '-XAt', '-d', $L->connstr('postgres'), '-c',
		'\set VERBOSITY verbose', '-c', "SELECT dragonraft.execute(1, 'ALTER TABLE acc ADD COLUMN z int')"],
	'>', \$xout, '2>', \$xerr);
# (its read barrier and its proposal, until the engine worker took it, wait
# on Extension too, and a cancel there is 57014: its entry committed, not
# applied here, says it proposed it)
ok($c->wait_until('execute() to wait for its apply', sub {
	($c->poll($l, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Extension' AND query LIKE '%ADD COLUMN z%' AND backend_type = 'client backend'") // '') eq '1'
	  && ($c->poll($l, 'SELECT commit_index > applied_index FROM dragonraft.status WHERE group_id = 1') // '') eq 't' }),
	'execute() waits for the apply, which waits for a reader\'s lock');
$L->safe_psql('postgres', "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE '%acc ADD COLUMN z%' AND backend_type = 'client backend' AND pid <> pg_backend_pid()");
$exec->finish;
like($xerr, qr/ERROR:\s+40003/, 'a cancelled execute() reports 40003');
$reader->query_safe('COMMIT');
$reader->quit;
$L->safe_psql('postgres', 'ALTER SYSTEM RESET dragonraft.max_apply_lock_delay; SELECT pg_reload_conf()');
ok($c->caught_up($_), "group $_ is applied everywhere once the reader is gone") for (1, 2);
is($c->node($_)->safe_psql('postgres', "SELECT count(*) FROM pg_attribute WHERE attrelid = 'acc'::regclass AND attname = 'z'"),
	'1', "node $_ has the column") for $c->ids;

# 12. A member that refused a table refuses writes to it, even when it leads
# (review 2, #9): they would never be replicated.
my $r = $followers[0];
$L->safe_psql('postgres', 'CREATE TABLE mine (k int PRIMARY KEY, v text)');
$c->node($r)->safe_psql('postgres', 'CREATE TABLE mine (k bigint PRIMARY KEY)');
$L->safe_psql('postgres', "SELECT dragonraft.replicate_table('mine', 1)");
ok($c->caught_up(1), 'the registration is applied');
like($c->node($r)->safe_psql('postgres', "SELECT state FROM dragonraft.tables WHERE relid = 'mine'::regclass"),
	qr/^refused/, "node $r refused the table");
$L->safe_psql('postgres', "SELECT dragonraft.transfer_leader(1, $r)");
ok($c->wait_until("node $r to lead", sub {
	($c->poll($r, 'SELECT role FROM dragonraft.status WHERE group_id = 1') // '') eq 'leader' }),
	'the refusing member leads');
($st, $err) = $c->sql_error($r, 'INSERT INTO mine VALUES (1)');
is($st, '55000', 'a write of the table it refused is refused');
like($err, qr/table "mine" was refused by dragonraft group 1 on this member/, 'saying why');
$c->node($r)->safe_psql('postgres', 'DROP TABLE mine');
is($c->node($r)->safe_psql('postgres', "SELECT count(*) FROM pg_class WHERE relname = 'mine'"), '0',
	'the DBA can drop the refused table');

done_testing();
