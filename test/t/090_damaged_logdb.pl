# Review 28, finding 1: a follower's LogDB damaged while its server is
# stopped (a flipped byte in a journal record that later records follow,
# as a disk that corrupts data at rest leaves it).  The engine worker
# refuses to open it, naming shard, file and offset (what held), and fails
# so at every restart: the FATAL had no HINT, so the server log did not say
# that a restart cannot help nor what to do.  It now says to move the
# LogDB aside; then (checked here) the node starts, its group shows
# stopped with how to rejoin, and the other members go on.  Finding 5: the
# worker no longer fails every 5 s for ever: its retries back off, and the
# LogDB moved aside is opened at once; a damaged last record (the other
# follower's) is dropped at open with a WARNING naming it.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use PostgreSQL::Test::Utils;
use Test::More;
use File::Path ();

# (a small memtable budget: the journal switches segments and checkpoints
# as it would after hours of writes; a crash of a backend reinitializes the
# server, as it does by default)
my $c = DragonCluster->new(3, conf => "dragonraft.logdb_memtable_budget = 4\nrestart_after_crash = on\n");
$c->create_group(1, 1, 2, 3);
my $l = $c->leader(1);
ok($l, "group 1 has a leader (node $l)");
my $v = $l == 3 ? 2 : 3;    # the follower whose LogDB is damaged
my $L = $c->node($l);
my $V = $c->node($v);
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, 'CREATE TABLE t (id int PRIMARY KEY, v text)')});
$L->safe_psql('postgres', q{SELECT dragonraft.replicate_table('t', 1)});
$L->safe_psql('postgres', "INSERT INTO t VALUES ($_, repeat(md5('$_'), 20))") for 1 .. 60;
ok($c->caught_up(1), 'the members applied the rows');
my $sum = q{SELECT count(*) || ' ' || md5(string_agg(id || v, ',' ORDER BY id)) FROM t};
my $before = $c->query($v, $sum);

# The journal records of a LogDB at or after each shard's checkpoint:
# [file, offset, body length], shard after shard, in LSN order.
sub journal_records
{
	my ($logdb) = @_;
	my @records;
	for my $jd (glob "$logdb/journal-*")
	{
		my $ckpt = 0;    # (no CHECKPOINT before the first segment switch)
		if (open(my $ck, '<', "$jd/CHECKPOINT"))
		{
			($ckpt) = <$ck> =~ /lsn=(\d+)/;
			close $ck;
		}
		for my $f (sort glob "$jd/*.jnl")
		{
			my ($start) = $f =~ m{/([0-9a-f]{16})\.jnl$};
			$start = hex $start;
			open(my $fh, '<:raw', $f) or die "$f: $!";
			my $b = do { local $/; <$fh> };
			close $fh;
			# a record: magic "LDRJ", body length, LSN (its position), CRC32C, 0; body; padding to 8
			for (my $off = 0; $off + 24 <= length $b;)
			{
				my ($magic, $len, $lsn) = unpack('V V Q<', substr($b, $off, 16));
				last unless $magic == 0x4a52444c && $lsn == $start + $off;
				push @records, [ $f, $off, $len ] if $lsn >= $ckpt;
				$off = ($off + 24 + $len + 7) & ~7;
			}
		}
	}
	return @records;
}

# Flip a byte in the middle of the body of the record at file offset off.
sub flip_body
{
	my ($file, $off, $len) = @_;
	open(my $fh, '+<:raw', $file) or die "$file: $!";
	seek($fh, $off + 24 + int($len / 2), 0);
	read($fh, my $byte, 1);
	seek($fh, $off + 24 + int($len / 2), 0);
	print $fh chr(ord($byte) ^ 0x40);
	close $fh;
	note "flipped a byte of the record at $file offset $off";
	return;
}

# SIGKILL: the journal keeps records after its checkpoint.
$c->crash($v);
my $logdb = $V->data_dir . '/dragonraft/logdb';
my @records = journal_records($logdb);
cmp_ok(scalar(@records), '>=', 3, 'the journal has records after its checkpoint');
my ($file, $off, $len) = @{ $records[ int(@records / 2) ] };
flip_body($file, $off, $len);

