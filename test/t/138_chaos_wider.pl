# Chaos under load, the faults that 051 does not throw: four clients
# transfer money on group 1 (nodes 1-3, spare nodes beside it) while random
# faults follow one another:
#   part_leader    the leader cut off from both followers (nftables), healed
#                  once the majority committed again and a moment later
#   part_follower  one follower cut off from the others, then healed
#   part_link      only the link between the leader and one follower cut
#   ddl_cut        the leader cut off from both followers, then an
#                  execute() of an ALTER TABLE on it: if it fails, the command
#                  is nowhere; if it succeeds, everywhere
#   kill_engine    SIGKILL of a member's engine worker alone (the postmaster
#                  restarts the node's processes: restart_after_crash on)
#   term_engine    pg_terminate_backend of a member's engine worker (the
#                  postmaster starts another 5 s later)
#   stop_node      SIGSTOP of a whole member (postmaster and children), then
#                  SIGCONT once the others committed transfers (or, if it
#                  led, elected a leader: the clients wait on it meanwhile)
#   double         one member stopped (SIGSTOP) while another's engine
#                  worker is killed: no quorum until both are back
#   snapshot       a follower killed, the others' logs compacted past it
#                  (dragonraft.snapshot), the follower started again: it
#                  comes back through a full snapshot of the tables
#   ddl            execute() of an ALTER TABLE ... ADD COLUMN, a CREATE or
#                  DROP INDEX on the leader while a member is killed
#   restart_all    every member stopped at once (immediate), then started
#   rotate         a spare node added and joined, then a member (maybe the
#                  leader) removed and stopped for good
# At the end the sum of the balances is unchanged, every transfer that got
# COMMIT is on every member, nothing that failed is anywhere, and the
# members' tables, catalogs and Raft logs are identical.
# DR_CHAOS_FAULTS (default 5) faults of the kinds DR_CHAOS_KINDS (comma
# separated, default all), DR_CHAOS_SPARES (default 1) spare nodes for
# rotate; DR_CHAOS_SEED repeats a run (the seed is printed).  The partitions
# need nft (DR_NFT, scripts/check.sh as root): without it they are left out.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use Transfers;
use PostgreSQL::Test::Utils;
use Test::More;

my $seed = $ENV{DR_CHAOS_SEED} // int(rand(1_000_000));
my $faults = $ENV{DR_CHAOS_FAULTS} // 5;
my $nspares = $ENV{DR_CHAOS_SPARES} // 1;
my @all_kinds = qw(part_leader part_follower part_link ddl_cut kill_engine term_engine
  stop_node double snapshot ddl restart_all rotate);
