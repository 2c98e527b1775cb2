# Review 28, finding 2: a follower's LogDB whose RocksDB files were damaged
# while its server was stopped (bytes changed inside the data blocks of its
# table files, as a disk that corrupts data at rest leaves them).  RocksDB
# opens them (it reads a data block only when asked for it); the engine
# worker then stops on the first read ("Corruption: block checksum
# mismatch"), and the postmaster starts it again every few seconds, for
# ever.  Its HINT said "check the disk" and that the postmaster restarts
# it, as for a full disk, which heals by a restart: this does not.  A read
# that found damage now gives the HINT of a LogDB damaged at open (TAP 090).
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $c = DragonCluster->new(3, conf => "dragonraft.logdb_memtable_budget = 4\n");
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

# A clean stop: the LogDB flushes everything into its table files.
$V->stop;
my @sst = glob($V->data_dir . '/dragonraft/logdb/shard-*/*.sst');
cmp_ok(scalar(@sst), '>=', 1, 'the LogDB has table files');
# One byte in every 4 KiB of each file's first half (data blocks; the index
# and footer at its end stay intact, so RocksDB opens it).
for my $f (@sst)
{
	open(my $fh, '+<:raw', $f) or die "$f: $!";
	for (my $off = 100; $off < (-s $f) / 2; $off += 4096)
	{
		seek($fh, $off, 0);
		read($fh, my $byte, 1);
		seek($fh, $off, 0);
		print $fh chr(ord($byte) ^ 0x40);
	}
	close $fh;
}

my $log_at = -s $V->logfile;
$V->start;
my $log = '';
ok( $c->wait_until('the engine worker to stop on the damage', sub {
		$log = slurp_file($V->logfile, $log_at);
		$log =~ /FATAL:  dragonraft (engine stopped|could not open its LogDB).*Corruption/ }),
	'the engine worker stops, naming the corruption');
note join("\n", grep { /FATAL|HINT/ } split /\n/, $log);
my ($hint) = $log =~ /FATAL:  dragonraft (?:engine stopped|could not open its LogDB).*Corruption.*\n(?:.*DETAIL.*\n)?.*HINT:  (.*)/;
like($hint // '', qr/The LogDB is damaged: the engine worker fails so at each restart.*move "dragonraft\/logdb" aside/,
	'the HINT says that a restart cannot help and what to do');
unlike($hint // '', qr/check the disk/, 'not to wait for a restart');

# The others go on without it.
$L->safe_psql('postgres', "INSERT INTO t VALUES (1000, 'while node $v is out')");
ok($c->wait_until('the other member to apply', sub {
		($c->poll(6 - $l - $v, 'SELECT count(*) FROM t WHERE id = 1000') // '') eq '1' }), 'the group goes on');
done_testing();
