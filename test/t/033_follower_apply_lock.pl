# On a follower nothing writes, so no backend looks at the apply worker's
# lock waits: the engine worker does (review 2, #11 follow-up).  An idle
# reader on a follower that holds a lock a command needs is cancelled, then
# terminated, after dragonraft.max_apply_lock_delay, and the follower catches
# up instead of falling behind for as long as the reader stays.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $c = DragonCluster->new(3, conf => "dragonraft.max_apply_lock_delay = '1s'\n");
$c->create_group(1);
my $l = $c->leader(1);
ok($l, 'group 1 has a writable leader');
my $L = $c->node($l);
my ($f) = grep { $_ != $l } $c->ids;
my $F = $c->node($f);
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, 'CREATE TABLE t (id int PRIMARY KEY)')});
$L->safe_psql('postgres', q{SELECT dragonraft.replicate_table('t', 1)});
$L->safe_psql('postgres', 'INSERT INTO t VALUES (1)');
ok($c->caught_up(1), 'every member has the row');

# A reader on the follower, idle in its transaction, holds t's lock.
my $reader = $c->idle_reader($f, 't');
ok($reader, 'the reader is idle in its transaction');
my $reader_pid = $reader->{pid};
my $log_offset = -s $F->logfile;

# The command runs on the leader at once; the follower's apply waits for the reader.
my $index = $L->safe_psql('postgres', q{SELECT dragonraft.execute(1, 'ALTER TABLE t ADD COLUMN x int')});
like($index, qr/^\d+$/, 'the command ran on the leader');
ok($c->wait_until("the follower applied entry $index", sub {
	($c->poll($f, "SELECT applied_index >= $index FROM dragonraft.status WHERE group_id = 1") // '') eq 't' }),
	'the follower applied the command');
like(slurp_file($F->logfile, $log_offset),
	qr/dragonraft terminates process $reader_pid: it holds a lock that the apply worker has waited for/,
	'the reader was terminated, and the follower\'s log says why');
${ $reader->{in} } .= "SELECT 1;\n";
$reader->{h}->finish;
like(${ $reader->{err} }, qr/terminating connection/, 'the reader\'s session ended');
is($F->safe_psql('postgres', q{SELECT count(*) FROM pg_attribute WHERE attrelid = 't'::regclass AND attname = 'x'}),
	'1', 'the follower\'s t has the new column');
$L->safe_psql('postgres', 'INSERT INTO t VALUES (2, 2)');
ok($c->caught_up(1), 'the follower follows the writes again');
is($F->safe_psql('postgres', 'SELECT count(*) FROM t'), '2', 'the follower has both rows');

done_testing();
