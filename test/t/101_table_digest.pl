# dragonraft.table_digest (helper consistency): members compare their TABLES.
# - Three members that applied the same writes give the same applied_index
#   and the same digests, although the leader's table has a dropped column
#   (the followers made it from replicate_table's definition without it),
#   and although a follower's rows lie in another physical order.
# - A follower's table changed behind the apply's back (a superuser who
#   renamed and disabled dragonraft's capture triggers in pg_trigger:
#   session_replication_role = replica bypasses nothing, 030; not captured:
#   the others keep their rows)
#   digests differently there, the other two still agree.
# - Under concurrent writes, digests taken at the same applied index agree.
# - A digest that waits for the drain (the apply waits for a row lock) is
#   cancelled: the hold ends, the apply goes on; a stuck apply is 55000 with
#   the entry's error.
# - A row lost behind the apply stops it with 55000 (was 22000), until the
#   row is back.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;

my $c = DragonCluster->new(3);
$c->create_group(1);
my $l = $c->leader(1);
ok($l, "node $l leads group 1");
my ($f1, $f2) = grep { $_ != $l } $c->ids;

# Run sql on node id behind the apply's back: for a new session (the one that
# runs sql) its capture triggers are not there (renamed and disabled in the
# catalog: a table with them takes writes only on the leader, whatever
# session_replication_role says), then they are put back.
sub behind
{
	my ($id, $sql) = @_;
	my $cond = "WHERE tgrelid = 't'::regclass AND tgfoid = 'dragonraft.capture'::regproc";
	$c->node($id)->safe_psql('postgres',
		"UPDATE pg_trigger SET tgname = tgname || '_off', tgenabled = 'D' $cond");
	my ($out, $err) = ('', '');
	my $rc = $c->node($id)->psql('postgres', $sql, stdout => \$out, stderr => \$err,
		on_error_stop => 1);
	$c->node($id)->safe_psql('postgres',
		"UPDATE pg_trigger SET tgname = regexp_replace(tgname, '_off\$', ''), tgenabled = 'A' "
		  . $cond);
	die "behind the apply on node $id failed: $err\n" if $rc != 0;
	return $out;
}

# The leader's table has a dropped column between the others; the followers
# make it from its definition, without it.
$c->node($l)->safe_psql('postgres', q{
CREATE TABLE t (id int PRIMARY KEY, junk int, s text, n numeric, j jsonb, b bytea, f float8);
ALTER TABLE t DROP COLUMN junk;
INSERT INTO t SELECT g, CASE WHEN g % 7 = 0 THEN NULL ELSE 'row ' || g || ' é' END,
  g * 1.25, jsonb_build_object('g', g, 'a', jsonb_build_array(g, 'x')),
  CASE WHEN g % 5 = 0 THEN NULL ELSE decode(md5(g::text), 'hex') END, g / 3.0
  FROM generate_series(1, 300) g;
SELECT dragonraft.replicate_table('t', 1);
});
$c->node($l)->safe_psql('postgres',
	"UPDATE t SET s = s || '!', j = j || '{\"u\": true}' WHERE id % 3 = 0");
$c->node($l)->safe_psql('postgres', "DELETE FROM t WHERE id % 11 = 0");
$c->node($l)->safe_psql('postgres', "INSERT INTO t (id, s) VALUES (1000, NULL), (1001, '')");
# (the followers make the table when they apply replicate_table)
ok($c->caught_up(1), 'the followers applied the writes');
is($c->query($f1, "SELECT count(*) FROM pg_attribute WHERE attrelid = 't'::regclass "
		  . "AND attisdropped"), '0', "node ${f1}'s table has no dropped column");
is($c->query($l, "SELECT count(*) FROM pg_attribute WHERE attrelid = 't'::regclass "
		  . "AND attisdropped"), '1', "node ${l}'s table has one");

# Digest lines of node id: "applied_index relid rows digest", one per table.
sub digest
{
	my ($id) = @_;
	return $c->query($id, "SELECT applied_index || ' ' || relid || ' ' || rows || ' ' || digest "
		  . "FROM dragonraft.table_digest(1)");
}

