# A command run through dragonraft.execute has one outcome on every member
# (issue 13, review 2 #17): the calling node tries it first and a command
# that fails there never enters the log; a member where a command of the log
# fails stops applying its group with the command and PostgreSQL's error in
# dragonraft.status (apply_failed), as PostgreSQL's logical apply worker
# does, and goes on by itself once the cause is fixed there, or once a DBA
# skips the command there.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;

my $c = DragonCluster->new(3);
$c->create_group(1);
my $l = $c->leader(1);
ok($l, "group 1 has a writable leader (node $l)");
my ($f1, $f2) = grep { $_ != $l } $c->ids;
my ($L, $F1, $F2) = map { $c->node($_) } ($l, $f1, $f2);

sub status
{
	my ($node) = @_;
	return $c->query($c->id_of($node), q{SELECT state || coalesce('|' || error, '') FROM dragonraft.status WHERE group_id = 1});
}

sub history
{
	my ($node) = @_;
	return $c->query($c->id_of($node), 'SELECT count(*) FROM dragonraft.ddl_history WHERE group_id = 1');
}

$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, 'CREATE TABLE public.acc (id int PRIMARY KEY, v text)')});
$L->safe_psql('postgres', q{SELECT dragonraft.replicate_table('public.acc', 1)});
$L->safe_psql('postgres', q{INSERT INTO acc VALUES (1, 'one')});
ok($c->caught_up(1), 'the table is on every member');
my $n = history($L);

# 1. A command that fails on the calling node never enters the log: a local
# table of the leader takes the name, then one of a follower that calls it.
$L->safe_psql('postgres', 'CREATE TABLE public.mine (id int)');
my ($state, $err) = $c->sql_error($l, q{SELECT dragonraft.execute(1, 'CREATE TABLE public.mine (id int, v text)')});
is($state, '42P07', 'the leader refuses a command that fails there, with its SQLSTATE');
like($err, qr/relation "mine" already exists.*nothing was proposed/s, 'and says nothing was proposed');
($state, $err) = $c->sql_error($l, q{SELECT dragonraft.execute(1, 'ALTER TABLE public.nothere ADD COLUMN x int')});
is($state, '42P01', 'a command on a missing table is refused too');
$F2->safe_psql('postgres', 'CREATE TABLE public.theirs (id int)');
($state, $err) = $c->sql_error($f2, q{SELECT dragonraft.execute(1, 'CREATE TABLE public.theirs (id int)')});
is($state, '42P07', 'a follower that calls execute() tries the command first as well');
ok($c->caught_up(1), 'the group goes on');
is(history($_), $n + 1, "nothing of them is in node ${\$_->name}'s history (only the barrier)") for ($L, $F1, $F2);
is($F1->safe_psql('postgres', q{SELECT count(*) FROM pg_class WHERE relname IN ('mine', 'theirs')}), '0',
	'and no member made their tables');
$n = history($L);

# 2. The role that proposed a command is missing on one follower: that
# follower stops applying the group and says why; once the role exists, it
# runs the command as that role and goes on.
for my $node ($L, $F2)
{
	$node->safe_psql('postgres', q{CREATE ROLE builder; GRANT dragonraft_admin TO builder;
		GRANT CREATE ON SCHEMA public TO builder});
}
$L->safe_psql('postgres', q{SET ROLE builder; SELECT dragonraft.execute(1, 'CREATE TABLE public.by_role (id int)')});
$L->safe_psql('postgres', q{INSERT INTO acc VALUES (2, 'two')});
ok($c->wait_until('node f1 stops', sub { status($F1) =~ /^apply_failed/ }), 'the follower without the role stops applying the group');
like(status($F1), qr/role "builder", which proposed the command, does not exist on this node.*CREATE TABLE public.by_role/,
	'its status names the error and the command');
is($c->contents($f1, 'acc', 'id'), '(1,one)', 'it applies nothing after the command');
ok($c->wait_until('node f2 applies', sub {
	$F2->safe_psql('postgres', q{SELECT count(*) FROM acc}) eq '2' }), 'the other follower goes on');
