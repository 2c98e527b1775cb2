# The replicated write path on three nodes (DESIGN §4): DDL through the log
# on every node, replicate_table, every DML form replicated (ordered table
# contents equal on all nodes), the follower-write error naming the leader,
# a member whose table differs refusing it without wedging the group, a
# cross-group transaction refused, a local commit that fails after its
# entry committed (applied from the log; a later writer of the same row
# ends with 40003 or commits after it, never deadlocks), and one group's
# wait for a backend not stalling another group's entries.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $c = DragonCluster->new(3);
$c->create_group(1);
my $l = $c->leader(1);
ok($l, "group 1 has a writable leader (node $l)");
my @followers = grep { $_ != $l } $c->ids;
my ($f1, $f2) = @followers;
my $L = $c->node($l);

# 1. DDL through the log, proposed on a follower (forwarded to the leader).
$c->node($f1)->safe_psql('postgres', q{SELECT dragonraft.execute(1, $$
CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL, balance numeric DEFAULT 0);
CREATE TABLE items (id serial PRIMARY KEY, name text UNIQUE NOT NULL, qty int NOT NULL DEFAULT 1,
                    doubled int GENERATED ALWAYS AS (qty * 2) STORED);
CREATE TABLE log (at int, what text);
CREATE FUNCTION log_item() RETURNS trigger LANGUAGE plpgsql AS
  'BEGIN INSERT INTO log VALUES (NEW.id, NEW.name); RETURN NEW; END';
CREATE TRIGGER items_log AFTER INSERT ON items FOR EACH ROW EXECUTE FUNCTION log_item();
$$)});
ok($c->caught_up(1), 'every member applied the DDL');
for my $id ($c->ids)
{
	is($c->node($id)->safe_psql('postgres',
			"SELECT count(*) FROM pg_class WHERE relname IN ('accounts', 'items', 'log')"),
		'3', "node $id has the tables");
}
is($L->safe_psql('postgres',
		"SELECT count(DISTINCT index) FROM dragonraft.ddl_history"),
	$c->node($f2)->safe_psql('postgres',
		"SELECT count(DISTINCT index) FROM dragonraft.ddl_history"),
	'the schema history is the same on the leader and a follower');

# 2. replicate_table on the leader: rows written before it travel with it.
$L->safe_psql('postgres', "INSERT INTO accounts VALUES (1, 'ann', 100), (2, 'bob', 50)");
$L->safe_psql('postgres', "SELECT dragonraft.replicate_table('$_', 1)") for qw(accounts items log);
ok($c->caught_up(1), 'registrations applied everywhere');
is($c->node($f2)->safe_psql('postgres',
		"SELECT string_agg(relid::text || ':' || state, ',' ORDER BY relid::text) FROM dragonraft.tables"),
	'accounts:replicated,items:replicated,log:replicated', 'a follower replicates the three tables');

# 3. Every DML form on the leader.
$L->safe_psql('postgres', q{
BEGIN;
UPDATE accounts SET balance = balance - 10 WHERE id = 1;
UPDATE accounts SET balance = balance + 10 WHERE id = 2;
COMMIT;
INSERT INTO accounts VALUES (3, 'cy', 7), (4, 'dee', 8);
UPDATE accounts SET id = 30 WHERE id = 3;
DELETE FROM accounts WHERE id = 4;
INSERT INTO accounts VALUES (2, 'bob', 0) ON CONFLICT (id) DO UPDATE SET balance = accounts.balance + 1;
BEGIN;
INSERT INTO accounts VALUES (5, 'eve', 1);
SAVEPOINT s;
INSERT INTO accounts VALUES (6, 'rolled back', 1);
ROLLBACK TO s;
COMMIT;
BEGIN;
INSERT INTO accounts VALUES (7, 'never', 1);
ROLLBACK;
INSERT INTO items (name) VALUES ('a'), ('b'), ('c');
UPDATE items SET qty = 5 WHERE name = 'b';
COPY items (name, qty) FROM PROGRAM 'printf "d\t4\ne\t6\n"';
TRUNCATE log;
INSERT INTO log VALUES (0, 'after truncate');
});
ok($c->caught_up(1), 'every member applied the writes');
for my $t (['accounts', 'id'], ['items', 'id'], ['log', 'at, what'])
{
	my ($table, $order) = @$t;
	my $want = $c->contents($l, $table, $order);
	isnt($want, '', "$table has rows on the leader");
	is($c->contents($_, $table, $order), $want, "node $_ has the leader's $table")
	  for @followers;
}
is($c->contents($l, 'accounts', 'id'),
	'(1,ann,90);(2,bob,61);(5,eve,1);(30,cy,7)', 'the leader has what committed');
