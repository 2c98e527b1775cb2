# A member whose client_address file (in dragonraft.data_dir) cannot be
# written (review 45).  The file says what every group knows of this node's
# member info (address, encoding, locale); one that does not say it (an older
# build's, or none) makes the node send its info to every group again at
# start, then write the file.  When the write failed (a full disk; here a
# directory where its temporary file goes), the engine worker tried again at
# every turn and logged "could not write file" four times a second for as
# long as it lasted.  Now it tries again a minute later; the info itself is
# sent once (the group's log does not grow).
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $c = DragonCluster->new(1);
my $N1 = $c->node(1);
$c->create_group(1, 1);
my $file = $N1->data_dir . '/dragonraft/client_address';
ok($c->wait_until('the client_address file to say the encoding', sub { -f $file && slurp_file($file) =~ /\nencoding / }),
	'node 1 wrote its client_address file');

# An older build's file (the address only), and a directory in the way of
# the new one's temporary file.
$c->close_poll(1);
$N1->stop;
my ($addr) = split /\n/, slurp_file($file);
open(my $fh, '>', $file) or die "cannot write $file: $!";
print $fh $addr;
close($fh);
mkdir("$file.tmp") or die "mkdir $file.tmp: $!";
my $offset = -s $N1->logfile;
$N1->start;

my $failed = qr/LOG:  could not write file "[^"]*client_address\.tmp": Is a directory/;
sub log_since { return substr(slurp_file($N1->logfile), $offset); }
ok($c->wait_until('the first failed write', sub { log_since() =~ $failed }), 'the write fails');
my $last = $c->query(1, 'SELECT last_index FROM dragonraft.status WHERE group_id = 1');
# Three seconds of the engine worker's turns (12 at 250 ms): what is
# counted is how often it logs in that time.
my $t0 = $c->query(1, 'SELECT extract(epoch FROM clock_timestamp())');
ok($c->wait_until('three seconds after the first failure',
		sub { $c->query(1, "SELECT extract(epoch FROM clock_timestamp()) > $t0 + 3") eq 't' }),
	'three seconds passed');
my $n = () = log_since() =~ /$failed/g;
is($n, 1, 'the failed write is logged once, not at every turn');
is($c->query(1, 'SELECT last_index FROM dragonraft.status WHERE group_id = 1'), $last,
	'the member info is not sent again meanwhile');
is($c->query(1, q{SELECT count(encoding) FROM dragonraft.member_info WHERE group_id = 1 AND node_id = 1}), '1',
	'the group knows node 1\'s encoding');

done_testing();