is($F2->safe_psql('postgres', q{SELECT relowner::regrole FROM pg_class WHERE relname = 'by_role'}),
	'builder', 'and ran the command as the role');

# execute() on the stopped follower says so instead of waiting.
($state, $err) = $c->sql_error($f1, q{SELECT dragonraft.execute(1, 'SELECT 1')});
is($state, '55000', 'execute() on the stopped member fails');
like($err, qr/this node's apply of dragonraft group 1 stopped.*does not exist on this node.*Nothing was proposed/s, 'with the reason, before it proposes anything');

# A crash of the stopped follower changes nothing: it stops there again.
$c->crash($f1);
$F1->start;
ok($c->wait_until('node f1 stops again', sub { status($F1) =~ /^apply_failed.*role "builder"/ }),
	'after a crash the follower stops at the command again');
is($c->contents($f1, 'acc', 'id'), '(1,one)', 'and still applies nothing after it');

$F1->safe_psql('postgres', q{CREATE ROLE builder; GRANT CREATE ON SCHEMA public TO builder});
ok($c->wait_until('node f1 goes on', sub { status($F1) eq 'ok' }), 'once the role exists the follower goes on');
ok($c->caught_up(1), 'and catches up');
is($F1->safe_psql('postgres', q{SELECT relowner::regrole FROM pg_class WHERE relname = 'by_role'}),
	'builder', 'it ran the command as the role');
is($c->contents($f1, 'acc', 'id'), '(1,one);(2,two)', 'and has the rows that came after it');

# 3. A local table of one follower takes the name: that follower stops until
# it is out of the way.
$F1->safe_psql('postgres', 'CREATE TABLE public.clash (id int)');
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, 'CREATE TABLE public.clash (id int, v text)')});
$L->safe_psql('postgres', q{INSERT INTO acc VALUES (3, 'three')});
ok($c->wait_until('node f1 stops', sub { status($F1) =~ /^apply_failed/ }), 'the follower with the clashing table stops');
like(status($F1), qr/relation "clash" already exists.*CREATE TABLE public.clash \(id int, v text\)/,
	'its status names the error and the command');
is($c->contents($f1, 'acc', 'id'), '(1,one);(2,two)', 'it applies nothing after the command');
$F1->safe_psql('postgres', 'ALTER TABLE public.clash RENAME TO clash_local');
ok($c->wait_until('node f1 goes on', sub { status($F1) eq 'ok' }), 'once the name is free it goes on');
ok($c->caught_up(1), 'and catches up');
is($F1->safe_psql('postgres', q{SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute
	WHERE attrelid = 'public.clash'::regclass AND attnum > 0}), 'id,v', 'with the group\'s table');
is($c->contents($f1, 'acc', 'id'), '(1,one);(2,two);(3,three)', 'and the rows');
is(history($_), $n + 4, "node ${\$_->name} recorded each command once") for ($L, $F1, $F2);