# A follower's sequence never hands out an id a committed row holds.
is($c->node($f1)->safe_psql('postgres', "SELECT last_value >= 5 FROM items_id_seq"),
	't', 'a follower\'s sequence is past every replicated id');

# 4. A write on a follower: 25006, naming the leader and its client address,
# to a writer that may not read dragonraft.member_info too (review 13: 42501).
my $port = $L->port;
$c->node($_)->safe_psql('postgres', 'CREATE ROLE writer LOGIN') for $c->ids;
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, 'GRANT SELECT, INSERT ON accounts TO writer')});
ok($c->caught_up(1), 'the grant applied everywhere');
my ($st, $err) = $c->sql_error($f1, "INSERT INTO accounts VALUES (8, 'x', 0)");
is($st, '25006', 'a follower refuses a write with 25006');
like($err, qr/The leader is node $l, client address "host=127\.0\.0\.1 port=$port"/,
	'the error names the leader\'s node id and client address');
$err = '';
$c->node($f1)->psql('postgres', "\\set VERBOSITY verbose\nINSERT INTO accounts VALUES (8, 'x', 0)",
	stderr => \$err, extra_params => [ '-U', 'writer' ]);
like($err, qr/ERROR:\s+25006:.*The leader is node $l, client address "host=127\.0\.0\.1 port=$port"/s,
	'so does it to an ordinary role');
is($c->node($f1)->safe_psql('postgres', 'SELECT node_id FROM dragonraft.leader(1)'), $l,
	'dragonraft.leader() names it too');
is($c->node($f1)->safe_psql('postgres', 'SELECT node_id || \' \' || client_address FROM dragonraft.leader(1)',
		extra_params => [ '-U', 'writer' ]),
	"$l host=127.0.0.1 port=$port", 'to an ordinary role too');

