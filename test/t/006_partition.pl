# A network partition isolates the leader from both followers (issue 13),
# with transfers running: clients still connected to the old leader see
# their COMMIT end with 40003 within a few election timeouts and none of
# their transactions appears anywhere unless it was committed; the majority
# elects a leader and goes on; after the heal the old leader follows and
# all nodes are identical.
#
# The partition is nftables rules (DragonCluster's cut): each node's
# transport listens on (and so dials from) its own loopback address,
# 127.0.0.1K for node K, and the rules drop every TCP packet between the
# leader's address and the others'.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use Transfers;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

plan skip_all => 'nftables rules need CAP_NET_ADMIN: run scripts/check.sh as root, '
  . 'which gives the tests a copy of nft with it (DR_NFT)'
  unless DragonCluster->can_cut;

my $c = DragonCluster->new(3, own_addresses => 1);
$c->create_group(1);
my $l = $c->leader(1);
ok($l, "group 1 has a writable leader (node $l)");
Transfers::setup($c, 1, $l);
my @others = grep { $_ != $l } $c->ids;
my $L = $c->node($l);

# The majority's view: both other nodes agree on a writable leader other
# than node $l.
sub majority_leader
{
	return $c->wait_until(
		'a leader among the majority',
		sub {
			my %seen;
			for my $id (@others)
			{
				my ($role, $leader) = split /\|/, $c->node($id)->safe_psql('postgres',
					"SELECT role, leader_id FROM dragonraft.status WHERE group_id = 1 AND state = 'ok'");
				return undef unless defined $leader && $leader ne '' && $leader != $l;
				$seen{$leader} = 1;
			}
			return keys %seen == 1 ? (keys %seen)[0] : undef;
		});
}

# Load: two clients that follow the leader, two that stay on node $l.
my $free = Transfers->start($c, 2);
my $pinned = Transfers->start($c, 2, pin => $l);
ok($free->wait_commits(20), 'transfers commit');

# A client of the old leader with a transaction open, about to commit.
my $s = $L->background_psql('postgres', on_error_stop => 0);
$s->query_safe('\set VERBOSITY verbose');
# (a transfer client that holds account 2 and waits for account 1 deadlocks
# with it, and PostgreSQL may abort this one, 40P01: CI saw it once; then
# again)
my $open;
for my $try (1 .. 20)
{
	$s->query_safe('BEGIN');
	$open = 1;
	for my $q ('UPDATE accounts SET balance = balance - 1 WHERE id = 1',
		'UPDATE accounts SET balance = balance + 1 WHERE id = 2',
		'INSERT INTO transfers VALUES (1, 1, 2, 1)')
	{
		my (undef, $failed) = $s->query($q);
		next unless $failed;
		die "the open transfer failed: $s->{stderr}" unless $s->{stderr} =~ /40P01/;
		$open = 0;
		last;
	}
	last if $open;
	$s->{stderr} = '';
	$s->query_safe('ROLLBACK');
}
die 'the open transfer deadlocked 20 times' unless $open;

ok($c->cut($l, @others), "node $l cut off from nodes @others");
my $cut = time;

my $t0 = time;
$s->query('COMMIT');
my $took = time - $t0;
like($s->{stderr}, qr/ERROR:\s+40003:/, 'a COMMIT on the old leader ends with 40003');
diag(sprintf('the COMMIT on the cut-off leader ended after %.2f s', $took));
ok($took < 10, 'within a few election timeouts (0.5 s each), not a hang');
$s->quit;

my $nl = majority_leader();
ok($nl, "the majority elected node $nl");
ok($free->wait_commits(20, $cut), 'transfers commit on the majority\'s leader');
is($L->safe_psql('postgres', 'SELECT count(*) FROM transfers WHERE id = 1'), '0',
	'the old leader has not applied the transaction that ended with 40003');
# (CheckQuorum: within 3 of its own election timeouts, which a loaded host
# stretches; the majority may have elected and committed before)
ok($c->wait_until("node $l to step down", sub {
	($c->poll($l, 'SELECT role FROM dragonraft.status WHERE group_id = 1') // 'leader') ne 'leader' }),
	'the old leader stepped down');

ok($c->heal, 'the partition heals');
ok($c->caught_up(1), 'every member applied every entry');
is($L->safe_psql('postgres', 'SELECT role FROM dragonraft.status WHERE group_id = 1'),
	'follower', "node $l follows");
my %r = $free->stop;
my %p = $pinned->stop;
ok($c->caught_up(1), 'every member applied the last transfers');
$c->same_logs(1, 'the members hold the same Raft log');
is($c->node($_)->safe_psql('postgres', 'SELECT count(*) FROM transfers WHERE id = 1'), '0',
	"node $_ does not have the transaction that ended with 40003") for $c->ids;
# The pinned clients' transactions that were cut off with the old leader
# were not committed by a majority: none of them may appear.
my %cut_off = map { $_ => 1 } grep { $p{$_} eq 'unknown' } keys %p;
my @appeared = grep { $cut_off{$_} } split /\n/,
  $c->node($nl)->safe_psql('postgres', 'SELECT id FROM transfers ORDER BY id');
diag(scalar(keys %cut_off) . ' transfers of the old leader\'s clients ended with an unknown outcome, '
	  . scalar(@appeared) . ' of them committed');
Transfers::check($c, { %r, %p }, 'after the partition');

done_testing();