# 4. A DBA may skip, on one member, a command that failed there, as ALTER
# SUBSCRIPTION ... SKIP does: that member's schema then differs from the
# others', as dragonraft.ddl_failures shows there.  The command is longer
# than dragonraft.status keeps of an error: its text there is cut, and the
# hint that names skip_command kept whole (doc65: it ended "Or skip it h").
my $cmd2 = "CREATE TABLE public.clash2 (id int, v text CHECK (v <> '" . ('x' x 1200) . "'))";
$F1->safe_psql('postgres', 'CREATE TABLE public.clash2 (id int)');
my $idx = $L->safe_psql('postgres', "SELECT dragonraft.execute(1, \$c\$$cmd2\$c\$)");
$L->safe_psql('postgres', q{INSERT INTO acc VALUES (4, 'four')});
ok($c->wait_until('node f1 stops', sub { status($F1) =~ /^apply_failed/ }), 'the follower with the clashing table stops');
like(status($F1), qr/relation "clash2" already exists; the command: CREATE TABLE public\.clash2 \(id int, v text CHECK \(v <> 'x+\.\.\. \(Fix the cause .*SELECT dragonraft\.skip_command\(1, $idx\)\.\)$/s,
	'its status cuts the long command and keeps the hint whole');
($state, $err) = $c->sql_error($f1, 'SELECT dragonraft.skip_command(1, ' . ($idx + 1) . ')');
is($state, '55000', 'skip_command refuses an entry at which the apply did not stop');
like($err, qr/did not stop at the command of entry \d+.*It stopped after entry \d+: apply worker: the command at entry $idx failed/s,
	'and says where it stopped');
($state, $err) = $c->sql_error($f2, "SELECT dragonraft.skip_command(1, $idx)");
is($state, '55000', 'and a member where the command ran');
$F1->safe_psql('postgres', 'CREATE ROLE skipper IN ROLE dragonraft_admin');
$F1->safe_psql('postgres', "SET ROLE skipper; SELECT dragonraft.skip_command(1, $idx)");
ok($c->wait_until('node f1 goes on', sub { status($F1) eq 'ok' }), 'once a dragonraft_admin skipped it there, the follower goes on');
ok($c->caught_up(1), 'and catches up');
is($c->contents($f1, 'acc', 'id'), '(1,one);(2,two);(3,three);(4,four)', 'with the rows after the command');
is($F1->safe_psql('postgres', q{SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute
	WHERE attrelid = 'public.clash2'::regclass AND attnum > 0}), 'id', 'its own table stays');
$F1->safe_psql('postgres', 'CREATE ROLE watcher IN ROLE pg_monitor');
is($F1->safe_psql('postgres', q{SET ROLE watcher;
	SELECT failed || '|' || last_index || '|' || last_error || '|' || last_command FROM dragonraft.ddl_failures}),
	"1|$idx|relation \"clash2\" already exists|$cmd2",
	'dragonraft.ddl_failures shows the skipped command, to pg_monitor too');
is($F1->safe_psql('postgres', 'SET ROLE skipper; SELECT count(*) FROM dragonraft.skip_requests'), '0',
	'the request is gone');
is($L->safe_psql('postgres', 'SELECT count(*) FROM dragonraft.ddl_failures'), '0', 'nothing was skipped on the leader');

# 4b. The failing command came after other entries that waited for the
# follower's apply (it waited behind a lock meanwhile): those are applied,
# the follower stops right before the command, and skip_command of the
# entry its error names lets it go on.
$F1->safe_psql('postgres', 'CREATE TABLE public.clash3 (id int); ALTER SYSTEM SET dragonraft.max_apply_lock_delay = -1; SELECT pg_reload_conf()');
my $locker = $F1->background_psql('postgres', on_error_stop => 0);
$locker->query_safe('BEGIN; LOCK TABLE acc IN SHARE MODE');
my $before = $F1->safe_psql('postgres', 'SELECT applied_index FROM dragonraft.status WHERE group_id = 1');
$L->safe_psql('postgres', q{INSERT INTO acc VALUES (41, 'forty-one')});
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, 'CREATE TABLE public.before3 (id int)')});
$idx = $L->safe_psql('postgres', q{SELECT dragonraft.execute(1, 'CREATE TABLE public.clash3 (id int, v text)')});
ok($c->wait_until('the follower has the three entries', sub {
	$F1->safe_psql('postgres', "SELECT commit_index >= $idx FROM dragonraft.status WHERE group_id = 1") eq 't' }),
	'the follower has the row and both commands committed');
is($F1->safe_psql('postgres', 'SELECT applied_index FROM dragonraft.status WHERE group_id = 1'), $before,
	'(while its apply waits for the lock)');
$locker->query_safe('COMMIT');
$locker->quit;
ok($c->wait_until('node f1 stops', sub { status($F1) =~ /^apply_failed.*the command at entry $idx failed/ }),
	'the follower stops at the second command');
