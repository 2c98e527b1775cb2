# The apply worker's lock waits on a leader (review 2, #11): a utility
# command no longer ends the transactions waiting for their turn with 40003;
# a session that holds a lock the apply worker needs (an idle reader of a
# table a command alters) is cancelled, then terminated, after
# dragonraft.max_apply_lock_delay, so it cannot stall the group's writes for
# good; execute()'s try of its command on the calling node waits for such
# a reader as ALTER TABLE does.  Two nodes: commands are proposed on the
# follower to reach the leader's apply worker past their try.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;

my $c = DragonCluster->new(2, conf => "dragonraft.max_apply_lock_delay = '1s'\n");
$c->create_group(1);
my $l = $c->leader(1);
ok($l, 'group 1 has a writable leader');
my ($f) = grep { $_ != $l } $c->ids;
my ($L, $F) = ($c->node($l), $c->node($f));
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1,
	'CREATE TABLE a (id bigserial PRIMARY KEY, v int); CREATE TABLE t2 (id int PRIMARY KEY)')});
$L->safe_psql('postgres', "SELECT dragonraft.replicate_table('$_', 1)") for qw(a t2);
$L->safe_psql('postgres', 'INSERT INTO t2 VALUES (1)');

sub unknown_outcomes
{
	return $L->safe_psql('postgres',
		'SELECT xact_unknown FROM dragonraft.stat_groups WHERE group_id = 1');
}

# 1. Writers of table a while commands that change other tables run: none
# of them ends with 40003, nor with 40001 (no retries: the commands change
# no table the writers wrote).
my $script = PostgreSQL::Test::Utils::tempdir() . '/insert.sql';
PostgreSQL::Test::Utils::append_to_file($script, "INSERT INTO a (v) VALUES (1);\n");
my ($bout, $berr) = ('', '');
my $bench = IPC::Run::start(['pgbench', '-n', '-c', '4', '-t', '1000', '-f',
		$script, '-d', $L->connstr('postgres')], '>', \$bout, '2>', \$berr);
sub rows { return $L->safe_psql('postgres', 'SELECT count(*) FROM a'); }
ok($c->wait_until('the first rows of pgbench', sub { rows() > 0 }), 'pgbench writes');
for my $i (1 .. 10)
{
	$L->safe_psql('postgres', "SELECT dragonraft.execute(1, 'CREATE TABLE unrelated_$i (id int)')");
	$L->safe_psql('postgres', "SELECT dragonraft.execute(1, 'ALTER TABLE public.t2 ADD COLUMN c$i int')");
}
my $rows = rows();
$bench->finish;
my $rc = $? >> 8;
ok($rows < 4000, "the commands ran while the writers wrote ($rows rows of 4000 then)");
is($rc, 0, 'pgbench succeeded') or diag $berr;
unlike($berr, qr/aborted/, 'no client aborted');
like($bout, qr/number of failed transactions: 0 /, 'no transaction failed');
is(unknown_outcomes(), '0', 'no transaction ended with 40003');

