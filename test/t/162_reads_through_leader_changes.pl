# Linearizable reads ride through leadership changes (reads97): a client
# on a follower reads in a loop, dragonraft.read_consistency = 'linearizable'
# and read_barrier(), while the leadership of its group moves back and forth
# between the two other nodes and the follower among those is stopped and
# started.  No read fails (before, one in flight when the reader's node saw
# the leader change failed with "the group has no leader at the moment"),
# and each sees the latest write whose COMMIT returned before it began.
#
# The writer (this script) writes k on the leader, and once its COMMIT
# returned writes k into a local table on the reader's node (seen, not
# replicated): each read of the reader reads seen first, in a statement of
# its own, and must then see a value of at least that k.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use IPC::Run;
use Time::HiRes;
use PostgreSQL::Test::Utils;
use Test::More;

my $transfers = 8;
my $c = DragonCluster->new(3);
$c->create_group(1, 1, 2, 3);
my $r = 3;    # the reader's node: a follower throughout
ok($c->lead(1, 1), 'node 1 leads group 1');
my $l = 1;
$c->query($l, q{SELECT dragonraft.execute(1, 'CREATE TABLE t (id int PRIMARY KEY, v bigint)')});
$c->query($l, q{INSERT INTO t VALUES (1, 0); SELECT dragonraft.replicate_table('t', 1)});
ok($c->caught_up(1), 'nodes 1-3 replicate t');
$c->query($r, 'CREATE TABLE seen (k bigint); INSERT INTO seen VALUES (0)');

# The reader: a psql on node r, its statements from a file, its output to
# another; it stops at its first error.
my $dir = PostgreSQL::Test::Utils::tempdir();
open(my $in, '>', "$dir/reads.sql") or die "$dir/reads.sql: $!";
print $in "\\set ON_ERROR_STOP on\nSET dragonraft.read_consistency = 'linearizable';\n";
for my $i (1 .. 200000)
{
	print $in "SELECT 'seen', k FROM seen;\n";
	print $in $i % 4
	  ? "SELECT 'read', v FROM t WHERE id = 1;\n"
	  : "SELECT 'barrier', dragonraft.read_barrier(1) > 0; SELECT 'read', v FROM t WHERE id = 1;\n";
}
close $in;
my $reader = IPC::Run::start(['psql', '-XAtq', '-F', ' ', '-d', $c->node($r)->connstr('postgres'),
		'-f', "$dir/reads.sql"],
	'>', "$dir/reads.out", '2>', "$dir/reads.err");

# Did the reader stop at an error?
sub reader_failed { return -s "$dir/reads.err"; }

# The number of reads the reader made so far.
sub reads_made
{
	open(my $fh, '<', "$dir/reads.out") or return 0;
	my $n = grep { /^read / } <$fh>;
	return $n;
}

# Write k on the leader (asked again, of the leader that the group has
# then, until a COMMIT returns: a write in flight at a change may fail);
# then the reader's node learns that k is committed.
my $k = 0;
sub write_next
{
	$k++;
	ok($c->wait_until("write $k to commit", sub {
			my (undef, undef, $state) = $c->poll_result($l, "UPDATE t SET v = greatest(v, $k) WHERE id = 1");
			return 1 if $state eq 'ok';
			$l = $c->leader(1) // $l;
			return 0;
		}), "write $k committed") or return;
	$c->query($r, "UPDATE seen SET k = $k");
}

ok($c->wait_until('the reader to read', sub { reads_made() > 10 }), 'the reader reads');
for my $n (1 .. $transfers)
{
	my $to = $l == 1 ? 2 : 1;
	my $before = reads_made();
	write_next() for 1 .. 3;
	ok($c->lead(1, $to), "transfer $n: node $to leads group 1");
	$l = $to;
	write_next() for 1 .. 3;
	# the other one of nodes 1 and 2, a follower now, is stopped and started
	if ($n % 3 == 0)
	{
		my $o = 3 - $to;
		$c->node($o)->stop('fast');
		write_next() for 1 .. 3;
		$c->node($o)->start;
		ok($c->caught_up(1), "transfer $n: node $o is back and caught up");
	}
	ok($c->wait_until("the reader to read on ($n)", sub { reads_made() > $before + 5 || reader_failed() }),
		"transfer $n: the reader read on");
	last if reader_failed();
}
write_next();
my $last = reads_made();
ok($c->wait_until('the reader to read the last write', sub { reads_made() > $last + 2 || reader_failed() }),
	'the reader read after the last write');
$reader->kill_kill;
is(slurp_file("$dir/reads.err"), '', 'no read failed');

# Each read saw at least the k that seen held before it began (the last
# line may be cut short by the kill).
my ($floor, $reads, $bad, $barriers, $max) = (undef, 0, 0, 0, 0);
for my $line (split /\n/, slurp_file("$dir/reads.out"))
{
	if ($line =~ /^seen (\d+)$/)
	{
		$floor = $1;
	}
	elsif ($line =~ /^barrier t$/)
	{
		$barriers++;
	}
	elsif ($line =~ /^read (\d+)$/ && defined $floor)
	{
		$reads++;
		$max = $1 if $1 > $max;
		if ($1 < $floor)
		{
			diag "read $reads saw $1, after write $floor committed";
			$bad++;
		}
		undef $floor;
	}
}
ok($reads > 10 * $transfers, "the reader made $reads reads ($barriers read_barrier() calls)");
is($bad, 0, 'every read saw every write committed before it began');
is($max, $k, "the reads saw the last write ($k)");

# The wait is bounded: with the engine workers of nodes 1 and 2 stopped
# (SIGSTOP), node 3 knows no leader after its election timeout; a read there
# ends at its statement_timeout (300 ms) at once, and one without fails at
# the request timeout (4 election timeouts: 2 s), saying so.
my @engines = map { $c->process_of($_, qr/dragonraft engine/) } 1, 2;
kill 'STOP', @engines;
my $lin = "SET dragonraft.read_consistency = 'linearizable';";
my $t0 = Time::HiRes::time();
my ($st, $msg) = $c->sql_error($r, "$lin SET statement_timeout = '300ms'; SELECT v FROM t WHERE id = 1");
my $cancelled = Time::HiRes::time() - $t0;
is($st, '57014', 'a read waiting for a leader ends at its statement_timeout') or diag $msg;
$t0 = Time::HiRes::time();
($st, $msg) = $c->sql_error($r, "$lin SELECT v FROM t WHERE id = 1");
my $bound = Time::HiRes::time() - $t0;
is($st, '55000', 'a read that no leader confirms fails') or diag $msg;
like($msg, qr/the group has no leader at the moment.*\n.*DETAIL:  No leader confirmed the read index for 2000 ms \(4 election timeouts\), and this member knows none\./,
	'saying that no leader confirmed it for 4 election timeouts');
# (each time also counts a psql's start)
ok($bound >= 1.9, "at the request timeout ($bound s)");
ok($cancelled + 1 < $bound, "the statement_timeout ended its wait at once ($cancelled s)");
kill 'CONT', @engines;
ok($c->wait_until('a read on node 3 to work again', sub {
			my (undef, $e) = $c->sql_error($r, "$lin SELECT v FROM t WHERE id = 1");
			return $e eq '';
		}), 'reads work again once the leader is back');

done_testing();