is($F1->safe_psql('postgres', 'SELECT applied_index FROM dragonraft.status WHERE group_id = 1'), $idx - 1,
	'right before it');
is($c->contents($f1, 'acc', 'id'), '(1,one);(2,two);(3,three);(4,four);(41,forty-one)', 'with the row before the command');
is($F1->safe_psql('postgres', q{SELECT count(*) FROM pg_class WHERE relname = 'before3'}), '1', 'and the command before it');
$F1->safe_psql('postgres', "SET ROLE skipper; SELECT dragonraft.skip_command(1, $idx)");
ok($c->wait_until('node f1 goes on', sub { status($F1) eq 'ok' }), 'skip_command of the entry the error names lets it go on');
$F1->safe_psql('postgres', 'ALTER SYSTEM RESET dragonraft.max_apply_lock_delay; SELECT pg_reload_conf()');
$L->safe_psql('postgres', q{DELETE FROM acc WHERE id = 41});
ok($c->caught_up(1), 'every member catches up');
$n = history($L);

# 5. A command proposed on a follower clashes with a local table of the
# leader: the leader stops applying the group. A writer that wrote before
# waits for its turn (nothing is lost) until the name is free there; a new
# writer is refused at its first write, before anything is proposed. (The
# leader keeps the group while dragonraft.leader_handoff_after is 0.)
$L->safe_psql('postgres', 'ALTER SYSTEM SET dragonraft.leader_handoff_after = 0; SELECT pg_reload_conf()');
my $early = $L->background_psql('postgres', on_error_stop => 0);
$early->query_safe(q{BEGIN; INSERT INTO acc VALUES (5, 'five')});
my $cancelled = $L->background_psql('postgres', on_error_stop => 0);
my $cancelled_pid = $cancelled->query_safe('SELECT pg_backend_pid()');
$cancelled->query_safe(q{BEGIN; INSERT INTO acc VALUES (7, 'seven')});
my $errors = $L->safe_psql('postgres', 'SELECT apply_errors FROM dragonraft.stat_groups WHERE group_id = 1');
$L->safe_psql('postgres', 'CREATE TABLE public.leader_only (id int)');
$F2->safe_psql('postgres', q{SELECT dragonraft.execute(1, 'CREATE TABLE public.leader_only (id int, v text)')});
ok($c->wait_until('the leader stops', sub { status($L) =~ /^apply_failed/ }), 'the leader with the clashing table stops');
like(status($L), qr/relation "leader_only" already exists/, 'its status says why');
# Once it failed again after the apply worker's pause (not a passing conflict):
ok($c->wait_until('the leader fails twice', sub {
	$L->safe_psql('postgres', 'SELECT apply_errors FROM dragonraft.stat_groups WHERE group_id = 1') >= $errors + 2 }),
	'the leader tries the entry again, and it fails again');
($state, $err) = $c->sql_error($l, q{INSERT INTO acc VALUES (6, 'six')});
is($state, '55000', 'a new writer on the leader is refused');
like($err, qr/this node's apply of dragonraft group 1 stopped after entry \d+: apply worker: .*relation "leader_only" already exists.*Nothing was proposed.*transfer_leader/s,
	'with the cause, before it proposes anything');
my ($wout, $werr) = ('', '');
$early->query_until(qr/^$/, "COMMIT;\n");
ok($c->wait_until('the early writer waits for its turn', sub {
	$L->safe_psql('postgres', "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'COMMIT%' AND wait_event_type = 'Extension' AND pid <> pg_backend_pid()") eq '1' }),
	'a writer that wrote before waits for its turn at COMMIT');
# Another one that waits there is cancelled: its outcome is unknown (40003),
# and its change set, committed in the log, is applied from there.
$cancelled->query_until(qr/^$/, "COMMIT;\n");
ok($c->wait_until('the second early writer waits', sub {
	$L->safe_psql('postgres', "SELECT wait_event_type = 'Extension' FROM pg_stat_activity WHERE pid = $cancelled_pid") eq 't' }),
	'a second one waits at COMMIT');
