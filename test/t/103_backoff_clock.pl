# Review 32: dragonraft/logdb_damaged (the damaged LogDB's back-off, kept
# across a crash's reinitialization) with times ahead of the clock: the
# clock was stepped back since the file was written (a machine that found
# its LogDB damaged while its clock ran ahead, then corrected by NTP).  The
# engine worker after a backend's crash (and after a server start, which
# "opens the LogDB at once") loaded the file and waited until its
# retry_at: a day here, with a healthy LogDB.  Times ahead of the clock
# are out of range: the file is ignored with a LOG line and removed.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $c = DragonCluster->new(1, conf => "restart_after_crash = on\n");
my $V = $c->node(1);
my $dir = $V->data_dir . '/dragonraft';
my $bf = "$dir/logdb_damaged";

sub state_is_running
{
	return ($c->poll(1, q{SELECT engine_state FROM dragonraft.node_status()}) // '') eq 'running';
}
ok($c->wait_until('the engine worker to run', \&state_is_running), 'the engine worker runs');

# CRC-32C (Castagnoli), as PostgreSQL's pg_crc32c
sub crc32c
{
	my $crc = 0xFFFFFFFF;
	for my $b (unpack 'C*', $_[0])
	{
		$crc ^= $b;
		$crc = ($crc >> 1) ^ (($crc & 1) ? 0x82F63B78 : 0) for 1 .. 8;
	}
	return $crc ^ 0xFFFFFFFF;
}

# The back-off file damaged_exit writes, for the LogDB directory as it is
# now, found damaged a day ahead of the clock.
sub write_backoff
{
	my ($dev, $ino) = (stat "$dir/logdb")[ 0, 1 ];
	my $z = `stat -c '%Z %z' '$dir/logdb'`;
	$z =~ /^(\d+) \S+ \d+:\d+:\d+\.(\d+)/ or die "stat -c: $z";
	my ($csec, $cnsec) = ($1, $2 + 0);
	# (TimestampTz: microseconds since 2000-01-01; now from Perl: the server may be down)
	my $now = int((Time::HiRes::time() - 946684800) * 1_000_000);
	my $damaged_at = $now + 86_400 * 1_000_000;
	my $retry_at = $damaged_at + 80 * 1_000_000;
	my $line = "dragonraft-backoff 1 runs=4 damaged_at=$damaged_at retry_at=$retry_at "
	  . "dev=$dev ino=$ino ctime=$csec.$cnsec";
	open(my $fh, '>', $bf) or die "$bf: $!";
	printf $fh "%s crc=%08x\n", $line, crc32c($line);
	close $fh;
}

# After a backend's crash
write_backoff();
my $at = -s $V->logfile;
kill 'KILL', $c->query(1, 'SELECT pg_backend_pid()');
ok( $c->wait_until('the engine worker to run after the crash', sub {
		slurp_file($V->logfile, $at) =~ /reinitializing/ && state_is_running() }, 30),
	'a back-off file ahead of the clock does not hold the LogDB after a crash');
like(slurp_file($V->logfile, $at), qr/LOG:  dragonraft ignores "dragonraft\/logdb_damaged": its values are out of range/,
	'the log says it was ignored');
ok(!-e $bf, 'and it is removed');

# After a server start
$V->stop;
write_backoff();
$at = -s $V->logfile;
$V->start;
ok($c->wait_until('the engine worker to run after the start', \&state_is_running, 30),
	'nor after a server start');
ok(!-e $bf, 'and it is removed');

done_testing();
