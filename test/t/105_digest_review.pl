# Review 34 of table_digest and check_consistency (helper consistency).
# - Unusual types digest alike on every member; bad input is a clear error.
# - A checker digests the group's tables as they were at the marker's index,
#   schema included: a command of the group applied after the marker (ALTER
#   TABLE ... ADD COLUMN) while the checker had not yet opened that table
#   (it waits for another table's lock) does not change its digest.  (The
#   checker opened each table only when it scanned it, after the apply had
#   gone on: the column the later command added was in its digest.)
# - A digest whose drain needs its own lock fails as a deadlock (40P01).
# - A digest whose backend is stopped during its hold: the hold ends after
#   65 s (20 s here: dragonraft.testing_digest_hold), the backend then fails
#   (55000).
# - The engine worker's exit during a hold fails the digest at once.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Time::HiRes qw(time);

my $c = DragonCluster->new(3);
$c->create_group(1);
my $l = $c->leader(1);
ok($l, "node $l leads group 1");
my ($f) = grep { $_ != $l } $c->ids;

$c->node($l)->safe_psql('postgres', q{
SELECT dragonraft.execute(1, 'CREATE TABLE a (id int PRIMARY KEY, v text)');
SELECT dragonraft.replicate_table('a', 1);
SELECT dragonraft.execute(1, 'CREATE TABLE b (id int PRIMARY KEY, v text)');
SELECT dragonraft.replicate_table('b', 1);
INSERT INTO a SELECT g, 'a' || g FROM generate_series(1, 50) g;
INSERT INTO b SELECT g, 'b' || g FROM generate_series(1, 50) g;
});
ok($c->caught_up(1), 'every member applied the writes');

# Unusual types: arrays, a composite, a domain, a collation, toasted values
# (compressed and not): every member digests them alike.
$c->node($l)->safe_psql('postgres', q{
SELECT dragonraft.execute(1, 'CREATE TYPE pair AS (x int, y text)');
SELECT dragonraft.execute(1, 'CREATE DOMAIN short AS text CHECK (length(VALUE) < 10)');
SELECT dragonraft.execute(1, 'CREATE TABLE u (id int PRIMARY KEY, arr int[], p pair, d short, '
  || 'c text COLLATE "C", big text, raw bytea)');
SELECT dragonraft.replicate_table('u', 1);
SELECT dragonraft.execute(1, 'ALTER TABLE u ALTER COLUMN raw SET STORAGE EXTERNAL');
INSERT INTO u SELECT g, ARRAY[g, NULL, -g], ROW(g, 'y' || g)::pair, 'd' || g, 'Z' || g,
  repeat('toast ' || g, 20000), decode(repeat(md5(g::text), 4000), 'hex')
  FROM generate_series(1, 5) g;
INSERT INTO u VALUES (6, '{}', NULL, NULL, NULL, NULL, NULL);
});
ok($c->caught_up(1), 'every member applied the rows of u');
my %u = map { $_ => $c->query($_, "SELECT rows || ' ' || digest FROM dragonraft.table_digest(1) "
	  . "WHERE relid = 'u'::regclass") } $c->ids;
like($u{$l}, qr/^6 [0-9a-f]{64}$/, "node ${l}'s digest of u");
is($u{$_}, $u{$l}, "node $_ agrees on u") for grep { $_ != $l } $c->ids;

# Bad input: a clear error, nothing held.
my ($state, $err) = $c->sql_error($l, 'SELECT * FROM dragonraft.table_digest(NULL)');
is($state, '22023', 'table_digest(NULL): 22023') or diag($err);
($state, $err) = $c->sql_error($l, 'SELECT * FROM dragonraft.table_digest(-1)');
is($state, '22023', 'table_digest(-1): 22023') or diag($err);
($state, $err) = $c->sql_error($l, 'SELECT * FROM dragonraft.table_digest(9223372036854775807)');
is($state, '42704', 'table_digest of an unknown huge id: 42704') or diag($err);
($state, $err) = $c->sql_error($l, 'SELECT dragonraft.check_consistency(9223372036854775807)');
isnt($state, '', 'check_consistency of an unknown group fails') or diag($err);
$c->node($l)->safe_psql('postgres', 'CREATE ROLE plain LOGIN');
($state, $err) = $c->sql_error($l, "SET ROLE plain;\nSELECT dragonraft.check_consistency(1);");
is($state, '42501', 'an ordinary role may not check') or diag($err);
is($c->query($l, "SELECT count(*) FROM dragonraft.stat_progress_snapshot WHERE role = 'digest'"),
	'0', 'no digest job is left');

