# Three nodes talking mutual TLS, two groups (DESIGN §3, §6, §10): every
# node agrees on one leader and term; every member learns every client address through the
# log; transfer_leader moves leadership; a stopped leader is replaced and
# rejoins as a follower; a follower killed with SIGKILL catches up; the
# groups survive a restart of every node with the same members; a node
# whose LogDB directory was deleted refuses to start its members.
use strict;
use warnings;
use File::Path qw(rmtree);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $timeout = $PostgreSQL::Test::Utils::timeout_default;
my (@nodes, %raft_port);

# The nodes talk mutual TLS with certificates from scripts/make-certs.sh
# (scripts/check.sh says where it is).
die 'DR_SCRIPTS must name the scripts directory of dragonraft' unless $ENV{DR_SCRIPTS};
my $certs = PostgreSQL::Test::Utils::tempdir() . '/certs';
# (a copy of those scripts/check.sh made once for the run, if it did)
my $tpl = $ENV{DR_CERTS_TEMPLATE};
if ($tpl && -f "$tpl/node3.crt")
{
	mkdir $certs or die "mkdir $certs: $!";
	system('cp', '-p', (map { "$tpl/$_" } qw(ca.crt crl.pem node1.crt node1.key node2.crt node2.key node3.crt node3.key)),
		$certs) == 0 or die "copying the certificates of $tpl failed";
}
else
{
	system('bash', "$ENV{DR_SCRIPTS}/make-certs.sh", $certs, 3) == 0 or die 'make-certs.sh failed';
}

for my $id (1 .. 3) {
	my $node = PostgreSQL::Test::Cluster->new("node$id");
	$node->init;
	$raft_port{$id} = PostgreSQL::Test::Cluster::get_free_port();
	$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'dragonraft'
dragonraft.node_id = $id
dragonraft.listen_address = '127.0.0.1:$raft_port{$id}'
dragonraft.ssl_cert_file = '$certs/node$id.crt'
dragonraft.ssl_key_file = '$certs/node$id.key'
dragonraft.ssl_ca_file = '$certs/ca.crt'
dragonraft.ssl_crl_file = '$certs/crl.pem'
});
	$node->start;
	push @nodes, $node;
}
sub node { return $nodes[ $_[0] - 1 ]; }
my $members = '{' . join(', ', map { qq{"$_": "127.0.0.1:$raft_port{$_}"} } 1 .. 3) . '}';

# Poll cond until it returns true or the deadline passes.
sub wait_until
{
	my ($what, $cond) = @_;
	my $end = time + $timeout;
	while (time < $end)
	{
		my $r = $cond->();
		return $r if $r;
		usleep(100_000);
	}
	diag "timed out waiting for $what";
	return 0;
}

# The leader of group g if the given nodes agree: exactly one of them leads,
# and all report the same term and leader.
sub agreed_leader
{
	my ($g, @ids) = @_;
	my (%terms, %leaders, @leading);
	for my $id (@ids)
	{
		my ($role, $term, $leader, $state) = split /\|/,
		  node($id)->safe_psql('postgres',
			"SELECT role, term, leader_id, state FROM dragonraft.status WHERE group_id = $g");
		return undef unless defined $state && $state eq 'ok';
		$terms{$term} = 1;
		$leaders{$leader} = 1;
		push @leading, $id if $role eq 'leader';
	}
	return undef unless keys %terms == 1 && keys %leaders == 1 && @leading == 1;
	return (keys %leaders)[0] == $leading[0] ? $leading[0] : undef;
}

sub status_field
{
	my ($id, $g, $field) = @_;
	return node($id)->safe_psql('postgres',
		"SELECT $field FROM dragonraft.status WHERE group_id = $g");
}

