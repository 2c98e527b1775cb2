# dragonraft.log_digest and DragonCluster's logs_agree / same_logs (review30).
# - logs_agree must not pass without comparing: a member that holds no entry
#   (a snapshot only) is left out of the comparison, not a reason to stop it
#   with "agreed" (it passed while another member's digest differed); and
#   with nothing left to compare it does not say that the logs agree.
# - A member that compacts between logs_agree's two passes is not a
#   difference (nor an error): the check starts over.
# - A digest cancelled by statement_timeout in the middle of its steps: the
#   next call in the same backend works, and so does the engine; also while
#   its request waits behind 8 other digests; pg_cancel_backend ends 4
#   digests at once.
# - Backends digesting in loops leave the engine's rounds room: a writer
#   commits beside 1, 4 and 8 of them, no election; every engine loop runs
#   one digest step at most, whatever the number of digests
#   (stat_node.digest_steps_per_loop_max).
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Time::HiRes;

# (election_rtt 30, 1.5 to 3 s: "no election meanwhile" below is about the
# leader's engine held in a drain of digest steps, not a follower's engine
# that a loaded machine left without the CPU for 0.5 s, the default; what
# bounds the commits' wait is checked by its own 30 s.)
my $c = DragonCluster->new(3, conf => "dragonraft.compaction_overhead = 0\ndragonraft.election_rtt = 30\n");
# Node id takes snapshots (compaction_overhead 0: its whole log goes) until
# it holds no entry (one may come after a snapshot's index).
sub hold_nothing
{
	my ($id) = @_;
	return $c->wait_until("node $id to hold no entry", sub {
		$c->poll($id, 'SELECT dragonraft.snapshot(1)');
		$c->poll($id, 'SELECT entries FROM dragonraft.log_digest(1)') eq '0' });
}

$c->create_group(1);
my $l = $c->leader(1);
ok($l, "node $l leads group 1");
my ($f1, $f2) = grep { $_ != $l } $c->ids;
$c->node($l)->safe_psql('postgres',
	"SELECT dragonraft.execute(1, 'CREATE TABLE t (id int PRIMARY KEY, v text)')");
$c->node($l)->safe_psql('postgres', "SELECT dragonraft.replicate_table('t', 1)");
$c->node($l)->safe_psql('postgres', "INSERT INTO t VALUES ($_, 'x')") for 1 .. 5;
ok($c->caught_up(1), 'every member applied the writes');
# (none of dragonraft's own may come after a snapshot that leaves a member
# no entry: it held one entry, and the comparison with skew had none left)
ok($c->settled(1), 'the log takes no entry of dragonraft\'s own any more');
my ($agreed, $what, $n) = $c->logs_agree(1);
ok($agreed && $n == 3, 'the three members hold the same log') or diag($what);

# Node f1 compacts its whole log: it holds no entry.  Node f2 is asked for
# one entry less than the leader: the check must tell them apart.
ok(hold_nothing($f1), "node $f1 holds no entry");
($agreed, $what, $n) = $c->logs_agree(1, skew => $f2);
ok(!$agreed, "a member that holds no entry does not stop the comparison of the others")
  or diag($what);
like($what, qr/differ/, 'the others were compared') or diag($what);

# A member that compacts between the two passes: the check starts over
# (it died on the digest's 55000, or called the logs different).
$c->node($l)->safe_psql('postgres', "INSERT INTO t VALUES ($_, 'y')") for 6 .. 10;
ok($c->caught_up(1), 'every member applied the new writes');
my $compacted = 0;
($agreed, $what, $n) = eval {
	$c->logs_agree(1,
		between => sub { $compacted++ or hold_nothing($f2) or die "node $f2 did not compact" });
};
$what //= $@;
ok($agreed && $n == 2, "a member that compacted meanwhile is left out, the others agree")
  or diag($what);
like($what, qr/left out: nodes $f2 /, "node $f2 is named as left out") or diag($what);

# Nothing left to compare: not agreed.
ok(hold_nothing($_), "node $_ holds no entry") for ($l, $f1);
($agreed, $what, $n) = $c->logs_agree(1);
ok(!$agreed && $n == 0, 'a check that compared nothing does not say the logs agree') or diag($what);

# A digest of a few steps (about 4 MB each), cancelled by statement_timeout.
$c->node($l)->safe_psql('postgres',
	"INSERT INTO t SELECT 100 + $_, (SELECT string_agg(md5('$_' || j::text), '') "
	  . "FROM generate_series(1, 40000) j)") for 1 .. 24;