my @kinds = split /,/, ($ENV{DR_CHAOS_KINDS} // join(',', @all_kinds));
# (an unknown kind was thrown as rotate, the last branch of the fault's if;
# said with diag too: PostgreSQL::Test::Utils sends a die to the test's log)
my @unknown = grep { my $k = $_; !grep { $_ eq $k } @all_kinds } @kinds;
if (@unknown)
{
	my $msg = "DR_CHAOS_KINDS names unknown fault kinds (@unknown); the kinds are: @all_kinds";
	diag($msg);
	die "$msg\n";
}
my $can_cut = DragonCluster->can_cut;
if (!$can_cut)
{
	diag('no nft with CAP_NET_ADMIN (DR_NFT): no partitions');
	@kinds = grep { !/^part_|_cut$/ } @kinds;
}
@kinds = grep { $_ ne 'rotate' } @kinds unless $nspares;
plan skip_all => 'no fault kind left to throw' unless @kinds;
diag("chaos seed $seed (DR_CHAOS_SEED=$seed repeats this run), $faults faults of @kinds");
srand($seed);

my $c = DragonCluster->new(3 + $nspares, own_addresses => $can_cut, conf => q{
restart_after_crash = on
dragonraft.compaction_overhead = 20
});
my @spares = 4 .. 3 + $nspares;
$c->create_group(1, 1, 2, 3);
my $l = $c->leader(1);
ok($l, "group 1 has a writable leader (node $l)");
Transfers::setup($c, 1, $l);
my $load = Transfers->start($c, 4);
ok($load->wait_commits(20), 'the clients commit transfers');

sub pick { return DragonCluster::pick(@_); }

# A fault's random length, counted in the clients' transfers, not in time:
# it lasts until they commit between min and max more (with a deadline, as
# every wait here).  Only where a majority is left to commit them.
sub a_few
{
	my ($min, $max) = @_;
	my $n = $min + int(rand($max - $min + 1));
	return $load->wait_commits($n);
}

# Node id's engine worker runs again, another than pid.
sub engine_back
{
	my ($id, $pid) = @_;
	return $c->wait_until("node ${id}'s engine worker to run again", sub {
		my $row = $c->poll($id, 'SELECT engine_state, engine_pid FROM dragonraft.node_status()') // '';
		return $row =~ /^running\|(\d+)$/ && $1 != $pid;
	});
}

# SIGSTOP to node id's postmaster (then it forks no more), then to its
# children (a backend may have ended meanwhile); returns their pids.
sub stop_node
{
	my ($id, $what, $leads) = @_;
	my $pm = $c->node($id)->{_pid};
	ok(kill('STOP', $pm), "$what: node $id stopped with SIGSTOP$leads");
	# (its children once it has stopped: it forks no more then)
	$c->wait_until("node ${id}'s postmaster to stop", sub { DragonCluster::proc_state($pm) =~ /^[TtZ]?$/ });
	my @pids = $c->server_pids($id);
	kill('STOP', @pids);
	return @pids;
}

# Kill node id (SIGKILL to all its processes), start it again a moment later.
sub bounce
{
	my ($id, $what) = @_;
	ok($c->crash($id), "$what: node $id killed with SIGKILL");
	ok(a_few(0, 5), "$what: transfers commit while node $id is down");
	$c->node($id)->start;
}

my $ddl = 0;
my $index = 'transfers_i0';    # the last index created (or tried)
my @ddl_done;    # the commands whose execute() succeeded: [sql, its check]
my @ddl_failed;  # and those that failed (not 40003): [sql, its check, SQLSTATE]
my %thrown;
for my $k (1 .. $faults)
{
	my @can = grep { $_ ne 'rotate' || @spares } @kinds;
	@can = @kinds unless @can;
	my $kind = pick(@can);
	$kind = 'restart_all' if $kind eq 'rotate' && !@spares;
	$thrown{$kind}++;
	my $leader = $c->leader(1);
	ok($leader, "fault $k ($kind): a writable leader (node " . ($leader // '-') . ')');
	my @members = $c->group_nodes(1);
	my @followers = grep { $_ != $leader } @members;
	my $victim = pick(@members);
	my $is = sub { return $_[0] == $leader ? " (the leader)" : '' };
	if ($kind eq 'part_leader')
	{
		ok($c->cut($leader, @followers), "fault $k: leader $leader cut off from nodes @followers");
		ok(a_few(3, 15), "fault $k: the majority commits transfers");
		ok($c->heal, "fault $k: the partition heals");
	}
	elsif ($kind eq 'ddl_cut')
	{
		# execute() on a leader cut off from the others: it must not end
		# with success unless the majority has it
		$ddl++;
		my $sql = "ALTER TABLE transfers ADD COLUMN c$ddl int";
		my $done = "SELECT count(*) = 1 FROM pg_attribute WHERE attrelid = 'transfers'::regclass AND attname = 'c$ddl'";
		ok($c->cut($leader, @followers), "fault $k: leader $leader cut off from nodes @followers");
		my $x = $c->start_session($leader, '\set VERBOSITY verbose', "SELECT dragonraft.execute(1, '$sql')");
		ok($load->wait_commits(3), "fault $k: the majority commits transfers");
		eval { $x->{h}->finish; 1 } or $x->{h}->kill_kill;
		ok($c->heal, "fault $k: the partition heals");
		my ($out, $err) = (${ $x->{out} }, ${ $x->{err} });
		note("fault $k: execute($sql) on node $leader: $out $err");
		if ($err !~ /ERROR|FATAL/ && $out =~ /^\d+\n\d+/) { push @ddl_done, [ $sql, $done ]; }
		elsif ($err =~ /ERROR:\s+(?!40003)([0-9A-Z]{5}):/) { push @ddl_failed, [ $sql, $done, $1 ]; }
	}
	elsif ($kind eq 'part_follower')
	{
		$victim = pick(@followers);
		ok($c->cut($victim, grep { $_ != $victim } @members),
			"fault $k: follower $victim cut off from the others");
		ok(a_few(2, 15), "fault $k: transfers commit meanwhile");
		ok($c->heal, "fault $k: the partition heals");
	}
	elsif ($kind eq 'part_link')
	{
		$victim = pick(@followers);
		ok($c->cut($leader, $victim), "fault $k: the link between leader $leader and node $victim cut");
		ok(a_few(2, 15), "fault $k: transfers commit meanwhile");
		ok($c->heal, "fault $k: the link heals");
	}
	elsif ($kind eq 'kill_engine')
	{
		my $pid = $c->process_of($victim, qr/dragonraft engine/);
		ok($pid && kill('KILL', $pid), "fault $k: node ${victim}'s engine worker killed with SIGKILL"
			  . $is->($victim));
		ok(engine_back($victim, $pid), "fault $k: node $victim restarted after the crash");
	}
	elsif ($kind eq 'term_engine')
	{
		my $pid = $c->process_of($victim, qr/dragonraft engine/);
		ok($pid && ($c->poll($victim, "SELECT pg_terminate_backend($pid)") // "") eq "t",
			"fault $k: node ${victim}'s engine worker terminated" . $is->($victim));
		ok(engine_back($victim, $pid), "fault $k: node $victim started another engine worker");
	}
	elsif ($kind eq 'stop_node')
	{
		my @pids = stop_node($victim, "fault $k", $is->($victim));
		if ($victim == $leader)
		{
			# The clients' sessions are on the leader (25006 sends them
			# there) and wait for it while it is stopped: no commits to
			# count, and past 60 s they would count as hung.  The fault
			# lasts until the others elect one of them.
			my @others = grep { $_ != $victim } @members;
			ok($c->wait_until("a leader among nodes @others", sub {
					return grep {
						($c->poll($_, "SELECT role FROM dragonraft.status WHERE group_id = 1 AND state = 'ok'")
							  // '') eq 'leader'
					} @others;
				}), "fault $k: nodes @others elect a leader without node $victim");
		}
		else { ok(a_few(2, 15), "fault $k: transfers commit without node $victim"); }
		kill('CONT', @pids);
	}
	elsif ($kind eq 'double')
	{
		# two members at once: one stopped, the other's engine worker killed
		# (no quorum until both are back)
		my $other = pick(grep { $_ != $victim } @members);
		my @pids = stop_node($victim, "fault $k", $is->($victim));
		my $pid = $c->process_of($other, qr/dragonraft engine/);
		ok($pid && kill('KILL', $pid), "fault $k: node ${other}'s engine worker killed with SIGKILL"
			  . $is->($other));
		# (no quorum meanwhile: the one stopped goes on once the other is back)
		ok(engine_back($other, $pid), "fault $k: node $other restarted after the crash");
		kill('CONT', @pids);
	}
	elsif ($kind eq 'snapshot')
	{
		$victim = pick(@followers);
		my $before = $c->snapshot_loads($victim, 1);
		ok($c->crash($victim), "fault $k: follower $victim killed with SIGKILL");
		ok($load->wait_commits(30), "fault $k: transfers commit without it");
		if (rand() < 0.5)
		{
			# a command in the compacted log: the snapshot brings its schema
			$ddl++;
			my $sql = "ALTER TABLE transfers ADD COLUMN c$ddl int";
			my $done = "SELECT count(*) = 1 FROM pg_attribute WHERE attrelid = 'transfers'::regclass AND attname = 'c$ddl'";
			ok($c->wait_until("execute($sql)", sub {
					my ($out, $err, $state) = $c->poll_result($c->leader(1) || $leader,
						"SELECT dragonraft.execute(1, '$sql')");
					return $state eq 'ok';
				}), "fault $k: $sql while node $victim is down");
			push @ddl_done, [ $sql, $done ];
			ok($load->wait_commits(5), "fault $k: transfers commit after it");
		}
		my @up = grep { $_ != $victim } @members;
		ok($c->compact(1, @up), "fault $k: nodes @up compacted their logs past node $victim");
		$c->node($victim)->start;
		if (rand() < 0.3)
		{
			# killed again while it loads the snapshot (or about to)
			ok(a_few(0, 10), "fault $k: transfers commit while node $victim catches up");
			bounce($victim, "fault $k: while it catches up");
		}
		ok($c->wait_until("node $victim to load a snapshot", sub { $c->snapshot_loads($victim, 1) > $before }),
			"fault $k: node $victim came back through a full snapshot");
	}
	elsif ($kind eq 'ddl')
	{
		$ddl++;
		# each with a query that is true once it took effect
		my ($sql, $done) = @{ pick(
				[ "ALTER TABLE transfers ADD COLUMN c$ddl int", "SELECT count(*) = 1 FROM pg_attribute "
					  . "WHERE attrelid = 'transfers'::regclass AND attname = 'c$ddl'" ],
				[ "ALTER TABLE accounts ADD COLUMN c$ddl text DEFAULT 'x'", "SELECT count(*) = 20 FROM accounts "
					  . "WHERE c$ddl = 'x'" ],
				[ "CREATE INDEX transfers_i$ddl ON transfers (src, dst)",
					"SELECT to_regclass('transfers_i$ddl') IS NOT NULL" ],
				[ "DROP INDEX IF EXISTS $index", "SELECT to_regclass('$index') IS NULL" ]) };
		$index = "transfers_i$ddl" if $sql =~ /^CREATE INDEX/;
		# (its session connected: the execute() is under way when the crash comes)
		my $x = $c->start_session($leader, "SELECT dragonraft.execute(1, \$\$$sql\$\$)");
		bounce($victim, "fault $k: during $sql," . $is->($victim));
		eval { $x->{h}->finish; 1 } or $x->{h}->kill_kill;
		my $err = ${ $x->{err} };
		note("fault $k: execute($sql) on node $leader: ${ $x->{out} } $err");
		if ($err !~ /ERROR|FATAL/ && ${ $x->{out} } =~ /^\d+\n\d+/)
		{
			# (a dropped index is no longer there: its creation not either)
			@ddl_done = grep { $_->[0] !~ /^CREATE INDEX (\S+)/ || $sql !~ /^DROP INDEX IF EXISTS \Q$1\E$/ }
			  @ddl_done;
			push @ddl_done, [ $sql, $done ];
		}
	}
	elsif ($kind eq 'restart_all')
	{
		$c->node($_)->stop('immediate') for @members;
		pass("fault $k: nodes @members stopped at once (immediate)");
		$c->node($_)->start for @members;
	}
	else    # rotate
	{
		my $s = shift @spares;
		my ($st, $msg) = $c->sql_error($leader,
			"SELECT dragonraft.add_member(1, $s, '" . $c->raft_address($s) . "')");
		is($st, '', "fault $k: node $s added to group 1") or diag $msg;
		my $j = $c->start_join($s, 1, @members);
		eval { $j->{h}->finish; 1 } or $j->{h}->kill_kill;
		is(${ $j->{err} } =~ /ERROR/ ? ${ $j->{err} } : '', '', "fault $k: node $s joined group 1");
		$c->group_nodes(1, @members, $s);
		$load->nodes(@members, $s);
		# on whichever node leads now
		ok($c->wait_until("the removal of node $victim", sub {
				my $at = $c->leader(1) or return 0;
				my ($st2, $m2) = $c->sql_error($at, "SELECT dragonraft.remove_member(1, $victim)");
				diag("remove_member(1, $victim) on node $at: $m2") if $st2 ne '';
				return $st2 eq '' || $m2 =~ /not a member/;
			}), "fault $k: node $victim removed from group 1" . $is->($victim));
		my ($st3, $m3) = $c->sql_error($victim, "INSERT INTO transfers VALUES (-$k, 1, 2, 0)");
		isnt($st3, '', "fault $k: a write on the removed node $victim fails") and note($m3);
		my @now = grep { $_ != $victim } @members, $s;
		$c->group_nodes(1, @now);
		$load->nodes(@now);
		$c->node($victim)->stop('immediate');
	}
	ok($load->wait_commits(5), "fault $k ($kind): transfers commit again");
}
diag('faults thrown: ' . join(', ', map { "$_ $thrown{$_}" } sort keys %thrown));

my %r = $load->stop;
ok($c->caught_up(1), 'every member applied every entry');
$c->same_logs(1, 'the members hold the same Raft log');
my @members = $c->group_nodes(1);
my $catalog = $c->catalog($members[0]);
is($c->catalog($_), $catalog, "node $_ has the catalog of node $members[0]") for @members[ 1 .. $#members ];
for my $d (@ddl_done)
{
	is($c->query($_, $d->[1]), 't', "node $_ has what the execute() that succeeded did: $d->[0]") for @members;
}
for my $d (@ddl_failed)
{
	is($c->query($_, $d->[1]), 'f', "node $_ has nothing of the execute() that failed ($d->[2]): $d->[0]")
	  for @members;
}
# restart_after_crash hides a crash of the server's own (a segfault, an
# assertion): none in any node's log, only the test's SIGKILLs (9)
for my $id ($c->ids)
{
	my @bad = grep { /\bPANIC:|TRAP:|terminated by signal (?!9\b)\d+/ }
	  split /\n/, slurp_file($c->node($id)->logfile);
	is(scalar(@bad), 0, "node ${id}'s log has no crash but the test's SIGKILLs")
	  or diag(join("\n", @bad[0 .. ($#bad < 9 ? $#bad : 9)]));
}
Transfers::check($c, \%r, "after $faults faults (seed $seed)");
done_testing();
