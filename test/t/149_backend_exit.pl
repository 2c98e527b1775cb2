# A backend of a server with dragonraft loaded exits without the C library's
# exit handlers (dragonraft.c, exit_without_destructors): librocksdb's static
# destructors, loaded into every child of the postmaster, freed RocksDB's
# option registries at each exit, faulting in copy-on-write pages the child
# shares with the postmaster (on a 2-core VM a backend took 49 ms of CPU
# instead of 27 ms; every connection of every test paid it).  Counted here
# as page faults, which do not depend on the machine's load: the backends of
# the dragonraft node fault fewer pages, the postmaster counting its reaped
# children's, than those of a plain server (whose exit handlers free only
# OpenSSL's state); with the destructors run they faulted more.  Output and
# exit status are as before: a session's result arrives, a FATAL exit is no
# crash, and the server stays up; a backend that calls exit() itself
# exits as it did (PostgreSQL's atexit callback runs).
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $CONNECTIONS = 40;

# (no autovacuum workers: their faults would count too)
my $c = DragonCluster->new(1, conf => "autovacuum = off\n");
my $N = $c->node(1);
my $plain = PostgreSQL::Test::Cluster->new('plain');
$plain->init;
$plain->append_conf('postgresql.conf', "autovacuum = off\n");
$plain->start;

# Minor page faults of the postmaster's reaped children (cminflt).
sub reaped_faults
{
	my ($node) = @_;
	my $stat = PostgreSQL::Test::Utils::slurp_file("/proc/$node->{_pid}/stat");
	$stat =~ s/^.*\) //s;    # (after the command name, which may hold spaces)
	return (split " ", $stat)[8];    # (field 11 of proc(5), the third being [0])
}

# Faults per backend of CONNECTIONS sessions that each run one query.
sub faults_per_backend
{
	my ($node) = @_;
	my $before = reaped_faults($node);
	$node->safe_psql('postgres', 'SELECT 1') for 1 .. $CONNECTIONS;
	return (reaped_faults($node) - $before) / $CONNECTIONS;
}

my $dr = faults_per_backend($N);
my $pl = faults_per_backend($plain);
note sprintf('page faults per backend: dragonraft %.0f, plain PostgreSQL %.0f', $dr, $pl);
cmp_ok($dr, '<', $pl, 'a backend of the dragonraft server faults fewer pages than a plain one');

# Exit status and output as before.
is($N->safe_psql('postgres', q{SELECT 'out'}), 'out', 'a session returns its result');
my ($ret, $out, $err) = $N->psql('postgres', q{SELECT pg_terminate_backend(pg_backend_pid())});
isnt($ret, 0, 'a terminated session fails');
is($N->safe_psql('postgres', 'SELECT 1'), '1', 'and the server runs on');
ok(!$N->log_contains('terminated by signal|exited with exit code [^1]'),
	'no child of the postmaster crashed or exited with an unexpected status');
is($N->safe_psql('postgres', 'SELECT engine_state FROM dragonraft.node_status()'),
	'running', 'the engine worker runs');

# A backend that calls exit() itself, outside proc_exit (as code a
# procedural language runs may): the handler steps aside, and PostgreSQL's
# atexit callback releases its PGPROC as before.  Run by gdb in an idle
# backend.  When the handler ended it at once (d35abe5, without 3c732b0's
# proc_exit_inprogress condition), the postmaster saw a child that had not
# released its PGPROC and restarted every process as after a crash.
SKIP:
{
	skip 'no gdb', 3 if system('gdb --version >/dev/null 2>&1') != 0;
	my $s = $N->background_psql('postgres');
	my $pid = $s->query_safe('SELECT pg_backend_pid()');
	my $offset = -s $N->logfile;
	my $gdb = `gdb -p $pid -batch -ex 'call (void)exit(0)' 2>&1`;
	skip "gdb could not make backend $pid call exit(): $gdb", 3
	  unless $gdb =~ /exited normally/;
	# (its zombie too: gone once the postmaster reaped it and, for a crash,
	# began the restart)
	ok($c->wait_until("backend $pid to be reaped", sub { !-e "/proc/$pid" }),
		'a backend that called exit() itself ended');
	is(($N->psql('postgres', 'SELECT 1'))[1], '1', 'the server runs on');
	ok(!$N->log_contains('terminating any other active server processes', $offset),
		'no restart as after a crash');
	eval { $s->quit };
}

done_testing();