my ($b_before) = $c->query($f, "SELECT rows || ' ' || digest FROM dragonraft.table_digest(1) "
	  . "WHERE relid = 'b'::regclass");
like($b_before, qr/^50 [0-9a-f]{64}$/, "node ${f}'s digest of b");

# On f a session holds table a (the checker digests a first, then b).
my ($lin, $lout, $lerr) = ("BEGIN;\nLOCK TABLE a IN ACCESS EXCLUSIVE MODE;\n\\echo locked\n", '', '');
my $locker = IPC::Run::start([ 'psql', '-XAtq', '-d', $c->node($f)->connstr('postgres') ],
	'<', \$lin, '>', \$lout, '2>', \$lerr, IPC::Run::timeout(120));
$locker->pump until $lout =~ /locked/;
my $m = $c->query($l, 'SELECT dragonraft.check_consistency(1)');
ok($c->wait_until("node ${f}'s checker to wait for the lock of a", sub {
	$c->poll($f, "SELECT count(*) FROM pg_stat_activity WHERE backend_type = "
		  . "'dragonraft snapshot checker' AND wait_event_type = 'Lock'") eq '1' }),
	"node ${f}'s checker waits for a");
# A command after the marker changes b.
$c->node($l)->safe_psql('postgres',
	"SELECT dragonraft.execute(1, 'ALTER TABLE b ADD COLUMN z int DEFAULT 7')");
# (Node f applies it now if its apply went on without the checker's locks;
# else it cannot until the checker has them: then after 3 s.)
my $applied = $c->wait_until("node $f to apply the ALTER TABLE", sub {
	$c->poll($f, "SELECT count(*) FROM pg_attribute WHERE attrelid = 'b'::regclass "
		  . "AND attname = 'z'") eq '1' }, 3);
note("node $f applied the ALTER TABLE while its checker waited: " . ($applied ? 'yes' : 'no'));
$lin .= "COMMIT;\n\\q\n";
$locker->finish;
my %rows;
for my $id ($l, $f)
{
	ok($c->wait_until("node $id to record the check at $m", sub {
		$c->poll($id, "SELECT count(*) FROM dragonraft.consistency_checks "
			  . "WHERE group_id = 1 AND log_index = $m") eq '3' }), "node $id recorded the check");
	$rows{$id} = { map { split / /, $_, 2 } split /\n/, $c->query($id,
		"SELECT concat_ws(' ', coalesce(relid::text, '-'), rows, digest, error) "
		  . "FROM dragonraft.consistency_checks WHERE group_id = 1 AND log_index = $m") };
}
is($rows{$f}{b}, $b_before, "node ${f}'s check saw b as it was at the marker (no column z)");
is_deeply($rows{$f}, $rows{$l}, "node $f agrees with node $l at $m");

# A digest whose drain needs a lock it holds: the apply of a command of the
# group on one of its tables (ALTER TABLE needs ACCESS EXCLUSIVE, the digest
# holds ACCESS SHARE while it waits for the drain).  The digest fails as a
# deadlock once the apply waited deadlock_timeout, as a writer waiting for
# its turn does; it did not see it: the apply worker (every group of the
# node) waited until dragonraft.max_apply_lock_delay cancelled it (57014),
# or for 60 s (55000).
$c->node($f)->safe_psql('postgres', "ALTER SYSTEM SET dragonraft.max_apply_lock_delay = '30s'; "
	  . "SELECT pg_reload_conf()");
