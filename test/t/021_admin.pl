# What an administrator relies on, on three nodes:
# - transfer_leader() returns once dragonraft.status on the node that ran it
#   shows the new leader (run on the leader, and on the target);
# - DROP EXTENSION is refused while the node is a member of groups;
# - dragonraft.stat_node counts the transport's refusals (a connection that
#   is not TLS);
# - a member that left a group its leader still counts it in, and shares
#   another group with that leader, drops that leader's messages of the
#   group: stat_node counts them and the member logs it once a minute, with
#   group, sender and what to do (review 69: only a counter of the
#   transport's, in no view, showed them);
# - an invalid dragonraft address in postgresql.conf stops the server from
#   starting instead of falling back to the default, and so does a wildcard
#   one (0.0.0.0) that other nodes would dial.
use strict;
use warnings;
use FindBin;
use IO::Socket::INET;
use lib $FindBin::RealBin;
use DragonCluster;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $c = DragonCluster->new(3);
$c->create_group(1);
my $l = $c->leader(1) or die 'no leader';

# 1. Leadership moves around the three nodes, each transfer run on the
# leader or on the target; the status of the node that ran it shows the new
# leader as soon as transfer_leader returns.
my (@targets, @seen);
for my $round (1 .. 6)
{
	my $target = $l % 3 + 1;
	my $caller = $round % 2 ? $l : $target;
	push @targets, $target;
	my $out = $c->node($caller)->safe_psql(
		'postgres', qq{
		SELECT dragonraft.transfer_leader(1, $target);
		SELECT leader_id FROM dragonraft.status WHERE group_id = 1});
	push @seen, (split /\n/, $out)[-1];
	$l = $c->leader(1) or die 'no leader after a transfer';
}
is("@seen", "@targets", 'status shows the new leader as soon as transfer_leader returns');

# 2. DROP EXTENSION while a member of group 1, with a replicated table
# (user28: PostgreSQL's "use DROP ... CASCADE" came first, then, with
# CASCADE, the refusal to drop its capture trigger "with dragonraft.execute").
$c->node($l)->safe_psql('postgres', q{
	SELECT dragonraft.execute(1, 'CREATE TABLE dropext (id int PRIMARY KEY)');
	SELECT dragonraft.replicate_table('dropext', 1)});
ok($c->caught_up(1), 'a table replicated on every node');
for my $cascade ('', ' CASCADE')
{
	my ($state, $msg) = $c->sql_error(1, "DROP EXTENSION dragonraft$cascade");
	is($state, '55006', "DROP EXTENSION$cascade is refused (object in use)");
	like($msg, qr/\A[^\n]*ERROR:  55006: cannot drop extension dragonraft: this node is a member of 1 group\n/,
		'first of all, with the number of groups');
	# Its hint leaves no voter behind that the group counts on (doc65: it
	# said leave_group(group_id, true), which on a follower leaves the group
	# with a member that never answers again).
	like($msg, qr/HINT:  .*dragonraft\.remove_member\(group_id, 1\) on the leader first/,
		'the hint says to remove a follower on the leader first');
}
is($c->node(1)->safe_psql('postgres', 'SELECT count(*) FROM dragonraft.status'), '1',
	'and the extension is still there');
# ... but in a database without it, DROP EXTENSION IF EXISTS is a NOTICE, as
# anywhere (review 29 F2: the member-of-groups refusal came there too).
$c->node(1)->safe_psql('postgres', 'CREATE DATABASE noext');
my ($ret, $out, $err) = $c->node(1)->psql('noext', 'DROP EXTENSION IF EXISTS dragonraft');
is($ret, 0, 'DROP EXTENSION IF EXISTS in a database without it succeeds');
like($err, qr/NOTICE:  extension "dragonraft" does not exist, skipping/, 'with PostgreSQL\'s notice');

