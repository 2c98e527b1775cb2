# DragonCluster - helpers for multi-node TAP tests of dragonraft: servers
# that talk mutual TLS, groups on all of them, agreement on a leader,
# waiting for every member to apply the leader's entries, comparing table
# contents, SQL errors with their SQLSTATE, and the processes of a server
# (to wait for them after a SIGKILL).
#
#   my $c = DragonCluster->new(3);               # started, extension created
#   $c->create_group(1);                          # on every node
#   $c->create_group(2, 1, 2, 3);                 # on nodes 1 to 3 only
#   $c->group_nodes(2, 1, 2, 3, 4);               # after membership changes
#   my $l = $c->leader(1);                        # node id, once all agree
#   $c->node($l)->safe_psql('postgres', ...);
#   $c->caught_up(1);                             # every member applied it
#   $c->same_logs(1);                             # ok(): their Raft logs agree
#   my ($state, $msg) = $c->sql_error($id, 'INSERT ...');
#   $c->poll($id, 'SELECT ...');                  # one psql session per node; undef if down
#   $c->query($id, 'SELECT ...');                 # the same; dies if the node is down
#   $c->crash($id);                               # SIGKILL to the server and its children
#   $c->process_of($id, qr/dragonraft engine/);   # a pid of its worker
#   $c->cut($l, 2, 3) if $c->can_cut; $c->heal;   # a network partition (own_addresses)
#
# DragonCluster->new(3, own_addresses => 1) has node K's transport listen
# on 127.0.0.1K (11, 12, ...) instead of 127.0.0.1, and so dial from it too:
# firewall rules can then tell the nodes apart (addr($id)).
#
# scripts/check.sh runs the tests as the postgres user when started as root
# (PostgreSQL refuses to run as root) and sets DR_SCRIPTS.
package DragonCluster;

use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use IPC::Run;
use Scalar::Util ();

our $trace;
my @clusters;    # (weak references) whose poll sessions END closes

# initdb runs once, and each node's data directory is a copy of what it made
# (as PostgreSQL 17's tests do): DR_INITDB_TEMPLATE names one that
# scripts/check.sh made for the whole run, else a script makes its own at
# its first node.  Every node then has the same system identifier, which
# dragonraft does not use.
{
	no warnings 'redefine';
	my $system_or_bail = \&PostgreSQL::Test::Utils::system_or_bail;
	my $template = $ENV{DR_INITDB_TEMPLATE};
	*PostgreSQL::Test::Utils::system_or_bail = sub {
		my @cmd = @_;
		# only Cluster::init's own call: initdb -D DIR -A trust -N
		return $system_or_bail->(@cmd)
		  unless @cmd == 6 && $cmd[0] eq 'initdb' && $cmd[1] eq '-D' && "@cmd[3..5]" eq '-A trust -N';
		if (!defined $template)
		{
			$template = PostgreSQL::Test::Utils::tempdir() . '/initdb-template';
			$system_or_bail->('initdb', '-D', $template, '-A', 'trust', '-N');
		}
		return $system_or_bail->('cp', '-RPp', $template, $cmd[2]);
	};
}

# DR_PSQL_TRACE=DIR: one line per psql this script starts (safe_psql, psql,
# poll_query_until, background_psql) or poll session query (poll, query), in
# DIR/<script>.trace: "time<TAB>kind<TAB>callers<TAB>SQL's start", callers
# being the subs (DragonCluster's and the script's) and the script's
# outermost line that led to it.  Where a test's children's CPU goes:
# cut -f2,3 | sort | uniq -c; where its time goes: the gaps between times.
if (my $dir = $ENV{DR_PSQL_TRACE})
{
	no warnings 'redefine';
	(my $script = $0) =~ s{.*/}{};
	my $file = "$dir/$script.trace";
	my $trace = sub {
		my ($kind, $sql) = @_;
		my @who;
		my $line;
		for (my $i = 1; my @f = caller($i); $i++)
		{
			push @who, $1 if $f[3] =~ /^(?:DragonCluster|main)::(\w+)$/ && $1 ne '__ANON__';
			$line = $f[2] if $f[1] !~ /\.pm$/;
		}
		push @who, "line $line" if defined $line;
		$sql //= '';
		$sql =~ s/\s+/ /g;
		open(my $fh, '>>', $file) or return;
		printf $fh "%.3f\t%s\t%s\t%s\n", time, $kind, join(' < ', @who), substr($sql, 0, 70);
		close $fh;
	};
	for my $kind (qw(psql poll_query_until background_psql))
	{
		my $orig = \&{"PostgreSQL::Test::Cluster::$kind"};
		no strict 'refs';
		*{"PostgreSQL::Test::Cluster::$kind"} = sub { $trace->($kind, $_[2]); goto &$orig; };
	}
	$DragonCluster::trace = $trace; # for poll()
	# and the CPU time of the script's children (psql, pg_ctl, ...; the
	# servers are not its children), once END closed the poll sessions, and
	# its own
	$DragonCluster::trace_times = sub {
		my @t = times;
		open(my $fh, '>>', $file) or return;
		printf $fh "times\t%.2f cusr %.2f csys %.2f usr %.2f sys\n", @t[ 2, 3, 0, 1 ];
		close $fh;
	};
}