my $log_at = -s $V->logfile;
$V->start;
ok( $c->wait_until('the engine worker to refuse the damaged LogDB', sub {
		($c->poll($v, q{SELECT engine_state = 'stopped' AND engine_error LIKE '%journal of LogDB shard % is damaged%'
		                FROM dragonraft.node_status()}) // '') eq 't' }),
	'node_status() names the damage');
my $log = '';
ok( $c->wait_until('the FATAL in the server log', sub {
		$log = slurp_file($V->logfile, $log_at);
		$log =~ /FATAL:  dragonraft could not open its LogDB.*is damaged: the record at \S+ offset $off is not valid/ }),
	'the server log names the damaged record');
like($log, qr/HINT:  The LogDB is damaged: the engine worker fails so at each restart.*move "dragonraft\/logdb" aside/,
	'the HINT says that a restart cannot help and what to do');

# The others go on without it.
$L->safe_psql('postgres', "INSERT INTO t VALUES (1000, 'while node $v is out')");
ok($c->wait_until('the other member to apply', sub {
		my $o = 6 - $l - $v;
		($c->poll($o, 'SELECT count(*) FROM t WHERE id = 1000') // '') eq '1' }), 'the group goes on');

# Review 28 F5: the postmaster started the worker every 5 s for ever, a
# FATAL and its HINT each time.  Each failure in a row now doubles the wait
# before the next worker opens the LogDB (5 s, 10 s, ... 5 min), shown in
# node_status() and in the FATAL's DETAIL.
my $wait = '';
ok( $c->wait_until('a second failure, and a longer wait', sub {
		$wait = $c->poll($v, q{SELECT extract(epoch FROM engine_retry_at - clock_timestamp())
		                       FROM dragonraft.node_status() WHERE engine_state = 'stopped'}) // '';
		$wait ne '' && $wait > 6 }),
	'after two failures the next attempt is more than 5 s away');
note "next attempt in $wait s";
$log = slurp_file($V->logfile, $log_at);
like($log, qr/DETAIL:  2 engine workers in a row found the LogDB damaged; the next one opens it at .* \(in 10 s\), or at once when it is moved aside/,
	'the DETAIL says when the next attempt is');
is(() = $log =~ /FATAL:  dragonraft could not open its LogDB/g, 2, 'two attempts so far, not one every 5 s');
# Review 31: a write there meanwhile was told the postmaster restarts the worker "after a few
# seconds"; its HINT now says when the damaged LogDB is opened again, and how to be sooner.
my (undef, undef, $werr) = $V->psql('postgres', "INSERT INTO t VALUES (1001, 'while it waits')");
like($werr, qr/HINT:  The LogDB was found damaged: the next engine worker opens it at .*or at once when "dragonraft\/logdb" is moved aside/,
	'a write while the worker waits is told when the LogDB is opened again');

# Review 31: for 5 s after a worker exits no engine worker runs (the
# postmaster's restart time): a reload then reached no one, and the next
# worker waited out the whole back-off.  The reload is sent within those
# 5 s (the failure was seen less than 4 s after it); the next worker opens
# the LogDB as it starts, 5 s after the failure, not 10 s.
$V->safe_psql('postgres', 'SELECT pg_reload_conf()');
ok( $c->wait_until('a third failure', sub {
		$log = slurp_file($V->logfile, $log_at);
		$log =~ /DETAIL:  3 engine workers in a row/ }),
	'a third attempt');
like($log, qr/opens its LogDB now \(a reload since it was found damaged ended the wait\)/,
	'a reload while no engine worker ran ends the wait of the next one');

# The back-off lived in shared memory only, which the postmaster makes anew
# when any backend crashes: the next engine worker then opened the damaged
# LogDB at once and began again at 5 s (one crash a minute would keep it
# failing every 5-20 s).  It is kept in dragonraft/logdb_damaged too, and
# the worker after the crash waits for the same attempt.
my $retry = '';
ok( $c->wait_until('the next attempt after the third failure', sub {
		$retry = $c->poll($v, q{SELECT engine_retry_at FROM dragonraft.node_status()
		                        WHERE engine_retry_at > clock_timestamp() + interval '5 s'}) // '';
		$retry ne '' }),
	'the third failure set the next attempt');
my $retry_s = $c->query($v, "SELECT extract(epoch FROM '$retry'::timestamptz - clock_timestamp())");
note "next attempt at $retry (in $retry_s s)";
# (polled: the engine worker sets engine_retry_at, then writes the file)
ok($c->wait_until('the back-off file', sub { -f $V->data_dir . '/dragonraft/logdb_damaged' }),
	'the back-off is in a file too');
my $crash_at = -s $V->logfile;
kill 'KILL', $c->query($v, 'SELECT pg_backend_pid()');    # a backend crashes
ok( $c->wait_until('the reinitialized server to wait for the same attempt', sub {
		($c->poll($v, q{SELECT engine_retry_at FROM dragonraft.node_status()}) // '') eq $retry
		  && slurp_file($V->logfile, $crash_at) =~ /reinitializing/ },
		$retry_s - 1),
	'after a crash and reinitialization the next attempt is still the one the back-off set');
unlike(slurp_file($V->logfile, $crash_at), qr/FATAL:  dragonraft could not open its LogDB/,
	'the damaged LogDB was not opened again after the crash');
$V->safe_psql('postgres', 'SELECT pg_reload_conf()');
ok( $c->wait_until('a fourth failure', sub {
		slurp_file($V->logfile, $crash_at) =~ /DETAIL:  4 engine workers in a row found the LogDB damaged; .* \(in 40 s\)/ }),
	'the count went on across the crash: the fourth failure waits 40 s');

# Review 31: a worker whose wait ended (moved aside, here replaced by a file)
# and which then failed otherwise left the damage's next attempt shown (and
# the "not running" HINT spoke of the damaged LogDB) until that time.
rename($logdb, "$logdb.damaged") or die "rename: $!";
open(my $fh, '>', $logdb) or die "$logdb: $!";
close $fh;
my $st = '';
ok( $c->wait_until('the worker to fail on the file', sub {
		$st = $c->poll($v, q{SELECT (engine_retry_at IS NULL) || ' ' || engine_error FROM dragonraft.node_status()
		                     WHERE engine_error NOT LIKE '%damaged%'}) // '';
		$st ne '' }),
	'the engine worker fails otherwise');
like($st, qr/^true /, 'no next attempt shown for a failure that is not the damage');
unlink($logdb) or die "unlink: $!";
rename("$logdb.damaged", $logdb) or die "rename: $!";

# What the HINT says: move it aside (the server running, or stop, move,
# start); the move while it runs is seen above (a file in its place).  The
# waiting worker sees it within a second (or at the next worker's start,
# after the postmaster's 5 s), not at the next attempt.  Here the damaged
# LogDB is removed and a new one takes its place in a directory with the
# same inode number: the worker compared device and inode only, and waited
# out the back-off (80 s by now); it compares the directory's ctime too
# (nanoseconds).  ext4 gives a new directory a freed inode number readily,
# but not always (rm -rf and mkdir here took the old number in two runs of
# three, and a number in another block group in the third), so the test
# removes the LogDB's contents: the directory left is a new, empty LogDB
# directory with the same inode number for sure.
ok( $c->wait_until('the fifth failure', sub {
		$retry = $c->poll($v, q{SELECT engine_retry_at FROM dragonraft.node_status()
		                        WHERE engine_retry_at > clock_timestamp() + interval '30 s'}) // '';
		$retry ne '' }),
	'the damaged LogDB put back failed again, with a long wait');
$retry_s = $c->query($v, "SELECT extract(epoch FROM '$retry'::timestamptz - clock_timestamp())");
note "next attempt in $retry_s s";
my $move_at = -s $V->logfile;
my @id = (stat $logdb)[ 0, 1 ];
# (its entries moved out first, a rename each, then removed: the worker
# looks once a second and must not find it half removed)
mkdir "$logdb.removed" or die "mkdir: $!";
my @entries = glob "$logdb/*";
rename($_, "$logdb.removed/" . (split m{/}, $_)[-1]) or die "rename $_: $!" for @entries;
File::Path::rmtree("$logdb.removed");
note "removed the damaged LogDB's " . scalar(@entries) . ' entries';
is_deeply([ (stat $logdb)[ 0, 1 ] ], \@id, 'the new LogDB directory has the device and inode number of the damaged one');
ok( $c->wait_until('the engine worker to open the new LogDB', sub {
		($c->poll($v, q{SELECT engine_state FROM dragonraft.node_status()}) // '') eq 'running' },
		$retry_s - 5),
	'the LogDB removed and made anew is picked up before the next attempt');
is_deeply([ (stat $logdb)[ 0, 1 ] ], \@id, 'in that directory');
like(slurp_file($V->logfile, $move_at), qr/opens its LogDB now: "dragonraft\/logdb" was moved or replaced since it was found damaged/,
	'the log says why');
is($c->poll($v, q{SELECT engine_retry_at IS NULL FROM dragonraft.node_status()}), 't', 'no next attempt once running');
my $status = '';
ok( $c->wait_until('group 1 to show stopped on the node', sub {
		$status = $c->poll($v, q{SELECT state || ': ' || error FROM dragonraft.status WHERE group_id = 1}) // '';
		$status =~ /^stopped: .*rejoin/i }),
	'after the move the group shows stopped, with how to rejoin');
note "node $v: $status";
is($c->poll($v, q{SELECT engine_state FROM dragonraft.node_status()}), 'running', 'the engine worker runs');
# (Its tables may lack the last entries it applied: the apply worker
# commits asynchronously, and the LogDB that would have applied them again
# after the SIGKILL is gone.  The member is stopped for good; it rejoins
# from a snapshot under a new node_id.)
cmp_ok((split / /, $c->query($v, $sum))[0], '<=', (split / /, $before)[0], 'no row came from nowhere');

# The back-off file never stops a healthy LogDB from opening: a garbled one
# (here after a backend's crash, when the engine worker reads it) is ignored
# with a LOG line, and removed.  (The worker removes the file itself once
# it has run a minute, as it forgets the count.)
my $bf = $V->data_dir . '/dragonraft/logdb_damaged';
open(my $bfh, '>', $bf) or die "$bf: $!";
print $bfh "dragonraft-backoff 1 runs=7 damaged_at=garbled\n";
close $bfh;
my $garbled_at = -s $V->logfile;
kill 'KILL', $c->query($v, 'SELECT pg_backend_pid()');
ok( $c->wait_until('the engine worker to run after the crash', sub {
		slurp_file($V->logfile, $garbled_at) =~ /reinitializing/
		  && ($c->poll($v, q{SELECT engine_state FROM dragonraft.node_status()}) // '') eq 'running' }),
	'a garbled back-off file does not stop the LogDB from opening');
like(slurp_file($V->logfile, $garbled_at), qr/LOG:  dragonraft ignores "dragonraft\/logdb_damaged": it is not a back-off line/,
	'the log says it was ignored');
ok(!-e $bf, 'and it is removed');

# Finding 5, part A: a flipped byte in the last record of the other
# follower's journal (after a SIGKILL) is dropped at open, as a torn tail
# is (a recycled segment makes the two look alike), but no longer
# silently: the engine worker's log names shard, file, offset and bytes.
my $o = 6 - $l - $v;
my $O = $c->node($o);
$c->crash($o);
my @tail = journal_records($O->data_dir . '/dragonraft/logdb');
cmp_ok(scalar(@tail), '>=', 1, "node ${o}'s journal has records after its checkpoint");
my ($tfile, $toff, $tlen) = @{ $tail[-1] };
flip_body($tfile, $toff, $tlen);
my ($tname) = $tfile =~ m{(journal-\d+/[0-9a-f]{16}\.jnl)$};
$log_at = -s $O->logfile;
$O->start;
ok( $c->wait_until('the dropped record in the log', sub {
		slurp_file($O->logfile, $log_at) =~
		  /WARNING:  dragonraft LogDB: journal of LogDB shard \d+ ends at \S*\Q$tname\E offset $toff: dropped the \d+ bytes of the record there/ }),
	'the engine worker logs the dropped last record, naming file and offset');
ok( $c->wait_until('the engine worker to run', sub {
		($c->poll($o, q{SELECT engine_state FROM dragonraft.node_status()}) // '') eq 'running' }),
	'and opens the LogDB');
# (Its group 1 then starts if the dropped entry was not applied yet, and
# catches up from the leader; here it usually was, and the member refuses
# to start, "the state machine applied N but the LogDB ends at N-1": a
# lost acknowledged entry is not hidden either.)
done_testing();