# Those lines without their applied index.
sub tables { my ($d) = @_; $d =~ s/^\d+ //mg; return $d; }

# Every member's digest, once all applied the same (none moves meanwhile:
# settled, for the group commits entries of its own after it is made, the
# followers' client addresses and the addresses the leader proposes then; CI
# once saw caught_up alone give the leader's digest at 12, the followers' at 14).
sub digests_at_rest
{
	ok($c->settled(1), 'every member applied the writes');
	return map { $_ => digest($_) } $c->ids;
}

my %d = digests_at_rest();
like($d{$l}, qr/^\d+ t 275 [0-9a-f]{64}$/, "node $l: one table, its rows and digest")
  or diag($d{$l});
is($d{$f1}, $d{$l}, "node $f1 agrees with node $l (same applied index and digest)");
is($d{$f2}, $d{$l}, "node $f2 agrees with node $l");
# The digest is what README says, computed here in SQL from the columns'
# send functions: per row SHA-256 over (name, NUL, NULL flag, length, send
# form) with the columns in name order, summed modulo 2^256.
my $oracle = $c->query($l, q{
CREATE FUNCTION pg_temp.col(name text, v bytea) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
  SELECT convert_to(name, 'UTF8') || '\x00'::bytea
    || CASE WHEN v IS NULL THEN '\x00'::bytea ELSE '\x01'::bytea || int4send(octet_length(v)) || v END $$;
WITH h AS (
  SELECT sha256(pg_temp.col('b', b) || pg_temp.col('f', float8send(f)) || pg_temp.col('id', int4send(id))
      || pg_temp.col('j', jsonb_send(j)) || pg_temp.col('n', numeric_send(n))
      || pg_temp.col('s', textsend(s))) AS h FROM t),
sum AS (SELECT mod(sum((SELECT sum(get_byte(h, i)::numeric * 256::numeric ^ (31 - i))
                        FROM generate_series(0, 31) i)), 2::numeric ^ 256) AS v FROM h)
SELECT string_agg(lpad(to_hex(mod(trunc(v / 256::numeric ^ (31 - k)), 256)::int), 2, '0'), '' ORDER BY k)
  FROM sum, generate_series(0, 31) k;
});
is((split / /, $d{$l})[3], $oracle, 'the digest is the documented sum of the rows\' SHA-256');

# Another physical order on f2 (a row deleted and put back as it was, behind
# the apply's back): the same digest.
behind($f2, q{
BEGIN;
CREATE TEMP TABLE keep AS SELECT * FROM t WHERE id IN (1, 2, 3);
DELETE FROM t WHERE id IN (1, 2, 3);
INSERT INTO t SELECT * FROM keep;
COMMIT;
});
isnt($c->query($f2, "SELECT string_agg(id::text, ',') FROM (SELECT id FROM t LIMIT 3) x"),
	'1,2,3', "node ${f2}'s rows are in another physical order");
# (caught_up's execute() moved the applied index since)
is(tables(digest($f2)), tables($d{$l}), "node ${f2}'s digest does not depend on the rows' order");

# One follower's row changed behind the apply's back.
behind($f1, q{UPDATE t SET s = 'changed behind the apply' WHERE id = 43});
%d = digests_at_rest();
is($c->query($f1, "SELECT s FROM t WHERE id = 43"), 'changed behind the apply',
	"node $f1 has the change");
is($c->query($l, "SELECT s FROM t WHERE id = 43"), 'row 43 é', 'the change was not captured');
is($c->query($f2, "SELECT s FROM t WHERE id = 43"), 'row 43 é', "node $f2 did not get it");
my ($i1, $r1, $n1, $h1) = split / /, $d{$f1};
my ($il, $rl, $nl, $hl) = split / /, $d{$l};
is("$i1 $n1", "$il $nl", "node $f1: same applied index and row count");
isnt($h1, $hl, "node ${f1}'s digest differs from node ${l}'s");
is($d{$f2}, $d{$l}, "node $f2 still agrees with node $l");
# Put it back.
behind($f1, q{UPDATE t SET s = 'row 43 é' WHERE id = 43});
is(tables(digest($f1)), tables($d{$l}), "node $f1 agrees again once the row is as it was");

# Under concurrent writes: digests taken at the same applied index agree.
my $writer_text = join('', map {
	"UPDATE t SET n = n + 1, s = 'w$_' WHERE id = " . (1 + $_ % 50) . ";\n"
	  . "INSERT INTO t (id, s) VALUES (" . (5000 + $_) . ", 'new');\nSELECT pg_sleep(0.03);\n"
} 1 .. 150);
my $writer_sql = $writer_text; # (IPC::Run takes it as it writes it)
my ($wout, $werr) = ('', '');
my $w = IPC::Run::start([ 'psql', '-XAtq', '-v', 'ON_ERROR_STOP=1', '-d',
		$c->node($l)->connstr('postgres'), '-c', 'SELECT 1', '-f', '-' ],
	'<', \$writer_sql, '>', \$wout, '2>', \$werr, IPC::Run::timeout(120));
my %seen; # applied index -> {node -> digest}
my $rounds = 0;
while ($w->pumpable && $rounds < 200)
{
	for my $id ($c->ids)
	{
		my ($idx, $rest) = split / /, digest($id), 2;
		$seen{$idx}{$id} = $rest;
	}
	$rounds++;
	$w->pump_nb;
}
$w->finish;
is($?, 0, 'the writer committed its writes') or diag($werr);
my ($shared, @differ) = (0);
for my $idx (sort { $a <=> $b } keys %seen)
{
	my @ids = sort keys %{ $seen{$idx} };
	next if @ids < 2;
	$shared++;
	my %v = map { $seen{$idx}{$_} => 1 } @ids;
	push @differ, "index $idx: " . join('; ', map { "node $_ $seen{$idx}{$_}" } @ids)
	  if keys %v > 1;
}
note("$rounds rounds of digests, " . scalar(keys %seen) . " applied indexes, $shared seen on more "
	  . "than one member");
ok(keys %seen > 5, 'the digests were taken while the writes went on');
ok($shared >= 3, 'several indexes were digested on more than one member');
is(join("\n", @differ), '', 'digests taken at the same applied index agree');
%d = digests_at_rest();
is($d{$f1}, $d{$l}, "after the writes node $f1 agrees with node $l");
is($d{$f2}, $d{$l}, "after the writes node $f2 agrees with node $l");

# A digest that waits for the drain: the apply waits for a row lock on f1.
my ($lin, $lout, $lerr) = ("BEGIN;\nSELECT id FROM t WHERE id = 7 FOR UPDATE;\n\\echo locked\n", '', '');
my $locker = IPC::Run::start([ 'psql', '-XAtq', '-d', $c->node($f1)->connstr('postgres') ],
	'<', \$lin, '>', \$lout, '2>', \$lerr, IPC::Run::timeout(60));
$locker->pump until $lout =~ /locked/;
$c->node($l)->safe_psql('postgres', "UPDATE t SET s = 'locked' WHERE id = 7");
# (the UPDATE returns once a majority has it: node f1 may get it later, and
# a digest that began before would drain at once)
die "node ${f1}'s apply does not wait for the row lock"
  unless $c->wait_until("node ${f1}'s apply to wait for the row lock", sub {
	($c->poll($f1, "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'dragonraft apply' "
			  . "AND wait_event_type = 'Lock'") // '') eq '1' });
my ($state, $err) = $c->sql_error($f1,
	"SET statement_timeout = '1s';\nSELECT * FROM dragonraft.table_digest(1);");
is($state, '57014', 'a digest waiting for the drain is cancelled') or diag($err);
is($c->query($f1, "SELECT count(*) FROM dragonraft.stat_progress_snapshot WHERE role = 'digest'"),
	'0', 'its job is gone');
$lin .= "COMMIT;\n\\q\n";
$locker->finish;
ok($c->caught_up(1), 'the apply goes on once the row lock is gone');
$c->node($l)->safe_psql('postgres', "UPDATE t SET s = 'after' WHERE id = 8");
ok($c->caught_up(1), 'and so do later writes (the hold ended)');
%d = digests_at_rest();
is($d{$f1}, $d{$l}, "node $f1 agrees with node $l after the cancelled digest");

# A stuck apply: f2 has a row that the leader's next insert conflicts with.
behind($f2, "INSERT INTO t (id, s) VALUES (9000, 'local')");
$c->node($l)->safe_psql('postgres', "INSERT INTO t (id, s) VALUES (9000, 'leader')");
ok($c->wait_until("node ${f2}'s apply to fail", sub {
	$c->poll($f2, "SELECT state = 'apply_failed' FROM dragonraft.status WHERE group_id = 1") eq 't' }),
	"node ${f2}'s apply fails");
($state, $err) = $c->sql_error($f2, "SELECT * FROM dragonraft.table_digest(1);");
is($state, '55000', 'a digest on a member whose apply is stuck: 55000') or diag($err);
like($err, qr/apply of group 1 is stuck.*\n.*DETAIL:.*duplicate key/s, 'with the entry\'s error')
  or diag($err);
behind($f2, "DELETE FROM t WHERE id = 9000");
%d = digests_at_rest();
is($d{$f2}, $d{$l}, "node $f2 agrees once its apply went on");

# A row lost behind the apply: the leader's delete of it stops f2's apply
# with 55000 (its table is not as the log needs it: no data exception, 22000),
# in the server log (verbose, for the SQLSTATE; the parked entry is tried
# again until it applies); the row put back, the apply goes on.
$c->node($f2)->safe_psql('postgres', "ALTER SYSTEM SET log_error_verbosity = verbose");
$c->node($f2)->safe_psql('postgres', "SELECT pg_reload_conf()");
behind($f2, "DELETE FROM t WHERE id = 12");
$c->node($l)->safe_psql('postgres', "DELETE FROM t WHERE id = 12");
ok($c->log_has($c->node($f2),
	qr/ERROR:  55000: the row to delete in replicated table "t" is not on this node\n.*DETAIL:  This member's table differs from the log: it was changed outside dragonraft\./),
	"node ${f2}'s apply stops at the lost row with 55000");
behind($f2, "INSERT INTO t (id) VALUES (12)");
$c->node($f2)->safe_psql('postgres', "ALTER SYSTEM RESET log_error_verbosity");
$c->node($f2)->safe_psql('postgres', "SELECT pg_reload_conf()");
%d = digests_at_rest();
is($d{$f2}, $d{$l}, "node $f2 agrees once the row is back and its apply went on");

# Duplicate rows count (REPLICA IDENTITY FULL, no key): {A, A, B} on the
# others, {B, C, C} behind the apply on f1 (the same count; a XOR of the
# rows' hashes would say the same).
$c->node($l)->safe_psql('postgres', q{
CREATE TABLE dup (x int, y text);
ALTER TABLE dup REPLICA IDENTITY FULL;
INSERT INTO dup VALUES (1, 'a'), (1, 'a'), (2, 'b');
SELECT dragonraft.replicate_table('dup', 1);
});
%d = digests_at_rest();
like($d{$l}, qr/^\d+ dup 3 [0-9a-f]{64}$/m, 'two tables, the duplicates counted') or diag($d{$l});
is($d{$f1}, $d{$l}, "node $f1 agrees with node $l on both tables");
is($d{$f2}, $d{$l}, "node $f2 agrees with node $l on both tables");
$c->node($f1)->safe_psql('postgres',
	"UPDATE pg_trigger SET tgname = tgname || '_off', tgenabled = 'D' "
	  . "WHERE tgrelid = 'dup'::regclass AND tgfoid = 'dragonraft.capture'::regproc");
$c->node($f1)->safe_psql('postgres', "DELETE FROM dup WHERE x = 1; INSERT INTO dup VALUES (3, 'c'), (3, 'c')");
$c->node($f1)->safe_psql('postgres',
	"UPDATE pg_trigger SET tgname = regexp_replace(tgname, '_off\$', ''), tgenabled = 'A' "
	  . "WHERE tgrelid = 'dup'::regclass AND tgfoid = 'dragonraft.capture'::regproc");
%d = digests_at_rest();
my %dup = map { my ($n) = $d{$_} =~ /^\d+ dup (.*)$/m; $_ => $n } $c->ids;
like($dup{$f1}, qr/^3 /, "node $f1 has 3 rows in dup too");
isnt($dup{$f1}, $dup{$l}, "node ${f1}'s dup differs from node ${l}'s");
is($dup{$f2}, $dup{$l}, "node $f2 agrees with node $l on dup");
is((split /\n/, $d{$f1})[0], (split /\n/, $d{$l})[0], "node $f1 still agrees on t");

# check_consistency while a writer runs: every member records the digests
# of the tables at the marker's index; they agree (but on node f1's dup,
# changed behind the apply above).
$c->node($l)->safe_psql('postgres', "DELETE FROM t WHERE id > 5000");
($wout, $werr) = ('', '');
$writer_sql = $writer_text;
$w = IPC::Run::start([ 'psql', '-XAtq', '-v', 'ON_ERROR_STOP=1', '-d',
		$c->node($l)->connstr('postgres'), '-f', '-' ],
	'<', \$writer_sql, '>', \$wout, '2>', \$werr, IPC::Run::timeout(120));
my @marks;
my $written = 0;
for (1 .. 5)
{
	# (after more of the writer's rows each time)
	$c->wait_until('the writer to go on', sub {
		$w->pump_nb;
		return $c->poll($l, 'SELECT count(*) FROM t WHERE id > 5000') > $written });
	# (it returns once the marker is applied here: the count after it is what
	# the check saw, or more)
	push @marks, $c->query($l, 'SELECT dragonraft.check_consistency(1)');
	$written = $c->query($l, 'SELECT count(*) FROM t WHERE id > 5000');
}
$w->finish;
is($?, 0, 'the writer committed its writes') or diag($werr);
for my $m (@marks)
{
	my %rows;
	for my $id ($c->ids)
	{
		$c->wait_until("node $id to record the check at $m", sub {
			$c->poll($id, "SELECT count(*) > 0 FROM dragonraft.consistency_checks "
				  . "WHERE group_id = 1 AND log_index = $m") eq 't' });
		$rows{$id} = { map { split / /, $_, 2 } split /\n/, $c->query($id,
			"SELECT concat_ws(' ', coalesce(relid::text, '-'), rows, digest, error) "
			  . "FROM dragonraft.consistency_checks WHERE group_id = 1 AND log_index = $m") };
	}
	like($rows{$l}{t}, qr/^\d+ [0-9a-f]{64}$/, "check at $m: the leader's digest of t")
	  or diag(explain $rows{$l});
	is_deeply($rows{$f2}, $rows{$l}, "check at $m: node $f2 agrees with node $l");
	is($rows{$f1}{t}, $rows{$l}{t}, "check at $m: node $f1 agrees with node $l on t");
	isnt($rows{$f1}{dup}, $rows{$l}{dup}, "check at $m: node ${f1}'s dup differs");
}
# Each member's apply waited for its checker once per check (its LOG line).
# (the apply worker logs it once its checker took its snapshot, and the
# checker records its rows after its digest: the last check's rows could
# come before the line)
for my $id ($c->ids)
{
	my $held = sub { PostgreSQL::Test::Utils::slurp_file($c->node($id)->logfile)
		  =~ /consistency check of group 1 at entry \d+: its apply held (\d+) us/g };
	$c->wait_until("node $id to log its apply's holds", sub { (() = $held->()) >= @marks });
	my @held = $held->();
	is(scalar(@held), scalar(@marks), "node $id held its apply once per check");
	note("node $id: apply held for the checker " . join(', ', map { sprintf('%.1f ms', $_ / 1000) } @held));
}
is($c->query($l, "SELECT count(DISTINCT digest) FROM dragonraft.consistency_checks "
		  . "WHERE relid = 't'::regclass"), scalar(@marks), 'each check saw other rows of t');

# Errors: unknown group, not a superuser nor dragonraft_admin.
($state, $err) = $c->sql_error($l, "SELECT * FROM dragonraft.table_digest(99);");
is($state, '42704', 'unknown group: 42704') or diag($err);
$c->node($l)->safe_psql('postgres', "CREATE ROLE nobody LOGIN");
($state, $err) = $c->sql_error($l,
	"SET ROLE nobody;\nSELECT * FROM dragonraft.table_digest(1);");
is($state, '42501', 'an ordinary role may not digest') or diag($err);

done_testing();
