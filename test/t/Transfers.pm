# Transfers - a bank-transfer load for failover tests of dragonraft.
#
# Table accounts (20 accounts of 1000) and transfers (one row per transfer,
# its id chosen by the client) in a replicated group.  Each client is a
# forked process that runs transfers one after another (BEGIN; two UPDATEs;
# INSERT INTO transfers; COMMIT, one query string) in a psql session kept
# open while they commit, against the
# node it believes leads (following the leader named by a 25006 error, or
# trying the next node when one does not answer), or always against one
# node (pin).  The nodes tried are the group's, or those last given to
# nodes() (members changed: a removed node stopped).  It records each transfer's outcome in its own file:
#   committed  COMMIT returned success
#   unknown    40003, or the connection was lost after the transaction was
#              sent: it may or may not have committed
#   failed S   any other error (SQLSTATE S): it did not commit
#   hung       no answer within 60 s (a defect)
# and how long the transfer took (from its start, psql's if it started one,
# to its end).
#
#   Transfers::setup($c, $group, $leader);
#   my $load = Transfers->start($c, $clients, pin => $id,
#                               statement_timeout => '10s');  # the clients' own
#   my ($secs, $id) = $load->longest;    # the slowest transfer so far
#   $load->wait_commits($n [, $since]);  # n more COMMITs (after time $since)
#   $load->nodes(@ids);                  # the clients try these nodes only
#   my %outcome = $load->stop;           # id => outcome
#   Transfers::check($c, \%outcome, $label);
package Transfers;

use strict;
use warnings;
use IPC::Run;
use POSIX ();
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $ACCOUNTS = 20;
my $BALANCE = 1000;

my $group;    # the group that setup made the tables in: check's nodes

sub setup
{
	my ($c, $g, $l) = @_;
	$group = $g;
	my $L = $c->node($l);
	$L->safe_psql('postgres', qq{SELECT dragonraft.execute($g, \$\$
CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL);
CREATE TABLE transfers (id bigint PRIMARY KEY, src int NOT NULL, dst int NOT NULL, amount int NOT NULL);
\$\$)});
	$L->safe_psql('postgres', "SELECT dragonraft.replicate_table('$_', $g)") for qw(accounts transfers);
	$L->safe_psql('postgres',
		"INSERT INTO accounts SELECT i, $BALANCE FROM generate_series(1, $ACCOUNTS) i");
	return;
}

sub start
{
	my ($class, $c, $n, %opts) = @_;
	my $self = bless { c => $c, dir => PostgreSQL::Test::Utils::tempdir(), pids => [] }, $class;
	$self->{base} = $self->{started} = time;
	for my $k (1 .. $n)
	{
		my $pid = fork;
		die "fork: $!" unless defined $pid;
		if ($pid == 0)
		{
			# Never the END blocks of the parent's modules (they stop the servers).
			$ENV{PGOPTIONS} = "-c statement_timeout=$opts{statement_timeout}" if $opts{statement_timeout};
			eval { client($c, $self->{dir}, $k, $opts{pin}); 1 } or print STDERR "client $k: $@";
			POSIX::_exit(0);
		}
		push @{ $self->{pids} }, $pid;
	}
	return $self;
}