$L->safe_psql('postgres', "SELECT pg_cancel_backend($cancelled_pid)");
$cancelled->quit;
like($cancelled->{stderr}, qr/canceled while the transaction waited for its turn.*committed in the log/s,
	'cancelled, it ends with an unknown outcome');
# After dragonraft.leader_handoff_after failed tries (3 by default), the
# leader hands the group to a member that applies, which takes writes.
$L->safe_psql('postgres', 'ALTER SYSTEM RESET dragonraft.leader_handoff_after; SELECT pg_reload_conf()');
my $nl;
ok($c->wait_until('another member leads', sub {
	($nl) = grep { $c->node($_)->safe_psql('postgres', 'SELECT role FROM dragonraft.status WHERE group_id = 1') eq 'leader' } ($f1, $f2);
	defined $nl }), 'the leader hands the group to another member');
like(status($L), qr/^apply_failed/, 'while its own apply still fails');
ok($c->wait_until('the new leader takes a write', sub {
	($state) = $c->sql_error($nl, q{INSERT INTO acc VALUES (6, 'six') ON CONFLICT DO NOTHING});
	$state eq '' }), 'the new leader takes writes');
ok($c->wait_until('the new leader applied', sub { $c->contents($nl, 'acc', 'id') =~ /\(6,six\)/ }),
	'the group goes on without the stopped member');
$L->safe_psql('postgres', 'ALTER TABLE public.leader_only RENAME TO leader_local');
$early->quit;
is($early->{stderr}, '', 'once the name is free the writer commits');
ok($c->wait_until('the leader goes on', sub { status($L) eq 'ok' }), 'and the leader applies the group again');
ok($c->caught_up(1), 'every member catches up');
is($c->contents($_, 'acc', 'id'), '(1,one);(2,two);(3,three);(4,four);(5,five);(6,six);(7,seven)', "node $_ has the rows")
	for $c->ids;
ok($c->lead(1, $l), 'the first leader leads again');
is($L->safe_psql('postgres', q{SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute
	WHERE attrelid = 'public.leader_only'::regclass AND attnum > 0}), 'id,v', 'the leader has the group\'s table');

# 6. execute() on a member that has not applied an earlier command yet (a
# reader holds back its apply) waits for it before it tries its own: a
# command may follow another proposed elsewhere.
$F2->safe_psql('postgres', 'ALTER SYSTEM SET dragonraft.max_apply_lock_delay = -1; SELECT pg_reload_conf()');
my $held = $F2->background_psql('postgres', on_error_stop => 0);
$held->query_safe('BEGIN; SELECT count(*) FROM acc');
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, 'ALTER TABLE public.acc ADD COLUMN q int')});
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, 'CREATE TABLE public.after_q (id int)')});
($wout, $werr) = ('', '');
my $later = IPC::Run::start(['psql', '-XAt', '-d', $F2->connstr('postgres'), '-c',
		q{SELECT dragonraft.execute(1, 'ALTER TABLE public.after_q ADD COLUMN w int')}],
	'>', \$wout, '2>', \$werr);
ok($c->wait_until('the follower\'s execute() waits', sub {
	$F2->safe_psql('postgres', "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%after_q ADD COLUMN w%' AND wait_event_type = 'Extension' AND pid <> pg_backend_pid()") eq '1' }),
	'execute() on a follower behind the log waits for it');
$held->query_safe('COMMIT');
$held->quit;
$later->finish;
like($wout, qr/^\d+$/, 'then tries and proposes its command') or diag $werr;
$F2->safe_psql('postgres', 'ALTER SYSTEM RESET dragonraft.max_apply_lock_delay; SELECT pg_reload_conf()');
ok($c->caught_up(1), 'every member applies it');
is($c->node($_)->safe_psql('postgres', q{SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute
	WHERE attrelid = 'public.after_q'::regclass AND attnum > 0}), 'id,w', "node $_ has the column") for $c->ids;

done_testing();