# A node's safe_psql('postgres', sql) runs sql in the node's poll session
# (session_psql below) rather than in a psql of its own, unless sql could leave
# that session other than it found it, or depends on being a new one:
# safe_psql ran 20-60 times in a test, and on this 2-core VM each cost about
# 0.1 s of CPU (perl's fork, psql's exec and dynamic linking, the backend's
# fork and exit: 45 ms in the test, 55 in the server), the query itself
# next to nothing: 20 safe_psql 2.7 s of CPU, 20 in the session 0.08 s.
# Left to a psql of their own: options (%params), another database, psql
# meta-commands, transaction control, SET and other session state,
# temporary objects, anything about backends and sessions (their pids,
# pg_stat_activity, advisory locks), configuration reloads and writes to
# a system catalog (after which the node's session is closed: a new one
# starts with the new settings, as after ALTER DATABASE / ROLE ... SET, and
# without the caches that a catalog row written by hand does not
# invalidate: TAP 101 disables triggers so in pg_trigger for "a new
# session").  DR_PSQL_SESSION=0 turns it off.
my $new_settings = qr/\b(?:pg_reload_conf|ALTER\s+(?:SYSTEM|DATABASE|ROLE|USER))\b|\b(?:UPDATE|INSERT\s+INTO|DELETE\s+FROM)\s+(?:pg_catalog\.)?pg_[a-z_]+\b/i;
my $own_session = qr/$new_settings|(?:\A|;)\s*(?:SET|RESET|BEGIN|START|COMMIT|ROLLBACK|END|ABORT|SAVEPOINT|RELEASE|PREPARE|DECLARE|LISTEN|UNLISTEN|DISCARD|LOAD|LOCK)\b|\\|\b(?:TEMP|TEMPORARY|pg_backend_pid|pg_stat_activity|pg_terminate_backend|pg_cancel_backend|advisory|set_config|application_name)\b/i;
sub session_may { my ($sql) = @_; return ($ENV{DR_PSQL_SESSION} // 1) && $sql !~ $own_session; }
{
	no warnings 'redefine';
	my $safe_psql = \&PostgreSQL::Test::Cluster::safe_psql;
	*PostgreSQL::Test::Cluster::safe_psql = sub {
		my ($node, $db, $sql, %params) = @_;
		my $c = $node->{dragon_cluster};
		return $safe_psql->(@_) unless $c && $db eq 'postgres' && !%params && session_may($sql);
		return $c->session_psql($node->{dragon_id}, $sql);
	};
	my $psql = \&PostgreSQL::Test::Cluster::psql;
	*PostgreSQL::Test::Cluster::psql = sub {
		my ($node, $db, $sql) = @_;
		$node->{dragon_cluster}->close_poll($node->{dragon_id})
		  if $node->{dragon_cluster} && defined $sql && $sql =~ $new_settings;
		goto &$psql;
	};
	my $reload = \&PostgreSQL::Test::Cluster::reload;
	*PostgreSQL::Test::Cluster::reload = sub {
		my ($node) = @_;
		$node->{dragon_cluster}->close_poll($node->{dragon_id}) if $node->{dragon_cluster};
		goto &$reload;
	};
}

# The poll sessions end before the servers do (PostgreSQL::Test::Cluster's
# END, which runs after this one).
END
{
	local $?;    # (finish sets it; it is the script's exit status here)
	for my $c (grep { defined } @clusters)
	{
		$c->close_poll($_) for keys %{ $c->{polls} // {} };
	}
	$DragonCluster::trace_times->() if $DragonCluster::trace_times;
}

sub new
{
	my ($class, $n, %opts) = @_;
	my $self = bless { nodes => [], raft_port => {}, n => $n, own => $opts{own_addresses} },
	  $class;
	push @clusters, $self;
	Scalar::Util::weaken($clusters[-1]);

	die 'DR_SCRIPTS must name the scripts directory of dragonraft' unless $ENV{DR_SCRIPTS};
	my $certs = PostgreSQL::Test::Utils::tempdir() . '/certs';
	# DR_CERTS_TEMPLATE (scripts/check.sh) has a CA and certificates for nodes
	# 1 to 5, made once for the run: copied (not its CA's key), else made here.
	my $tpl = $ENV{DR_CERTS_TEMPLATE};
	if ($tpl && -f "$tpl/node$n.crt")
	{
		mkdir $certs or die "mkdir $certs: $!";
		system('cp', '-p', (map { "$tpl/$_" } 'ca.crt', 'crl.pem', map { ("node$_.crt", "node$_.key") } 1 .. $n),
			$certs) == 0
		  or die "copying the certificates of $tpl failed";
	}
	else
	{
		system('bash', "$ENV{DR_SCRIPTS}/make-certs.sh", $certs, $n) == 0
		  or die 'make-certs.sh failed';
	}
	for my $id (1 .. $n)
	{
		my $node = PostgreSQL::Test::Cluster->new("node$id");
		$node->init;
		my $port = PostgreSQL::Test::Cluster::get_free_port();
		$self->{raft_port}{$id} = $port;
		my $addr = $self->addr($id);
		$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'dragonraft'
dragonraft.node_id = $id
dragonraft.listen_address = '$addr:$port'
dragonraft.ssl_cert_file = '$certs/node$id.crt'
dragonraft.ssl_key_file = '$certs/node$id.key'
dragonraft.ssl_ca_file = '$certs/ca.crt'
} . ($opts{conf} // '') . ($ENV{DR_TAP_CONF} // ''));
		push @{ $self->{nodes} }, $node;
		$node->{dragon_cluster} = $self;    # (for safe_psql below)
		Scalar::Util::weaken($node->{dragon_cluster});
		$node->{dragon_id} = $id;
	}
	start_together(@{ $self->{nodes} });
	# (through the node's poll session, which the tests' polls use next:
	# a psql and a backend fewer per node)
	$self->query($_, 'CREATE EXTENSION dragonraft') for $self->ids;
	return $self;
}

# Start the servers of these (stopped) nodes at once, as Cluster::start
# starts one (pg_ctl -w, the same options; a failure bails out with the
# node's log): a cluster's start waits for its slowest server, not for
# each in turn (three servers on a loaded machine: 2.7-3.2 s in turn,
# 2.0-2.4 s together).
sub start_together
{
	my @nodes = @_;
	my @run;
	for my $node (@nodes)
	{
		print "### Starting node \"" . $node->name . "\"\n";
		# (Cluster::start's environment: no PGAPPNAME for the server)
		local %ENV = $node->_get_env(PGAPPNAME => undef);
		my $out = '';
		push @run, [ $node, \$out, IPC::Run::start([ 'pg_ctl', '-w', '-D', $node->data_dir, '-l', $node->logfile,
			'-o', '--cluster-name=' . $node->name, 'start' ], '<', \undef, '>&', \$out) ];
	}
	my @failed;
	for my $r (@run)
	{
		my ($node, $out, $h) = @$r;
		my $ok = eval { $h->finish } && $? == 0;
		print $$out;
		if ($ok)
		{
			$node->_update_pid(1);
			next;
		}
		print "# pg_ctl start of node \"" . $node->name . "\" failed; logfile:\n";
		print PostgreSQL::Test::Utils::slurp_file($node->logfile);
		$node->_update_pid(-1);    # (a postmaster pg_ctl gave up on is stopped at END)
		push @failed, $node->name;
	}
	BAIL_OUT("pg_ctl start failed: @failed") if @failed;
	return;
}

sub node { my ($self, $id) = @_; return $self->{nodes}[ $id - 1 ]; }
# The id of a node (a PostgreSQL::Test::Cluster of this cluster).
sub id_of
{
	my ($self, $node) = @_;
	my ($id) = grep { $self->node($_) == $node } $self->ids;
	return $id // die 'not a node of this cluster: ' . $node->name;
}
sub addr { my ($self, $id) = @_; return $self->{own} ? "127.0.0.1$id" : '127.0.0.1'; }
sub ids { my ($self) = @_; return (1 .. $self->{n}); }
# The nodes whose server runs (not stopped or crashed).
sub running { my ($self) = @_; return grep { defined $self->node($_)->{_pid} } $self->ids; }
# The nodes of group g whose server runs.
sub running_in
{
	my ($self, $g) = @_;
	return grep { defined $self->node($_)->{_pid} } $self->group_nodes($g);
}

# The members JSON of the given nodes (default: every node).
sub members
{
	my ($self, @ids) = @_;
	@ids = $self->ids unless @ids;
	return '{' . join(', ', map { qq{"$_": "} . $self->raft_address($_) . qq{"} } @ids) . '}';
}

# node id's Raft address.
sub raft_address { my ($self, $id) = @_; return $self->addr($id) . ":$self->{raft_port}{$id}"; }

# The nodes that run group g (set by create_group and group_nodes; default: all).
sub group_nodes
{
	my ($self, $g, @ids) = @_;
	$self->{group_nodes}{$g} = [@ids] if @ids;
	return @{ $self->{group_nodes}{$g} // [ $self->ids ] };
}

sub create_group
{
	my ($self, $g, @ids) = @_;
	my @nodes = $self->group_nodes($g, @ids);
	my $m = $self->members(@nodes);
	for my $id (@nodes)
	{
		$self->engine_running($id);
		$self->query($id, "SELECT dragonraft.create_group($g, '$m')");
	}
	return;
}

# Once node id's engine worker runs (after a start or restart: create_group
# and join_group refuse to run before, "engine worker is not running").
sub engine_running
{
	my ($self, $id) = @_;
	return $self->wait_until("the engine worker of node $id",
		sub { ($self->poll($id, 'SELECT engine_state FROM dragonraft.node_status()') // '') eq 'running' });
}

# Poll cond until it returns true (its value) or the timeout passes
# (seconds; default the harness's: 0), quietly: for a test that expects the
# timeout (nothing may happen within it).
sub poll_until
{
	my ($self, $cond, $timeout) = @_;
	my $end = time + ($timeout // $PostgreSQL::Test::Utils::timeout_default);
	while (time < $end)
	{
		my $r = $cond->();
		return $r if $r;
		usleep(50_000);
	}
	return 0;
}

# poll_until, saying what it waited for when the timeout passes.
sub wait_until
{
	my ($self, $what, $cond, $timeout) = @_;
	my $r = $self->poll_until($cond, $timeout);
	diag "timed out waiting for $what" unless $r;
	return $r;
}

# flushed_just_now(id, sql): run sql (a write of a replicated table) on node
# id and wait until the WAL holds it flushed: dragonraft flushes the WAL up
# to the applied index at most once a second (its durable applied index), so
# a commit right after that flush stays unflushed for about a second (with
# wal_writer_delay long, as in TAP 067 and 070: a crash then loses its WAL).
sub flushed_just_now
{
	my ($self, $id, $sql) = @_;
	my $lsn = $self->node($id)->safe_psql('postgres', "$sql; SELECT pg_current_wal_insert_lsn()");
	return $self->wait_until("node $id to flush the WAL up to $lsn",
		sub { $self->poll($id, "SELECT pg_current_wal_flush_lsn() >= '$lsn'") eq 't' });
}

# Polls: one psql session per node, kept open between queries, for the
# queries that loops repeat (a psql and a backend cost more CPU than the
# query; on 2 cores that CPU is the servers' under test).
#
# poll(id, sql): sql's output on node id (as safe_psql's), or undef when the
# node cannot be reached: stopped, starting, shutting down, restarted or
# crashed since the last poll (the next poll connects again).  Dies on an
# SQL error, as safe_psql.  For reads (a SELECT; a function as
# dragonraft.snapshot()) that leave the session as they found it: no SET, no
# transaction left open.  (psql goes on after an error here: one statement.)
sub poll
{
	my ($self, $id, $sql) = @_;
	my ($out, $err, $state) = $self->poll_result($id, $sql);
	die "poll on node $id failed: $err\nwhile running: $sql\n" if $state eq 'error';
	return $state eq 'ok' ? $out : undef;
}

# sql's output on node id through its poll session, as safe_psql's: dies
# when the node cannot be reached, or on an SQL error.  For one-shot reads
# the helpers repeat (contents, catalog) under the same rules as poll's.
sub query
{
	my ($self, $id, $sql) = @_;
	my ($out, $err, $state) = $self->poll_result($id, $sql);
	die "query on node $id failed: $err\nwhile running: $sql\n" if $state ne 'ok';
	return $out;
}

# safe_psql's, through node id's poll session: sql's output; dies when the
# node cannot be reached or on an SQL error, which ends the session (psql
# stops at the first error, as safe_psql's: the statements after it do not
# run).
sub session_psql
{
	my ($self, $id, $sql) = @_;
	my ($out, $err, $state) = $self->poll_result($id, $sql, 'exec');
	die "error running SQL on node $id: '$err'\nwith sql '$sql'\n" if $state eq 'error';
	die "connection error on node $id: '$err'\nwith sql '$sql'\n" if $state ne 'ok';
	return $out;
}

# poll's output, stderr and outcome: 'ok', 'error' (an SQL error: stderr has
# it) or 'down' (no connection).  With kind 'exec' (session_psql), psql stops at
# the first error, and the session with it; with kind 'verbose' (sql_error),
# its messages have their SQLSTATE.
sub poll_result
{
	my ($self, $id, $sql, $kind) = @_;
	$kind //= 'poll';
	die "poll: no session state changes: $sql" if $sql =~ /^\s*(BEGIN|START|SET|RESET)\b/im && $kind eq 'poll';
	$trace->($kind, $sql) if $trace;
	for (;;)
	{
		my $s = $self->{polls}{$id} //= $self->_poll_start($id);
		my $reused = $s->{n} > 0;
		my $mark = "dragoncluster poll " . ++$s->{n};
		# Then an empty statement, so that the session, idle, does not show
		# the poll's text in pg_stat_activity.query (tests search for theirs).
		my $v = { exec => 'ON_ERROR_STOP', verbose => 'VERBOSITY' }->{$kind};
		${ $s->{in} } .= $v
		  ? "\\set $v " . ($v eq 'VERBOSITY' ? 'verbose' : 1) . "\n$sql\n;\n\\unset $v\n"
		  : "$sql\n;\n";
		${ $s->{in} } .= "SELECT WHERE false;\n\\echo '$mark'\n\\warn '$mark'\n";
		$s->{timer}->start($PostgreSQL::Test::Utils::timeout_default);
		my $done = eval {
			$s->{h}->pump_nb;
			until (${ $s->{out} } =~ /^\Q$mark\E\n/m && ${ $s->{err} } =~ /^\Q$mark\E\n/m)
			{
				return 0 unless $s->{h}->pumpable;
				die "poll on node $id timed out: $sql\n" if $s->{timer}->is_expired;
				$s->{h}->pump;
			}
			return 1;
		};
		if ((my $e = $@) =~ /^poll on node \d+ timed out/)
		{
			# (not to wait for the query at END)
			delete $self->{polls}{$id};
			eval { $s->{h}->kill_kill(grace => 1); };
			die $e;
		}
		if (!$done)
		{
			# psql exits when it cannot connect or lost its connection; a
			# session that worked before lost it to a restart: once more.
			# (exec: or at an SQL error, ON_ERROR_STOP)
			$self->close_poll($id);
			if ($kind eq 'exec' && ${ $s->{err} } =~ /^(?:psql:\S+ )?ERROR:/m)
			{
				(my $err = ${ $s->{err} }) =~ s/\n\z//;
				return ('', $err, 'error');
			}
			next if $reused;
			return ('', ${ $s->{err} }, 'down');
		}
		my $out = ${ $s->{out} };
		my $err = ${ $s->{err} };
		${ $s->{out} } = ${ $s->{err} } = '';
		$out =~ s/^\Q$mark\E\n\z//m;
		$err =~ s/^\Q$mark\E\n\z//m;
		chomp $out;
		chomp $err;
		return ($out, $err, 'error') if $err =~ /^(?:psql:\S+ )?(?:ERROR|FATAL|PANIC):/m;
		print "#### Begin standard error\n$err\n#### End standard error\n" if $err ne '';
		return ($out, $err, 'ok');
	}
}

sub _poll_start
{
	my ($self, $id) = @_;
	my $node = $self->node($id);
	local %ENV = $node->_get_env();
	my $s = { n => 0, in => \(my $in = ''), out => \(my $out = ''), err => \(my $err = ''),
		timer => IPC::Run::timer($PostgreSQL::Test::Utils::timeout_default) };
	$s->{h} = IPC::Run::start(
		[ $node->installed_command('psql'), '-XAtq', '-d',
			$node->connstr('postgres') . ' application_name=dragoncluster_poll' ],
		'<', $s->{in}, '>', $s->{out}, '2>', $s->{err}, $s->{timer});
	return $s;
}

# End node id's poll session (the next poll opens another).
sub close_poll
{
	my ($self, $id) = @_;
	my $s = delete $self->{polls}{$id} or return;
	eval {
		${ $s->{in} } .= "\\q\n" if $s->{h}->pumpable;
		$s->{h}->finish;
	};
	return;
}

# The running member of group g that says it leads it (0 if none by the
# timeout), without waiting for its applied index as leader() does: that
# would wait out a batch held for dragonraft.apply_batch_delay.
sub leading
{
	my ($self, $g) = @_;
	return $self->wait_until("a leader of group $g", sub {
		for my $id ($self->running_in($g))
		{
			return $id if ($self->poll($id,
				"SELECT role FROM dragonraft.status WHERE group_id = $g AND state = 'ok'") // '') eq 'leader';
		}
		return 0;
	});
}

# The leader of group g once every running node agrees on it and it accepts
# writes (it applied its term's no-op); undef after the timeout.
sub leader
{
	my ($self, $g) = @_;
	return $self->wait_until(
		"a writable leader of group $g",
		sub {
			my (%leaders, $leading);
			for my $id ($self->running_in($g))
			{
				my $row = $self->poll($id,
					"SELECT role, leader_id, applied_index, commit_index FROM dragonraft.status "
					  . "WHERE group_id = $g AND state = 'ok'") // return undef;
				my ($role, $leader, $applied, $commit) = split /\|/, $row;
				return undef unless defined $commit && $leader ne '';
				$leaders{$leader} = 1;
				$leading = $id if $role eq 'leader' && $applied == $commit;
			}
			return keys %leaders == 1 && defined $leading ? $leading : undef;
		});
}

# Node id leads group g and accepts writes: it asks for the leadership
# (transfer_leader on a follower) until every running member agrees that it
# leads; false after the timeout.  The member that leads meanwhile need not
# accept writes (its apply worker may be stopped): only node id has to.
sub lead
{
	my ($self, $g, $id) = @_;
	return $self->wait_until("node $id to lead group $g", sub {
		my $role = $self->poll($id, "SELECT role FROM dragonraft.status WHERE group_id = $g AND state = 'ok'")
		  // return 0;
		return ($self->leader($g) // 0) == $id if $role eq 'leader';
		# (refused when the leadership moves meanwhile, or there is no
		# leader: asked again)
		$self->poll_result($id, "SELECT dragonraft.transfer_leader($g, $id)");
		return 0;
	});
}

# Group g's log takes no entry of dragonraft's own any more: every running
# member's info (its client address, proposed once it knows a leader) is
# applied on the leader, and so, after an execute(), are the members'
# addresses that the leader proposed when it handed those over.  Then only
# the test's own writes grow the log.  A member that leads the group for
# the first time (a transfer, a failover) proposes the addresses it holds
# from the others' infos before dragonraft.status shows it leading
# (engine_status.c publish): proposed at its engine worker's next turn, up
# to 250 ms later, they came after caught_up's execute() 2 times in 12
# transfers.
sub settled
{
	my ($self, $g) = @_;
	my $n = () = $self->running_in($g);
	$self->wait_until(
		"every member's client address in group $g on its leader",
		sub {
			my $l = $self->leader($g) or return 0;
			return ($self->poll($l, 'SELECT count(*) FROM dragonraft.members '
					  . "WHERE group_id = $g AND client_address IS NOT NULL") // '') eq $n;
		}) or return 0;
	return $self->caught_up($g);
}

# Every running node applied every entry of group g that its leader committed so far
# (execute() on the leader adds one and returns once it is applied there).
sub caught_up
{
	my ($self, $g) = @_;
	my $index;
	# (tried again when the leadership moved between leader() and execute())
	$self->wait_until(
		"an execute() on the leader of group $g",
		sub {
			my $l = $self->leader($g) or return 0;
			my ($out, $err, $state) = $self->poll_result($l, "SELECT dragonraft.execute($g, 'SELECT 1')");
			diag "execute() on node $l failed, tried again: $err" if $state ne 'ok';
			$index = $out if $state eq 'ok';
			return $state eq 'ok';
		}) or return 0;
	return $self->wait_until(
		"every member of group $g at $index",
		sub {
			for my $id ($self->running_in($g))
			{
				return 0
				  unless ($self->poll($id,
						"SELECT applied_index >= $index FROM dragonraft.status WHERE group_id = $g") // '')
				  eq 't';
			}
			return 1;
		});
}

# The objects of the database outside the system's and dragonraft's schemas,
# as text, to compare members after a snapshot's load: schemas (owner,
# privileges), types (composite attributes, enum labels, domain base and
# checks, privileges), functions (definition, privileges), tables, views and
# sequences (kind, privileges, owner; columns, definition and options,
# parameters), default privileges, publications (tables)
# and the replicated tables' definitions.
my $catalog_sql = q{
WITH ns AS (SELECT oid, nspname FROM pg_namespace
             WHERE nspname NOT IN ('pg_catalog', 'information_schema', 'dragonraft', 'pg_toast')
               AND nspname NOT LIKE 'pg_temp%' AND nspname NOT LIKE 'pg_toast_temp%')
SELECT concat_ws(E'\n',
  (SELECT string_agg(format('schema %s %s %s', nspname, nspowner::regrole, nspacl), E'\n' ORDER BY nspname)
     FROM pg_namespace WHERE oid IN (SELECT oid FROM ns)),
  (SELECT string_agg(format('type %s %s %s %s', t.oid::regtype, t.typtype,
            CASE t.typtype
              WHEN 'e' THEN (SELECT string_agg(enumlabel, ',' ORDER BY enumsortorder) FROM pg_enum WHERE enumtypid = t.oid)
              WHEN 'c' THEN (SELECT string_agg(attname || ':' || format_type(atttypid, atttypmod), ',' ORDER BY attnum)
                               FROM pg_attribute WHERE attrelid = t.typrelid AND attnum > 0 AND NOT attisdropped)
              WHEN 'd' THEN format_type(t.typbasetype, t.typtypmod) || ' ' || coalesce((SELECT string_agg(pg_get_constraintdef(oid), ',' ORDER BY conname)
                               FROM pg_constraint WHERE contypid = t.oid), '')
            END, t.typacl), E'\n' ORDER BY t.oid::regtype::text)
     FROM pg_type t WHERE t.typnamespace IN (SELECT oid FROM ns) AND t.typtype IN ('c', 'e', 'd', 'r')
       AND (t.typrelid = 0 OR (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c')),
  (SELECT string_agg(pg_get_functiondef(p.oid) || ' acl ' || coalesce(p.proacl::text, 'default'), E'\n' ORDER BY p.oid::regprocedure::text)
     FROM pg_proc p WHERE p.pronamespace IN (SELECT oid FROM ns) AND p.prokind IN ('f', 'p')),
  (SELECT string_agg(format('rel %s %s %s %s %s', c.oid::regclass, c.relkind,
            (SELECT string_agg(a::text, ',' ORDER BY a::text) FROM unnest(c.relacl) a), c.relowner::regrole,
            CASE c.relkind
              WHEN 'v' THEN pg_get_viewdef(c.oid) || coalesce(c.reloptions::text, '')
              WHEN 'S' THEN (SELECT concat_ws(' ', seqtypid::regtype, seqincrement, seqmin, seqmax, seqstart, seqcache, seqcycle)
                               FROM pg_sequence WHERE seqrelid = c.oid)
              ELSE (SELECT string_agg(attname || ':' || format_type(atttypid, atttypmod), ',' ORDER BY attnum)
                      FROM pg_attribute WHERE attrelid = c.oid AND attnum > 0 AND NOT attisdropped)
            END), E'\n' ORDER BY c.oid::regclass::text)
     FROM pg_class c WHERE c.relnamespace IN (SELECT oid FROM ns) AND c.relkind IN ('r', 'S', 'v')),
  (SELECT string_agg(format('defacl %s %s %s', defaclrole::regrole, defaclobjtype, defaclacl), E'\n' ORDER BY defaclobjtype)
     FROM pg_default_acl),
  (SELECT string_agg(format('pub %s %s', p.pubname, (SELECT string_agg(pt.schemaname || '.' || pt.tablename, ',' ORDER BY 1)
                      FROM pg_publication_tables pt WHERE pt.pubname = p.pubname)), E'\n' ORDER BY p.pubname)
     FROM pg_publication p),
  (SELECT string_agg(dragonraft.table_definition(relid), E'\n' ORDER BY relid::regclass::text)
     FROM dragonraft.replicated_tables WHERE relid IS NOT NULL))};

# That text for node id (see catalog_sql).
sub catalog
{
	my ($self, $id) = @_;
	return $self->query($id, $catalog_sql);
}

# A table's rows in order, as one string.
sub contents
{
	my ($self, $id, $table, $order) = @_;
	return $self->query($id, "SELECT coalesce(string_agg(t::text, ';' ORDER BY $order), '') FROM $table t");
}

# Run sql on node id; its SQLSTATE and message ('' when it succeeded), and stderr.
# (One statement that session_psql may run goes through the node's poll
# session: psql goes on after its error there, as it stops here.)
sub sql_error
{
	my ($self, $id, $sql) = @_;
	my ($out, $err) = ('', '');
	if (session_may($sql) && $sql !~ /;\s*\S/)
	{
		(undef, $err) = $self->poll_result($id, $sql, 'verbose');
	}
	else
	{
		$self->node($id)->psql('postgres', "\\set VERBOSITY verbose\n$sql",
			stdout => \$out, stderr => \$err);
	}
	return ($1, $err) if $err =~ /ERROR:\s+([0-9A-Z]{5}):/;
	return ('', $err);
}

# logs_agree(g, skew => id, between => sub): do the running members of
# group g hold the same Raft log (Raft's Log Matching, dragonraft.log_digest)?
# Each member's held range first (its whole log's digest), then the digest of
# the range that all of them hold up to the leader's commit index, on every
# member that holds an entry (one that holds none, a snapshot only, is left
# out and named).  Returns (agreed, what, compared): what names the range or
# the digests that differ, compared how many members were compared.  Fewer
# than two members compared, or no entry all of them hold: not agreed (a
# check that compared nothing must not pass).  A member whose log moved
# between the two passes (a compaction: it no longer holds the range, or
# digested less of it) is not a difference: the check starts over (5 tries).
# Tests of this check only: skew => id asks node id for one entry less (its
# digest must differ); between => sub runs between the two passes.
sub logs_agree
{
	my ($self, $g, %o) = @_;
	my ($agreed, $what, $n);
	for my $try (1 .. 5)
	{
		($agreed, $what, $n) = $self->_logs_agree_once($g, %o);
		return ($agreed, $what, $n) if defined $agreed;
	}
	return (0, "group $g: the logs kept moving while they were compared: $what", 0);
}

# One try of logs_agree: agreed undef when a member's log moved meanwhile.
sub _logs_agree_once
{
	my ($self, $g, %o) = @_;
	my $l = $self->leader($g) or return (0, "group $g has no leader", 0);
	my $hi = $self->query($l, "SELECT commit_index FROM dragonraft.status WHERE group_id = $g");
	my ($lo, @ids, @none) = (1);
	for my $id ($self->running_in($g))
	{
		my ($f, $t) = split /\|/,
		  $self->query($id, "SELECT first_index, last_index FROM dragonraft.log_digest($g)");
		if (($f // '') eq '')
		{
			push @none, $id;
			next;
		}
		push @ids, $id;
		$lo = $f if $f > $lo;
		$hi = $t if $t < $hi;
	}
	my $left = @none ? " (left out: nodes @none hold no entry, a snapshot only)" : '';
	return (0, "group $g: nothing to compare: fewer than two members hold entries$left", 0)
	  if @ids < 2;
	return (0, "group $g: nothing to compare: no entry that nodes @ids all hold$left", 0)
	  if $lo > $hi;
	$o{between}->() if $o{between};
	my (%by, @rows);
	for my $id (@ids)
	{
		my $to = defined $o{skew} && $o{skew} == $id ? $hi - 1 : $hi;
		my ($r, $err, $state) = $self->poll_result($id,
			"SELECT concat_ws(' ', first_index, last_index, last_term, entries, digest)"
			  . " FROM dragonraft.log_digest($g, $lo, $to)");
		return (undef, "node $id no longer holds $lo..$to: $err", 0)
		  if $state eq 'error' && $err =~ /does not hold the entries asked for/;
		die "query on node $id failed: $err\n" if $state ne 'ok';
		my ($f, $t) = split / /, $r;
		return (undef, "node $id digested $f..$t of $lo..$to (its log moved)", 0)
		  if ($f // '') ne $lo || ($t // '') ne $to;
		push @{ $by{$r} }, $id;
		push @rows, "node $id: $r";
	}
	return (1, "group $g: entries $lo..$hi agree on nodes @ids$left", scalar @ids)
	  if keys %by == 1;
	return (0, "group $g: the logs of its members differ in $lo..$hi$left:\n" . join("\n", @rows),
		scalar @ids);
}

# ok() that the running members of group g hold the same log (logs_agree:
# not when nothing could be compared).
sub same_logs
{
	my ($self, $g, $name) = @_;
	my $t0 = time;
	my ($agreed, $what) = $self->logs_agree($g);
	ok($agreed, $name // "the members of group $g hold the same log") or diag($what);
	note(sprintf('%s (%.2f s)', $what, time - $t0)) if $agreed;
	return $agreed;
}

# Members ids of group g take a snapshot at the leader's applied index or
# later: their logs are compacted below it (minus compaction_overhead), and
# a member further behind needs a full snapshot.  False if one did not.
sub compact
{
	my ($self, $g, @ids) = @_;
	my $index = $self->query($self->leader($g),
		"SELECT applied_index FROM dragonraft.status WHERE group_id = $g");
	for my $id (@ids)
	{
		$self->wait_until("node $id to snapshot group $g at $index", sub {
			($self->poll($id, "SELECT dragonraft.snapshot($g)") // -1) >= $index })
		  or return 0;
	}
	return 1;
}

# Restart node id with test/engine/faultfs.c preloaded: its snapshot
# directory's file system reports free_bytes free (a node short of room).
sub restart_short_of_room
{
	my ($self, $id, $free_bytes) = @_;
	my $node = $self->node($id);
	my $shim = PostgreSQL::Test::Utils::tempdir() . '/libdr_faultfs.so';
	system('cc', '-shared', '-fPIC', '-O2', '-o', $shim,
		"$ENV{DR_SCRIPTS}/../test/engine/faultfs.c", '-ldl') == 0
	  or BAIL_OUT('cannot build faultfs.c');
	local $ENV{LD_PRELOAD} = $shim;
	local $ENV{DR_FAULT_DIR} = $node->data_dir . '/dragonraft/snapshots';
	local $ENV{DR_FAULT_FREE_BYTES} = $free_bytes;
	$node->restart;
}

# Group g on nodes ids with a table t of 1,150 rows (1 .. 1000, 2001 .. 2150),
# its members caught up and their logs compacted: a new member needs a
# snapshot.  Returns the leader.
sub group_needing_snapshots
{
	my ($self, $g, @ids) = @_;
	$self->create_group($g, @ids);
	my $l = $self->leader($g);
	ok($l, "group $g has a leader (node $l)");
	my $L = $self->node($l);
	$L->safe_psql('postgres', "SELECT dragonraft.execute($g, 'CREATE TABLE t (id int PRIMARY KEY, v text)')");
	$L->safe_psql('postgres', "SELECT dragonraft.replicate_table('t', $g)");
	$L->safe_psql('postgres', q{INSERT INTO t SELECT g, 'row ' || g FROM generate_series(1, 1000) g});
	$L->safe_psql('postgres', join('', map { "INSERT INTO t VALUES (" . (2000 + $_) . ", 'later');\n" } 1 .. 150));
	ok($self->caught_up($g), 'the members caught up');
	ok($self->compact($g, @ids), "nodes @ids compacted their logs: a new member needs a snapshot");
	return $l;
}

# Groups 1 and 2 on nodes 1 to 3, both led by node 1: group 1 with tables a
# and b of 1,000 rows each, group 2 with an empty table u; the members
# caught up.
sub groups_a_b_u
{
	my ($self) = @_;
	$self->create_group($_) for (1, 2);
	ok($self->lead($_, 1), "node 1 leads group $_") for (1, 2);
	$self->node(1)->safe_psql('postgres', q{
SELECT dragonraft.execute(1, 'CREATE TABLE a (id int PRIMARY KEY, v text); CREATE TABLE b (id int PRIMARY KEY)');
SELECT dragonraft.execute(2, 'CREATE TABLE u (id int PRIMARY KEY, v text)');
SELECT dragonraft.replicate_table('a', 1);
SELECT dragonraft.replicate_table('b', 1);
SELECT dragonraft.replicate_table('u', 2);
INSERT INTO a SELECT g, 'first' FROM generate_series(1, 1000) g;
INSERT INTO b SELECT g FROM generate_series(1, 1000) g;
});
	ok($self->caught_up($_), "the members caught up with group $_") for (1, 2);
	return;
}

# After groups_a_b_u: node 3 stops, group 1 writes 120 rows more to a and
# compacts past it, node 3 starts with dragonraft.testing_snapshot_delay =
# 600000 (and conf) and loads a snapshot of group 1, paused after its first
# table.  Returns the loader's pid (false if none came).
sub load_paused_on_3
{
	my ($self, $conf) = @_;
	my ($N1, $N3) = ($self->node(1), $self->node(3));
	$N3->stop('fast');
	$N1->safe_psql('postgres', join('', map { "INSERT INTO a VALUES (1000 + $_, 'behind');\n" } 1 .. 120));
	ok($self->compact(1, 1, 2), 'nodes 1 and 2 compacted group 1');
	$N3->append_conf('postgresql.conf', "dragonraft.testing_snapshot_delay = 600000\n" . ($conf // ''));
	$N3->start;
	my $loader = $self->paused_load(3, 1);
	ok($loader, 'node 3 loads a snapshot of group 1, paused after its first table');
	return $loader;
}

# A loader of group g on node id paused after its first table
# (dragonraft.testing_snapshot_delay): its pid, 0 after the timeout.  A job
# whose loader exited shows pid 0 until its apply worker sees the exit: not
# a paused loader.
sub paused_load
{
	my ($self, $id, $g) = @_;
	return $self->wait_until("node $id to load the first table of group $g", sub {
		$self->poll($id, qq{SELECT pid FROM dragonraft.stat_progress_snapshot
			WHERE group_id = $g AND role = 'receiver' AND phase = 'loading' AND tables_done = 1
			  AND pid <> 0}) });
}

# How many full snapshots of group g node id's server log says it loaded.
sub snapshot_loads
{
	my ($self, $id, $g) = @_;
	my @n = PostgreSQL::Test::Utils::slurp_file($self->node($id)->logfile)
	  =~ /dragonraft loaded the snapshot of group $g /g;
	return scalar @n;
}

# join_group(g, the addresses of members) on node id, in the background:
# {h => IPC::Run handle, out, err => refs to its output and errors}.
sub start_join
{
	my ($self, $id, $g, @members) = @_;
	my $j = { out => \(my $out = ''), err => \(my $err = '') };
	$j->{h} = IPC::Run::start(['psql', '-XAtq', '-d', $self->node($id)->connstr('postgres'), '-c',
			"SELECT dragonraft.join_group($g, '" . $self->members(@members) . "')"],
		'>', $j->{out}, '2>', $j->{err}, IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
	return $j;
}

# psql -c of each statement on node id in the background, its backend's pid
# first: {h => IPC::Run handle, out, err => refs to its output and errors,
# pid => its backend}.
sub start_session
{
	my ($self, $id, @sql) = @_;
	my $s = { out => \(my $out = ''), err => \(my $err = '') };
	$s->{h} = IPC::Run::start(['psql', '-XAtq', '-d', $self->node($id)->connstr('postgres'),
			'-c', 'SELECT pg_backend_pid()', map { ('-c', $_) } @sql],
		'>', $s->{out}, '2>', $s->{err}, IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
	$s->{h}->pump until ${ $s->{out} } =~ /^(\d+)\n/;
	$s->{pid} = $1;
	return $s;
}

# Once the engine worker on node id took every request submitted so far (g:
# a group of node id's): a backend shows its Extension wait from the moment
# it submitted its request, before the engine took it (a loaded machine's
# engine worker can be that slow): a cancel then is 57014 (nothing was
# done), and an engine worker that exits then fails it with "the engine
# worker exited", whatever the request does once taken.  The engine takes
# requests first in, first out (queue.c): a log_digest asked after them
# returns once they were taken.
sub taken
{
	my ($self, $id, $g) = @_;
	$self->query($id, "SELECT entries FROM dragonraft.log_digest($g)");
	return;
}

# An engine worker restart on node id held before the groups come back:
# pg_terminate_backend of the engine worker (the postmaster starts the next
# one 5 s later; no crash restart), and a session that holds
# pg_replication_origin locked keeps the next one, once it took every
# group's shared entry down, from adding the LogDB's again (it reads that
# catalog in between): a stand-in for an engine worker that fails at start
# each time, for as long as the test likes.  A stopped apply worker
# ($stopped) is terminated and continued, and exits at once (bgworker_die)
# without committing: continued alone, it applied the entries handed to it
# on its way out, and the waits for them ended before the restart.
#
# The lock is taken before the engine worker is terminated: taken after,
# the next one could start first on a loaded host (the poll for the exits,
# a psql's start and connection outlasting the postmaster's 5 s).  Its
# session connects before anything of the restart and so writes the
# relcache init file anew if a commit that changed
# dragonraft.replicated_tables invalidated it (capture.c
# dr_registrations_changed): a process that starts without that file builds
# its catalog caches in InitPostgres and waits there for the lock, the next
# engine worker too, before it takes the groups down.  No such commit comes
# after it: the test's sessions wait, and the stopped apply worker exits
# without committing.  Returns the lock's session for release_held once
# group g's entry is gone and the next engine worker waits for the lock.
sub restart_held
{
	my ($self, $id, $g, $stopped) = @_;
	my $L = { in => \(my $in = "BEGIN;\nLOCK TABLE pg_catalog.pg_replication_origin IN ACCESS EXCLUSIVE MODE;\nSELECT 'locked';\n"),
		out => \(my $out = ''), err => \(my $err = '') };
	$L->{h} = IPC::Run::start(['psql', '-XAtq', '-d', $self->node($id)->connstr('postgres')],
		'<', $L->{in}, '>', $L->{out}, '2>', $L->{err}, IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
	$L->{h}->pump until ${ $L->{out} } =~ /locked/;
	my ($engine, $apply) = split /\|/, $self->query($id, 'SELECT engine_pid, apply_pid FROM dragonraft.node_status()');
	$self->query($id, "SELECT pg_terminate_backend($engine)");
	if ($stopped)
	{
		kill 'TERM', $stopped;
		kill 'CONT', $stopped;
	}
	ok($self->wait_until("node ${id}'s engine and apply workers to exit", sub {
		$self->query($id, "SELECT count(*) FROM pg_stat_activity WHERE pid IN ($engine, " . ($apply || 0) . ')') eq '0' }, 30),
		"node ${id}'s engine worker and its apply worker exited");
	ok($self->wait_until("node ${id}'s next engine worker to take group $g down and wait for the lock", sub {
		$self->query($id, "SELECT count(*) FROM dragonraft.status WHERE group_id = $g") eq '0'
		  && $self->query($id, qq{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'dragonraft engine'
			AND wait_event_type = 'Lock' AND pid <> $engine}) eq '1' }, 30),
		"node ${id}'s next engine worker took group $g down, and waits for pg_replication_origin");
	return $L;
}

# End restart_held's lock on node id: its engine worker runs group g again,
# with an apply worker.
sub release_held
{
	my ($self, $id, $L, $g) = @_;
	${ $L->{in} } .= "COMMIT;\n";
	$L->{h}->finish;
	ok($self->wait_until("node $id to run group $g again", sub {
		$self->query($id, "SELECT count(*) FROM dragonraft.status WHERE group_id = $g") eq '1'
		  && $self->query($id, q{SELECT engine_state = 'running' AND apply_pid IS NOT NULL FROM dragonraft.node_status()}) eq 't' }),
		"node ${id}'s engine worker runs group $g again, with an apply worker");
	return;
}

# A psql session on node id that read table in a transaction it leaves open,
# idle, holding the table's lock: {h => IPC::Run handle, in, out, err =>
# refs to its input, output and errors, pid => its backend}.  Append to
# ${$r->{in}} and call $r->{h}->finish to end it.
sub idle_reader
{
	my ($self, $id, $table) = @_;
	my $r = { in => \(my $in = "BEGIN;\nSELECT count(*) FROM $table;\nSELECT pg_backend_pid();\n"),
		out => \(my $out = ''), err => \(my $err = '') };
	$r->{h} = IPC::Run::start(['psql', '-XAtq', '-d', $self->node($id)->connstr('postgres')],
		'<', $r->{in}, '>', $r->{out}, '2>', $r->{err});
	$r->{h}->pump until ${ $r->{out} } =~ /^\d+\n(\d+)\n/;
	$r->{pid} = $1;
	$self->wait_until("session $r->{pid} to idle in its transaction", sub {
		($self->poll($id, "SELECT state FROM pg_stat_activity WHERE pid = $r->{pid}") // '')
		  eq 'idle in transaction' })
	  or return undef;
	return $r;
}

# A postmaster and its children, to wait for after a SIGKILL.
# The state letter of process pid (R running, S sleeping, D disk, T
# stopped, ...), '' if it is gone.
sub proc_state
{
	my ($pid) = @_;
	open(my $fh, '<', "/proc/$pid/stat") or return '';
	my $line = <$fh> // '';
	close $fh;
	return $line =~ /^\d+ \(.*\) (\S) / ? $1 : '';
}

sub server_pids
{
	my ($self, $id) = @_;
	my $ppid = $self->node($id)->{_pid};
	my @pids = ($ppid);
	for my $stat (glob '/proc/[0-9]*/stat')
	{
		open(my $fh, '<', $stat) or next;
		my $line = <$fh>;
		close $fh;
		push @pids, $1 if defined $line && $line =~ /^(\d+) \(.*\) \S (\d+) / && $2 == $ppid;
	}
	return @pids;
}

# The pid of node id's process whose command line (its title) matches re
# (qr/dragonraft engine/, qr/dragonraft apply/), undef if none.
sub process_of
{
	my ($self, $id, $re) = @_;
	for my $pid ($self->server_pids($id))
	{
		open(my $fh, '<', "/proc/$pid/cmdline") or next;
		my $cmd = <$fh> // '';
		close $fh;
		return $pid if $cmd =~ $re;
	}
	return undef;
}

# A random element of the list (chaos tests: srand gives the seed).
sub pick { return $_[ int(rand(@_)) ]; }

# Network partitions: nftables rules in a table of this script's own.  Each
# node's transport must listen on (and so dial from) its own address
# (new(..., own_addresses => 1)).  Changing rules takes CAP_NET_ADMIN:
# scripts/check.sh, run as root (as CI does), hands the tests a copy of nft
# with it in DR_NFT.  can_cut says whether it works (else skip).
my $nft = $ENV{DR_NFT} // '';
my $nft_table = "dragonraft_tap_$$";
my $nft_made;
sub can_cut { return $nft ne '' && system("$nft list tables >/dev/null 2>&1") == 0; }

# cut(a, @b): every TCP packet between node a's address and nodes @b's is
# dropped, both directions in one nft transaction: rules added one at a time
# (each nft run took a second under load) left a moment in which the others
# no longer heard a cut-off leader while their vote requests still reached
# it (TAP 006).  True if nft succeeded.
sub cut
{
	my ($self, $a, @b) = @_;
	die 'cut needs new(..., own_addresses => 1)' unless $self->{own};
	my $from = $self->addr($a);
	my $to = '{ ' . join(', ', map { $self->addr($_) } @b) . ' }';
	$nft_made = 1;
	return system($nft, "add table ip $nft_table; "
		  . "add chain ip $nft_table out { type filter hook output priority 0; policy accept; }; "
		  . "add rule ip $nft_table out ip saddr $from ip daddr $to drop; "
		  . "add rule ip $nft_table out ip daddr $from ip saddr $to drop") == 0;
}

# Every cut heals (the table goes).  True if nft succeeded.
sub heal
{
	my ($self) = @_;
	$nft_made = 0;
	return system($nft, "delete table ip $nft_table") == 0;
}

END
{
	local $?;    # the script's exit status
	system("$nft delete table ip $nft_table >/dev/null 2>&1") if $nft_made;
}

# SIGKILL to node id's postmaster and all its children at once (a crash of
# the machine, as far as the others can tell); returns once they are gone.
# They are all stopped first: killed one after another, a child could see
# its postmaster die before its own SIGKILL and close its files cleanly (the
# engine worker checkpointing its LogDB: TAP 090 once found the marker of a
# checkpoint the crash cut short).
sub crash
{
	my ($self, $id) = @_;
	my $pm = $self->node($id)->{_pid};
	# The postmaster first, and its children once it has stopped: it forks
	# no more then.  (Listed first, a backend it forked meanwhile for a
	# client's new connection outlived the crash, attached to the shared
	# memory, and the node's start failed: "pre-existing shared memory
	# block ... is still in use", TAP 116 in a fresh CI run.)
	kill 'STOP', $pm;
	$self->wait_until("node ${id}'s postmaster to stop", sub { proc_state($pm) =~ /^[TtZ]?$/ });
	my @pids = $self->server_pids($id);
	kill 'STOP', @pids;
	kill 'KILL', @pids;
	$self->node($id)->{_pid} = undef;
	return $self->wait_until("node ${id}'s processes to exit", sub { !grep { -e "/proc/$_" } @pids });
}

# The template database's LC_COLLATE and LC_CTYPE; skips the test unless it
# is UTF8 (the locale tests: 124, 128, 130, 131).
sub template_locale
{
	my ($self) = @_;
	my ($enc, $collate, $ctype) = split /\|/, $self->query(1,
		'SELECT pg_encoding_to_char(encoding), datcollate, datctype FROM pg_database WHERE datname = current_database()');
	Test::More::plan(skip_all => "the template database is $enc, not UTF8") if $enc ne 'UTF8';
	return ($collate, $ctype);
}

# join_group(g, members) on node id in its database loc (loc_database); its
# stderr once it ended.
sub join_loc
{
	my ($self, $id, $g, @members) = @_;
	my ($out, $err) = ('', '');
	IPC::Run::run(['psql', '-XAtq', '-d', $self->node($id)->connstr('loc'), '-c',
			"SELECT dragonraft.join_group($g, '" . $self->members(@members) . "')"],
		'>', \$out, '2>', \$err, IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
	return $err;
}

# Node id's dragonraft.database becomes loc, a UTF8 database of locale:
# does its engine worker run there?
sub loc_database
{
	my ($self, $id, $locale) = @_;
	my $node = $self->node($id);
	$self->use_database($id, 'loc',
		qq{CREATE DATABASE loc ENCODING 'UTF8' LOCALE '$locale' TEMPLATE template0});
	return $self->wait_until("node $id engine worker",
		sub { $node->safe_psql('loc', 'SELECT engine_state FROM dragonraft.node_status()') eq 'running' });
}

# use_database(id, db, create): node id runs dragonraft in database db, which
# the statement create makes (CREATE DATABASE db ...): the extension created
# there, dragonraft.database set, the server restarted.
sub use_database
{
	my ($self, $id, $db, $create) = @_;
	my $node = $self->node($id);
	$self->query($id, $create);
	$node->safe_psql($db, 'CREATE EXTENSION dragonraft');
	$node->append_conf('postgresql.conf', "dragonraft.database = '$db'\n");
	$self->close_poll($id);
	$node->restart;
	return;
}

# log_has(node, re): does node's server log match re (polled: a worker may
# write it later)?
sub log_has
{
	my ($self, $node, $re) = @_;
	return $self->wait_until('the log of ' . $node->name . " to match $re",
		sub { PostgreSQL::Test::Utils::slurp_file($node->logfile) =~ $re });
}

1;