# One client: transfers until the stop file appears or the test exits.
# Its psql session stays open from one committed transfer to the next (a
# psql and a backend started for each transfer cost more CPU than the
# transfer: on 2 cores, CPU the servers under test go without); any other
# outcome closes it, and the next transfer starts another.
sub client
{
	my ($c, $dir, $k, $pin) = @_;
	srand($$ ^ int(time * 1000));
	open(my $log, '>>', "$dir/client$k") or die;
	$log->autoflush(1);
	my @nodes = $c->group_nodes($group);
	my $target = $pin // $nodes[ $k % @nodes ];
	my $seq = 0;
	$ENV{PGCONNECT_TIMEOUT} = 5;
	my $parent = getppid;
	my $s;    # the open session: {h, in, out, err, node}
	until (-e "$dir/stop" || getppid != $parent)    # the test ended: stop too
	{
		if (!defined $pin && open(my $fh, '<', "$dir/nodes"))
		{
			@nodes = split ' ', <$fh> // '';
			close $fh;
			$target = $nodes[0] unless grep { $_ == $target } @nodes;
		}
		my $id = ($$ % 100_000 + 1) * 1_000_000 + ++$seq;
		my $a = 1 + int(rand $ACCOUNTS);
		my $b = 1 + int(rand($ACCOUNTS - 1));
		$b++ if $b >= $a;
		my $amount = 1 + int(rand 50);
		my $t0 = time;
		# (one query string, as psql -c sends it: the first error ends it)
		my $sql = "BEGIN\\; UPDATE accounts SET balance = balance - $amount WHERE id = $a\\; "
		  . "UPDATE accounts SET balance = balance + $amount WHERE id = $b\\; "
		  . "INSERT INTO transfers VALUES ($id, $a, $b, $amount)\\; COMMIT;";
		$s = close_session($s) if $s && $s->{node} != $target;
		$s //= open_session($c, $target);
		my $mark = "transfer $id done";
		${ $s->{in} } .= "$sql\n\\echo '$mark'\n\\warn '$mark'\n";
		$s->{timer}->start(60);
		my $done = eval {
			$s->{h}->pump_nb;
			until (${ $s->{out} } =~ /^\Q$mark\E\n/m && ${ $s->{err} } =~ /^\Q$mark\E\n/m)
			{
				return 0 unless $s->{h}->pumpable;    # psql exited: no connection
				$s->{h}->pump;
			}
			return 1;
		};
		my $err = ${ $s->{err} };
		${ $s->{out} } = ${ $s->{err} } = '';
		my ($outcome, $next) = (undef, 0);
		if (!defined $done)
		{
			# the 60 s ran out: hung; else IPC::Run gave up on the session
			# (its psql gone while the transfer was written to it, say): it
			# may have been sent, so its outcome is unknown (CI: a kill of
			# the node counted as a transfer that hung, after 0.18 s)
			my $why = $@;
			$s->{h}->kill_kill;
			$s = undef;
			($outcome, $next) = $why =~ /timeout/ ? ('hung', 0) : ('unknown', 1);
		}
		elsif ($done && $err !~ /ERROR|FATAL|closed/) { $outcome = 'committed'; }
		elsif ($err =~ /ERROR:\s+40003:/) { $outcome = 'unknown'; $next = 1; }
		elsif ($err =~ /ERROR:\s+([0-9A-Z]{5}):/)
		{
			$outcome = "failed $1";
			if ($1 eq '25006' && !defined $pin)
			{
				if ($err =~ /The leader is node (\d+)/ && grep { $_ == $1 } @nodes) { $target = $1; }
				else { $next = 1; }
			}
		}
		elsif ($err =~ /connection to server .* failed/)
		{
			$outcome = 'failed connect';
			$next = 1;
		}
		else { $outcome = 'unknown'; $next = 1; }
		$s = close_session($s) if $s && $outcome ne 'committed';
		my $t = time;
		printf $log "%d %.6f %d %.3f %s\n", $id, $t, $target, $t - $t0, $outcome;
		if ($next)
		{
			# the next of the nodes
			my ($i) = grep { $nodes[$_] == $target } 0 .. $#nodes;
			$target = $nodes[ (($i // -1) + 1) % @nodes ] unless defined $pin;
			usleep(50_000);
		}
	}
	close_session($s) if $s;
	close $log;
	return;
}

# A psql session on node id for a client's transfers (VERBOSITY verbose: the
# errors' SQLSTATEs).
sub open_session
{
	my ($c, $id) = @_;
	my $s = { node => $id, in => \(my $in = "\\set VERBOSITY verbose\n"), out => \(my $out = ''),
		err => \(my $err = ''), timer => IPC::Run::timeout(60) };
	$s->{h} = IPC::Run::start(
		[ 'psql', '-XAtq', '-d', $c->node($id)->connstr('postgres') ],
		'<', $s->{in}, '>', $s->{out}, '2>', $s->{err}, $s->{timer});
	return $s;
}

# End a session (its psql quits at the end of its input); undef.
sub close_session
{
	my ($s) = @_;
	${ $s->{in} } .= "\\q\n";
	eval { $s->{h}->finish; };
	eval { $s->{h}->kill_kill; } if $@;
	return undef;
}

# Every client's outcomes: id => [time, node, outcome, seconds it took].
sub outcomes
{
	my ($self) = @_;
	my %r;
	for my $f (glob "$self->{dir}/client*")
	{
		open(my $fh, '<', $f) or next;
		while (my $line = <$fh>)
		{
			$r{$1} = [ $2, $3, $5, $4 ] if $line =~ /^(\d+) (\S+) (\d+) (\S+) (.+)$/;
		}
		close $fh;
	}
	return %r;
}

# Waits until n transfers committed after time since (default: this call).
sub wait_commits
{
	my ($self, $n, $since) = @_;
	$since //= time;
	return $self->{c}->wait_until(
		"$n commits",
		sub {
			my %r = $self->outcomes;
			return (grep { $_->[2] eq 'committed' && $_->[0] > $since } values %r) >= $n;
		});
}

# The slowest transfer so far: (seconds, id, outcome); (0) if none ended.
sub longest
{
	my ($self) = @_;
	my %r = $self->outcomes;
	my ($id) = sort { $r{$b}[3] <=> $r{$a}[3] } keys %r;
	return defined $id ? ($r{$id}[3], $id, $r{$id}[2]) : (0);
}

# The write gap when node old was killed at time t: its last COMMIT to the
# first on another node after t (-1 if either is missing).
sub gap
{
	my ($self, $t, $old) = @_;
	my @c = grep { $_->[2] eq 'committed' } values %{ { $self->outcomes } };
	my ($before) = sort { $b <=> $a } map { $_->[0] } grep { $_->[1] == $old } @c;
	my ($after) = sort { $a <=> $b } grep { $_ > $t } map { $_->[0] } grep { $_->[1] != $old } @c;
	return defined $before && defined $after ? $after - $before : -1;
}

# The clients try nodes ids only from their next transfer on (a member
# removed: the test stops it once nodes() returned, so that no transfer
# commits on its tables, plain ones there after the removal).
sub nodes
{
	my ($self, @ids) = @_;
	open(my $fh, '>', "$self->{dir}/nodes.new") or die "$self->{dir}/nodes.new: $!";
	print $fh "@ids\n";
	close $fh;
	rename("$self->{dir}/nodes.new", "$self->{dir}/nodes") or die "rename: $!";
	return;
}

# Stops the clients; returns id => outcome.
sub stop
{
	my ($self) = @_;
	open(my $fh, '>', "$self->{dir}/stop") or die;
	close $fh;
	waitpid($_, 0) for @{ $self->{pids} };
	my %r = $self->outcomes;
	return map { $_ => $r{$_}[2] } keys %r;
}

# The invariants, on every node of the group (run after caught_up).
sub check
{
	my ($c, $r, $label) = @_;
	my %count;
	$count{ $r->{$_} }++ for keys %$r;
	diag("$label: " . join(', ', map { "$_ $count{$_}" } sort keys %count));
	is($count{hung} // 0, 0, "$label: no transaction went unanswered");
	my @ids = $c->group_nodes($group);
	my ($first) = @ids;
	my $accounts = $c->contents($first, 'accounts', 'id');
	my $transfers = $c->contents($first, 'transfers', 'id');
	for my $id (@ids)
	{
		my $N = $c->node($id);
		is($N->safe_psql('postgres', 'SELECT sum(balance) FROM accounts'),
			$ACCOUNTS * $BALANCE, "$label: node $id: the sum of the balances is unchanged");
		is($N->safe_psql('postgres', qq{SELECT count(*) FROM accounts a WHERE balance <> $BALANCE
			- (SELECT coalesce(sum(amount), 0) FROM transfers WHERE src = a.id)
			+ (SELECT coalesce(sum(amount), 0) FROM transfers WHERE dst = a.id)}),
			'0', "$label: node $id: every balance is what its transfers made it");
		is($c->contents($id, 'accounts', 'id'), $accounts, "$label: node $id has the same accounts");
		is($c->contents($id, 'transfers', 'id'), $transfers, "$label: node $id has the same transfers");
	}
	my %present = map { $_ => 1 } split /\n/,
	  $c->node($first)->safe_psql('postgres', 'SELECT id FROM transfers ORDER BY id');
	my @lost = grep { $r->{$_} eq 'committed' && !$present{$_} } keys %$r;
	is(scalar(@lost), 0, "$label: every transfer that got COMMIT is there")
	  or diag("missing: @lost[0 .. ($#lost < 9 ? $#lost : 9)]");
	my @ghost = grep { defined $r->{$_} && $r->{$_} =~ /^failed/ } keys %present;
	is(scalar(@ghost), 0, "$label: no transfer that failed is there")
	  or diag(join ', ', map { "$_: $r->{$_}" } @ghost[0 .. ($#ghost < 9 ? $#ghost : 9)]);
	my @unknown_in = grep { defined $r->{$_} && $r->{$_} eq 'unknown' } keys %present;
	diag("$label: " . scalar(@unknown_in) . ' of ' . ($count{unknown} // 0)
		  . ' transfers of unknown outcome committed');
	return;
}

1;