($lin, $lout, $lerr) = ("BEGIN;\nSELECT id FROM a WHERE id = 7 FOR UPDATE;\n\\echo locked\n", '', '');
$locker = IPC::Run::start([ 'psql', '-XAtq', '-d', $c->node($f)->connstr('postgres') ],
	'<', \$lin, '>', \$lout, '2>', \$lerr, IPC::Run::timeout(120));
$locker->pump until $lout =~ /locked/;
# f's apply waits for the row lock; the command comes after that entry.
$c->node($l)->safe_psql('postgres', "UPDATE a SET v = 'locked' WHERE id = 7");
$c->node($l)->safe_psql('postgres',
	"SELECT dragonraft.execute(1, 'ALTER TABLE b ADD COLUMN w int')");
my ($din, $dout, $derr) = ("\\set VERBOSITY verbose\nSELECT count(*) FROM dragonraft.table_digest(1);\n",
	'', '');
my $digest = IPC::Run::start([ 'psql', '-XAtq', '-d', $c->node($f)->connstr('postgres') ],
	'<', \$din, '>', \$dout, '2>', \$derr, IPC::Run::timeout(120));
ok($c->wait_until("the digest on node $f to wait for the drain", sub {
	$digest->pump_nb;
	$c->poll($f, "SELECT count(*) FROM dragonraft.stat_progress_snapshot WHERE role = 'digest'")
	  eq '1' }), "the digest on node $f waits for the drain");
my $t0 = time;
$lin .= "COMMIT;\n\\q\n";
$locker->finish;
$digest->finish;
my $took = time - $t0;
like($derr, qr/ERROR:\s+40P01:.*lock that the apply worker waits for/,
	'the digest fails as a deadlock') or diag($derr);
# (the bound is well under max_apply_lock_delay, 30 s: a loaded machine can
# take a few seconds more than deadlock_timeout to get there)
ok($took < 20, "it fails within 20 s (deadlock_timeout is 1 s), not at max_apply_lock_delay (30 s) "
	  . "or after 60 s: took $took s");
ok($c->caught_up(1), "node ${f}'s apply goes on");
is($c->query($f, "SELECT count(*) FROM pg_attribute WHERE attrelid = 'b'::regclass "
	  . "AND attname = 'w'"), '1', "node $f applied the command");
$c->node($f)->safe_psql('postgres', "ALTER SYSTEM RESET dragonraft.max_apply_lock_delay; "
	  . "SELECT pg_reload_conf()");

# A digest's backend that stops during its hold (SIGSTOP) cannot end it: the
# engine worker ends it after the longest wait a backend has (60 s) and a
# few seconds, and the backend, when it goes on, fails instead of taking a
# snapshot that is not held.  (The hold had no end: the member applied
# nothing more of the group.)  Here the bound is 20 s from the claim
# (dragonraft.testing_digest_hold: the same end, not waited out for 65 s).
$c->node($f)->safe_psql('postgres', "ALTER SYSTEM SET dragonraft.testing_digest_hold = '20s'; "
	  . "SELECT pg_reload_conf()");
ok($c->wait_until("node $f to reload", sub {
	$c->query($f, 'SHOW dragonraft.testing_digest_hold') eq '20s' }), "node ${f}'s digests are held 20 s at most");
($lin, $lout, $lerr) = ("BEGIN;\nSELECT id FROM a WHERE id = 9 FOR UPDATE;\n\\echo locked\n", '', '');
$locker = IPC::Run::start([ 'psql', '-XAtq', '-d', $c->node($f)->connstr('postgres') ],
	'<', \$lin, '>', \$lout, '2>', \$lerr, IPC::Run::timeout(200));
$locker->pump until $lout =~ /locked/;
$c->node($l)->safe_psql('postgres', "UPDATE a SET v = 'locked' WHERE id = 9");
($din, $dout, $derr) = ("\\set VERBOSITY verbose\nSELECT pg_backend_pid();\n", '', '');
$digest = IPC::Run::start([ 'psql', '-XAtq', '-d', $c->node($f)->connstr('postgres') ],
	'<', \$din, '>', \$dout, '2>', \$derr, IPC::Run::timeout(200));