# 4b. The leadership moves between a transaction's first write and its
# COMMIT: the COMMIT is refused with 25006 naming the new leader (review 12:
# it was an internal error, SPI without a snapshot at PRE_COMMIT), to an
# ordinary role too.
my $moved = $L->background_psql('postgres', on_error_stop => 0, extra_params => [ '-U', 'writer' ]);
$moved->query_safe(q{\set VERBOSITY verbose
BEGIN; INSERT INTO accounts VALUES (9, 'moved', 0)});
$L->safe_psql('postgres', "SELECT dragonraft.transfer_leader(1, $f1)");
ok($c->wait_until("node $f1 leads", sub { ($c->poll($f1, "SELECT role = 'leader' FROM dragonraft.status WHERE group_id = 1") // '') eq 't' }), 'the leadership moved');
$moved->query('COMMIT');
$moved->quit;
like($moved->{stderr}, qr/ERROR:\s+25006:.*The leader is node $f1, client address/s,
	'a COMMIT after the leadership moved is refused with 25006 naming the new leader');
$c->node($f1)->safe_psql('postgres', "SELECT dragonraft.transfer_leader(1, $l)");
is($c->leader(1), $l, 'the first leader leads again');
is($L->safe_psql('postgres', 'SELECT count(*) FROM accounts WHERE id = 9'), '0', 'and the refused row is nowhere');

# 4c. The leadership leaves and comes back between a transaction's first
# write and its COMMIT: refused with 40001 (it may have read rows without
# the other leader's entries), not "this node is not the leader: node N is"
# (review 13 F5).
my $back = $L->background_psql('postgres', on_error_stop => 0);
$back->query_safe(q{\set VERBOSITY verbose
BEGIN; INSERT INTO accounts VALUES (9, 'back', 0)});
$L->safe_psql('postgres', "SELECT dragonraft.transfer_leader(1, $f1)");
ok($c->wait_until("node $f1 leads", sub { ($c->poll($f1, "SELECT role = 'leader' FROM dragonraft.status WHERE group_id = 1") // '') eq 't' }), 'the leadership moved away');
$c->node($f1)->safe_psql('postgres', "SELECT dragonraft.transfer_leader(1, $l)");
is($c->leader(1), $l, 'and came back');
$back->query('COMMIT');
$back->quit;
like($back->{stderr}, qr/ERROR:\s+40001: could not serialize access: the leadership of dragonraft group 1 changed since this transaction's first write.*Nothing was proposed/s,
	'its COMMIT is refused with 40001, nothing proposed');
is($L->safe_psql('postgres', 'SELECT count(*) FROM accounts WHERE id = 9'), '0', 'and the row is nowhere');

# 5. A member whose table differs refuses the registration; the group goes on.
$L->safe_psql('postgres', 'CREATE TABLE differ (k int PRIMARY KEY, v text)');
$c->node($f2)->safe_psql('postgres', 'CREATE TABLE differ (k bigint PRIMARY KEY)');
$L->safe_psql('postgres', "INSERT INTO differ VALUES (1, 'one')");
$L->safe_psql('postgres', "SELECT dragonraft.replicate_table('differ', 1)");
$L->safe_psql('postgres', "INSERT INTO differ VALUES (2, 'two'); UPDATE accounts SET balance = 0 WHERE id = 1");
ok($c->caught_up(1), 'the group applies on past the refusal');
like($c->node($f2)->safe_psql('postgres', "SELECT state || ': ' || detail FROM dragonraft.tables WHERE relid = 'differ'::regclass"),
	qr/^refused: its definition differs from the leader's/, 'the member with another table refused it, saying why');
is($c->contents($f1, 'differ', 'k'), '(1,one);(2,two)', 'a member without the table created and loaded it');
is($c->contents($f2, 'accounts', 'id'), $c->contents($l, 'accounts', 'id'),
	'the refusing member keeps applying the other tables');

# 6. A transaction writing tables of two groups is refused.
$c->create_group(2);
my $l2 = $c->leader(2);
ok($l2, 'group 2 has a leader');
$c->node($l2)->safe_psql('postgres', "SELECT dragonraft.execute(2, 'CREATE TABLE other (k int PRIMARY KEY)')");
$c->node($l2)->safe_psql('postgres', "SELECT dragonraft.replicate_table('other', 2)");
ok($c->lead(2, $l), "node $l leads group 2 too");
($st, $err) = $c->sql_error($l,
	"BEGIN; INSERT INTO accounts VALUES (40, 'x', 0); INSERT INTO other VALUES (1); COMMIT;");
is($st, '0A000', 'a transaction writing two groups is refused');

# 7. The local commit fails after the entry committed: the apply worker
# applies it from the log, on the leader as on the followers.
($st, $err) = $c->sql_error($l, "SET dragonraft.testing_fail_local_commit = on;
	UPDATE accounts SET balance = balance + 1000 WHERE id = 2");
like($err, qr/testing_fail_local_commit is set/, 'the injected failure ends the transaction');
like($err, qr/CONTEXT:  the transaction's changes are committed in the log of dragonraft group 1 \(entry \d+\) and every member applies them, this node too: do not retry it/,
	'the error says the transaction is committed in the log');
ok($c->caught_up(1), 'the entry is applied from the log');
is($c->node($_)->safe_psql('postgres', 'SELECT balance FROM accounts WHERE id = 2'), '1061',
	"node $_ has the change whose local commit failed") for $c->ids;
# That CONTEXT is the COMMIT's alone (review 49): a procedure's COMMIT of a
# replicated write pops it, and so does a COMMIT that fails; a later error,
# in the procedure or the session, says nothing of it.
$L->safe_psql('postgres', q{
CREATE PROCEDURE commit_then_raise() LANGUAGE plpgsql AS $$
BEGIN UPDATE accounts SET owner = owner WHERE id = 2; COMMIT; RAISE EXCEPTION 'raised after the commit'; END $$;
CREATE PROCEDURE commit_fails() LANGUAGE plpgsql AS $$
BEGIN UPDATE accounts SET owner = owner WHERE id = 2; COMMIT; RAISE EXCEPTION 'not reached'; END $$});
# One session; the failed COMMIT's entry is applied by the apply worker
# before the second write of its row, which would otherwise end with the
# 40001 of a transaction that may have read the row before that entry.
my $s = $L->background_psql('postgres', on_error_stop => 0);
$s->query("CALL commit_then_raise();
	SET dragonraft.testing_fail_local_commit = on;
	CALL commit_fails();
	RESET dragonraft.testing_fail_local_commit;
	SELECT 1 / 0;");
ok($c->caught_up(1), 'the entry of the COMMIT that failed is applied');
$s->query('CALL commit_then_raise()');
$err = $s->{stderr};
$s->quit;
my @errs = split /^(?=psql:)/m, $err;
is(scalar(grep { /raised after the commit/ } @errs), 2, 'both raises after a COMMIT reached the client') or diag $err;
is(scalar(grep { /raised after the commit|division by zero/ && /committed in the log of dragonraft group/ } @errs), 0,
	'no error after a COMMIT says the COMMIT\'s CONTEXT') or diag $err;
ok((grep { /testing_fail_local_commit is set/ && /committed in the log of dragonraft group 1 / } @errs),
	'the procedure\'s COMMIT that failed says it') or diag $err;
unlike($err, qr/not reached/, 'the procedure ended at its failed COMMIT');

# The cycle: a second writer of the row waits for the first one's row lock
# and gets it when the first aborts, before the apply worker applied the
# first one's entry.  Its read was stale: it proposes nothing (40001).  Had
# it proposed (a transaction already waiting for its turn), it would end
# with 40003 rather than block the apply worker, which needs the row.  If
# the apply worker took the row first, the second writer commits after it.
my $a = $L->background_psql('postgres', on_error_stop => 0);
$a->query_safe('BEGIN; UPDATE accounts SET balance = balance + 1 WHERE id = 5');
my ($bout, $berr) = ('', '');
my $b = IPC::Run::start(['psql', '-XAt', '-d', $L->connstr('postgres'), '-c',
		'\set VERBOSITY verbose', '-c', 'UPDATE accounts SET balance = balance + 100 WHERE id = 5'],
	'>', \$bout, '2>', \$berr);
ok($c->wait_until('the second writer to wait for the row lock', sub {
	($c->poll($l, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'UPDATE accounts%'") // '') eq '1' }),
	'the second writer waits for the row lock');
$a->query('SET dragonraft.testing_fail_local_commit = on; COMMIT');
like($a->{stderr}, qr/testing_fail_local_commit is set/, 'the first writer\'s local commit failed');
$a->quit;
$b->finish;
my ($outcome) = $berr =~ /ERROR:\s+([0-9A-Z]{5})/;
$outcome //= 'ok';
ok($outcome =~ /^(ok|40001|40003)$/, "the second writer: $outcome") or diag $berr;
ok($c->caught_up(1), 'the entries are applied');
my $want = $outcome eq '40001' ? '2' : '102';
is($c->node($_)->safe_psql('postgres', 'SELECT balance FROM accounts WHERE id = 5'), $want,
	"node $_ has the first change, and the second unless it proposed nothing") for $c->ids;
is($L->safe_psql('postgres', 'SELECT xact_unknown FROM dragonraft.stat_groups WHERE group_id = 1'),
	$outcome eq '40003' ? '1' : '0', 'stat_groups counts 40003 outcomes');
# Once the entry is applied, the same write goes through.
$L->safe_psql('postgres', 'UPDATE accounts SET balance = balance + 100 WHERE id = 5') if $outcome eq '40001';
ok($c->caught_up(1), 'the retry is applied');
is($c->node($_)->safe_psql('postgres', 'SELECT balance FROM accounts WHERE id = 5'), '102',
	"node $_ has both changes") for $c->ids;

# Node l's holds of dragonraft.testing_commit_delay end when code, run
# with the file testing_commit_release in its data directory, saw the held
# transactions end: the test released them once it saw what they were held
# for.  (Their delays, 60 s, are only a bound.)
sub released
{
	my ($code) = @_;
	my $file = $L->data_dir . '/testing_commit_release';
	open(my $fh, '>', $file) or die "$file: $!";
	close $fh;
	$code->();
	unlink $file or die "unlink $file: $!";
	return;
}

# A transaction waiting for its turn behind an entry whose backend then
# gives up: the apply worker applies that entry (it needs no lock the
# waiting one holds), and the waiting one commits after it, or ends with
# 40003 if it saw the takeover under way.
# (Each holds its turn until the second one waits: its psql starts and
# waits for its turn within that, which a loaded machine can take more than
# 3 s for: a psql started for the cancel below once came after a 3 s hold.  The
# first one holds it once it waits in its commit, wait_event_type Extension,
# its entry proposed: 'active' alone also saw it at its UPDATE's start, and
# the second one, started 13 ms later, proposed first, committed without a
# wait, and the look for its wait timed out after 180 s.)
my ($aout, $aerr, $cout, $cerr) = ('', '', '', '');
my $first = IPC::Run::start(['psql', '-XAt', '-d', $L->connstr('postgres'), '-c',
		'SET dragonraft.testing_commit_delay = 60000', '-c',
		'SET dragonraft.testing_fail_local_commit = on', '-c',
		"UPDATE accounts SET owner = 'first' WHERE id = 30"], '>', \$aout, '2>', \$aerr);
ok($c->wait_until('the first transaction at its turn', sub {
	($c->poll($l, "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%owner = ''first''%' AND state = 'active' "
		  . "AND wait_event_type = 'Extension'") // '') eq '1' }),
	'the first transaction holds its turn');
my $second = IPC::Run::start(['psql', '-XAt', '-d', $L->connstr('postgres'), '-c',
		'\set VERBOSITY verbose', '-c', "UPDATE accounts SET owner = 'second' WHERE id = 2"],
	'>', \$cout, '2>', \$cerr);
ok($c->wait_until('the second transaction waiting for its turn', sub {
	($c->poll($l, "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%owner = ''second''%' AND wait_event_type = 'Extension'") // '') eq '1' }),
	'the second transaction waits for its turn');
released(sub { $first->finish; $second->finish; });
like($aerr, qr/testing_fail_local_commit is set/, 'the first transaction\'s local commit failed');
ok($cerr eq '' || $cerr =~ /ERROR:\s+40003/, 'the second transaction commits or ends with 40003')
  or diag $cerr;
my $unknown = $cerr eq '' ? 0 : 1;
ok($c->caught_up(1), 'both entries are applied from the log');
is($c->node($_)->safe_psql('postgres', "SELECT string_agg(owner, ',' ORDER BY id) FROM accounts WHERE id IN (2, 30)"),
	'second,first', "node $_ has both transactions") for $c->ids;

# A cancel while waiting for the turn: the entry is committed in the log, so
# the transaction ends with 40003, the turn is handed on, and the apply
# worker applies the entry after the one before it.
my ($hout, $herr, $wout, $werr) = ('', '', '', '');
my $holder = IPC::Run::start(['psql', '-XAt', '-d', $L->connstr('postgres'), '-c',
		'SET dragonraft.testing_commit_delay = 60000', '-c',
		"UPDATE accounts SET owner = 'holder' WHERE id = 30"], '>', \$hout, '2>', \$herr);
ok($c->wait_until('a transaction holding its turn', sub {
	($c->poll($l, "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%owner = ''holder''%' AND state = 'active' "
		  . "AND wait_event_type = 'Extension'") // '') eq '1' }),
	'a transaction holds its turn');
my $waiter = IPC::Run::start(['psql', '-XAt', '-d', $L->connstr('postgres'), '-c',
		'\set VERBOSITY verbose', '-c', "UPDATE accounts SET owner = 'waiter' WHERE id = 2"],
	'>', \$wout, '2>', \$werr);
ok($c->wait_until('the second transaction waiting for its turn', sub {
	($c->poll($l, "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%owner = ''waiter''%' AND wait_event_type = 'Extension'") // '') eq '1' }),
	'another transaction waits for its turn');
# (through the poll session: no psql to start while the holder holds)
$c->query($l, "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE '%owner = ''waiter''%' AND pid <> pg_backend_pid()");
$waiter->finish;
released(sub { $holder->finish; });
like($werr, qr/ERROR:\s+40003: canceled while the transaction waited for its turn.*\nDETAIL:\s+Its change set is committed in the log at index \d+, and this node applies it from there, as every member does/s, 'the canceled transaction ends with 40003');
is($herr, '', 'the transaction before it commits');
ok($c->caught_up(1), 'the canceled transaction\'s entry is applied from the log');
is($c->node($_)->safe_psql('postgres', "SELECT string_agg(owner, ',' ORDER BY id) FROM accounts WHERE id IN (2, 30)"),
	'waiter,holder', "node $_ has both") for $c->ids;
$unknown++;

# The cycle of DESIGN §4: the apply worker must apply an entry (a utility
# command from another member) under a lock that a local transaction holds,
# and that transaction then waits for its turn behind the entry.  It does
# not wait forever: as the command changed the table after the transaction
# first wrote it, every member skips its entry and it ends with 40001
# (008_schema_change.pl); its retry commits.
my $B = $L->background_psql('postgres', on_error_stop => 0);
$B->query_safe("BEGIN; UPDATE accounts SET owner = 'held' WHERE id = 1");
$c->node($f2)->safe_psql('postgres', "SELECT dragonraft.execute(1, 'ALTER TABLE accounts ADD COLUMN note text')");
ok($c->wait_until('the apply worker to wait for the lock', sub {
	($c->poll($l, "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'dragonraft apply' AND wait_event_type = 'Lock'") // '') eq '1' }),
	'the leader\'s apply worker waits for the local transaction\'s lock');
$B->query('COMMIT');
like($B->{stderr}, qr/could not serialize access: a command run through dragonraft.execute changed a table of group 1/, 'the local transaction ends with 40001');
$B->quit;
ok($c->caught_up(1), 'the command is applied, the transaction\'s entry skipped');
is($c->node($_)->safe_psql('postgres', "SELECT owner = 'held' FROM accounts WHERE id = 1"),
	'f', "node $_ does not have the transaction") for $c->ids;
$L->safe_psql('postgres', "UPDATE accounts SET owner = 'held' WHERE id = 1");
ok($c->caught_up(1), 'its retry is applied');
is($c->node($_)->safe_psql('postgres', "SELECT owner || ':' || coalesce(note, '-') FROM accounts WHERE id = 1"),
	'held:-', "node $_ has the new column and the retried transaction") for $c->ids;
is($L->safe_psql('postgres', 'SELECT xact_unknown FROM dragonraft.stat_groups WHERE group_id = 1'),
	$unknown, 'stat_groups counts only the 40003 outcomes');

# 8. A backend that holds its entry does not stall another group's entries
# on the same node: group 2 is led elsewhere, and its writes reach this
# node while group 1's backend waits before its local commit.
ok($c->lead(2, $f1), 'group 2 is led by another node');
my ($sout, $serr) = ('', '');
# (Group 1's backend holds its turn until group 2's write, a psql started on
# node f1, reached this node.  What is asked is seen in one poll, group 2's
# row here while group 1's is not committed, not a time that a loaded
# machine stretches: 'within 8 s' of a 10 s hold, then a psql to start for
# the look at group 1's row, left little room.)
my $slow = IPC::Run::start(['psql', '-XAt', '-d', $L->connstr('postgres'), '-c',
		'SET dragonraft.testing_commit_delay = 60000', '-c',
		"UPDATE accounts SET owner = 'slow' WHERE id = 1"], '>', \$sout, '2>', \$serr);
ok($c->wait_until('group 1\'s backend to hold its entry', sub {
	($c->poll($l, "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'UPDATE accounts SET owner%' "
		  . "AND state = 'active' AND wait_event_type = 'Extension'") // '') eq '1' }),
	'group 1\'s backend holds its entry (waits in its commit)');
my $t0 = time;
$c->node($f1)->safe_psql('postgres', 'INSERT INTO other VALUES (42)');
my $seen = '';
ok($c->wait_until('group 2\'s write on the node that holds group 1', sub {
	$seen = $c->poll($l, "SELECT (SELECT count(*) FROM other WHERE k = 42) || ' ' "
		  . "|| (SELECT owner FROM accounts WHERE id = 1)") // '';
	$seen =~ /^1 / }),
	'group 2\'s entry is applied there');
is($seen, '1 held', sprintf('meanwhile: group 1\'s backend had not committed its row yet '
	  . '(%.1f s after the write began)', time - $t0));
released(sub { $slow->finish; });
ok($c->caught_up(1), 'group 1 goes on after the slow commit');
is($c->node($_)->safe_psql('postgres', 'SELECT owner FROM accounts WHERE id = 1'), 'slow',
	"node $_ has the slow commit") for $c->ids;

# 9. A table owner's code that the apply runs (triggers ENABLE ALWAYS, CHECK
# constraints, domain checks, index expressions) runs as the owner on the
# members, not as the apply worker's bootstrap superuser (review 13 F6,
# review 14 R1: it made its owner a superuser there).  Each node's own table
# seen records who ran the triggers; owned_guard fails when a background
# worker runs it as a superuser.
$c->node($_)->safe_psql('postgres', q{CREATE ROLE tabowner;
	CREATE TABLE seen (who text, su bool); ALTER TABLE seen OWNER TO tabowner}) for $c->ids;
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, $$
CREATE TABLE owned (id int PRIMARY KEY);
CREATE FUNCTION owned_seen() RETURNS trigger LANGUAGE plpgsql AS
  'BEGIN
     BEGIN EXECUTE ''ALTER ROLE tabowner SUPERUSER''; EXCEPTION WHEN others THEN NULL; END;
     INSERT INTO seen VALUES (current_user, (SELECT rolsuper FROM pg_roles WHERE rolname = ''tabowner''));
     RETURN NULL;
   END';
CREATE FUNCTION owned_guard(int) RETURNS int IMMUTABLE LANGUAGE plpgsql AS
  'BEGIN
     IF current_setting(''application_name'') = '''' AND
        (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
       RAISE EXCEPTION ''owned_guard ran as superuser %'', current_user;
     END IF;
     RETURN $1;
   END';
CREATE DOMAIN owned_d AS int CHECK (owned_guard(VALUE) IS NOT NULL);
CREATE TABLE guarded (id int PRIMARY KEY CHECK (owned_guard(id) > 0), v owned_d);
CREATE INDEX ON guarded (owned_guard(id));
ALTER TABLE guarded OWNER TO tabowner;
ALTER FUNCTION owned_guard(int) OWNER TO tabowner;
CREATE TRIGGER owned_seen AFTER INSERT OR TRUNCATE ON owned FOR EACH STATEMENT EXECUTE FUNCTION owned_seen();
CREATE TRIGGER owned_seen_row AFTER INSERT ON owned FOR EACH ROW EXECUTE FUNCTION owned_seen();
ALTER TABLE owned ENABLE ALWAYS TRIGGER owned_seen;
ALTER TABLE owned ENABLE ALWAYS TRIGGER owned_seen_row;
ALTER TABLE owned OWNER TO tabowner;
ALTER FUNCTION owned_seen() OWNER TO tabowner$$)});
$L->safe_psql('postgres', "SELECT dragonraft.replicate_table('$_', 1)") for qw(owned guarded);
$L->safe_psql('postgres', 'INSERT INTO owned VALUES (1); TRUNCATE owned; INSERT INTO guarded VALUES (1, 1)');
ok($c->caught_up(1), 'the members apply the inserts and the truncate (a CHECK, a domain\'s and an index expression as the owner of a table without triggers: review 14 R1)');
is($c->contents($_, 'guarded', 'id'), '(1,1)', "node $_ has guarded's row") for $c->ids;
for my $id (@followers)
{
	is($c->node($id)->safe_psql('postgres', q{SELECT string_agg(DISTINCT who || ' ' || su, ',') FROM seen}),
		'tabowner false', "node $id ran the owner's triggers as the owner, who stays no superuser");
	ok($c->node($id)->safe_psql('postgres', 'SELECT count(*) FROM seen') >= 2,
		"node $id ran them (row and statement)");
}

done_testing();