# A postmaster and its children, to wait for after a SIGKILL.
sub server_pids
{
	my ($ppid) = @_;
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

# Wait until none of these processes exists any more.
sub wait_gone
{
	my @pids = @_;
	return wait_until('the killed server to be gone', sub { !grep { -e "/proc/$_" } @pids });
}

for my $n (@nodes)
{
	$n->safe_psql('postgres', 'CREATE EXTENSION dragonraft');
	$n->safe_psql('postgres', "SELECT dragonraft.create_group($_, '$members')") for 1, 2;
}

# 1. One leader per group, the same term and leader on every node.
for my $g (1, 2)
{
	ok(wait_until("agreement on group $g", sub { agreed_leader($g, 1 .. 3) }),
		"group $g: one leader, same term and leader on every node");
}
for my $id (1 .. 3)
{
	my $log = slurp_file(node($id)->logfile);
	like($log, qr/dragonraft node $id (became leader of|follows node \d+ in) group 1 in term \d+/,
		"node $id logs its role in group 1");
	unlike($log, qr/no certificates and no cluster secret/, "node $id uses its certificate");
}

# 2. Every member knows every member's client address, through the log.
my $addresses = join(', ', map { "($_, 'host=127.0.0.1 port=" . node($_)->port . "')" } 1 .. 3);
for my $id (1 .. 3)
{
	ok( wait_until(
			"client addresses on node $id",
			sub {
				node($id)->safe_psql('postgres', qq{
				SELECT count(*) = 6 FROM dragonraft.members m
				  JOIN (VALUES $addresses) a(node_id, client_address) USING (node_id, client_address)}) eq 't';
			}),
		"node $id knows the client address of every member of both groups");
}

# 3. The leader sees each member's progress; a follower does not.
my $l1 = agreed_leader(1, 1 .. 3);
my ($f1) = grep { $_ != $l1 } 1 .. 3;
ok( wait_until(
		'progress on the leader',
		sub {
			node($l1)->safe_psql('postgres', q{
			SELECT bool_and(match_index IS NOT NULL AND lag_entries IS NOT NULL
			                AND last_contact IS NOT NULL) AND count(*) = 3
			  FROM dragonraft.members WHERE group_id = 1}) eq 't';
		}),
	'the leader shows match index, lag and last contact of every member');
is( node($f1)->safe_psql('postgres',
		'SELECT count(match_index) FROM dragonraft.members WHERE group_id = 1'),
	'0', 'a follower shows no progress');
ok( node($f1)->safe_psql('postgres',
		'SELECT last_contact > now() - interval \'1 min\' FROM dragonraft.status WHERE group_id = 1') eq 't',
	'a follower heard from its leader recently');

# 4. transfer_leader: the two groups end up with different leaders.
my $l2 = agreed_leader(2, 1 .. 3);
if ($l2 == $l1)
{
	my ($target) = grep { $_ != $l1 } 1 .. 3;
	node($l2)->safe_psql('postgres', "SELECT dragonraft.transfer_leader(2, $target)");
	$l2 = $target;
}
ok(wait_until('group 2 to follow its new leader', sub { (agreed_leader(2, 1 .. 3) // 0) == $l2 }),
	'the transfer is seen by every node');
isnt($l1, $l2, 'groups 1 and 2 have different leaders');

# A follower may ask to lead, but not hand another node the leadership.
my ($other) = grep { $_ != $l1 && $_ != $f1 } 1 .. 3;
my ($rc, $out, $err) =
  node($f1)->psql('postgres', "SELECT dragonraft.transfer_leader(1, $other)");
like($err, qr/node $f1 does not lead group 1.*Node $l1 leads it \(client address "host=127.0.0.1 port=\d+"\)/s,
	'a follower names the leader and its client address');
node($f1)->safe_psql('postgres', "SELECT dragonraft.transfer_leader(1, $f1)");
ok(wait_until('the follower to lead group 1', sub { (agreed_leader(1, 1 .. 3) // 0) == $f1 }),
	'a follower takes over the leadership it asked for');
$l1 = $f1;

# 5. Stop the leader's server: the others elect a new leader; it rejoins as a follower.
my @rest = grep { $_ != $l1 } 1 .. 3;
# (the new leader logs it: it sends to the stopped node, a follower may not)
my %log_offset = map { $_ => -s node($_)->logfile } @rest;
node($l1)->stop('fast');
my $t0 = time;
my $new = wait_until('a new leader of group 1', sub { agreed_leader(1, @rest) });
ok($new, 'the remaining nodes elect a new leader');
note sprintf('new leader of group 1 in status %.2f s after the old one stopped', time - $t0);
isnt($new, $l1, 'the new leader is another node');
node($new)->wait_for_log(qr/dragonraft node $l1 at 127\.0\.0\.1:$raft_port{$l1} is unreachable/,
	$log_offset{$new});
ok(1, 'the stopped node is logged as unreachable');
node($l1)->start;
ok( wait_until(
		'the old leader to follow',
		sub { (agreed_leader(1, 1 .. 3) // 0) == $new && status_field($l1, 1, 'role') eq 'follower' }),
	'the old leader rejoins as a follower of the new one');
node($new)->wait_for_log(qr/dragonraft node $l1 at \S+ is reachable again/, $log_offset{$new});
ok(1, 'and is logged as reachable again');

# 6. SIGKILL a follower's postmaster; entries committed meanwhile reach it after its restart.
my $lead = agreed_leader(1, 1 .. 3);
my ($victim) = grep { $_ != $lead } 1 .. 3;
my @pids = server_pids(node($victim)->{_pid});
node($victim)->kill9;
ok(wait_gone(@pids), 'the killed postmaster and its children exit');
my $moved = 'host=127.0.0.1 port=' . node($lead)->port . ' application_name=moved';
node($lead)->append_conf('postgresql.conf', "dragonraft.client_address = '$moved'");
node($lead)->reload;
my $others = join(',', grep { $_ != $victim } 1 .. 3);
ok( wait_until(
		'the new client address on the leader',
		sub {
			node($lead)->safe_psql('postgres',
				"SELECT count(*) FROM dragonraft.member_info WHERE node_id = $lead AND client_address = '$moved'")
			  eq '2';
		}),
	'a changed client address is committed while a follower is down');
node($victim)->start;
ok( wait_until(
		'the killed follower to catch up',
		sub {
			my $target = status_field($lead, 1, 'commit_index');
			status_field($victim, 1, 'applied_index') >= $target
			  && status_field($victim, 2, 'applied_index') >= status_field($lead, 2, 'commit_index');
		}),
	'the killed follower\'s applied index reaches the leader\'s');
is( node($victim)->safe_psql('postgres',
		"SELECT count(*) FROM dragonraft.member_info WHERE node_id = $lead AND client_address = '$moved'"),
	'2', 'and it applied the entries committed while it was down');

# 7. Stop and start every node: the groups come back with the same members.
my $members_query =
  'SELECT group_id, node_id, address, client_address, voting FROM dragonraft.members ORDER BY 1, 2';
my @before = map { $_->safe_psql('postgres', $members_query) } @nodes;
$_->stop('fast') for @nodes;
$_->start for @nodes;
for my $g (1, 2)
{
	ok(wait_until("agreement on group $g after the restart", sub { agreed_leader($g, 1 .. 3) }),
		"group $g has a leader again after every node restarted");
}
is_deeply([ map { $_->safe_psql('postgres', $members_query) } @nodes ],
	\@before, 'the groups come back with the same members');

# 8. A node whose LogDB directory was deleted refuses to start its members.
my $n3 = node(3);
$n3->stop('fast');
rmtree($n3->data_dir . '/dragonraft');
my $log_offset = -s $n3->logfile;
$n3->start;
ok( wait_until(
		'the refusal in status',
		sub {
			$n3->safe_psql('postgres', q{
			SELECT count(*) = 2 AND bool_and(state = 'stopped' AND role IS NULL
			       AND error ~ '^this node was a member \(replication origin dragonraft_\d, applied up to \d+\) but its LogDB has no record of the group; to rejoin, remove node 3 on another member, run leave_group\(\d, true\) here \(it also ends an interrupted leave\) and use a new node_id$')
			  FROM dragonraft.status}) eq 't';
		}),
	'status shows both members of node 3 stopped, with the reason');
$n3->wait_for_log(qr/WARNING:  dragonraft group 1 not started: .*LogDB has no record of the group; to rejoin, remove node 3 .*\n.*DETAIL:  Was dragonraft.data_dir deleted\?/,
	$log_offset);
ok(1, 'the log says what happened and how to rejoin');
($rc, $out, $err) = $n3->psql('postgres', "SELECT dragonraft.create_group(1, '$members')");
like($err, qr/group 1 cannot be started on this node: this node was a member \(replication origin dragonraft_1, applied up to \d+\) but its LogDB has no record of the group; to rejoin/,
	'create_group refuses to start the member as new');
ok(wait_until('group 1 on nodes 1 and 2', sub { agreed_leader(1, 1, 2) }),
	'the other two members go on');

$_->stop('fast') for @nodes;
done_testing();