# 2. An idle reader of t2 on the leader holds the lock an ALTER TABLE t2
# needs when its apply worker comes to it: it is cancelled (ignored while
# idle), then terminated; the command runs and the group writes again.  (The
# command is proposed on the follower: execute() tries it on the calling
# node first, and there waits for such a reader as ALTER TABLE does: part 3.)
my $reader = $c->idle_reader($l, 't2');
ok($reader, 'the reader is idle in its transaction');
my $reader_pid = $reader->{pid};
my $log_offset = -s $L->logfile;
my ($dout, $derr) = ('', '');
my $ddl = IPC::Run::start(['psql', '-XAt', '-d', $F->connstr('postgres'), '-c',
		"SELECT dragonraft.execute(1, 'ALTER TABLE t2 ADD COLUMN x int')"],
	'>', \$dout, '2>', \$derr, IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
$ddl->finish;
like($dout, qr/^\d+$/, 'the command ran on the follower') or diag $derr;
ok($c->wait_until('the leader applies the command', sub {
	($c->poll($l, q{SELECT count(*) FROM pg_attribute WHERE attrelid = 't2'::regclass AND attname = 'x'}) // '') eq '1' }),
	'and on the leader');
like(slurp_file($L->logfile, $log_offset),
	qr/dragonraft terminates process $reader_pid: it holds a lock that the apply worker has waited for/,
	'the reader was terminated, and the log says why');
${ $reader->{in} } .= "SELECT 1;\n";
$reader->{h}->finish;
like(${ $reader->{err} }, qr/terminating connection/, 'the reader\'s session ended');
is($L->safe_psql('postgres', q{SELECT count(*) FROM pg_attribute WHERE attrelid = 't2'::regclass AND attname = 'x'}),
	'1', 't2 has the new column');
$L->safe_psql('postgres', 'INSERT INTO a (v) VALUES (2); INSERT INTO t2 VALUES (2, 2)');
is($L->safe_psql('postgres', 'SELECT count(*) FROM t2'), '2', 'the group writes again');

# 3. A reader that holds its lock before execute() is waited for as a plain
# ALTER TABLE would (execute() tries the command on this node first), and
# left alone; with the delay at -1 the apply worker would wait so too.
$L->safe_psql('postgres', "ALTER SYSTEM SET dragonraft.max_apply_lock_delay = -1; SELECT pg_reload_conf()");
$reader = $c->idle_reader($l, 't2');
ok($reader, 'a new reader is idle in its transaction');
($dout, $derr) = ('', '');
$ddl = IPC::Run::start(['psql', '-XAt', '-d', $L->connstr('postgres'), '-c',
		"SELECT dragonraft.execute(1, 'ALTER TABLE t2 ADD COLUMN y int')"],
	'>', \$dout, '2>', \$derr);
ok($c->wait_until('execute() waiting for the reader\'s lock', sub {
	($c->poll($l,
		"SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 't2'::regclass AND waitstart < now() - interval '3 s'") // '') eq '1' }),
	'execute() waits for the reader beyond the delay of part 2');
${ $reader->{in} } .= "SELECT 'still here';\nCOMMIT;\n";
$reader->{h}->finish;
like(${ $reader->{out} }, qr/still here/, 'the reader was left alone');
$ddl->finish;
like($dout, qr/^\d+$/, 'the command ran once the reader committed') or diag $derr;

# 4. A writer waiting for its turn holds a lock that the command before its
# entry needs (a table that is not replicated): the apply worker waits for
# it, and after deadlock_timeout the writer ends with 40003; its entry, which
# the command does not concern, is applied from the log.  (The command is
# proposed on the follower while the first writer holds its turn on the
# leader: on the leader, execute() would first wait for that writer.)  The
# first writer holds its turn 12 s: the look for it, the command and the
# second writer (two psql started) all come within that, which a loaded
# machine can take more than 5 s for; the look through the poll session.
# It holds its turn once it waits in its commit (wait_event_type Extension,
# its entry proposed): 'active' alone also sees it at its INSERT's start,
# and the command could then come before its entry in the log.  (Extension
# also while its proposal waits for the engine worker and the quorum: its
# entry committed, not applied here, says it has its turn.)
$_->safe_psql('postgres', 'CREATE TABLE side (id int)') for ($L, $F);
my ($h1out, $h1err, $h2out, $h2err) = ('', '', '', '');
my $h1 = IPC::Run::start(['psql', '-XAt', '-d', $L->connstr('postgres'), '-c',
		'SET dragonraft.testing_commit_delay = 12000', '-c', 'INSERT INTO a (v) VALUES (10)'],
	'>', \$h1out, '2>', \$h1err);
ok($c->wait_until('the first writer at its turn', sub {
	($c->poll($l, "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%VALUES (10)%' AND state = 'active' "
		  . "AND wait_event_type = 'Extension' AND pid <> pg_backend_pid()") // '') eq '1'
	  && ($c->poll($l, 'SELECT commit_index > applied_index FROM dragonraft.status WHERE group_id = 1') // '') eq 't' }),
	'a writer holds its turn');
($dout, $derr) = ('', '');
$ddl = IPC::Run::start(['psql', '-XAt', '-d', $F->connstr('postgres'), '-c',
		"SELECT dragonraft.execute(1, 'ALTER TABLE public.side ADD COLUMN y int')"],
	'>', \$dout, '2>', \$derr);
$ddl->finish;
like($dout, qr/^\d+$/, 'the command ran on the follower') or diag $derr;
my $h2 = IPC::Run::start(['psql', '-XAt', '-d', $L->connstr('postgres'), '-c',
		'\set VERBOSITY verbose', '-c',
		'BEGIN; INSERT INTO side VALUES (1); INSERT INTO a (v) VALUES (11); COMMIT'],
	'>', \$h2out, '2>', \$h2err);
$h1->finish;
$h2->finish;
is($h1err, '', 'the first writer commits');
like($h2err, qr/40003.*not applied by this backend/s, 'the second writer ends with 40003');
ok($c->caught_up(1), 'the leader applies the command and the second writer\'s entry');
is($L->safe_psql('postgres', q{SELECT count(*) FROM pg_attribute WHERE attrelid = 'side'::regclass AND attname = 'y'}),
	'1', 'the leader ran the command');
is($L->safe_psql('postgres', 'SELECT count(*) FROM a WHERE v IN (10, 11)'), '2',
	'both writers\' rows are in the table');
is($L->safe_psql('postgres', 'SELECT count(*) FROM side'), '0', 'the second writer\'s local row is not');

done_testing();