ok($c->caught_up(1), 'every member applied the big rows');
# The backend's next digest works: the engine freed its slot (a request
# given up on while it waited behind other digests too).
sub cancelled_digests
{
	my ($while) = @_;
	my $entries = $c->query($l, 'SELECT entries FROM dragonraft.log_digest(1)');
	my ($out, $err) = ('', '');
	$c->node($l)->psql('postgres',
		"SET statement_timeout = '2ms';\n"
		  . ("SELECT entries FROM dragonraft.log_digest(1);\n" x 20)
		  . "RESET statement_timeout;\nSELECT 'after', entries FROM dragonraft.log_digest(1);\n",
		stdout => \$out, stderr => \$err, on_error_stop => 0);
	my $cancelled = () = $err =~ /canceling statement due to statement timeout/g;
	ok($cancelled > 0, "a digest was cancelled$while") or diag($err);
	note("$cancelled of 20 digests of $entries entries cancelled after 2 ms$while");
	like($out, qr/^after\|$entries$/m, "the next digest in that backend works$while")
	  or diag($out);
}
cancelled_digests('');
$c->node($l)->safe_psql('postgres', "INSERT INTO t VALUES (1000, 'after')");
ok($c->caught_up(1), 'the engine goes on');
# Backends that digest in loops (each asks for its next step as soon as it
# has one) must not hold the engine in one drain of its request queue: its
# rounds (heartbeats, commits) run between steps.  (Without: 4 such loops,
# 2 commits in 8 s and an election, the leader's heartbeats late.)  20
# commits beside $k such loops; how long they took.
my $key = 0;
sub commits_beside
{
	my ($k) = @_;
	my $lock = 42 + $key++;
	my $term = $c->query($l, 'SELECT term FROM dragonraft.status WHERE group_id = 1');
	my %w = (in => "SELECT pg_advisory_lock($lock);\n\\echo locked\n", out => '', err => '');
	my $wt = IPC::Run::timeout(30);
	$w{h} = IPC::Run::start([ 'psql', '-XAtq', '-d', $c->node($l)->connstr('postgres') ],
		'<', \$w{in}, '>', \$w{out}, '2>', \$w{err}, $wt);
	$w{h}->pump until $w{out} =~ /locked/;
	my @loops = map {
		IPC::Run::start([ 'psql', '-XAtq', '-d', $c->node($l)->connstr('postgres'), '-c',
			"DO \$\$ BEGIN WHILE NOT pg_try_advisory_lock_shared($lock) LOOP "
			  . "PERFORM dragonraft.log_digest(1); END LOOP; END \$\$" ], '>', \my $o, '2>', \my $e)
	} 1 .. $k;
	ok($c->wait_until("$k backends to digest", sub {
		$c->poll($l, "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'DO%log_digest%'") == $k }),
		"$k backends digest the log in loops");
	cancelled_digests(" beside $k digest loops") if $k == 8;
	my $t0 = Time::HiRes::time();
	$w{in} .= join('', map { "INSERT INTO t VALUES ($key * 1000 + $_, 'w');\n" } 1 .. 20)
	  . "SELECT pg_advisory_unlock($lock);\n\\q\n";
	$wt->start(30);
	my $done = eval { $w{h}->finish; 1 };
	my $took = Time::HiRes::time() - $t0;
	if (!$done)
	{
		# (the engine, stuck taking their steps, frees itself once they are gone)
		$c->poll($l, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
			  . "WHERE query LIKE 'DO%log_digest%' AND pid <> pg_backend_pid()");
		eval { $w{h}->kill_kill };
	}
	$_->finish for @loops;
	ok($done, sprintf('20 commits beside %d digest loops done in %.2f s (30 s at most)', $k, $took))
	  or diag($@);
	is($w{err}, '', "the writer committed beside $k digests");
	is($c->query($l, 'SELECT term FROM dragonraft.status WHERE group_id = 1'), $term,
		'and no election meanwhile');
	return $took;
}
my %took = map { $_ => commits_beside($_) } (1, 4, 8);
note(sprintf('20 commits beside %d digest loops: %.2f s', $_, $took{$_})) for (1, 4, 8);
# pg_cancel_backend ends digests at once, each in a step's wait or between
# two: 4 backends digesting without end, each cancelled.
my @errs = ('') x 4;
my @endless = map {
	IPC::Run::start([ 'psql', '-XAtq', '-d', $c->node($l)->connstr('postgres'), '-c',
		"DO \$\$ BEGIN LOOP PERFORM dragonraft.log_digest(1); END LOOP; END \$\$" ],
		'>', \my $o, '2>', \$errs[$_], IPC::Run::timeout(30))
} 0 .. 3;
ok($c->wait_until('4 endless digests', sub {
	$c->poll($l, "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'DO%LOOP PERFORM%'") == 4 }),
	'4 backends digest without end');
my $t1 = Time::HiRes::time();
$c->query($l, "SELECT pg_cancel_backend(pid) FROM pg_stat_activity "
	  . "WHERE query LIKE 'DO%LOOP PERFORM%'");
my $ended = eval { $_->finish for @endless; 1 };
ok($ended, sprintf('the 4 cancelled digests ended, in %.2f s', Time::HiRes::time() - $t1))
  or diag($@);
is(scalar(grep { /canceling statement due to user request/ } @errs), 4,
	'each by its cancel') or diag(join('', @errs));
like($c->query($l, 'SELECT entries FROM dragonraft.log_digest(1)'), qr/^\d+$/,
	'a digest after them works');
# What bounds the commits' wait: all the digests share one step an engine
# loop (without: a step for every digest request present at the loop's
# start, 8 steps between two rounds).
my ($steps, $most) = split /\|/,
  $c->query($l, 'SELECT digest_steps, digest_steps_per_loop_max FROM dragonraft.stat_node');
ok($steps > 0, "the leader counted $steps digest steps");
is($most, 1, 'one digest step an engine loop, whatever the digests asked');
$c->same_logs(1, 'the members hold the same log');

done_testing();