# 3. Bytes that are not TLS on the Raft port: refused, and counted.
my $before = $c->node(1)->safe_psql('postgres', 'SELECT tls_failures FROM dragonraft.stat_node');
for (1 .. 3)
{
	my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $c->{raft_port}{1})
	  or die "cannot connect: $!";
	print $s "GET / HTTP/1.0\r\n\r\n" x 20;
	local $/;
	my $ignored = <$s>;    # until the node closes the connection
	close $s;
}
ok( $c->node(1)->poll_query_until('postgres',
		"SELECT tls_failures >= $before + 3 AND connections_accepted > 0 FROM dragonraft.stat_node"),
	'stat_node counts the failed TLS handshakes');

# 3b. A follower of group 2 leaves it (force: the leader still counts it in)
# while it shares group 1 with the leader (a node that shares no group with
# it refuses its connections instead, with a line of its own).
$c->create_group(2);
my $l2 = $c->leader(2) or die 'no leader of group 2';
my ($f2) = grep { $_ != $l2 } $c->ids;
my $off = -s $c->node($f2)->logfile;
$c->node($f2)->safe_psql('postgres', 'SELECT dragonraft.leave_group(2, true)');
$c->group_nodes(2, grep { $_ != $f2 } $c->ids);
# (an idle group's leader sends nothing: an entry wakes it)
$c->node($l2)->safe_psql('postgres', q{SELECT dragonraft.execute(2, 'SELECT 1')});
my $drops = qr/LOG:  dragonraft node $f2 drops the messages of group 2 from node $l2: the group does not run here \(not joined yet, stopped, left, or beyond dragonraft\.max_groups: see dragonraft\.status, dragonraft\.left_groups and dragonraft\.stat_node\); if this node left it for good, run dragonraft\.remove_member\(2, $f2\) on the group's leader/;
ok($c->wait_until("node $f2 to log the messages of group 2 it drops",
		sub { slurp_file($c->node($f2)->logfile, $off) =~ $drops }),
	"node $f2 logs that it drops group 2's messages from node $l2, and what to do");
ok($c->wait_until("node ${f2}'s stat_node to count them",
		sub { ($c->poll($f2, 'SELECT messages_dropped_no_group > 0 FROM dragonraft.stat_node') // '') eq 't' }),
	'stat_node.messages_dropped_no_group counts them');
my @lines = slurp_file($c->node($f2)->logfile, $off) =~ /drops the messages of group 2/g;
is(scalar(@lines), 1, '... in one line (once a minute)');

# 4. An address PostgreSQL would replace with the default.
my $bad = PostgreSQL::Test::Cluster->new('bad_address');
$bad->init;
$bad->append_conf('postgresql.conf', q{
shared_preload_libraries = 'dragonraft'
dragonraft.node_id = 9
dragonraft.listen_address = '127.0.0.1:99999'
});
ok(!$bad->start(fail_ok => 1), 'a server with listen_address port 99999 does not start');
like(slurp_file($bad->logfile), qr/invalid dragonraft address "127.0.0.1:99999" in the configuration/,
	'its log names the address');

# 5. A wildcard listen_address with no advertise_address (doc65): the node ran,
# and once it led, the others learned to dial it (and clients to connect to
# it) at 0.0.0.0.  Refused at start; with advertise_address it starts.
my $wild = PostgreSQL::Test::Cluster->new('wildcard_address');
$wild->init;
$wild->append_conf('postgresql.conf', q{
shared_preload_libraries = 'dragonraft'
dragonraft.node_id = 9
dragonraft.listen_address = '0.0.0.0:0'
});
ok(!$wild->start(fail_ok => 1), 'a server with listen_address 0.0.0.0 and no advertise_address does not start');
like(slurp_file($wild->logfile),
	qr/dragonraft.listen_address "0.0.0.0:0" is not an address other nodes can dial.*\n.*\n.*HINT:  Set dragonraft.advertise_address/,
	'its log names the address and the setting to give');
$wild->append_conf('postgresql.conf', q{dragonraft.advertise_address = '127.0.0.1:0'});
ok($wild->start(fail_ok => 1), 'with advertise_address it starts');
$wild->stop('fast');

$c->node($_)->stop('fast') for $c->ids;
done_testing();