$digest->pump until $dout =~ /^(\d+)$/m;
my $dpid = $1;
$din .= "SELECT count(*) FROM dragonraft.table_digest(1);\n";
ok($c->wait_until("the digest on node $f to wait for the drain", sub {
	$digest->pump_nb;
	$c->poll($f, "SELECT count(*) FROM dragonraft.stat_progress_snapshot WHERE role = 'digest' "
		  . "AND pid = $dpid") eq '1' }), "the digest on node $f waits for the drain");
$t0 = time;
kill 'STOP', $dpid;
$lin .= "COMMIT;\n\\q\n";
$locker->finish;
$c->node($l)->safe_psql('postgres', "INSERT INTO a VALUES (3000, 'after')");
ok($c->wait_until("node $f to apply the later write", sub {
	$c->poll($f, 'SELECT count(*) FROM a WHERE id = 3000') eq '1' }, 100),
	"node $f applies the group's later writes while the digest's backend is stopped");
$took = time - $t0;
ok($took < 50, "within the longest hold (20 s here, and 30 s for a loaded machine): took $took s");
kill 'CONT', $dpid;
$din .= "\\q\n";
$digest->finish;
like($derr, qr/ERROR:\s+55000:.*hold of the apply of group 1 ended/,
	'the digest fails when its backend goes on') or diag($derr);
$c->node($f)->safe_psql('postgres', "ALTER SYSTEM RESET dragonraft.testing_digest_hold; "
	  . "SELECT pg_reload_conf()");
ok($c->caught_up(1), 'every member applied everything');

# The engine worker exits during a digest's hold (and restarts): the digest
# does not wait 60 s for a claimed job the next engine worker never claims
# again: it failed at once (55000, the engine worker does not run), and
# since rev63 asks the next engine worker for a hold (TAP 136) and returns
# once it runs; the next digest works.
($lin, $lout, $lerr) = ("BEGIN;\nSELECT id FROM a WHERE id = 10 FOR UPDATE;\n\\echo locked\n", '', '');
$locker = IPC::Run::start([ 'psql', '-XAtq', '-d', $c->node($f)->connstr('postgres') ],
	'<', \$lin, '>', \$lout, '2>', \$lerr, IPC::Run::timeout(120));
$locker->pump until $lout =~ /locked/;
$c->node($l)->safe_psql('postgres', "UPDATE a SET v = 'locked' WHERE id = 10");
($din, $dout, $derr) = ("\\set VERBOSITY verbose\nSELECT count(*) FROM dragonraft.table_digest(1);\n",
	'', '');
$digest = IPC::Run::start([ 'psql', '-XAtq', '-d', $c->node($f)->connstr('postgres') ],
	'<', \$din, '>', \$dout, '2>', \$derr, IPC::Run::timeout(120));
ok($c->wait_until("the digest on node $f to wait for the drain", sub {
	$digest->pump_nb;
	$c->poll($f, "SELECT count(*) FROM dragonraft.stat_progress_snapshot WHERE role = 'digest'")
	  eq '1' }), "the digest on node $f waits for the drain");
my $epid = $c->query($f, 'SELECT engine_pid FROM dragonraft.node_status()');
$t0 = time;
$c->query($f, "SELECT pg_terminate_backend($epid)");
$digest->finish;
$took = time - $t0;
unlike($derr, qr/ERROR/, 'the digest asks the next engine worker') or diag($derr);
like($dout, qr/^\d+$/, '... and returns') or diag($dout);
ok($took < 30, "once the next engine worker runs, not after 60 s: took $took s");
$lin .= "COMMIT;\n\\q\n";
$locker->finish;
ok($c->wait_until("node ${f}'s engine worker to run again", sub {
	my $p = $c->poll($f, "SELECT engine_pid FROM dragonraft.node_status() WHERE engine_state = 'running'");
	defined $p && $p ne '' && $p ne $epid }), "node ${f}'s engine worker runs again");
ok($c->caught_up(1), 'every member applied everything');
like($c->query($f, 'SELECT count(*) FROM dragonraft.table_digest(1)'), qr/^3$/,
	"the next digest on node $f works");

done_testing();
